"""The environment a book was built in, beside the one ``requirements.lock`` pins.

``requirements.lock`` (made by ``make lock`` from ``pyproject.toml``) pins every package of
the project's environment, extras included, to one version with its hashes; ``make setup``,
Binder's ``environment.yml`` and CI install from it. :func:`appendix` writes the book's page
of exact versions: Python, the platform, torch's build, and every installed distribution with
the version the lock pins, so that a reader sees at once whether the book was built in the
locked environment or where it departed from it.
"""

from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path

import torch
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"

# ``name==version \`` opens each pinned requirement; its ``--hash`` lines follow
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*(?:\\|;|$)")


def locked(path: str | Path = LOCK) -> dict[str, str]:
    """Canonical package name -> the version the lock file at ``path`` pins ({} without one)."""
    path = Path(path)
    if not path.is_file():
        return {}
    pins = (PIN.match(line) for line in path.read_text().splitlines())
    return {canonicalize_name(m[1]): m[2] for m in pins if m}


def installed() -> dict[str, str]:
    """Canonical name -> version of every distribution this interpreter imports from."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def torch_build() -> str:
    """torch's version and what it was built for: the CPU, or the CUDA and cuDNN versions."""
    if torch.version.cuda is None:
        return f"{torch.__version__} (CPU build)"
    cudnn = torch.backends.cudnn.version()
    return f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn})"


def differences(lock: dict[str, str], present: dict[str, str]) -> list[str]:
    """One phrase per package of ``lock`` missing from ``present`` or at another version."""
    return [
        f"{name} {present[name]} (locked {version})" if name in present else f"{name} missing"
        for name, version in sorted(lock.items())
        if present.get(name) != version
    ]


def appendix(lock_path: str | Path = LOCK) -> str:
    """The book's page of exact versions, in Markdown (the project itself, ``companion``, is
    left out: it is the checkout the book was built from)."""
    lock, present = locked(lock_path), installed()
    present.pop("companion", None)
    if not lock:
        verdict = "No `requirements.lock` was found: the versions below are not compared."
    elif drift := differences(lock, present):
        verdict = (
            f"Built in an environment that departs from `requirements.lock` in {len(drift)} "
            f"of its {len(lock)} packages: " + "; ".join(drift) + "."
        )
    else:
        verdict = f"Built in the locked environment: all {len(lock)} packages at their pins."
    lines = [
        f"- Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.machine()}",
        f"- torch {torch_build()}",
        "",
        verdict,
        "",
        "| package | version | locked |",
        "| --- | --- | --- |",
    ]
    for name in sorted(present.keys() | lock.keys()):
        lines.append(f"| {name} | {present.get(name, '—')} | {lock.get(name, 'not locked')} |")
    return "\n".join(lines) + "\n"

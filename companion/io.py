"""Small I/O helpers: atomic file writes (a reader never sees a half-written file, a killed
writer leaves none), a full disk named as such, and git queries about the working tree."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # of the temporary files beside their target (``.<name>.<random>.tmp``)
# bytes free below which a failed write is put down to a full disk (torch.save, a notebook
# kernel or the book builder report it in words of their own, without errno)
FULL_BELOW = 1 << 20


def umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _full_disk(err: BaseException, paths) -> str | None:
    """The path whose disk is full, if that is why ``err`` happened; None otherwise."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return err.filename or str(paths[0])
    for path in map(Path, paths):
        existing = next((p for p in [path, *path.parents] if p.exists()), None)
        try:
            if existing is not None and shutil.disk_usage(existing).free < FULL_BELOW:
                return str(path)
        except OSError:
            continue
    return None


@contextlib.contextmanager
def writing(*paths: str | os.PathLike) -> Iterator[None]:
    """Turn a failure inside the block into ``OSError(ENOSPC, …, path)`` when it came from a
    full disk: an ``ENOSPC`` error, or any error while the disk of one of ``paths`` has less
    than :data:`FULL_BELOW` bytes free. Other errors pass unchanged."""
    try:
        yield
    except Exception as err:
        full = _full_disk(err, paths)
        if full is None:
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), full) from err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step,
    with the permissions the user's umask gives a new file (not ``mkstemp``'s private 0600, so
    that a group can read the runs on a shared file system).

    >>> with atomic_path("out/table.csv") as tmp:
    ...     frame.to_csv(tmp)
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, "a folder stands where this file belongs; move it away", str(path)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        with writing(path):
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~umask())
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def git(*args: str, cwd: str | os.PathLike | None = None) -> str | None:
    """Output of ``git args…`` in ``cwd`` (default: this repository), or None when git or the
    repository is not there."""
    cwd = Path(__file__).resolve().parents[1] if cwd is None else cwd
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None

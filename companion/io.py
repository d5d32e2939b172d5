"""Small I/O helpers: atomic file writes (a reader never sees a half-written file, a killed
writer leaves none) and git queries about the working tree."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # of the temporary files beside their target (``.<name>.<random>.tmp``)


def umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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

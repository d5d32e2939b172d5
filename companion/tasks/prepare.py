"""Preparing the data of several tasks in one call (``companion data prepare``): each cache is
built unless a verified one exists, one task's failure does not stop the others, and the
failures are raised together at the end.

>>> from companion.tasks import get_task
>>> from companion.tasks.prepare import prepare
>>> done = prepare([("mqar", get_task("mqar", "smoke"))], log=lambda line: None)
>>> done.failed
[]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from companion.tasks.base import Task
from companion.tasks.cache import data_root
from companion.tasks.common import DataError


@dataclass
class Prepared:
    """What :func:`prepare` did: the labels of the caches ``built`` and of those already
    ``cached``, and ``failed`` as ``"<label>: <reason>"`` lines."""

    built: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def prepare(
    tasks: Sequence[tuple[str, Task]],
    root: str | Path | None = None,
    *,
    force: bool = False,
    release: str | Path | None = None,
    log: Callable[[str], None] = print,
    then: Callable[[Task], None] | None = None,
) -> Prepared:
    """Prepare every ``(label, task)`` under ``root`` (default: the data root), reporting
    each through ``log``; ``force`` rebuilds verified caches too, ``release`` is passed to
    :meth:`Task.prepare`, and ``then(task)`` runs after each task that is ready (the command
    line prints its baselines there). Data errors and bad settings are collected, not raised."""
    root = Path(root) if root else data_root()
    done, start = Prepared(), time.perf_counter()
    for i, (label, task) in enumerate(tasks, 1):
        t0 = time.perf_counter()
        log(f"[{i}/{len(tasks)}] {label}: {task.source}")
        try:
            status = task.prepare(root, force=force, log=log, release=release)
        except (DataError, ValueError) as e:
            done.failed.append(f"{label}: {e}")
            log(f"  failed: {e}")
            continue
        if status == "cached":
            done.cached.append(label)
            log("  already prepared and verified, nothing to do")
        else:
            done.built.append(label)
            files = task.manifest(root)["files"]
            sizes = "/".join(str(files[s]["rows"]) for s in ("train", "val", "test"))
            log(f"  built train/val/test = {sizes} in {time.perf_counter() - t0:.1f} s")
        if then is not None:
            then(task)
    done.seconds = time.perf_counter() - start
    return done

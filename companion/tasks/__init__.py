"""The five tasks of the paper and their data, online (paper) and offline (smoke, quick).

>>> from companion.tasks import get_task
>>> task = get_task("mqar", "smoke")
>>> batch = task.collate([task.split("train")[i] for i in range(4)])
>>> batch["input_ids"].shape, batch["labels"].shape
(torch.Size([4, 32]), torch.Size([4, 32]))

``get_task(name, profile, **options)`` takes the profile's preset (:func:`preset`: the ``data``
settings of ``configs/<name>/task.yaml``) and replaces the given options (e.g.
``get_task("image", "quick", encoding="floats")``). Downloaded sources must be prepared
first with ``companion data prepare --profile P`` (or ``task.prepare()``); our own generators
(ListOps, MQAR) build in memory when nothing is cached.
"""

from __future__ import annotations

from pathlib import Path

from companion.schema import read_settings
from companion.tasks.base import (
    PROFILES,
    Task,
    check_profile,
    replace_config,
)
from companion.tasks.common import SPLITS, CacheError, DataError, HubUnavailableError, Metric
from companion.tasks.image import Image
from companion.tasks.listops import ListOps
from companion.tasks.lm import LM
from companion.tasks.mqar import MQAR
from companion.tasks.text import Text

# name -> class, in the book's order of tasks
REGISTRY: dict[str, type[Task]] = {
    "listops": ListOps,
    "text": Text,
    "image": Image,
    "mqar": MQAR,
    "lm": LM,
}
TASKS: tuple[str, ...] = tuple(REGISTRY)
# configs/<task>/task.yaml: a task's data settings per profile (and the training defaults the
# run configurations read, companion.config)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def task_class(name: str) -> type[Task]:
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return REGISTRY[name]


def preset(name: str, profile: str):
    """The data settings task ``name`` uses at ``profile`` (its ``Config`` dataclass): the
    ``data`` block of ``configs/<name>/task.yaml`` (the paper's) and, at another profile, the
    ``data`` of that profile's block over it, on the dataclass's defaults."""
    cls = task_class(name)
    check_profile(profile)
    spec = read_settings(CONFIG_DIR / name / "task.yaml")
    data = dict(spec.get("data") or {})
    if profile != "paper":
        data.update(((spec.get("profiles") or {}).get(profile) or {}).get("data") or {})
    return replace_config(cls.Config(), data, name)


def metric(name: str) -> Metric:
    """How task ``name`` is scored (its class's ``metric``), without building the task."""
    return Metric(task_class(name).metric)


def get_task(name: str, profile: str = "quick", **options) -> Task:
    """Task ``name`` at ``profile`` (smoke | quick | paper), with preset options replaced."""
    base = preset(name, profile)
    config = replace_config(base, options, name) if options else base
    return task_class(name)(profile, config, preset=config == base)


__all__ = [
    "PROFILES",
    "SPLITS",
    "CONFIG_DIR",
    "REGISTRY",
    "TASKS",
    "CacheError",
    "DataError",
    "HubUnavailableError",
    "Metric",
    "Task",
    "get_task",
    "metric",
    "preset",
    "task_class",
]

"""The five tasks of the paper and their data, online (paper) and offline (smoke, quick).

>>> from companion.tasks import get_task
>>> task = get_task("mqar", "smoke")
>>> batch = task.collate([task.split("train")[i] for i in range(4)])
>>> batch["input_ids"].shape, batch["labels"].shape
(torch.Size([4, 32]), torch.Size([4, 32]))

``get_task(name, profile, **options)`` takes the profile's preset and replaces the given options
(e.g. ``get_task("image", "quick", encoding="floats")``). Downloaded sources must be prepared
first with ``companion data prepare --profile P`` (or ``task.prepare()``); our own generators
(ListOps, MQAR) build in memory when nothing is cached.
"""

from __future__ import annotations

from importlib import import_module

from companion.tasks.base import LADDER, PROFILES, REPRODUCE_PROFILES, Task, replace_config
from companion.tasks.common import SPLITS, CacheError, DataError, HubUnavailableError, Metric

# name -> (module, class)
_REGISTRY: dict[str, tuple[str, str]] = {
    "listops": ("companion.tasks.listops", "ListOps"),
    "text": ("companion.tasks.text", "Text"),
    "image": ("companion.tasks.image", "Image"),
    "mqar": ("companion.tasks.mqar", "MQAR"),
    "lm": ("companion.tasks.lm", "LM"),
}
TASKS: tuple[str, ...] = tuple(_REGISTRY)


def task_module(name: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return import_module(_REGISTRY[name][0])


def preset(name: str, profile: str):
    """The config dataclass a profile uses for a task."""
    module = task_module(name)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    return module.PRESETS[profile]


def metric(name: str) -> Metric:
    """How task ``name`` is scored (its class's ``metric``), without building the task."""
    module = task_module(name)
    return Metric(getattr(module, _REGISTRY[name][1]).metric)


def get_task(name: str, profile: str = "quick", **options) -> Task:
    """Task ``name`` at ``profile`` (smoke | quick | paper), with preset options replaced."""
    base = preset(name, profile)
    config = replace_config(base, options, name) if options else base
    cls = getattr(task_module(name), _REGISTRY[name][1])
    return cls(profile, config, preset=config == base)


__all__ = [
    "LADDER",
    "PROFILES",
    "REPRODUCE_PROFILES",
    "SPLITS",
    "TASKS",
    "CacheError",
    "DataError",
    "HubUnavailableError",
    "Metric",
    "Task",
    "get_task",
    "metric",
    "preset",
]

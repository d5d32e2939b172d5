"""The book's runs: which experiments the configuration files define, which of them a profile
runs with which seeds, and the scale ladder (``configs/book.yaml``).

Layout::

    configs/<task>/task.yaml      the task: its data, model and training settings per profile
    configs/<task>/<model>.yaml   one experiment of the main grid at paper scale, its
                                  ``variants`` (ablations) and ``departures``
    configs/book.yaml             the book's seed, more seeds for some experiments, what a
                                  profile leaves out, and the scale ladder: its rungs, its dials
                                  and its seeds

A run is named by a :data:`Key` ``(task, model, variant, profile, seed)``; ``variant`` ``None``
is the main grid, and a scale-ladder run's variant is ``[<variant>-]ladder-<rung>`` (quick
profile only). :func:`companion.config.resolve` turns a key into the run's configuration;
:func:`companion.config.book_runs` resolves the whole :func:`plan` of a profile.

Reads YAML only (no torch), so that the command line can offer its choices without loading
the models.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import yaml

from companion.schema import ConfigError, read_settings
from companion.tasks import CONFIG_DIR, PROFILES, Task, get_task

# `make reproduce PROFILE=ladder`: the quick data and runs, and the harder rungs of the scale
# ladder (:func:`ladder_plan`); a profile of reproductions, not of data
LADDER = "ladder"
REPRODUCE_PROFILES: tuple[str, ...] = (*PROFILES, LADDER)
Key = tuple[str, str, str | None, str, int]  # (task, model, variant, profile, seed)

BOOK_RUNS = CONFIG_DIR / "book.yaml"
RUNG = "ladder-"  # a rung's variant names: ladder-<rung> (main grid), <variant>-ladder-<rung>
# the variant every experiment has: the same network with its sequence mixer removed (the
# floor a model must beat to count as having used its state; ``model.mixing``)
CONTROL = "nomix"
CONTROL_SETTINGS = {"model": {"mixing": False}}


def tasks() -> list[str]:
    return sorted(p.name for p in CONFIG_DIR.iterdir() if (p / "task.yaml").exists())


def models(task: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / task).glob("*.yaml") if p.stem != "task")


def variant_settings(task: str, model: str) -> dict[str, dict]:
    """The variants of an experiment file, and the no-mixing ``CONTROL`` every one has."""
    named = read_settings(CONFIG_DIR / task / f"{model}.yaml").get("variants") or {}
    return {**named, CONTROL: CONTROL_SETTINGS}


def variants(task: str, model: str) -> list[str]:
    return sorted(variant_settings(task, model))


def control_of(variant: str | None) -> str:
    """The variant of the no-mixing control that a run of ``variant`` is measured against: the
    control of the main grid, at the same ladder rung."""
    rung = split_rung(variant)[1]
    return f"{CONTROL}-{RUNG}{rung}" if rung else CONTROL


def departures(task: str, model: str) -> list[dict]:
    """How the experiment file ``<task>/<model>.yaml`` departs from the public configuration it
    follows: a list of ``{"part", "what", "why"}`` (part: model, optimiser, schedule, data)."""
    return read_settings(CONFIG_DIR / task / f"{model}.yaml").get("departures") or []


def experiments(broken: list[str] | None = None) -> list[tuple[str, str, str | None]]:
    """Every (task, model, variant) defined by the files; ``variant=None`` is the main grid.
    A file that cannot be read raises its one-line :class:`ConfigError`, or, when ``broken``
    is a list, is left out with that line appended to it (so that it stops only its runs)."""
    out = []
    for t in tasks():
        for m in models(t):
            try:
                out += [(t, m, v) for v in [None, *variants(t, m)]]
                read_settings(CONFIG_DIR / t / "task.yaml")
            except ConfigError as err:
                if broken is None:
                    raise
                if str(err) not in broken:
                    broken.append(str(err))
                out = [e for e in out if e[:2] != (t, m)]
    return out


def book_seed() -> int:
    """The seed every experiment of the book runs with (``configs/book.yaml``); figures that
    show one run per experiment show this one."""
    return int(yaml.safe_load(BOOK_RUNS.read_text())["seed"])


def runs_profile(profile: str) -> str:
    """The profile whose runs folder a reproduction at ``profile`` fills."""
    return "quick" if profile == LADDER else profile


def _ladder() -> dict:
    return yaml.safe_load(BOOK_RUNS.read_text())["ladder"]


def ladder_seeds() -> list[int]:
    """The seeds every experiment of the scale ladder runs with (``configs/book.yaml``)."""
    return list(_ladder()["seeds"])


def ladder_rungs(task: str) -> dict[str, dict]:
    """The scale ladder's rungs of ``task`` (``configs/book.yaml``), easiest first: name ->
    settings merged over the quick run's (``{}``: the quick run itself); ``{}`` for a task
    without a ladder."""
    return dict(_ladder()["rungs"].get(task) or {})


def dials() -> dict[str, dict]:
    """The ladder's dials (``configs/book.yaml``): name -> ``{"task", "demand", "models",
    "steps"}``, ``steps`` a mapping step -> settings merged over the quick run's, least
    demanding first (``{}``: the quick run itself)."""
    return dict(_ladder().get("dials") or {})


def dial_rungs(task: str) -> dict[str, dict]:
    """The steps of every dial of ``task`` as rungs named ``<dial>-<step>``, with their
    settings: a dial's step is run and resolved as a ladder rung of its own."""
    return {
        f"{name}-{step}": settings
        for name, dial in dials().items()
        if dial["task"] == task
        for step, settings in dial["steps"].items()
    }


def all_rungs(task: str) -> dict[str, dict]:
    """Every rung a run of ``task`` can name: the scale ladder's and the dials' steps."""
    return {**ladder_rungs(task), **dial_rungs(task)}


def rung_variant(task: str, variant: str | None, rung: str) -> str | None:
    """The variant name of experiment ``variant`` (``None``: the main grid) at ladder rung
    ``rung`` of ``task``: the variant itself at the rung of the quick run."""
    if not all_rungs(task)[rung]:
        return variant
    return f"{variant}-{RUNG}{rung}" if variant else f"{RUNG}{rung}"


def split_rung(variant: str | None) -> tuple[str | None, str | None]:
    """``(experiment variant, ladder rung)`` of a variant name; the rung is ``None`` outside the
    ladder: ``"lti-ladder-depth4"`` -> ``("lti", "depth4")``, ``"ladder-L128x16"`` ->
    ``(None, "L128x16")``."""
    head, sep, rung = (variant or "").rpartition(RUNG)
    if not sep or (head and not head.endswith("-")):
        return variant, None
    return head[:-1] or None, rung


def ladder_experiments(task: str) -> list[tuple[str, str | None]]:
    """``(model, variant)`` of every experiment the ladder runs on ``task`` at each rung: the
    main grid (variant ``None``), its no-mixing controls, then the variants it names."""
    named = (_ladder().get("variants") or {}).get(task, [])
    grid = [(m, v) for v in (None, CONTROL) for m in models(task)]
    return grid + [tuple(n.split("/")) for n in named]


def data_tasks(profile: str, names: Sequence[str]) -> list[tuple[str, Task]]:
    """``(label, task)`` for every data cache that ``profile`` trains on; at ``ladder``, the
    quick data and the data of every ladder rung and dial step that changes it (label "<task>
    <rung>")."""
    out = [(name, get_task(name, runs_profile(profile))) for name in names]
    if profile == LADDER:
        for name in names:
            for rung, settings in all_rungs(name).items():
                if settings.get("data"):
                    out.append((f"{name} {rung}", get_task(name, "quick", **settings["data"])))
    return out


def plan(profile: str, only: str | None = None, broken: list[str] | None = None) -> list[Key]:
    """Every run of the book at ``profile``, in a fixed order;
    ``only`` keeps the experiments matching a "task/model/variant" pattern (e.g. ``mqar/*``);
    ``broken``: see :func:`experiments`. At ``ladder``: the quick runs, each quick experiment
    at the ladder's seeds it lacks, then the ladder's own runs."""
    if profile == LADDER:
        quick = plan("quick", only, broken)
        seeds: dict[tuple, set[int]] = {}
        for task, model, variant, _, seed in quick:
            seeds.setdefault((task, model, variant), set()).add(seed)
        more = [
            (*experiment, "quick", seed)
            for experiment, have in seeds.items()
            for seed in ladder_seeds()
            if seed not in have
        ]
        return quick + more + ladder_plan(only)
    spec = yaml.safe_load(BOOK_RUNS.read_text())
    skip = spec.get("skip", {}).get(profile) or []
    runs = []
    for task, model, variant in experiments(broken):
        name = f"{task}/{model}/{variant or ''}"
        if any(fnmatch.fnmatch(name, pattern) for pattern in skip):
            continue
        if only is not None and not fnmatch.fnmatch(name, only):
            continue
        seeds = [spec["seed"]]
        for extra in spec.get("more_seeds", []):
            if fnmatch.fnmatch(name, extra["runs"]) and profile in extra.get("profiles", PROFILES):
                seeds += [seed for seed in extra["seeds"] if seed not in seeds]
        runs += [(task, model, variant, profile, seed) for seed in seeds]
    return runs


def ladder_plan(only: str | None = None) -> list[Key]:
    """The runs of the scale ladder beyond the quick runs, with the ladder's seeds: at every
    rung with settings, its task's :func:`ladder_experiments`; at every step of a dial with
    settings, the dial's models and their no-mixing controls. ``only``: a "task/model/variant"
    pattern, as for :func:`plan`."""
    spec = _ladder()
    steps = [
        (task, rung, ladder_experiments(task))
        for task, rungs in spec["rungs"].items()
        for rung, settings in rungs.items()
        if settings
    ]
    steps += [
        (dial["task"], f"{name}-{step}", [(m, v) for v in (None, CONTROL) for m in dial["models"]])
        for name, dial in dials().items()
        for step, settings in dial["steps"].items()
        if settings
    ]
    runs = []
    for task, rung, experiments in steps:
        for model, variant in experiments:
            name = rung_variant(task, variant, rung)
            if only is None or fnmatch.fnmatch(f"{task}/{model}/{name}", only):
                runs += [(task, model, name, "quick", seed) for seed in spec["seeds"]]
    return runs

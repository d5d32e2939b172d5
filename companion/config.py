"""Run configurations: YAML files in ``companion/configs``, resolved per profile.

Layout::

    configs/<task>/task.yaml      data options, training defaults, and the profile overlays
                                  (``profiles: {quick: ..., smoke: ...}``) shared by the task
    configs/<task>/<model>.yaml   one experiment of the main grid at paper scale (the public
                                  configs' hyperparameters), its ``variants`` (ablations) and
                                  optional per-profile overrides of its own
    configs/book.yaml             the runs of the book (:func:`book_runs`): its seed, more
                                  seeds for some experiments, what a profile leaves out, and
                                  the scale ladder's rungs (:func:`ladder_runs`)

A run is resolved by deep-merging, in order: ``task.yaml``, ``<model>.yaml``, the task's
overlay for the profile, the model file's overlay for the profile, the variant, and finally
``--set key=value`` overrides. A scale-ladder run (variant ``[<variant>-]ladder-<rung>``,
quick profile only) merges its rung's settings after the variant. The ``paper`` profile has
no overlay: it is the files as written.
Variants come after the overlays so that an ablation's change (a gate, a depth, a learning rate)
survives at every profile; ``--set`` comes last and wins.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import yaml

from companion.model import ModelConfig, describe
from companion.schema import (
    MAX_COUNT,
    MAX_WIDTH,
    ConfigError,
    Rule,
    check,
    read_settings,
    setting,
    validate,
)
from companion.tasks import CONFIG_DIR, LADDER, PROFILES, Task, get_task, preset
from companion.tasks.base import replace_config

BOOK_RUNS = CONFIG_DIR / "book.yaml"
RUNG = "ladder-"  # a rung's variant names: ladder-<rung> (main grid), <variant>-ladder-<rung>
# the variant every experiment has: the same network with its sequence mixer removed (the
# floor a model must beat to count as having used its state; ``model.mixing``)
CONTROL = "nomix"
CONTROL_SETTINGS = {"model": {"mixing": False}}
# ModelConfig fields that come from the task, never from a config file
TASK_FACTS = ("vocab_size", "input_dim", "max_len", "head", "n_classes")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of one run (AdamW, linear warmup then cosine).

    ``steps`` or ``epochs`` (converted to steps once the training set size is known);
    ``ssm_lr``: the learning rate, without weight decay, of parameters tagged with
    ``mark_ssm`` (``None``: they are treated like every other parameter); ``decay_transition``:
    whether weight decay also acts on the parameters that set Λ (``mark_transition``; the
    public code decays them); ``early_stop``: stop
    when the validation accuracy reaches it; ``eval_examples`` caps the periodic validation
    (the final validation and test metrics always use the whole splits); ``spectra_points``:
    how many times Λ is recorded during training, besides initialisation and the end."""

    lr: float = setting(1e-3, above=0)
    ssm_lr: float | None = setting(None, float, above=0, optional=True)
    weight_decay: float = setting(0.0, at_least=0)
    decay_transition: bool = setting(True)
    betas: tuple[float, float] = setting((0.9, 0.999), "pair")
    batch_size: int = setting(32, at_least=1, at_most=MAX_WIDTH)
    steps: int | None = setting(None, int, at_least=1, optional=True, at_most=MAX_COUNT)
    epochs: float | None = setting(None, float, above=0, optional=True, at_most=10_000)
    warmup_steps: int = setting(0, at_least=0, at_most=MAX_COUNT)
    # the warmup as epochs
    warmup_epochs: float | None = setting(None, float, at_least=0, optional=True, at_most=10_000)
    min_lr: float = setting(5e-6, at_least=0)
    grad_clip: float = setting(1.0, above=0)
    eval_every: int = setting(100, at_least=1, at_most=MAX_COUNT)
    eval_examples: int | None = setting(None, int, at_least=1, optional=True, at_most=MAX_COUNT)
    early_stop: float | None = setting(None, float, above=0, at_most=1, optional=True)
    spectra_points: int = setting(4, at_least=0, at_most=10_000)
    analysis_examples: int = setting(16, at_least=1, at_most=MAX_WIDTH)
    checkpoint_every: int = setting(100, at_least=1, at_most=MAX_COUNT)

    def __post_init__(self):
        validate(self, "train.")
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError("give exactly one of train.steps or train.epochs")
        if self.min_lr > self.lr:
            raise ConfigError(f"train.min_lr = {self.min_lr:g} exceeds train.lr = {self.lr:g}")


@dataclass
class RunConfig:
    """Everything that determines a run; saved, resolved, in its folder as ``config.yaml``.

    ``overrides``: the ``--set`` settings it was resolved with (besides the seed); a run with
    overrides has its own run id (``-set<hash>``), so it never takes the folder of the book's
    run of the same experiment."""

    task: str
    model_name: str
    profile: str
    seed: int
    variant: str | None
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    overrides: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        variant = f"-{self.variant}" if self.variant else ""
        tag = f"-set{digest(self.overrides)[:6]}" if self.overrides else ""
        return f"{self.task}-{self.model_name}{variant}-s{self.seed}{tag}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["train"]["betas"] = list(d["train"]["betas"])
        return d

    def hash(self) -> str:
        """Short content hash of the resolved configuration (the run's cache key)."""
        return digest(self.to_dict())[:12]


def digest(data: dict) -> str:
    """SHA-256 of ``data`` as canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _choices(values) -> str:
    return ", ".join(sorted(values))


def merge(base: dict, over: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tasks() -> list[str]:
    return sorted(p.name for p in CONFIG_DIR.iterdir() if (p / "task.yaml").exists())


def models(task: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / task).glob("*.yaml") if p.stem != "task")


def _variants(task: str, model: str) -> dict[str, dict]:
    """The variants of an experiment file, and the no-mixing ``CONTROL`` every one has."""
    named = read_settings(CONFIG_DIR / task / f"{model}.yaml").get("variants") or {}
    return {**named, CONTROL: CONTROL_SETTINGS}


def variants(task: str, model: str) -> list[str]:
    return sorted(_variants(task, model))


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


def book_runs(
    profile: str, only: str | None = None, broken: list[str] | None = None
) -> list[RunConfig]:
    """The resolved configurations of every run of the book at ``profile``, in a fixed order;
    ``only`` keeps the experiments matching a "task/model/variant" pattern (e.g. ``mqar/*``);
    ``broken``: see :func:`experiments`. At ``ladder``: the quick runs, each quick experiment
    at the ladder's seeds it lacks, then the ladder's own runs."""
    if profile == LADDER:
        quick = book_runs("quick", only, broken)
        seeds: dict[tuple, set[int]] = {}
        for c in quick:
            seeds.setdefault((c.task, c.model_name, c.variant), set()).add(c.seed)
        more = [
            resolve(*experiment, "quick", seed)
            for experiment, have in seeds.items()
            for seed in _ladder()["seeds"]
            if seed not in have
        ]
        return quick + more + ladder_runs(only)
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
        runs += [resolve(task, model, variant, profile, seed) for seed in seeds]
    return runs


def runs_profile(profile: str) -> str:
    """The profile whose runs folder a reproduction at ``profile`` fills."""
    return "quick" if profile == LADDER else profile


def _ladder() -> dict:
    return yaml.safe_load(BOOK_RUNS.read_text())["ladder"]


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


def _rungs(task: str) -> dict[str, dict]:
    """Every rung a run of ``task`` can name: the scale ladder's and the dials' steps."""
    return {**ladder_rungs(task), **dial_rungs(task)}


def rung_variant(task: str, variant: str | None, rung: str) -> str | None:
    """The variant name of experiment ``variant`` (``None``: the main grid) at ladder rung
    ``rung`` of ``task``: the variant itself at the rung of the quick run."""
    if not _rungs(task)[rung]:
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


def ladder_runs(only: str | None = None) -> list[RunConfig]:
    """The runs of the scale ladder beyond the quick runs, with the ladder's seeds: at every
    rung with settings, its task's :func:`ladder_experiments`; at every step of a dial with
    settings, the dial's models and their no-mixing controls. ``only``: a "task/model/variant"
    pattern, as for :func:`book_runs`."""
    spec = _ladder()
    plan = [
        (task, rung, ladder_experiments(task))
        for task, rungs in spec["rungs"].items()
        for rung, settings in rungs.items()
        if settings
    ]
    plan += [
        (dial["task"], f"{name}-{step}", [(m, v) for v in (None, CONTROL) for m in dial["models"]])
        for name, dial in dials().items()
        for step, settings in dial["steps"].items()
        if settings
    ]
    runs = []
    for task, rung, experiments in plan:
        for model, variant in experiments:
            name = rung_variant(task, variant, rung)
            if only is None or fnmatch.fnmatch(f"{task}/{model}/{name}", only):
                runs += [resolve(task, model, name, "quick", seed) for seed in spec["seeds"]]
    return runs


def data_tasks(profile: str, names: Sequence[str]) -> list[tuple[str, Task]]:
    """``(label, task)`` for every data cache that ``profile`` trains on; at ``ladder``, the
    quick data and the data of every ladder rung and dial step that changes it (label "<task>
    <rung>")."""
    out = [(name, get_task(name, runs_profile(profile))) for name in names]
    if profile == LADDER:
        for name in names:
            for rung, settings in _rungs(name).items():
                if settings.get("data"):
                    out.append((f"{name} {rung}", get_task(name, "quick", **settings["data"])))
    return out


def key_value(item: str, flag: str, example: str, strip: str = "") -> tuple[str, str]:
    """``"KEY=VALUE"`` of a repeatable command-line ``flag`` split at its first ``=``, the key
    without leading and trailing ``strip`` characters; refused in one line naming ``example``
    when there is no ``=`` or the key (or a dotted part of it) is empty."""
    key, sep, value = item.partition("=")
    key = key.strip(strip)
    if not sep or any(not part for part in key.split(".")):
        raise ConfigError(f"malformed {flag} {item!r}; expected {example}")
    return key, value


def parse_set(items: list[str] | None) -> dict:
    """``["train.lr=1e-3", "model.gate=true"]`` -> nested dict; values are parsed as YAML."""
    out: dict = {}
    for item in items or []:
        key, raw = key_value(item, "--set", "key.path=value, e.g. train.lr=1e-3")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"malformed --set {item!r}: the value is not valid YAML") from None
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _check_keys(overrides: dict, reference: dict, where: str = "") -> None:
    """Every ``--set`` key must name a field that exists (``model.mixer_options`` and ``data``
    are open: their keys are checked by the mixer and the task)."""
    for key, value in overrides.items():
        path = f"{where}{key}"
        if key not in reference:
            raise ConfigError(f"unknown setting {path!r}; valid here: {_choices(reference)}")
        if isinstance(value, dict) and path not in ("model.mixer_options", "data"):
            _check_keys(value, reference[key] or {}, f"{path}.")


def resolve(
    task: str,
    model: str,
    variant: str | None = None,
    profile: str = "quick",
    seed: int = 1919,
    overrides: dict | None = None,
) -> RunConfig:
    """Resolve one run's configuration; raises :class:`ConfigError` naming the valid choices."""
    if task not in tasks():
        raise ConfigError(f"unknown task {task!r}; choose one of: {_choices(tasks())}")
    if model not in models(task):
        raise ConfigError(
            f"unknown model {model!r} for {task}; choose one of: {_choices(models(task))}"
        )
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    base, exp = (
        read_settings(CONFIG_DIR / task / "task.yaml"),
        read_settings(CONFIG_DIR / task / f"{model}.yaml"),
    )
    all_variants = _variants(task, model)
    exp.pop("departures", None)  # documentation of the file, not part of the run
    exp.pop("variants", None)
    variant_of, rung = split_rung(variant)
    if variant_of is not None and variant_of not in all_variants:
        valid = _choices(all_variants) or "none"
        raise ConfigError(f"unknown variant {variant!r} for {task}/{model}; choose one of: {valid}")
    if rung is not None:
        rungs = {name: v for name, v in _rungs(task).items() if v}
        if rung in _rungs(task) and rung not in rungs:
            raise ConfigError(f"the ladder rung {rung!r} of {task} is the quick run itself")
        if rung not in rungs:
            valid = _choices(rungs) or "none"
            raise ConfigError(f"unknown ladder rung {rung!r} for {task}; choose one of: {valid}")
        if profile != "quick":
            raise ConfigError(f"the ladder rung {rung!r} is defined at the quick profile only")
    overlays = [(part.pop("profiles", None) or {}).get(profile, {}) for part in (base, exp)]
    # the task's own data settings are its preset (companion.tasks.preset): a run's ``data``
    # holds only what departs from them (the model file's, a variant's, a rung's, --set)
    base.pop("data", None)
    overlays[0].pop("data", None)
    cfg = merge(base, exp)
    if profile != "paper":
        for overlay in overlays:  # the task's, then the model file's
            cfg = merge(cfg, overlay)
    if variant_of is not None:
        cfg = merge(cfg, all_variants[variant_of])
    if rung is not None:
        cfg = merge(cfg, _rungs(task)[rung])
    if overrides:
        model_fields = {f.name: None for f in fields(ModelConfig) if f.name not in TASK_FACTS}
        reference = {
            "seed": seed,
            "data": {},
            "train": {f.name: None for f in fields(TrainConfig)},
            "model": {**model_fields, "mixer_options": {}},
        }
        _check_keys(overrides, reference)
        overrides = dict(overrides)
        seed = overrides.pop("seed", seed)
        cfg = merge(cfg, overrides)
    return _build(task, model, variant, profile, seed, cfg, overrides or {})


SEED = Rule(int, at_least=0, below=2**32)


def _build(task, model, variant, profile, seed, cfg: dict, overrides: dict) -> RunConfig:
    """The run of the merged settings ``cfg``, every section checked against its schema."""
    train = TrainConfig(**check(TrainConfig, cfg.get("train") or {}, "train."))
    seed = SEED.normalise("seed", seed)
    model_cfg = check(ModelConfig, cfg.get("model") or {}, "model.", skip=TASK_FACTS)
    try:  # the architecture's own rules (family, heads), before any data or folder exists
        model_cfg = {
            k: getattr(ModelConfig(**model_cfg, vocab_size=1, n_classes=2, max_len=1), k)
            for k in model_cfg
        }
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    data_preset = preset(task, profile)
    data = check(type(data_preset), cfg.get("data") or {}, "data.")
    replace_config(data_preset, data, task)  # the data's own rules
    return RunConfig(
        task=task,
        model_name=model,
        profile=profile,
        seed=seed,
        variant=variant,
        data=data,
        model=model_cfg,
        train=train,
        overrides=overrides,
    )


# ---------------------------------------------------------------------------------------------
# a run's task and architecture, and the book's appendix of every configuration


def task_of(config: RunConfig) -> Task:
    """The task of ``config``: its name and profile with the run's data options."""
    return get_task(config.task, config.profile, **config.data)


def model_config(config: RunConfig, task: Task, vocab_size: int | None = None) -> ModelConfig:
    """The architecture of ``config`` completed with the facts of ``task`` (``vocab_size``
    replaces the task's, for a task whose vocabulary is read from data not prepared here)."""
    return ModelConfig(
        **config.model,
        vocab_size=task.vocab_size if vocab_size is None else vocab_size,
        input_dim=task.input_dim,
        n_classes=task.n_classes,
        head="classify" if task.kind == "classification" else "token",
        max_len=task.seq_len,
    )


def appendix() -> str:
    """The book's appendix of configurations, in Markdown: per task, every model at the paper
    and quick profiles, the structure each builds, where each departs from the public
    configuration it follows, and every ablation with what it changes."""

    def arch(cfg) -> str:
        m = cfg.model
        opts = ", ".join(f"{k}={v}" for k, v in m.get("mixer_options", {}).items())
        extra = "".join(f", {k}" for k in ("gate", "positional") if m.get(k))
        return (
            f"{m['n_layers']}×{m['d_model']}, state {m['state_dim']}, mlp {m.get('mlp', '—')}"
            f"{extra}{', ' + opts if opts else ''}"
        )

    def length(cfg) -> str:
        t = cfg.train
        return f"{t.steps} steps" if t.steps else f"{t.epochs:g} epochs"

    lines = [
        "Generated from the YAML files in `companion/configs/` by `make reproduce`.",
        "",
        f"Every experiment below also runs as `{CONTROL}`: the same configuration with each "
        "sequence mixer replaced by the identity (`model.mixing: false`), the control a model "
        "must beat to count as having used its state.",
        "",
    ]
    for task in tasks():
        lines += [
            f"## {task}",
            "",
            "| model | profile | architecture | lr | weight decay | batch | length |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for model in models(task):
            for profile in ("paper", "quick"):
                cfg = resolve(task, model, None, profile)
                t = cfg.train
                lines.append(
                    f"| {model} | {profile} | {arch(cfg)} | {t.lr:g} | "
                    f"{t.weight_decay:g} | {t.batch_size} | {length(cfg)} |"
                )
        lines += [
            "",
            "Structure, read from the modules each configuration builds (the same at every "
            "profile; `LN`/`BN` layer or batch norm, `drop` dropout, `+` the residual sum):",
            "",
            "| model | encoder → blocks → head |",
            "| --- | --- |",
        ]
        for model in models(task):
            cfg = resolve(task, model, None, "quick")
            lines.append(f"| {model} | {describe(model_config(cfg, task_of(cfg)))} |")
        lines += ["", "Where each file departs from the public configuration it follows:", ""]
        for model in models(task):
            lines += [
                f"- `{model}` ({d['part']}): {d['what']}. *Why:* {d['why']}."
                for d in departures(task, model)
            ]
        ablations = [(m, v) for m in models(task) for v in variants(task, m) if v != CONTROL]
        if ablations:
            lines += ["", "Ablations (paper profile):", ""]
            lines += [
                f"- `{m}/{v}`: {arch(resolve(task, m, v, 'paper'))}, lr "
                f"{resolve(task, m, v, 'paper').train.lr:g}"
                for m, v in ablations
            ]
        lines.append("")
    return "\n".join(lines)

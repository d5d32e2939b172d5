"""Run configurations: the settings of one run, resolved from the YAML files per profile.

A run (a :data:`companion.grid.Key`: task, model, variant, profile, seed) is resolved by
deep-merging, in order: ``configs/<task>/task.yaml``, ``<model>.yaml``, the task's block for the
profile, the model file's block for the profile, the variant, a scale-ladder rung's settings
(variant ``[<variant>-]ladder-<rung>``, quick profile only) and finally ``--set key=value``
overrides. The ``paper`` profile has no block: it is the files as written. The task's ``data``
settings are its preset (:func:`companion.tasks.preset`); a run's ``data`` holds only what
departs from them. Variants come after the blocks so that an ablation's change (a gate, a depth,
a learning rate) survives at every profile; ``--set`` comes last and wins.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

from companion import grid
from companion.model import ModelConfig
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
from companion.tasks import PROFILES, Task, get_task, preset
from companion.tasks.base import replace_config

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


def book_runs(
    profile: str, only: str | None = None, broken: list[str] | None = None
) -> list[RunConfig]:
    """The resolved configurations of every run of the book at ``profile``
    (:func:`companion.grid.plan`: ``only``, a "task/model/variant" pattern; ``broken``)."""
    return [resolve(*key) for key in grid.plan(profile, only, broken)]


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
    if task not in grid.tasks():
        raise ConfigError(f"unknown task {task!r}; choose one of: {_choices(grid.tasks())}")
    if model not in grid.models(task):
        raise ConfigError(
            f"unknown model {model!r} for {task}; choose one of: {_choices(grid.models(task))}"
        )
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    base, exp = (
        read_settings(grid.CONFIG_DIR / task / "task.yaml"),
        read_settings(grid.CONFIG_DIR / task / f"{model}.yaml"),
    )
    all_variants = grid.variant_settings(task, model)
    exp.pop("departures", None)  # documentation of the file, not part of the run
    exp.pop("variants", None)
    variant_of, rung = grid.split_rung(variant)
    if variant_of is not None and variant_of not in all_variants:
        valid = _choices(all_variants) or "none"
        raise ConfigError(f"unknown variant {variant!r} for {task}/{model}; choose one of: {valid}")
    if rung is not None:
        rungs = {name: v for name, v in grid.all_rungs(task).items() if v}
        if rung in grid.all_rungs(task) and rung not in rungs:
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
        cfg = merge(cfg, grid.all_rungs(task)[rung])
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

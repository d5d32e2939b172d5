"""Small objects the tests share."""

import hashlib

import numpy as np
import pandas as pd
import torch

from companion import config, grid
from companion.model import build_model
from companion.spectra import MAGNITUDE_BINS


def tiny(mixer: str, **overrides):
    """A 2-layer, 16-wide classification model on an 11-token vocabulary, seeded."""
    cfg = dict(
        mixer=mixer, d_model=16, n_layers=2, n_heads=2, state_dim=8, vocab_size=11, n_classes=3
    )
    cfg.update(overrides)
    torch.manual_seed(0)
    return build_model(cfg)


def exit_code(argv: list[str]) -> int:
    """The exit status of ``companion argv...`` run in this process."""
    from companion.cli import main

    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


SHORT = dict(zip(("near0", "small", "mid", "near1", "above"), MAGNITUDE_BINS, strict=False))


def cond(
    task,
    model,
    variant="",
    *,
    acc=0.5,
    final=None,
    init=None,
    jitter=0.0,
    seeds=3,
    learned=True,
    beyond=None,
    control=0.1,
):
    """Rows of ``measures`` for one condition: ``seeds`` seeds, both stages, both analyses.
    ``final``/``init``: shares by short name (near0, small, mid, near1, above; ``band``
    defaults to near1); ``jitter``: the seed-to-seed spread of the final accuracy and shares
    (added to near0, small and near1, taken from mid and above); ``learned`` and ``beyond``
    (default: as ``learned``): whether each seed used its state and went beyond the shallow
    predictor (a bool or one per seed); ``control``: the no-mixing control's mean (NaN: it
    has no runs)."""
    beyond = learned if beyond is None else beyond
    final = final or {"near1": 1.0}
    init = init or final
    out = []
    for i in range(seeds):
        spread = jitter * (i - (seeds - 1) / 2)
        for stage, shares in (("init", init), ("final", final)):
            d = spread if stage == "final" else 0.0
            for analysis in ("exact", "published"):
                row = dict(
                    task=task,
                    model=model,
                    variant=variant,
                    seed=1000 + i,
                    stage=stage,
                    analysis=analysis,
                    test_accuracy=acc + d,
                    test_perplexity=float("nan"),
                    learned=learned if isinstance(learned, bool) else learned[i],
                    beyond_shallow=beyond if isinstance(beyond, bool) else beyond[i],
                    baseline="majority class",
                    baseline_value=0.1,
                    control_value=control,
                    trivial="majority class",
                    trivial_value=0.1,
                    gate_line=0.13,
                    shallow="logistic regression",
                    shallow_value=0.2,
                    shallow_line=0.23,
                    dead_heads=0,
                    quantiles=np.zeros(101),
                )
                for short, name in SHORT.items():
                    sign = -1 if short in ("mid", "above") else 1
                    row[name] = shares.get(short, 0.0) + (sign * d if shares.get(short) else 0.0)
                for name in MAGNITUDE_BINS:
                    row.setdefault(name, 0.0)
                    row[f"{name}_se"] = 0.0
                row["band"] = shares.get("band", shares.get("near1", 0.0)) + d
                row["band_se"] = 0.0
                row["near0_live"], row["band_live"] = row[SHORT["near0"]], row["band"]
                out.append(row)
    return out


def table(*conds) -> pd.DataFrame:
    return pd.DataFrame([row for c in conds for row in c])


def identity(mixer, model, variant, task="image", seed=1919):
    """The runs-index columns that name a smoke run of ``model`` (mixer ``mixer``)."""
    variant_part = f"-{variant}" if variant else ""
    return dict(
        run_id=f"{task}-{model}{variant_part}-s{seed}",
        task=task,
        model=model,
        variant=variant,
        seed=seed,
        profile="smoke",
        config_hash=hashlib.sha256(f"{mixer}{variant}{task}{seed}".encode()).hexdigest()[:12],
        commit="abc1234",
    )


def killed_at(call: int):
    """A ``train_step`` that raises KeyboardInterrupt (a kill) at its ``call``-th call."""
    from companion import train

    real, calls = train.train_step, []

    def step(*args):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args)

    return step


def killed_at_step(cfg, out, step: int, monkeypatch) -> None:
    """Train ``cfg`` into ``out`` as if the process were killed during optimiser step
    ``step``: the run stops there with a KeyboardInterrupt, its last checkpoint kept."""
    import pytest

    from companion import train

    real_step = train.train_step
    monkeypatch.setattr(train, "train_step", killed_at(step))
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg, out=out, progress=False)
    monkeypatch.setattr(train, "train_step", real_step)


def ladder_runs(only: str | None = None) -> list:
    """The resolved configurations of the scale ladder's runs (``grid.ladder_plan``)."""
    return [config.resolve(*key) for key in grid.ladder_plan(only)]

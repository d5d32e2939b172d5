"""The dials: one demand of a task varied at a time, and the spectra read against it
(``make reproduce PROFILE=ladder`` runs them with the scale ladder).

A dial (``configs/book.yaml``, :func:`companion.grid.dials`) names a task, the data setting it
varies (``demand``), the models it runs and its steps, least demanding first; a step without
settings is the quick run itself. The thesis predicts how the spectrum follows the demand:

- ``pressure`` (MQAR, more pairs to store in the same state): a model that must overwrite
  what it stored needs a mode that forgets, so its share of ``|λ|`` in ``[0, 0.1]`` should
  grow with the pairs (claim C4's mechanism);
- ``delay`` (MQAR, filler steps between the pairs and their queries): a recall ``d`` steps
  back needs ``|λ|^d`` far from 0, so the share near 1 and the longest time constants
  ``τ = -1 / log |λ|`` should grow with ``d`` (claim C1's mechanism).

:func:`table` gives one row per dial, step, model and seed (its control's mean beside it), and
:func:`summary` the mean over seeds with every seed kept, for the chapter's figure and table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from companion import evidence as ev
from companion import grid
from companion import statistics as st
from companion import style as S
from companion.tasks import preset

NEAR0, NEAR1 = "[0,0.1]", "(0.9,1]"
# the quantile levels of log |λ| whose time constants the table shows: the median mode and the
# slowest tenth
TAU_LEVELS = {"tau_median": 50, "tau_90": 90}


def demand(dial: str, step: str) -> float:
    """The value of dial ``dial``'s demand at ``step``: its setting there, else the quick
    preset's."""
    spec = grid.dials()[dial]
    data = spec["steps"][step].get("data") or {}
    return float(data.get(spec["demand"], getattr(preset(spec["task"], "quick"), spec["demand"])))


def time_constants(quantiles) -> dict[str, float]:
    """``τ = -1 / log |λ|`` (steps) at the levels of :data:`TAU_LEVELS` from the 101 quantiles
    of ``log |λ|`` a run recorded (``inf`` where ``|λ| ≥ 1``)."""
    q = np.asarray(quantiles, dtype=float)
    return {
        name: float(-1.0 / q[level]) if q[level] < 0 else np.inf
        for name, level in TAU_LEVELS.items()
    }


def table(measures: pd.DataFrame, analysis: str = "exact") -> pd.DataFrame:
    """One row per dial, step, model and seed of ``measures`` (the final spectra of the
    ``analysis``): ``demand``, ``test_accuracy``, ``learned`` and ``beyond_shallow`` (its
    gate at the step's data), ``control_value`` (its no-mixing control's mean), the near-0
    and near-1 shares and the time constants of :func:`time_constants`. The quick runs stand
    at the step without settings."""
    m = ev.normalise(measures)
    m = m[(m["analysis"] == analysis) & (m["stage"] == "final")]
    frames = []
    for name, spec in grid.dials().items():
        for step, settings in spec["steps"].items():
            variant = (
                "" if not settings else grid.rung_variant(spec["task"], None, f"{name}-{step}")
            )
            mine = m[
                (m["task"] == spec["task"])
                & m["model"].isin(spec["models"])
                & (m["variant"] == variant)
            ]
            taus = pd.DataFrame(
                [time_constants(q) for q in mine["quantiles"]],
                index=mine.index,
                columns=[*TAU_LEVELS],
            )
            part = mine.assign(
                dial=name,
                step=step,
                demand=demand(name, step),
                near0=mine[NEAR0],
                near1=mine[NEAR1],
            )
            frames.append(pd.concat([part, taus], axis=1)[COLUMNS])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return out.astype({"learned": bool, "beyond_shallow": bool})


COLUMNS = [
    *("dial", "step", "demand", "model", "seed", "test_accuracy", "learned", "beyond_shallow"),
    *("control_value", "near0", "near1", *TAU_LEVELS),
]


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`table` by dial, step and model: ``seeds``, ``learned`` (seeds that
    used their state), the mean test accuracy and every seed's, the control's mean, and the
    means of the shares and the median of each time constant."""
    keys = ["dial", "step", "demand", "model"]
    grouped = rows.sort_values("seed").groupby(keys, sort=False)
    out = grouped.agg(
        seeds=("seed", "size"),
        learned=("learned", "sum"),
        accuracy=("test_accuracy", "mean"),
        accuracies=("test_accuracy", tuple),
        control_value=("control_value", "mean"),
        near0=("near0", "mean"),
        near1=("near1", "mean"),
        **{name: (name, "median") for name in TAU_LEVELS},
    )
    return out.reset_index().sort_values(["dial", "model", "demand"], ignore_index=True)


def trend(rows: pd.DataFrame, dial: str, share: str) -> pd.DataFrame:
    """Per model of ``dial``: the least-squares slope of ``share`` (a column of :func:`table`)
    on ``log2`` of the demand over every seed, with its 95 % interval (``scipy.stats``), the
    number of runs and how many used their state; ``constant``: the share, where it is the same
    in every run (slope and interval 0). A slope above 0 whose interval excludes 0 is
    the share growing with the demand."""
    out = []
    for model, group in rows[rows["dial"] == dial].groupby("model", sort=False):
        x, y = np.log2(group["demand"].to_numpy(float)), group[share].to_numpy(float)
        row = dict(model=model, runs=len(group), learned=int(group["learned"].sum()))
        if np.ptp(y) == 0:  # the same share at every step and seed: no slope to fit, none there
            row |= dict(slope=0.0, low=0.0, high=0.0, constant=y[0])
        elif len(group) > 2 and np.ptp(x) > 0:
            fit = stats.linregress(x, y)
            half = stats.t.ppf(0.5 + st.CONFIDENCE / 2, len(group) - 2) * fit.stderr
            row |= dict(slope=fit.slope, low=fit.slope - half, high=fit.slope + half)
        out.append(row)
    columns = ["model", "runs", "learned", "slope", "low", "high", "constant"]
    return pd.DataFrame(out, columns=columns)


def runs(index: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``index`` that the dials read: their models and no-mixing controls at every
    step (the quick runs, for a step without settings)."""
    keep = pd.Series(False, index=index.index)
    variant = index["variant"]
    for name, spec in grid.dials().items():
        mine = (index["task"] == spec["task"]) & index["model"].isin(spec["models"])
        for step, settings in spec["steps"].items():
            main = grid.rung_variant(spec["task"], None, f"{name}-{step}") if settings else ""
            control = grid.rung_variant(spec["task"], grid.CONTROL, f"{name}-{step}")
            keep |= mine & variant.isin([main or "", control])
    return index[keep]


def read(index: pd.DataFrame) -> pd.DataFrame | None:
    """:func:`table` of the dials' runs in ``index`` (read with the ladder's rungs), or None
    when it holds no run of a dial step with settings."""
    return table(ev.measures(runs(index))) if has_runs(index) else None


def has_runs(index: pd.DataFrame) -> bool:
    """Whether ``index`` holds a run of any dial step with settings."""
    rungs = {f"{name}-{step}" for name, spec in grid.dials().items() for step in spec["steps"]}
    return any(grid.split_rung(v)[1] in rungs for v in index["variant"])


SHARE_NAMES = {"near0": "the share of |λ| in [0, 0.1]", "near1": "the share of |λ| in (0.9, 1]"}


def describe(rows: pd.DataFrame, dial: str, share: str) -> str:
    """What ``dial``'s runs say about ``share`` (Markdown): per model, the slope of
    :func:`trend` in points per doubling of the demand with its interval, what it supports,
    and how many runs used their state."""
    lines = []
    for r in trend(rows, dial, share).itertuples():
        if not pd.isna(r.constant):
            lines.append(
                f"- **{S.name(r.model)}**: {SHARE_NAMES[share]} is {100 * r.constant:.1f} % in "
                f"every run, at every step; {r.learned} of {r.runs} runs used their state."
            )
            continue
        if pd.isna(r.slope):
            lines.append(f"- **{S.name(r.model)}**: too few runs for a slope.")
            continue
        if r.low > 0:
            word = "grows with the demand"
        elif r.high < 0:
            word = "falls as the demand grows"
        else:
            word = "shows no trend the seeds can resolve"
        lines.append(
            f"- **{S.name(r.model)}**: {SHARE_NAMES[share]} {word}: "
            f"{100 * r.slope:+.1f} [{100 * r.low:+.1f}, {100 * r.high:+.1f}] points per "
            f"doubling; {r.learned} of {r.runs} runs used their state."
        )
    return "\n".join(lines)


def summary_table(rows: pd.DataFrame, dial: str) -> pd.DataFrame:
    """``dial``'s :func:`summary` for the book: per model and step, the test accuracy (%) as
    the mean and every seed (``†``: did not use its state), its control's, the shares (%) and
    the time constants (steps: the median and that of the slowest tenth), in seven columns that
    fit a book page."""
    mine = rows[rows["dial"] == dial]
    out = []
    for r in summary(mine).itertuples():
        seeds = mine[(mine["model"] == r.model) & (mine["step"] == r.step)].sort_values("seed")
        marks = ", ".join(
            f"{100 * a:.1f}" + ("" if ok else "†")
            for a, ok in zip(seeds["test_accuracy"], seeds["learned"], strict=True)
        )
        out.append(
            {
                "model": S.name(r.model),
                "demand": f"{r.demand:g}",
                "test accuracy (%)": f"{100 * r.accuracy:.1f} ({marks})",
                "without mixing (%)": f"{100 * r.control_value:.1f}",
                "[0, 0.1] (%)": f"{100 * r.near0:.1f}",
                "(0.9, 1] (%)": f"{100 * r.near1:.1f}",
                "τ: median / slowest tenth": f"{r.tau_median:.3g} / {r.tau_90:.3g}",
            }
        )
    return pd.DataFrame(out)


# the claims whose mechanism a dial tests directly: claim -> (dial, the share the thesis says
# grows with the demand, the mechanism in words)
MECHANISMS = {
    "C1": ("delay", "near1", "a recall many steps back needs modes near 1"),
    "C4": ("pressure", "near0", "a state that must be overwritten needs modes that forget"),
}


def cite(rows: pd.DataFrame | None) -> str:
    """The claims chapter's pointer to the dials (Markdown): per claim of :data:`MECHANISMS`
    whose dial is defined, the mechanism, the dial and what its runs say (:func:`describe`);
    ``rows``: :func:`table` of the dials' runs, None or empty when none ran."""
    lines = []
    for claim, (dial, share, mechanism) in MECHANISMS.items():
        if dial not in grid.dials():
            continue
        head = f"- **{claim}** ({mechanism}): the *{dial}* dial."
        mine = None if rows is None else rows[rows["dial"] == dial]
        if mine is None or mine.empty:
            lines.append(f"{head} Not run here: `make reproduce PROFILE=ladder` runs it.")
            continue
        said = describe(mine, dial, share).replace("\n", "\n  ")
        lines.append(f"{head}\n  {said}")
    return "\n".join(lines)

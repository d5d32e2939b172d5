"""How firmly the verdicts stand: the per-condition numbers they rest on (:func:`summary`), and
their sensitivity to the thresholds we chose (:func:`sensitivity`, from the stored parts alone)
and to the bin edges (:func:`edge_sensitivity`, from measures recomputed on shifted edges).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from companion import claims
from companion import evidence as ev
from companion import statistics as st
from companion.claims import NEAR0, SMALL
from companion.decision import NEAR1, SHARE, Conditions, decide
from companion.spectra import MAGNITUDE_BINS

ZERO_SHIFT = 0.02  # a zero threshold is read again at ±this (two points of a share)


def sensitivity(parts: pd.DataFrame, factors=(0.5, 2.0)) -> pd.DataFrame:
    """Every part whose threshold is ours to choose (on a share, distance or accuracy; not
    ranks, seed counts or ρ), read again at a lower and a higher threshold from its stored
    effect and interval: no training, no new measures. A non-zero threshold is scaled by
    ``factors``; a zero threshold (a sign: "more", "grows") is moved by ∓:data:`ZERO_SHIFT`.
    Columns: ``claim, analysis, part, threshold, state``, the two thresholds tried
    (``lower``, ``higher``) and the state at each."""
    rows = parts[parts["scalable"].astype(bool)]
    out = rows[["claim", "analysis", "part", "threshold", "state"]].copy()
    thresholds = [
        (-ZERO_SHIFT, ZERO_SHIFT) if t == 0 else (factors[0] * t, factors[1] * t)
        for t in rows["threshold"].astype(float)
    ]
    for k, side in enumerate(("lower", "higher")):
        out[side] = [t[k] for t in thresholds]
        out[f"state at the {side}"] = [
            r["state"]
            if r["state"] in ("missing", "untestable")
            else decide(
                None if pd.isna(r["effect"]) else float(r["effect"]),
                None if pd.isna(r["low"]) else (float(r["low"]), float(r["high"])),
                t[k],
                r["direction"],
            )
            for (_, r), t in zip(rows.iterrows(), thresholds, strict=True)
        ]
    return out.reset_index(drop=True)


def edge_sensitivity(measures: pd.DataFrame, analysis: str = "exact") -> pd.DataFrame:
    """Every claim's verdict with the bin edges (and the near-1 band's half-width) moved by
    each of :data:`companion.evidence.SHIFTS` (measures recomputed from the same spectra, not
    rescaled), beside the verdict as is, and how many of its parts change state. Columns:
    ``claim``, one ``verdict at <shift>`` per shift and ``verdict``, ``parts that move``.
    Empty when the measures carry no shifted columns."""
    columns = [*MAGNITUDE_BINS, NEAR1]
    if not all(ev.shifted(c, s) in measures for c in columns for s in ev.SHIFTS):
        return pd.DataFrame()
    base_v, base_p = claims.evaluate(measures, (analysis,))
    out = base_v[["claim"]].copy()
    moved = pd.Series(0, index=base_p.index)
    for shift in ev.SHIFTS:
        m = measures.assign(**{c: measures[ev.shifted(c, shift)] for c in columns})
        v, p = claims.evaluate(m, (analysis,))
        out[f"verdict at {shift:+g}"] = v["verdict"].to_numpy()
        moved += (p["state"].to_numpy() != base_p["state"].to_numpy()).astype(int)
    out["verdict"] = base_v["verdict"].to_numpy()
    counts = (moved > 0).groupby(base_p["claim"]).sum()
    out["parts that move"] = out["claim"].map(counts).fillna(0).astype(int)
    return out[
        [
            "claim",
            *(f"verdict at {s:+g}" for s in ev.SHIFTS[:1]),
            "verdict",
            *(f"verdict at {s:+g}" for s in ev.SHIFTS[1:]),
            "parts that move",
        ]
    ]


def summary(measures: pd.DataFrame, analysis: str = "exact") -> pd.DataFrame:
    """Per condition (task, model, variant) after training: the number of seeds, of those that
    used their state (``learned``) and of those beyond the shallow line (``beyond``), the mean
    of its no-mixing control (``control``), the test accuracy's mean over every seed with its
    95 % interval (within [0, 1]; seed noise pooled over the task), the test perplexity's
    mean, and the mean
    shares near 0 (``[0, 0.1]``), near 1 (the symmetric band) and of ``|λ| ≤ 0.5``; the numbers
    behind the chapters' sentences and summary tables."""
    e = Conditions(measures, analysis)
    rows = []
    for (task, model, variant), group in e.final.groupby(ev.CONDITION):
        acc = st.estimate(
            group["test_accuracy"],
            st.pooled_sd(e.final[e.final["task"] == task], "test_accuracy", ev.CONDITION),
            None,
            SHARE,
        )
        interval = acc.interval() if acc is not None else None
        rows.append(
            dict(
                task=task,
                model=model,
                variant=variant,
                seeds=group["seed"].nunique(),
                learned=int(group["learned"].astype(bool).sum()),
                beyond=int(group.get("beyond_shallow", group["learned"]).astype(bool).sum()),
                control=group["control_value"].mean() if "control_value" in group else np.nan,
                accuracy=acc.mean if acc is not None else np.nan,
                low=interval[0] if interval else np.nan,
                high=interval[1] if interval else np.nan,
                perplexity=group["test_perplexity"].mean()
                if "test_perplexity" in group
                else np.nan,
                near0=group[NEAR0].mean(),
                near1=group[NEAR1].mean(),
                small=group[list(SMALL)].sum(axis=1).mean(),
            )
        )
    return pd.DataFrame(rows)

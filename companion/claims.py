"""The paper's claims C1–C11 (arXiv:2510.09379, as the book's claims chapter states them), each
evaluated from our runs with its numbers.

Every claim becomes a test on two tables:

* ``runs``: one row per complete run (the runs index): ``task, model, variant, seed`` and the
  test metric ``test_accuracy`` (or ``test_perplexity``);
* ``spectra``: the binned spectra of those runs (``spectra.csv`` of each run, joined with
  ``task, model, variant, seed``), read here at the final step, exact analysis, all heads
  pooled, magnitude bins, averaged over layers.

The verdict is ``holds``, ``does not hold`` or ``inconclusive``: inconclusive when the runs a
claim needs are missing, when its parts disagree, or when a difference is smaller than the
spread between seeds (``NOISE``, or the seeds' own standard deviation where there are several).
The thresholds are ours; the paper gives none, and the book prints them next to each verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from companion.spectra import MAGNITUDE_BINS

LRA = ("listops", "text", "image")
SELECTIVE = ("mqar", "lm")
NEAR0, NEAR1 = MAGNITUDE_BINS[0], MAGNITUDE_BINS[3]
ABOVE1 = MAGNITUDE_BINS[4:]
SMALL = MAGNITUDE_BINS[:2]  # |λ| ≤ 0.5
MAJORITY = 0.5  # "most of the mass"
PRESENT = 0.05  # a bin "has mass"
SHAPE_KEPT = 0.15  # total variation distance below which a spectrum "keeps its shape"
KEYS = ["task", "model", "variant", "seed"]
NOISE = 0.02  # accuracy (or mass) differences below this are not read as effects


@dataclass
class Verdict:
    claim: str
    statement: str
    verdict: str
    evidence: str


def profile_table(spectra: pd.DataFrame, stage: str = "final") -> pd.DataFrame:
    """Bin shares per run and stage: rows (task, model, variant, seed), columns the 7 bins,
    averaged over layers (final step, exact analysis, all heads, magnitudes)."""
    s = spectra.query("analysis == 'exact' and head == 'all' and kind == 'magnitude'")
    s = s[s["stage"] == stage]
    table = s.groupby([*KEYS, "bin"])["mean"].mean().unstack("bin")
    return table.reindex(columns=list(MAGNITUDE_BINS), fill_value=0.0)


def tv(p: pd.Series, q: pd.Series) -> float:
    """Total variation distance between two bin distributions."""
    return 0.5 * float(np.abs(p.to_numpy() - q.to_numpy()).sum())


class Evidence:
    """Lookups shared by the claims: spectra at init and at the end, accuracies, seed spread."""

    def __init__(self, runs: pd.DataFrame, spectra: pd.DataFrame):
        runs = runs.reindex(columns=runs.columns.union(KEYS + ["test_accuracy"], sort=False))
        spectra = spectra.reindex(
            columns=spectra.columns.union(
                KEYS + ["analysis", "head", "kind", "stage", "layer", "bin", "mean"], sort=False
            )
        )
        self.runs = runs.fillna({"variant": ""})
        spectra = spectra.fillna({"variant": ""})
        self.final = profile_table(spectra, "final")
        self.init = profile_table(spectra, "init")

    def _mean(self, table: pd.DataFrame, task, model, variant="") -> pd.Series | None:
        try:
            return table.loc[(task, model, variant)].mean()
        except KeyError:
            return None

    def bins(self, task, model, variant="", stage="final") -> pd.Series | None:
        """Bin shares averaged over seeds, or None if the run is missing."""
        return self._mean(self.final if stage == "final" else self.init, task, model, variant)

    def accuracy(self, task, model, variant="") -> tuple[float, float] | None:
        """Mean test accuracy over seeds and its spread (std over seeds, at least NOISE)."""
        rows = self.runs.query("task == @task and model == @model and variant == @variant")
        if rows.empty or "test_accuracy" not in rows or rows["test_accuracy"].isna().all():
            return None
        acc = rows["test_accuracy"]
        return float(acc.mean()), max(NOISE, float(acc.std(ddof=1)) if len(acc) > 1 else NOISE)

    def models(self, task) -> list[str]:
        return sorted(self.runs.query("task == @task and variant == ''")["model"].unique())


def _verdict(parts: list[bool | None]) -> str:
    known = [p for p in parts if p is not None]
    if not known or len(known) < len(parts) or (any(known) and not all(known)):
        return "inconclusive"
    return "holds" if all(known) else "does not hold"


def _fmt(x: float) -> str:
    return f"{100 * x:.0f}%"


def c1(e: Evidence) -> Verdict:
    parts, notes = [], []
    for task in LRA:
        ranked = sorted((a[0], m) for m in e.models(task) if (a := e.accuracy(task, m)))
        for _, model in ranked[-2:]:
            b = e.bins(task, model)
            parts.append(None if b is None else bool(b[NEAR1] > MAJORITY))
            notes.append(f"{task}/{model} (0.9,1] {_fmt(b[NEAR1])}" if b is not None else "")
    for task in LRA:
        for model in ("s4", "lru"):
            b0, b1 = e.bins(task, model, stage="init"), e.bins(task, model)
            parts.append(None if b0 is None or b1 is None else tv(b0, b1) < SHAPE_KEPT)
            if b0 is not None and b1 is not None:
                notes.append(f"{task}/{model} moved TV {tv(b0, b1):.2f}")
    return Verdict(
        "C1",
        "On the LRA tasks the best models put most mass near 1; S4 and LRU stay "
        "near their initialisation.",
        _verdict(parts),
        "; ".join(n for n in notes if n),
    )


def c2(e: Evidence) -> Verdict:
    parts, notes = [], []
    for task in LRA:
        b = e.bins(task, "softmax")
        accs = {m: a[0] for m in e.models(task) if (a := e.accuracy(task, m))}
        if b is None or "softmax" not in accs:
            parts.append(None)
            continue
        above = float(b[list(ABOVE1)].sum())
        rank = sorted(accs.values(), reverse=True).index(accs["softmax"]) + 1
        parts.append(bool(b[NEAR0] > PRESENT and above > PRESENT and rank > len(accs) / 2))
        notes.append(
            f"{task}: near 0 {_fmt(b[NEAR0])}, above 1 {_fmt(above)}, accuracy rank "
            f"{rank}/{len(accs)}"
        )
    return Verdict(
        "C2",
        "Softmax attention on LRA has mass near 0 and above 1, and performs poorly there.",
        _verdict(parts),
        "; ".join(notes),
    )


def c3(e: Evidence) -> Verdict:
    parts, notes = [], []
    for task in (*LRA, *SELECTIVE):
        b0, b1 = e.bins(task, "linear", stage="init"), e.bins(task, "linear")
        if b0 is None or b1 is None:
            continue
        parts.append(tv(b0, b1) < SHAPE_KEPT)
        notes.append(f"{task} TV {tv(b0, b1):.2f}")
    return Verdict(
        "C3",
        "Linear attention keeps the spectrum shape it had at initialisation.",
        _verdict(parts or [None]),
        "; ".join(notes),
    )


def c4(e: Evidence) -> Verdict:
    parts, notes = [], []
    lra = [b[NEAR0] for t in LRA if (b := e.bins(t, "mamba2")) is not None]
    for task in SELECTIVE:
        near0 = {m: b[NEAR0] for m in e.models(task) if (b := e.bins(task, m)) is not None}
        if "mamba2" not in near0 or not lra:
            parts.append(None)
            continue
        parts.append(
            bool(near0["mamba2"] > np.mean(lra) + NOISE and near0["mamba2"] >= max(near0.values()))
        )
        notes.append(
            f"{task}: Mamba-2 near 0 {_fmt(near0['mamba2'])} (LRA mean "
            f"{_fmt(np.mean(lra))}; largest of all models: "
            f"{near0['mamba2'] >= max(near0.values())})"
        )
    return Verdict(
        "C4",
        "On selective tasks the spectra peak near 0, most clearly for Mamba-2.",
        _verdict(parts),
        "; ".join(notes),
    )


def c5(e: Evidence) -> Verdict:
    parts, notes = [], []
    for task in (*LRA, "mqar"):
        accs = {m: a[0] for m in e.models(task) if (a := e.accuracy(task, m))}
        if "mamba2" not in accs:
            parts.append(None)
            continue
        rank = sorted(accs.values(), reverse=True).index(accs["mamba2"]) + 1
        parts.append(rank <= 3)
        notes.append(f"{task} rank {rank}/{len(accs)}")
    mqar = {m: a for m in e.models("mqar") if m != "softmax" and (a := e.accuracy("mqar", m))}
    if "mamba2" in mqar:
        best_other = max((a[0] for m, a in mqar.items() if m != "mamba2"), default=0.0)
        parts.append(mqar["mamba2"][0] > best_other + mqar["mamba2"][1])
        notes.append(
            f"MQAR Mamba-2 {_fmt(mqar['mamba2'][0])} against the best other efficient "
            f"model {_fmt(best_other)}"
        )
    return Verdict(
        "C5",
        "Mamba-2 is competitive across tasks and clearly best among the efficient models on MQAR.",
        _verdict(parts),
        "; ".join(notes),
    )


def c6(e: Evidence) -> Verdict:
    parts, notes = [], []
    for model in ("lru", "mamba2"):
        b0, b1 = e.bins("listops", model, stage="init"), e.bins("listops", model)
        if b0 is None or b1 is None:
            parts.append(None)
            continue
        small0, small1 = float(b0[list(SMALL)].sum()), float(b1[list(SMALL)].sum())
        parts.append(small1 > small0 + NOISE)
        notes.append(f"{model}: |λ| ≤ 0.5 from {_fmt(small0)} to {_fmt(small1)}")
    return Verdict(
        "C6",
        "ListOps develops small eigenvalues in LRU and Mamba-2.",
        _verdict(parts),
        "; ".join(notes),
    )


def _compare(e: Evidence, task, model, variant, base_variant="") -> tuple | None:
    a, b = e.bins(task, model, base_variant), e.bins(task, model, variant)
    return None if a is None or b is None else (a, b)


def c7(e: Evidence) -> Verdict:
    parts, notes = [], []
    for model, base in (("linear", ""), ("norm", "noconv")):
        pair = _compare(e, "image", model, "gate", base)
        if pair is None:
            parts.append(None)
            continue
        a, b = pair
        parts.append(bool(b[NEAR0] < a[NEAR0] - NOISE / 2 or b[NEAR1] > a[NEAR1] + NOISE / 2))
        notes.append(
            f"image/{model}: near 0 {_fmt(a[NEAR0])}→{_fmt(b[NEAR0])}, near 1 "
            f"{_fmt(a[NEAR1])}→{_fmt(b[NEAR1])}"
        )
    for model in ("softmax", "linear"):
        base, gated = e.accuracy("text", model), e.accuracy("text", model, "gate")
        if base is None or gated is None:
            parts.append(None)
            continue
        parts.append(gated[0] > base[0] + max(base[1], gated[1]))
        notes.append(f"text/{model} accuracy {_fmt(base[0])}→{_fmt(gated[0])}")
    return Verdict(
        "C7",
        "An output gate moves attention spectra from 0 towards 1, and helps on Text.",
        _verdict(parts),
        "; ".join(notes),
    )


def c8(e: Evidence) -> Verdict:
    parts, notes = [], []
    for model, base, conv in (
        ("softmax", "", "conv"),
        ("linear", "", "conv"),
        ("norm", "noconv", ""),
    ):
        pair = _compare(e, "image", model, conv, base)
        if pair is None:
            parts.append(None)
            continue
        a, b = pair
        parts.append(bool(b[NEAR1] < a[NEAR1] - NOISE / 2))
        notes.append(f"image/{model} near 1 without conv {_fmt(a[NEAR1])}, with {_fmt(b[NEAR1])}")
    one_layer = e.accuracy("mqar", "softmax", "layers1-conv")
    parts.append(None if one_layer is None else one_layer[0] >= 0.9)
    if one_layer is not None:
        notes.append(f"MQAR, 1 layer + conv: {_fmt(one_layer[0])}")
    return Verdict(
        "C8",
        "A short convolution moves attention spectra towards 0; with it, one "
        "attention layer solves MQAR.",
        _verdict(parts),
        "; ".join(notes),
    )


def c9(e: Evidence) -> Verdict:
    fns = {"softplus": "", "exp": "exp", "elu": "elu", "sigmoid": "sigmoid"}
    accs = {fn: a for fn, v in fns.items() if (a := e.accuracy("image", "norm", v))}
    bins = {fn: b for fn, v in fns.items() if (b := e.bins("image", "norm", v)) is not None}
    if len(accs) < len(fns) or len(bins) < len(fns):
        return Verdict(
            "C9",
            "The normalisation function trades retention against selectivity; softplus works best.",
            "inconclusive",
            "runs missing",
        )
    best = max(accs, key=lambda fn: accs[fn][0])
    softplus_best = accs["softplus"][0] >= accs[best][0] - accs[best][1]
    near1 = [b[NEAR1] for b in bins.values()]
    near0 = [b[NEAR0] for b in bins.values()]
    trade = bool(np.corrcoef(near1, near0)[0, 1] < 0) if np.std(near1) and np.std(near0) else None
    notes = "; ".join(
        f"{fn}: acc {_fmt(accs[fn][0])}, near 1 {_fmt(bins[fn][NEAR1])}, near 0 "
        f"{_fmt(bins[fn][NEAR0])}"
        for fn in fns
    )
    return Verdict(
        "C9",
        "The normalisation function trades retention against selectivity; softplus works best.",
        _verdict([trade, softplus_best]),
        notes,
    )


def c10(e: Evidence) -> Verdict:
    parts, notes = [], []
    for task in ("image", "listops"):
        s4, lti, sel = (
            e.bins(task, m, v) for m, v in (("s4", ""), ("mamba2", "lti"), ("mamba2", ""))
        )
        if s4 is None or lti is None or sel is None:
            parts.append(None)
            continue
        parts.append(tv(lti, s4) < tv(sel, s4))
        notes.append(f"{task}: TV to S4 pseudo-LTI {tv(lti, s4):.2f}, selective {tv(sel, s4):.2f}")
    base, lti = e.accuracy("listops", "mamba2"), e.accuracy("listops", "mamba2", "lti")
    parts.append(None if base is None or lti is None else lti[0] > base[0] + base[1])
    if base is not None and lti is not None:
        notes.append(f"ListOps accuracy {_fmt(base[0])} → pseudo-LTI {_fmt(lti[0])}")
    return Verdict(
        "C10",
        "A pseudo-LTI Mamba-2 has S4-like spectra and does better on ListOps.",
        _verdict(parts),
        "; ".join(notes),
    )


def c11(e: Evidence) -> Verdict:
    parts, notes = [], []
    pairs = [("image", "softmax", "layers1", "layers4")]
    pairs += [
        ("mqar", m, f"layers1-lr{lr}", f"layers4-lr{lr}")
        for m in ("softmax", "mamba2")
        for lr in ("2e-3", "1e-2")
    ]
    for task, model, shallow, deep in pairs:
        a, b = e.bins(task, model, shallow), e.bins(task, model, deep)
        acc_a, acc_b = e.accuracy(task, model, shallow), e.accuracy(task, model, deep)
        if a is None or b is None or acc_a is None or acc_b is None:
            continue
        moved = tv(a, b) > NOISE
        changed = abs(acc_a[0] - acc_b[0]) > max(acc_a[1], acc_b[1])
        parts.append(moved and changed)
        notes.append(
            f"{task}/{model} {shallow} vs {deep}: TV {tv(a, b):.2f}, accuracy "
            f"{_fmt(acc_a[0])} vs {_fmt(acc_b[0])}"
        )
    return Verdict(
        "C11",
        "Depth changes both the spectra and the accuracy.",
        _verdict(parts or [None]),
        "; ".join(notes),
    )


CLAIMS: tuple[Callable[[Evidence], Verdict], ...] = (c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)


def evaluate(runs: pd.DataFrame, spectra: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: ``claim, statement, verdict, evidence``."""
    evidence = Evidence(runs, spectra)
    return pd.DataFrame([vars(claim(evidence)) for claim in CLAIMS])

"""The paper's claims C1–C11 (arXiv:2510.09379; the book's claims chapter states each), checked
part by part against our runs, under the exact and under the published analysis.

A claim is a list of named **parts**. Each part is one measured effect (a share of eigenvalues,
a distance between spectra, an accuracy or a difference of two) compared with a threshold of
ours (the paper states none), with a 95 % interval from the seeds (``companion.evidence``):

* **holds**: the whole interval lies on the claim's side of the threshold;
* **fails**: the whole interval lies on the other side (an interval of width 0 at the threshold,
  an effect of exactly none, fails too);
* **within noise**: the interval straddles the threshold (or there is no noise estimate);
* **missing**: the runs it needs are not there.

A claim **does not hold** when any part fails, **holds** when every part holds, and is
**inconclusive** otherwise; the deciding part is the first failed part, or the first that does
not hold. The inputs are two tables: ``measures`` (:func:`companion.evidence.measures`, one
row per run, analysis and stage) and nothing else, so that tests build them by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from companion import evidence as ev
from companion.spectra import MAGNITUDE_BINS

LRA = ("listops", "text", "image")
SELECTIVE = ("mqar", "lm")
NEAR0 = MAGNITUDE_BINS[0]
NEAR1 = "band"  # |log|λ|| ≤ 0.105, symmetric around 1 (attention's Λ straddles 1)
ABOVE1 = MAGNITUDE_BINS[4:]
SMALL = MAGNITUDE_BINS[:2]  # |λ| ≤ 0.5
MAJORITY = 0.5  # "most of the mass"
PRESENT = 0.05  # a bin "has mass"
SHAPE_KEPT = 0.15  # total variation distance (init → final) below which a shape is "kept"
SOLVED = 0.9  # MQAR accuracy that counts as solved
SAME = 0.02  # accuracy differences within ±2 points are "no change" (C11)
SAME_TV = 0.02  # a depth effect within ±0.02 of the seeds' own TV distance is "no change" (C11)
STATES = ("holds", "fails", "within noise", "missing")
# the weight-decay exemption of the transition (variant nowd-lambda), read by C4 and C6
NO_DECAY = "nowd-lambda"


@dataclass
class Part:
    """One measured effect of a claim: ``effect`` (None: missing) against ``threshold`` in
    ``direction`` (``>``, ``<``, or ``≠``: outside ±threshold), its 95 % interval, its state."""

    name: str
    measure: str
    effect: float | None
    interval: tuple[float, float] | None
    threshold: float
    direction: str = ">"
    note: str = ""
    state: str = field(init=False)

    def __post_init__(self):
        self.state = decide(self.effect, self.interval, self.threshold, self.direction)


def decide(effect, interval, threshold: float, direction: str) -> str:
    """The state of a part: see the module docstring. ``≠`` holds when the interval excludes
    every value within ±``threshold`` of 0 and fails when it lies inside that margin."""
    if effect is None or (isinstance(effect, float) and math.isnan(effect)):
        return "missing"
    if interval is None:
        return "within noise"
    low, high = interval
    if direction == ">":
        return "holds" if low > threshold else "fails" if high <= threshold else "within noise"
    if direction == "<":
        return "holds" if high < threshold else "fails" if low >= threshold else "within noise"
    if low > 0 or high < 0:
        return "holds"
    return "fails" if -threshold < low and high < threshold else "within noise"


def verdict(parts: list[Part]) -> tuple[str, str]:
    """The claim's verdict and the name of the part that decides it."""
    failed = [p for p in parts if p.state == "fails"]
    if failed:
        return "does not hold", failed[0].name
    open_ = [p for p in parts if p.state != "holds"]
    if not parts or open_:
        return "inconclusive", open_[0].name if open_ else "no parts"
    return "holds", ""


@dataclass
class Claim:
    claim: str
    statement: str
    parts: list[Part]


class Evidence:
    """The measures of one analysis, averaged over seeds per condition (task, model, variant),
    with the noise of each (task, measure) pooled over the task's conditions with seeds."""

    def __init__(self, measures: pd.DataFrame, analysis: str = "exact"):
        if measures.empty:
            measures = pd.DataFrame(columns=[*ev.KEYS, "analysis", "stage"])
        m = measures[measures["analysis"] == analysis]
        self.final = m[m["stage"] == "final"].reset_index(drop=True)
        self.init = m[m["stage"] == "init"].reset_index(drop=True)
        self.analysis = analysis
        self._noise: dict = {}

    def _rows(self, task, model, variant="", stage="final") -> pd.DataFrame:
        table = self.final if stage == "final" else self.init
        if table.empty:
            return table
        return table[
            (table["task"] == task) & (table["model"] == model) & (table["variant"] == variant)
        ]

    def noise(self, task, column, stage="final"):
        key = (task, column, stage)
        if key not in self._noise:
            table = self.final if stage == "final" else self.init
            rows = table[table["task"] == task] if not table.empty else table
            self._noise[key] = ev.pooled_sd(rows, column) if len(rows) else None
        return self._noise[key]

    def value(self, task, model, variant="", column=NEAR1, stage="final") -> ev.Estimate | None:
        """A measure of one condition: its mean over seeds with a standard error."""
        rows = self._rows(task, model, variant, stage)
        if rows.empty or column not in rows:
            return None
        se = rows.get(f"{column}_se")
        return ev.estimate(rows[column], self.noise(task, column, stage), se)

    def accuracy(self, task, model, variant="") -> ev.Estimate | None:
        return self.value(task, model, variant, "test_accuracy")

    def per_seed(self, task, model, variant, fn: Callable[[pd.Series, pd.Series], float]):
        """``fn(init row, final row)`` for each seed of a condition, as an estimate over the
        seeds (a quantity of one run, such as the distance its spectrum travelled)."""
        a, b = self._rows(task, model, variant, "init"), self._rows(task, model, variant)
        pairs = a.merge(b, on="seed", suffixes=("_i", "_f"))
        if pairs.empty:
            return None
        vals = pd.Series(
            [fn(_side(r, "_i"), _side(r, "_f")) for _, r in pairs.iterrows()], dtype=float
        )
        return ev.estimate(vals, None)

    def models(self, task) -> list[str]:
        rows = self.final[(self.final["task"] == task) & (self.final["variant"] == "")]
        return sorted(rows["model"].unique()) if not rows.empty else []

    def mean_bins(self, task, model, variant="", stage="final") -> np.ndarray | None:
        rows = self._rows(task, model, variant, stage)
        return None if rows.empty else rows[list(MAGNITUDE_BINS)].mean().to_numpy()

    def seed_bins(self, task, model, variant="", stage="final") -> list[np.ndarray]:
        rows = self._rows(task, model, variant, stage)
        return [r[list(MAGNITUDE_BINS)].to_numpy(float) for _, r in rows.iterrows()]

    def mean_quantiles(self, task, model, variant="", stage="final") -> np.ndarray | None:
        rows = self._rows(task, model, variant, stage)
        return None if rows.empty else np.mean(np.stack(rows["quantiles"].to_list()), 0)


def _side(row: pd.Series, suffix: str) -> pd.Series:
    out = row[[c for c in row.index if c.endswith(suffix)]]
    return out.rename(lambda c: c[: -len(suffix)])


def _tv_travelled(i: pd.Series, f: pd.Series) -> float:
    return ev.tv(i[list(MAGNITUDE_BINS)], f[list(MAGNITUDE_BINS)])


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def part(name, measure, est: ev.Estimate | None, threshold, direction=">", note="") -> Part:
    """A part from an estimate (None: missing)."""
    if est is None:
        return Part(name, measure, None, None, threshold, direction, note)
    return Part(name, measure, est.mean, est.interval(), threshold, direction, note)


def _best(e: Evidence, task, exclude=()) -> tuple[str, ev.Estimate] | None:
    accs = {m: a for m in e.models(task) if m not in exclude and (a := e.accuracy(task, m))}
    return max(accs.items(), key=lambda kv: kv[1].mean) if accs else None


def _ranked(e: Evidence, task, exclude=()) -> list[tuple[str, ev.Estimate]]:
    accs = {m: a for m in e.models(task) if m not in exclude and (a := e.accuracy(task, m))}
    return sorted(accs.items(), key=lambda kv: -kv[1].mean)


def _sum(e: Evidence, task, model, columns, variant="", stage="final") -> ev.Estimate | None:
    """The share of several bins together, per seed, as one estimate."""
    rows = e._rows(task, model, variant, stage)
    if rows.empty:
        return None
    return ev.estimate(rows[list(columns)].sum(axis=1), None)


# ---------------------------------------------------------------------------------------------
# the claims


def c1(e: Evidence) -> Claim:
    parts = []
    for task in LRA:
        best = _best(e, task)
        name = f"{task}: the most accurate model has most of its |λ| near 1"
        if best is None:
            parts.append(part(name, "share in 0.90 ≤ |λ| ≤ 1.11", None, MAJORITY))
            continue
        parts.append(
            part(
                name,
                "share in 0.90 ≤ |λ| ≤ 1.11",
                e.value(task, best[0]),
                MAJORITY,
                note=f"the most accurate model is {best[0]} ({_pct(best[1].mean)})",
            )
        )
    for task in LRA:
        for model in ("s4", "lru"):
            parts.append(
                part(
                    f"{task}/{model} stays near its initialisation",
                    "TV distance of the bins, init → final",
                    e.per_seed(task, model, "", _tv_travelled),
                    SHAPE_KEPT,
                    "<",
                    note=_w1_note(e, task, model),
                )
            )
    return Claim(
        "C1",
        "On the LRA tasks the best models put most mass near 1; S4 and LRU stay near their "
        "initialisation.",
        parts,
    )


def _w1_note(e: Evidence, task, model, variant="") -> str:
    qi, qf = e.mean_quantiles(task, model, variant, "init"), e.mean_quantiles(task, model, variant)
    return "" if qi is None or qf is None else f"W1 on log|λ| init → final {ev.w1(qi, qf):.3f}"


def c2(e: Evidence) -> Claim:
    parts = []
    for task in LRA:
        parts.append(
            part(
                f"{task}: softmax has mass near 0",
                "share in [0, 0.1]",
                e.value(task, "softmax", "", NEAR0),
                PRESENT,
            )
        )
        parts.append(
            part(
                f"{task}: softmax has mass above 1",
                "share above 1",
                _sum(e, task, "softmax", ABOVE1),
                PRESENT,
            )
        )
        others = _ranked(e, task, exclude=("softmax",))
        soft = e.accuracy(task, "softmax")
        median = None
        if others and soft is not None:
            middle = others[len(others) // 2][1]
            median = middle - soft
        parts.append(
            part(
                f"{task}: softmax is below the middle of the models",
                "accuracy of the median other model − softmax",
                median,
                0.0,
            )
        )
    return Claim(
        "C2",
        "Softmax attention on LRA has mass near 0 and above 1, and performs poorly there.",
        parts,
    )


def c3(e: Evidence) -> Claim:
    parts = [
        part(
            f"{task}: linear attention keeps its initial shape",
            "TV distance of the bins, init → final",
            e.per_seed(task, "linear", "", _tv_travelled),
            SHAPE_KEPT,
            "<",
            note=_w1_note(e, task, "linear"),
        )
        for task in (*LRA, *SELECTIVE)
    ]
    return Claim("C3", "Linear attention keeps the spectrum shape it had at initialisation.", parts)


def _peak(e: Evidence, task, model, variant) -> ev.Estimate | None:
    """Share near 0 minus the largest other bin, per seed (> 0: the spectrum peaks near 0)."""
    rows = e._rows(task, model, variant)
    if rows.empty:
        return None
    others = rows[list(MAGNITUDE_BINS[1:])].max(axis=1)
    return ev.estimate(rows[NEAR0] - others, None)


def c4(e: Evidence, variant: str = "") -> Claim:
    parts = []
    lra = [v for t in LRA if (v := e.value(t, "mamba2", "", NEAR0)) is not None]
    for task in SELECTIVE:
        m2 = e.value(task, "mamba2", variant, NEAR0)
        parts.append(
            part(
                f"{task}: Mamba-2's spectrum peaks near 0",
                "share in [0, 0.1] − largest other bin",
                _peak(e, task, "mamba2", variant),
                0.0,
            )
        )
        others = [
            (m, v)
            for m in e.models(task)
            if m != "mamba2" and (v := e.value(task, m, "", NEAR0)) is not None
        ]
        top = max(others, key=lambda kv: kv[1].mean) if others else None
        parts.append(
            part(
                f"{task}: Mamba-2 has the most mass near 0 of all models",
                "share in [0, 0.1]: Mamba-2 − the next model",
                None if m2 is None or top is None else m2 - top[1],
                0.0,
                note=f"next: {top[0]}" if top else "",
            )
        )
        lra_mean = None
        if lra and m2 is not None:
            lra_mean = ev.Estimate(
                float(np.mean([v.mean for v in lra])),
                None
                if any(v.se is None for v in lra)
                else math.sqrt(sum(v.se**2 for v in lra)) / len(lra),
                min(v.df for v in lra),
            )
        parts.append(
            part(
                f"{task}: Mamba-2 has more mass near 0 than on the LRA tasks",
                "share in [0, 0.1]: this task − LRA mean",
                None if lra_mean is None else m2 - lra_mean,
                0.0,
            )
        )
    return Claim(
        "C4" + _context(variant),
        "On selective tasks the spectra peak near 0, most clearly for Mamba-2.",
        parts,
    )


def _context(variant: str) -> str:
    return " (Λ without weight decay)" if variant == NO_DECAY else ""


def c5(e: Evidence) -> Claim:
    parts = []
    for task in (*LRA, "mqar"):
        others = _ranked(e, task, exclude=("mamba2",))
        m2 = e.accuracy(task, "mamba2")
        third = others[2][1] if len(others) >= 3 else None
        parts.append(
            part(
                f"{task}: Mamba-2 is among the three most accurate models",
                "accuracy: Mamba-2 − the third best other model",
                None if m2 is None or third is None else m2 - third,
                0.0,
            )
        )
    others = _ranked(e, "mqar", exclude=("mamba2", "softmax"))
    m2 = e.accuracy("mqar", "mamba2")
    parts.append(
        part(
            "mqar: Mamba-2 is the most accurate efficient model",
            "accuracy: Mamba-2 − the best other efficient model",
            None if m2 is None or not others else m2 - others[0][1],
            0.0,
            note=f"next: {others[0][0]}" if others else "",
        )
    )
    return Claim(
        "C5",
        "Mamba-2 is competitive across tasks and clearly best among the efficient models on MQAR.",
        parts,
    )


def c6(e: Evidence, variant: str = "") -> Claim:
    def grew(i, f):
        return float(f[list(SMALL)].sum() - i[list(SMALL)].sum())

    parts = [
        part(
            f"listops/{model}: the share of |λ| ≤ 0.5 grows in training",
            "share of |λ| ≤ 0.5: final − init",
            e.per_seed("listops", model, variant, grew),
            0.0,
        )
        for model in ("lru", "mamba2")
    ]
    return Claim(
        "C6" + _context(variant), "ListOps develops small eigenvalues in LRU and Mamba-2.", parts
    )


def _diff(e: Evidence, task, model, variant, base, column) -> ev.Estimate | None:
    a, b = e.value(task, model, base, column), e.value(task, model, variant, column)
    return None if a is None or b is None else b - a


def c7(e: Evidence) -> Claim:
    parts = []
    for model, base in (("linear", ""), ("norm", "noconv")):
        parts.append(
            part(
                f"image/{model}: the gate moves mass away from 0",
                "share in [0, 0.1]: without gate − with gate",
                None
                if (d := _diff(e, "image", model, "gate", base, NEAR0)) is None
                else ev.Estimate(-d.mean, d.se, d.df, d.n),
                0.0,
            )
        )
        parts.append(
            part(
                f"image/{model}: the gate moves mass towards 1",
                "share in 0.90 ≤ |λ| ≤ 1.11: with gate − without",
                _diff(e, "image", model, "gate", base, NEAR1),
                0.0,
            )
        )
    for model in ("softmax", "linear"):
        parts.append(
            part(
                f"text/{model}: the gate raises accuracy",
                "accuracy: with gate − without",
                _diff(e, "text", model, "gate", "", "test_accuracy"),
                0.0,
            )
        )
    return Claim(
        "C7", "An output gate moves attention spectra from 0 towards 1, and helps on Text.", parts
    )


def c8(e: Evidence) -> Claim:
    parts = []
    for model, base, conv in (
        ("softmax", "", "conv"),
        ("linear", "", "conv"),
        ("norm", "noconv", ""),
    ):
        d = _diff(e, "image", model, conv, base, NEAR1)
        parts.append(
            part(
                f"image/{model}: the convolution takes mass away from 1",
                "share in 0.90 ≤ |λ| ≤ 1.11: without conv − with conv",
                None if d is None else ev.Estimate(-d.mean, d.se, d.df, d.n),
                0.0,
            )
        )
    parts.append(
        part(
            "mqar: one softmax layer with a convolution solves MQAR",
            "accuracy",
            e.accuracy("mqar", "softmax", "layers1-conv"),
            SOLVED,
        )
    )
    return Claim(
        "C8",
        "A short convolution moves attention spectra towards 0; with it, one "
        "attention layer solves MQAR.",
        parts,
    )


NORM_FNS = {"softplus": "", "exp": "exp", "elu": "elu", "sigmoid": "sigmoid"}


def c9(e: Evidence) -> Claim:
    parts = []
    accs = {fn: e.accuracy("image", "norm", v) for fn, v in NORM_FNS.items()}
    complete = all(a is not None for a in accs.values())  # every function, or no verdict
    others = [(fn, a) for fn, a in accs.items() if fn != "softplus" and complete]
    soft = accs["softplus"]
    best = max(others, key=lambda kv: kv[1].mean) if others else None
    parts.append(
        part(
            "image/norm: softplus is the most accurate normalisation",
            "accuracy: softplus − the best other function",
            None if soft is None or best is None else soft - best[1],
            0.0,
            note=f"next: {best[0]}" if best else "",
        )
    )
    near1, near0, dead = [], [], 0
    for v in NORM_FNS.values():
        rows = e._rows("image", "norm", v)
        near1 += rows["band_live"].tolist() if "band_live" in rows else []
        near0 += rows["near0_live"].tolist() if "near0_live" in rows else []
        dead += int(rows["dead_heads"].sum()) if "dead_heads" in rows else 0
    rho = ev.spearman(near1, near0) if complete and len(near1) == len(near0) else None
    effect = interval = None
    if rho is not None:
        effect = rho[0]
        # the sign of ρ is decided when its p-value is below 5 %: an interval excluding 0
        interval = (effect, effect) if rho[1] < 0.05 else (-1.0, 1.0)
    parts.append(
        Part(
            "image/norm: retention trades against selectivity across the functions",
            "Spearman ρ of near-1 and near-0 shares over functions and seeds (dead heads excluded)",
            effect,
            interval,
            0.0,
            "<",
            note=f"{dead} dead head(s) excluded; p = {rho[1]:.3f}" if rho else "",
        )
    )
    return Claim(
        "C9",
        "The normalisation function trades retention against selectivity; softplus works best.",
        parts,
    )


def c10(e: Evidence) -> Claim:
    parts = []
    for task in ("image", "listops"):
        s4, lti, sel = (
            e.seed_bins(task, m, v) for m, v in (("s4", ""), ("mamba2", "lti"), ("mamba2", ""))
        )
        effect = None
        note = ""
        if s4 and lti and sel:
            ref = np.mean(s4, 0)
            effect = ev.estimate(pd.Series([ev.tv(x, ref) for x in sel]), None) - ev.estimate(
                pd.Series([ev.tv(x, ref) for x in lti]), None
            )
            s40 = e.mean_bins(task, "s4", "", "init")
            lti0 = e.mean_bins(task, "mamba2", "lti", "init")
            sel0 = e.mean_bins(task, "mamba2", "", "init")
            if s40 is not None and lti0 is not None and sel0 is not None:
                note = (
                    f"at initialisation already: TV to S4 {ev.tv(lti0, s40):.2f} (pseudo-LTI) "
                    f"vs {ev.tv(sel0, s40):.2f} (selective)"
                )
        parts.append(
            part(
                f"{task}: pseudo-LTI Mamba-2 is closer to S4 than selective Mamba-2",
                "TV to S4: selective − pseudo-LTI",
                effect,
                0.0,
                note=note,
            )
        )
    parts.append(
        part(
            "listops: pseudo-LTI Mamba-2 is more accurate",
            "accuracy: pseudo-LTI − selective",
            _diff(e, "listops", "mamba2", "lti", "", "test_accuracy"),
            0.0,
        )
    )
    return Claim(
        "C10", "A pseudo-LTI Mamba-2 has S4-like spectra and does better on ListOps.", parts
    )


# (task, model, shallow variant, deep variant): the depth ablations C11 reads
DEPTH_PAIRS = [("image", "softmax", "layers1", "layers4")] + [
    ("mqar", m, f"layers1-lr{lr}", f"layers4-lr{lr}")
    for m in ("softmax", "mamba2")
    for lr in ("2e-3", "1e-2")
]


def c11(e: Evidence) -> Claim:
    parts = []
    for task, model, shallow, deep in DEPTH_PAIRS:
        a, b = e.seed_bins(task, model, shallow), e.seed_bins(task, model, deep)
        effect = None
        if len(a) >= 2 and len(b) >= 2:
            between = [ev.tv(x, y) for x in a for y in b]
            within = [ev.tv(x, y) for s in (a, b) for i, x in enumerate(s) for y in s[i + 1 :]]
            effect = ev.estimate(pd.Series(between), None) - ev.estimate(pd.Series(within), None)
        parts.append(
            part(
                f"{task}/{model} {shallow} vs {deep}: depth moves the spectrum",
                "TV between depths − TV between seeds of one depth",
                effect,
                SAME_TV,
                "≠",
            )
        )
        parts.append(
            part(
                f"{task}/{model} {shallow} vs {deep}: depth changes the accuracy",
                "accuracy: 4 layers − 1 layer",
                _diff(e, task, model, deep, shallow, "test_accuracy"),
                SAME,
                "≠",
            )
        )
    return Claim("C11", "Depth changes both the spectra and the accuracy.", parts)


CLAIMS: tuple[Callable[[Evidence], Claim], ...] = (c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)
# claims evaluated again with the transition exempt from weight decay (variant nowd-lambda)
NO_DECAY_CLAIMS: tuple[Callable[[Evidence, str], Claim], ...] = (c4, c6)
EVIDENCE = {
    "smoke": "machinery only: smoke runs are too short for any verdict to mean anything",
    "quick": "small-scale evidence: short runs of small models, three seeds each",
    "paper": "the paper's scale",
}


def evaluate(
    measures: pd.DataFrame, analyses=("exact", "published")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every claim under each analysis: a verdict table (``claim, statement, analysis, verdict,
    deciding part``) and a parts table (``claim, analysis, part, measure, effect, low, high,
    threshold, direction, state, note``)."""
    verdicts, parts = [], []
    for analysis in analyses:
        e = Evidence(measures, analysis)
        claims = [fn(e) for fn in CLAIMS] + [fn(e, NO_DECAY) for fn in NO_DECAY_CLAIMS]
        for c in claims:
            word, deciding = verdict(c.parts)
            verdicts.append(
                dict(
                    claim=c.claim,
                    statement=c.statement,
                    analysis=analysis,
                    verdict=word,
                    deciding=deciding,
                )
            )
            for p in c.parts:
                low, high = p.interval if p.interval is not None else (None, None)
                parts.append(
                    dict(
                        claim=c.claim,
                        analysis=analysis,
                        part=p.name,
                        measure=p.measure,
                        effect=p.effect,
                        low=low,
                        high=high,
                        threshold=p.threshold,
                        direction=p.direction,
                        state=p.state,
                        note=p.note,
                    )
                )
    return pd.DataFrame(verdicts), pd.DataFrame(parts)


def summary(measures: pd.DataFrame, analysis: str = "exact") -> pd.DataFrame:
    """Per condition (task, model, variant) after training: the number of seeds, the test
    accuracy's mean with its 95 % interval (seed noise pooled over the task), and the mean
    shares near 0 (``[0, 0.1]``), near 1 (the symmetric band) and of ``|λ| ≤ 0.5``; the
    numbers behind the chapters' sentences and summary tables."""
    e = Evidence(measures, analysis)
    rows = []
    for (task, model, variant), group in e.final.groupby(ev.CONDITION):
        acc = e.accuracy(task, model, variant)
        interval = acc.interval() if acc is not None else None
        rows.append(
            dict(
                task=task,
                model=model,
                variant=variant,
                seeds=group["seed"].nunique(),
                accuracy=acc.mean if acc is not None else np.nan,
                low=interval[0] if interval else np.nan,
                high=interval[1] if interval else np.nan,
                near0=group[NEAR0].mean(),
                near1=group[NEAR1].mean(),
                small=group[list(SMALL)].sum(axis=1).mean(),
            )
        )
    return pd.DataFrame(rows)


def findings(
    parts: pd.DataFrame, claim_ids: tuple[str, ...], tasks=None, analysis: str = "exact"
) -> str:
    """The parts of some claims in words, as a Markdown list: each part's effect with its 95 %
    interval and what that means for the claim (the chapters end with it). ``tasks`` keeps
    the parts about those tasks (a part's name starts with its task)."""
    rows = parts[(parts["analysis"] == analysis) & parts["claim"].isin(claim_ids)]
    if tasks is not None:
        task_of = rows["part"].str.extract(r"^(\w+)", expand=False)
        rows = rows[task_of.isin(tasks)]
    lines = []
    for _, p in rows.iterrows():
        if pd.isna(p["effect"]):
            lines.append(f"- {p['part']}: no runs at this profile.")
            continue
        interval = "" if pd.isna(p["low"]) else f" [{p['low']:.2f}, {p['high']:.2f}]"
        need = (
            f"outside ±{p['threshold']:g}"
            if p["direction"] == "≠"
            else f"{p['direction']} {p['threshold']:g}"
        )
        lines.append(
            f"- {p['part']} ({p['claim']}): {p['measure']} = {p['effect']:.2f}{interval}, "
            f"needs {need}: **{p['state']}**."
        )
    return "\n".join(lines)

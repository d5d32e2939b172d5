"""The decision rule the claims are checked by: a claim is a list of named **parts**, each one
measured effect (a share of eigenvalues, a distance between spectra, an accuracy, a difference
of two, or a rank) compared with a threshold, with a 95 % interval from the seeds
(``companion.evidence``); :mod:`companion.claims` states the paper's claims in these terms.

**A model counts when it used its state, on a task instance that makes the demand.** A claim
about a model on a task reads that model's seeds that *used their state*: whose test metric
passed their gate (:mod:`companion.baselines`: beyond both the same network without its
mixer, the ``nomix`` control, and the strongest trivial predictor, by a margin). A condition
carries a part only when at least two seeds used their state and went beyond the strongest
shallow predictor by the same margin; otherwise the part is **untestable** (its note names the
model and the line it did not pass) or **missing** (no runs, or no control). Spectra are read
from the seeds that used their state; accuracies over every seed (bimodal conditions are named
as such). A comparison of accuracies is testable when one side can carry it; with every seed
of both sides at the ceiling (99 %) it is untestable. Rankings by accuracy ("most accurate",
"among the three best", "below the middle") are not chosen by an argmax over noisy means
(which would favour the luckiest seeds): each model gets a **rank interval**, from 1 + the
models clearly more accurate than it to the number of models not clearly less accurate (a
difference is clear when its 95 % interval excludes 0); a ranking in which no model can carry
the part is untestable. "The most accurate models" are those whose rank interval starts at 1.

A part's state:

* **holds**: the whole interval lies on the claim's side of the threshold;
* **fails**: the whole interval lies on the other side (an interval of width 0 at the threshold,
  an effect of exactly none, fails too);
* **within noise**: the interval straddles the threshold (or there is no noise estimate);
* **untestable**: a gate or the ceiling failed (see above), or a "shape kept" part has no
  positive control (no other model that learned the task moved by more than the threshold);
* **missing**: the runs it needs are not there.

A claim **does not hold** when any part fails, **holds** when every part holds, is
**incomplete** when runs are missing, **untestable at this scale** when a part is untestable,
and **inconclusive** otherwise; the deciding part is the first part in that state.

Controls and corrections: :func:`companion.claims.evaluate` scores every spectral part also on
the spectra at initialisation; a part that holds or fails there already is marked *settled at
initialisation*, and a settled failure cannot refute (it is untestable). Each decision's
one-sided p-value is adjusted by Holm's method across the claim's parts (:func:`holm`,
:func:`corrected`). :func:`companion.robustness.sensitivity` reads every part at a lower and a
higher threshold, and :func:`companion.claims.edge_sensitivity` every claim with the bin edges
moved by ±0.02.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from companion import evidence as ev
from companion import statistics as st
from companion.grid import CONTROL, control_of
from companion.layers import mixer_key
from companion.spectra import MAGNITUDE_BINS
from companion.tasks import metric

NEAR1 = "band"  # |log|λ|| ≤ evidence.BAND, symmetric around 1 (attention's Λ straddles 1)
CEILING = 0.99  # accuracies at or above it leave no room for a difference
MIN_LEARNED = 2  # seeds of a condition that must have learned its task
STATES = ("holds", "fails", "within noise", "untestable", "missing")
# a claim's verdict: the word of the first state in DECIDES that one of its parts is in, else
# "holds"; VERDICTS is the vocabulary in the order the book shows it (style gives each a colour)
VERDICT_OF = {
    "holds": "holds",
    "fails": "does not hold",
    "within noise": "inconclusive",
    "untestable": "untestable at this scale",
    "missing": "incomplete",
}
VERDICTS = tuple(VERDICT_OF.values())
DECIDES = ("fails", "missing", "untestable", "within noise")
SHARE = (0.0, 1.0)  # the range of a share of eigenvalues or of an accuracy
ACCURACY = ("test_accuracy",)  # measures read over every seed (spectra: the seeds that learned)

Condition = tuple[str, str, str]  # (task, model, variant)


@dataclass
class Part:
    """One measured effect of a claim: ``effect`` (None: missing or untestable) against
    ``threshold`` in ``direction`` (``>``, ``<``, or ``≠``: outside ±threshold), its 95 %
    interval and its state (decided from them unless given). ``reads``: what the effect is
    made of, ``spectra`` (final spectra), ``training`` (a change from initialisation),
    ``accuracy`` or ``rank``; ``scalable``: whether :func:`companion.robustness.sensitivity` may
    scale the threshold; ``task``: the task the part is about (the task of the condition it
    reads first), so that a chapter or a ladder rung picks its parts without reading names."""

    name: str
    measure: str
    effect: float | None
    interval: tuple[float, float] | None
    threshold: float
    direction: str = ">"
    note: str = ""
    state: str = ""
    reads: str = "spectra"
    scalable: bool = True
    estimate: st.Estimate | None = None  # what the effect and interval came from (Holm's p)
    task: str = ""

    def __post_init__(self):
        if not self.state:
            self.state = decide(self.effect, self.interval, self.threshold, self.direction)


def decide(effect, interval, threshold: float, direction: str) -> str:
    """The state of a part from its numbers: see the module docstring. ``≠`` holds when the
    interval lies wholly outside ±``threshold`` and fails when it lies wholly inside."""
    if effect is None or (isinstance(effect, float) and math.isnan(effect)):
        return "missing"
    if interval is None:
        return "within noise"
    low, high = interval
    if direction == ">":
        return "holds" if low > threshold else "fails" if high <= threshold else "within noise"
    if direction == "<":
        return "holds" if high < threshold else "fails" if low >= threshold else "within noise"
    if low > threshold or high < -threshold:
        return "holds"
    return "fails" if -threshold < low and high < threshold else "within noise"


def verdict(parts: list[Part]) -> tuple[str, str]:
    """The claim's verdict and the name of the part that decides it (module docstring)."""
    if not parts:
        return VERDICT_OF["missing"], "no parts"
    for state in DECIDES:
        found = [p for p in parts if p.state == state]
        if found:
            return VERDICT_OF[state], found[0].name
    return VERDICT_OF["holds"], ""


@dataclass
class Claim:
    claim: str
    statement: str
    parts: list[Part]


def pct(x: float | None) -> str:
    """A share as the book writes it (``41.3 %``; ``—`` for none)."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


class Conditions:
    """The measures of one analysis: per condition (task, model, variant) its seeds (all of
    them for accuracies, those that used their state for spectra), their means, and the noise
    of each (task, measure) pooled over the task's conditions with seeds. ``stage``: read the
    final spectra (``"final"``) or, as the control, the spectra at initialisation in their
    place (``"init"``)."""

    def __init__(self, measures: pd.DataFrame, analysis: str = "exact", stage: str = "final"):
        if measures.empty:
            measures = pd.DataFrame(columns=[*ev.KEYS, "analysis", "stage", "learned"])
        m = ev.normalise(measures)
        if "learned" not in m:
            m = m.assign(learned=False)
        m = m[m["analysis"] == analysis]
        self.init = m[m["stage"] == "init"].reset_index(drop=True)
        self.final = self.init if stage == "init" else m[m["stage"] == "final"]
        self.final = self.final.reset_index(drop=True)
        self.analysis = analysis
        self._noise: dict = {}
        self._conditions = _by_condition(self.final, self.init)

    # -- the seeds of a condition ----------------------------------------------------------
    def all_rows(self, task, model, variant="", stage="final") -> pd.DataFrame:
        """Every seed of a condition, learned or not, at ``stage``."""
        table = self.final if stage == "final" else self.init
        return self._conditions[stage].get((task, model, variant), table.iloc[:0])

    def rows(self, task, model, variant="", stage="final") -> pd.DataFrame:
        """The seeds of a condition that used their state, at ``stage``: the seeds its
        spectra are read from."""
        t = self.all_rows(task, model, variant, stage)
        return t[t["learned"].astype(bool)]

    def learned(self, task, model, variant="") -> tuple[int, int]:
        """How many seeds of a condition used their state, of how many."""
        rows = self.all_rows(task, model, variant)
        return int(rows["learned"].astype(bool).sum()), len(rows)

    def gate(self, conditions: Sequence[Condition]) -> tuple[str, str]:
        """``("", "")`` when every condition can carry a part, else the state (``missing`` or
        ``untestable``) and a note naming the condition and the line it did not pass. A
        condition can carry a part when its no-mixing control ran, at least ``MIN_LEARNED``
        of its seeds used their state (beyond the control and the strongest trivial
        predictor), and at least ``MIN_LEARNED`` went beyond the strongest shallow predictor
        (else its task instance makes no demand on the state at this scale). Conditions whose
        seeds split are named as bimodal."""
        notes = []
        for task, model, variant in conditions:
            passed, seeds = self.learned(task, model, variant)
            what = condition_name(task, model, variant)
            if seeds == 0:
                return "missing", f"no runs of {what}"
            rows = self.all_rows(task, model, variant)
            row = rows.iloc[0]
            if "control_value" in rows and rows["control_value"].isna().all():
                control = condition_name(task, model, control_of(variant or None))
                return "missing", f"no runs of {what}'s no-mixing control ({control})"
            if passed < MIN_LEARNED:
                return "untestable", (
                    f"{what} did not use its state: {passed} of {seeds} seeds passed "
                    f"{metric_words(task, row['gate_line'])} ({row['baseline']} "
                    f"{metric_words(task, row['baseline_value'])} plus the margin)"
                )
            beyond = int(rows.get("beyond_shallow", rows["learned"]).astype(bool).sum())
            if beyond < MIN_LEARNED:
                return "untestable", (
                    f"the task instance makes no demand on {what} at this scale: {beyond} of "
                    f"{seeds} seeds went beyond {metric_words(task, row['shallow_line'])} "
                    f"({row['shallow']} {metric_words(task, row['shallow_value'])} plus the margin)"
                )
            if passed < seeds:
                notes.append(f"bimodal: {passed} of {seeds} seeds of {what} used their state")
        return "", "; ".join(notes)

    # -- measures --------------------------------------------------------------------------
    def _seeds(self, task, model, variant, column, stage) -> pd.DataFrame:
        """The seeds a measure is read from: every seed for the accuracy, the seeds that
        used their state for a spectrum."""
        if column in ACCURACY:
            return self.all_rows(task, model, variant, stage)
        return self.rows(task, model, variant, stage)

    def noise(self, task, column, stage="final", fn=None):
        """The pooled seed noise (:func:`companion.evidence.pooled_sd`) of ``column`` (or of
        ``fn(init row, final row)`` per seed, under the name ``column``) over the task's
        conditions, from the seeds each is read from."""
        key = (task, column, stage)
        if key not in self._noise:
            conditions = self._conditions[stage if fn is None else "final"]
            frames = []
            for t, model, variant in conditions:
                if t != task or variant.startswith(CONTROL):
                    continue
                if fn is None:
                    frames.append(self._seeds(task, model, variant, column, stage))
                elif (vals := self._per_seed_values(task, model, variant, fn)) is not None:
                    frames.append(
                        vals.to_frame(column).assign(task=t, model=model, variant=variant)
                    )
            rows = pd.concat(frames) if frames else pd.DataFrame()
            self._noise[key] = st.pooled_sd(rows, column, ev.CONDITION) if len(rows) else None
        return self._noise[key]

    def value(self, task, model, variant="", column=NEAR1, stage="final") -> st.Estimate | None:
        """A share (or the accuracy) of one condition: the mean over the seeds it is read from
        (:meth:`_seeds`), with a standard error from the task's pooled seed noise."""
        rows = self._seeds(task, model, variant, column, stage)
        if rows.empty or column not in rows:
            return None
        se = rows.get(f"{column}_se")
        return st.estimate(rows[column], self.noise(task, column, stage), se, SHARE)

    def accuracy(self, task, model, variant="") -> st.Estimate | None:
        """The test accuracy over every seed of a condition (not only those that passed)."""
        return self.value(task, model, variant, "test_accuracy")

    def share(
        self, task, model, columns, variant="", stage="final", minus=()
    ) -> st.Estimate | None:
        """The share of several bins together (less the share of the bins ``minus``), per
        seed that used its state, as one estimate (noise pooled over the task, like a single
        bin's; bounds [0, 1], or [-1, 1] with ``minus``)."""
        name = "+".join(columns) + (f" − {'+'.join(minus)}" if minus else "")
        if name not in self.final:
            for table in (self.final, self.init):
                table[name] = table[list(columns)].sum(axis=1) - table[list(minus)].sum(axis=1)
            self._conditions = _by_condition(self.final, self.init)
        est = self.value(task, model, variant, name, stage)
        if est is None or not minus:
            return est
        return st.Estimate(est.mean, est.se, est.df, est.n, (-1.0, 1.0))

    def _per_seed_values(self, task, model, variant, fn) -> pd.Series | None:
        a, b = self.rows(task, model, variant, "init"), self.rows(task, model, variant)
        pairs = a.merge(b, on="seed", suffixes=("_i", "_f"))
        if pairs.empty:
            return None
        return pd.Series(
            [fn(_side(r, "_i"), _side(r, "_f")) for _, r in pairs.iterrows()], dtype=float
        )

    def per_seed(
        self,
        task,
        model,
        variant,
        fn: Callable[[pd.Series, pd.Series], float],
        bounds: tuple[float, float] = (-1.0, 1.0),
    ) -> st.Estimate | None:
        """``fn(init row, final row)`` for each seed of a condition that used its state, as an
        estimate over the seeds (a quantity of one run, such as the distance its spectrum
        travelled), with the noise of ``fn`` pooled over the task's conditions and the
        ``bounds`` the quantity can take."""
        vals = self._per_seed_values(task, model, variant, fn)
        if vals is None:
            return None
        noise = self.noise(task, f"per seed: {fn.__name__}", fn=fn)
        return st.estimate(vals, noise, None, bounds)

    def models(self, task) -> list[str]:
        """The main-grid models with runs on ``task``."""
        rows = self.final[(self.final["task"] == task) & (self.final["variant"] == "")]
        return sorted(set(rows["model"]), key=mixer_key)

    def seed_bins(self, task, model, variant="", stage="final") -> list[np.ndarray]:
        rows = self.rows(task, model, variant, stage)
        return [r[list(MAGNITUDE_BINS)].to_numpy(float) for _, r in rows.iterrows()]

    def mean_bins(self, task, model, variant="", stage="final") -> np.ndarray | None:
        bins = self.seed_bins(task, model, variant, stage)
        return np.mean(bins, 0) if bins else None

    def mean_quantiles(self, task, model, variant="", stage="final") -> np.ndarray | None:
        rows = self.rows(task, model, variant, stage)
        if rows.empty or "quantiles" not in rows:
            return None
        return np.mean(np.stack(rows["quantiles"].to_list()), 0)


def _by_condition(final: pd.DataFrame, init: pd.DataFrame) -> dict:
    return {
        name: dict(tuple(table.groupby(ev.CONDITION, sort=False)))
        for name, table in (("final", final), ("init", init))
    }


def condition_name(task, model, variant) -> str:
    """``task/model variant``, as notes name a condition."""
    return f"{task}/{model}" + (f" {variant}" if variant else "")


def metric_words(task: str, value: float) -> str:
    """A test metric of ``task`` in words (``41.3 %``, ``perplexity 12.3``)."""
    return metric(task).words(value)


def _side(row: pd.Series, suffix: str) -> pd.Series:
    out = row[[c for c in row.index if c.endswith(suffix)]]
    return out.rename(lambda c: c[: -len(suffix)])


def join(*notes: str) -> str:
    """The non-empty ``notes`` in one, separated by semicolons."""
    return "; ".join(n for n in notes if n)


# ---------------------------------------------------------------------------------------------
# parts


def part(
    e: Conditions,
    name: str,
    measure: str,
    conditions: Sequence[Condition],
    effect: Callable[[], st.Estimate | None],
    threshold: float,
    direction: str = ">",
    note: str = "",
    reads: str = "spectra",
) -> Part:
    """A part resting on ``conditions``: missing or untestable by their gate (see
    :meth:`Conditions.gate`), else the ``effect`` estimate against ``threshold``."""
    task = conditions[0][0]
    state, why = e.gate(conditions)
    if state:
        return Part(name, measure, None, None, threshold, direction, why, state, reads, task=task)
    est = effect()
    if est is None:
        return Part(
            name, measure, None, None, threshold, direction, note, "missing", reads, task=task
        )
    return Part(
        name,
        measure,
        est.mean,
        est.interval(),
        threshold,
        direction,
        join(note, why),
        reads=reads,
        estimate=est,
        task=task,
    )


def accuracy_part(
    e: Conditions,
    name: str,
    measure: str,
    a: Condition,
    b: Condition,
    threshold: float = 0.0,
    direction: str = ">",
) -> Part:
    """Accuracy of ``b`` − accuracy of ``a``, each over all its seeds. Testable when at least
    one side passes its gate (a side that did not learn is still compared: that is an effect
    on accuracy too); untestable when every seed of both is at the ceiling."""
    sides = [e.gate([a]), e.gate([b])]
    missing = [why for state, why in sides if state == "missing"]
    state, why = ("missing", missing[0]) if missing else ("", "")
    if not state and all(s for s, _ in sides):
        state, why = "untestable", sides[0][1]
    if not state:
        why = join(*(w for _, w in sides))
        seeds = pd.concat([e.all_rows(*a), e.all_rows(*b)])["test_accuracy"]
        if (seeds >= CEILING).all():
            state, why = (
                "untestable",
                f"every seed of both sides is at the ceiling ({pct(CEILING)})",
            )
    if state:
        return Part(
            name, measure, None, None, threshold, direction, why, state, "accuracy", task=a[0]
        )
    d = e.accuracy(*b) - e.accuracy(*a)
    return Part(
        name,
        measure,
        d.mean,
        d.interval(),
        threshold,
        direction,
        why,
        reads="accuracy",
        estimate=d,
        task=a[0],
    )


@dataclass(frozen=True)
class Rank:
    """The rank interval of one condition among others by one measure (1 = the highest)."""

    point: int  # by the means
    low: int  # 1 + the conditions clearly above it
    high: int  # the conditions not clearly below it, itself included


def ranks(e: Conditions, conditions: Sequence[Condition], value, gated: bool) -> dict:
    """The :class:`Rank` of each condition by ``value(condition) -> Estimate``; a difference is
    clear when its 95 % interval excludes 0. ``gated``: only the conditions that pass their
    gate are ranked (a spectrum is read from seeds that used their state); else every
    condition with runs (an accuracy is read over all seeds)."""
    ok = {c: value(c) for c in conditions if not (gated and e.gate([c])[0])}
    ok = {c: v for c, v in ok.items() if v is not None}

    def above(x, y) -> bool:  # x clearly above y
        d = (ok[x] - ok[y]).interval()
        return d is not None and d[0] > 0

    out = {}
    for c in ok:
        others = [o for o in ok if o != c]
        out[c] = Rank(
            1 + sum(ok[o].mean > ok[c].mean for o in others),
            1 + sum(above(o, c) for o in others),
            1 + sum(not above(c, o) for o in others),
        )
    return out


def rank_part(
    e: Conditions,
    name: str,
    measure: str,
    subject: Condition,
    among: Sequence[Condition],
    threshold: float,
    direction: str,
    value: Callable[[Condition], st.Estimate | None] | None = None,
) -> Part:
    """The rank interval of ``subject`` among ``among`` (itself included) against a rank
    ``threshold``. By accuracy (``value`` None): every condition is ranked by its accuracy
    over all seeds, and the part is untestable unless some condition passes its gate. By a
    spectral ``value``: only conditions that pass their gate are ranked, and the part is
    untestable unless the subject and another condition pass. Missing when a condition has
    no runs."""
    by_accuracy = value is None
    among = [subject, *(c for c in among if c != subject)]
    value = value or (lambda c: e.accuracy(*c))
    states = {c: e.gate([c]) for c in among}
    missing = [why for state, why in states.values() if state == "missing"]
    learned = [c for c, (state, _) in states.items() if not state]
    state, why = ("missing", missing[0]) if missing else ("untestable", "")
    if not missing and not learned:
        why = f"no model of the comparison can carry it ({states[subject][1]})"
    elif not missing and not by_accuracy and subject not in learned:
        why = states[subject][1]
    elif not missing and not by_accuracy and len(learned) < 2:
        why = "no other model of the comparison passed its gate"
    if missing or why:
        return Part(
            name,
            measure,
            None,
            None,
            threshold,
            direction,
            why,
            state,
            "rank",
            False,
            task=subject[0],
        )
    table = ranks(e, among, value, gated=not by_accuracy)
    r = table[subject]
    note = ", ".join(f"{c[2] or c[1]} {table[c].low}–{table[c].high}" for c in among if c in table)
    return Part(
        name,
        measure,
        float(r.point),
        (float(r.low), float(r.high)),
        threshold,
        direction,
        f"rank intervals: {note}",
        reads="rank",
        scalable=False,
        task=subject[0],
    )


def main_conditions(task: str, models: Sequence[str]) -> list[Condition]:
    """The main-grid conditions of ``models`` on ``task``."""
    return [(task, m, "") for m in models]


def top_models(e: Conditions, task: str) -> list[str]:
    """The most accurate models of ``task``: those whose rank interval starts at 1."""
    conds = main_conditions(task, e.models(task))
    table = ranks(e, conds, lambda c: e.accuracy(*c), gated=False)
    return [c[1] for c, r in table.items() if r.low == 1]


def most_accurate(measures: pd.DataFrame, task: str, analysis: str = "exact") -> list[str]:
    """The main-grid models of ``task`` that no other is clearly more accurate than, over all
    seeds (their rank interval starts at 1; no winner picked from noisy means)."""
    return top_models(Conditions(measures, analysis), task)


ALPHA = (1 - st.CONFIDENCE) / 2  # one-sided level of each decision (a 95 % interval's side)


def p_values(p: Part) -> tuple[float, float] | None:
    """One-sided p-values of a part's two decisions from its estimate (Student's t): against
    "it holds" being chance, and against "it fails" being chance; None without a standard
    error. ``≠`` holds outside ±threshold (the nearer side) and fails inside (both sides)."""
    est = p.estimate
    if est is None or est.se is None or not math.isfinite(est.mean):
        return None
    t = stats.t(est.df)

    def above(x) -> float:  # p of "the effect is above x"
        return float(t.sf((est.mean - x) / est.se)) if est.se > 0 else float(est.mean <= x)

    def below(x) -> float:  # p of "the effect is below x"
        return float(t.cdf((est.mean - x) / est.se)) if est.se > 0 else float(est.mean >= x)

    thr = p.threshold
    if p.direction == ">":
        return above(thr), below(thr)
    if p.direction == "<":
        return below(thr), above(thr)
    return min(above(thr), below(-thr)), max(below(thr), above(-thr))


def holm(parts: list[Part]) -> list[float]:
    """Holm's step-down adjustment across one claim's parts (:func:`companion.statistics.holm`):
    per part, the adjusted p-value of the decision it took (NaN for parts without one: ranks,
    seed counts, ρ, and parts not decided). A decision whose adjusted p-value exceeds ``ALPHA``
    is taken back to "within noise", so that with ten parts one of them failing by chance does
    not refute the claim."""
    raw = []
    for p in parts:
        pv = p_values(p) if p.state in ("holds", "fails") else None
        raw.append(math.nan if pv is None else pv[0] if p.state == "holds" else pv[1])
    return st.holm(raw)


def corrected(c: Claim, control: dict) -> list[dict]:
    """The parts of claim ``c`` after the two corrections (module docstring), as rows:
    ``control`` maps (claim, part) to the part's state on the spectra at initialisation."""
    rows = []
    for p in c.parts:
        init_state = control.get((c.claim, p.name), "") if p.reads == "spectra" else ""
        settled = p.state in ("holds", "fails") and init_state == p.state
        if settled and p.state == "fails":
            p.state = "untestable"
            p.note = join(p.note, "settled at initialisation: the untrained spectrum fails too")
        rows.append(dict(init_state=init_state, settled=settled))
    for p, row, adjusted in zip(c.parts, rows, holm(c.parts), strict=True):
        if p.state in ("holds", "fails") and adjusted > ALPHA:
            p.state = "within noise"
            p.note = join(p.note, f"Holm-adjusted p = {adjusted:.3f} across the claim's parts")
        row["p_holm"] = adjusted
    return rows

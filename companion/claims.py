"""The paper's claims C1–C11 (arXiv:2510.09379; the book's claims chapter states each), checked
part by part against our runs, under the exact and under the published analysis, by the
decision rule of :mod:`companion.decision` (parts, their states, a claim's verdict, the gates,
rank intervals and Holm's correction).

The only input is the table ``measures`` (:func:`companion.evidence.measures`, one row per run,
analysis and stage, with each run's gate), so that tests build it by hand and the book's
downloadable ``measures.csv`` reproduces its verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from companion import evidence as ev
from companion import statistics as st
from companion.decision import (
    NEAR1,
    SHARE,
    Claim,
    Condition,
    Conditions,
    Part,
    accuracy_part,
    condition_name,
    corrected,
    join,
    main_conditions,
    part,
    pct,
    rank_part,
    top_models,
    verdict,
)
from companion.spectra import MAGNITUDE_BINS

LRA = ("listops", "text", "image")
SELECTIVE = ("mqar", "lm")
NEAR0 = MAGNITUDE_BINS[0]
ABOVE1 = MAGNITUDE_BINS[4:]
SMALL = MAGNITUDE_BINS[:2]  # |λ| ≤ 0.5
NEXT = MAGNITUDE_BINS[1]  # (0.1, 0.5], the neighbour of the near-0 bin
# "a peak near 0" (C4): at least this share in [0, 0.1], and more there than in (0.1, 0.5]
# (a local maximum of the binned spectrum; a second peak near 1 does not undo it)
PEAK_MASS = 0.1
MAJORITY = 0.5  # "most of the mass"
PRESENT = 0.05  # a bin "has mass"
# the claims that read attention's mass near 0 or near and above 1, and the conditions (task,
# model, variant) of the attention with a split Λ that each reads: the claims chapter says which
# factor carries the mass (companion.factors.carriers); norm attention's η is no sum over keys
FACTOR_CLAIMS = {
    "C2": [(t, "softmax", "") for t in LRA],
    "C3": [(t, "linear", "") for t in (*LRA, *SELECTIVE)],
    "C7": [("image", "linear", ""), ("image", "linear", "gate")],
    "C8": [("image", m, v) for m in ("softmax", "linear") for v in ("", "conv")],
}
SHAPE_KEPT = 0.15  # total variation distance (init → final) below which a shape is "kept"
SOLVED = 0.9  # MQAR accuracy that counts as solved
SAME = 0.02  # accuracy differences within ±2 points are "no change" (C11)
SAME_TV = 0.02  # a depth effect within ±0.02 of the seeds' own TV distance is "no change" (C11)
# the weight-decay exemption of the transition (variant nowd-lambda), read by C4 and C6
NO_DECAY = "nowd-lambda"


def _tv_travelled(i: pd.Series, f: pd.Series) -> float:
    return st.tv(i[list(MAGNITUDE_BINS)], f[list(MAGNITUDE_BINS)])


def shape_kept(e: Conditions, task: str, model: str, claim_note: str = "") -> Part:
    """``task/model`` stays near its initialisation (TV travelled < ``SHAPE_KEPT``), with the
    positive control: another main-grid model that learned ``task`` moved by more than that."""
    name = (
        f"{task}/{model} stays near its initialisation"
        if model != "linear"
        else (f"{task}: linear attention keeps its initial shape")
    )
    measure = "TV distance of the bins, init → final"
    p = part(
        e,
        name,
        measure,
        [(task, model, "")],
        lambda: e.per_seed(task, model, "", _tv_travelled, SHARE),
        SHAPE_KEPT,
        "<",
        _w1_note(e, task, model),
        reads="training",
    )
    if p.state in ("missing", "untestable"):
        return p
    moved = [
        m
        for m in e.models(task)
        if m != model
        and not e.gate([(task, m, "")])[0]
        and (t := e.per_seed(task, m, "", _tv_travelled, SHARE)) is not None
        and t.mean > SHAPE_KEPT
    ]
    if not moved:
        p.state = "untestable"
        p.note = join(
            p.note,
            f"control: no other model that learned {task} moved by more than {SHAPE_KEPT:g} either",
        )
    else:
        p.note = join(p.note, f"control: {', '.join(moved)} moved by more than {SHAPE_KEPT:g}")
    return p


def _w1_note(e: Conditions, task, model, variant="") -> str:
    qi, qf = e.mean_quantiles(task, model, variant, "init"), e.mean_quantiles(task, model, variant)
    return "" if qi is None or qf is None else f"W1 on log|λ| init → final {st.w1(qi, qf):.3f}"


# ---------------------------------------------------------------------------------------------
# the claims


def c1(e: Conditions) -> Claim:
    parts = []
    for task in LRA:
        top = top_models(e, task)
        name = f"{task}: the most accurate models have most of their |λ| near 1"
        measure = f"share in {ev.BAND_TEXT} (the lowest of the most accurate models)"
        if not top:
            state, why = (
                ("untestable", "no model learned the task")
                if e.models(task)
                else ("missing", f"no runs of {task}")
            )
            parts.append(Part(name, measure, None, None, MAJORITY, ">", why, state, task=task))
        else:
            parts.append(
                part(
                    e,
                    name,
                    measure,
                    main_conditions(task, top),
                    lambda task=task, top=top: min(
                        (e.value(task, m) for m in top), key=lambda v: v.mean
                    ),
                    MAJORITY,
                    note=f"the most accurate (rank interval from 1): {', '.join(top)}",
                )
            )
    for task in LRA:
        for model in ("s4", "lru"):
            parts.append(shape_kept(e, task, model))
    return Claim(
        "C1",
        "On the LRA tasks the best models put most mass near 1; S4 and LRU stay near their "
        "initialisation.",
        parts,
    )


def c2(e: Conditions) -> Claim:
    parts = []
    for task in LRA:
        soft = [(task, "softmax", "")]
        parts.append(
            part(
                e,
                f"{task}: softmax has mass near 0",
                "share in [0, 0.1]",
                soft,
                lambda task=task: e.value(task, "softmax", "", NEAR0),
                PRESENT,
            )
        )
        parts.append(
            part(
                e,
                f"{task}: softmax has mass above 1",
                "share above 1",
                soft,
                lambda task=task: e.share(task, "softmax", ABOVE1),
                PRESENT,
            )
        )
        models = e.models(task)
        parts.append(
            rank_part(
                e,
                f"{task}: softmax is below the middle of the models",
                "rank of softmax by accuracy (1 = best)",
                soft[0],
                main_conditions(task, models),
                (len(set(models) | {"softmax"}) + 1) / 2,
                ">",
            )
        )
    return Claim(
        "C2",
        "Softmax attention on LRA has mass near 0 and above 1, and performs poorly there.",
        parts,
    )


def c3(e: Conditions) -> Claim:
    parts = [shape_kept(e, task, "linear") for task in (*LRA, *SELECTIVE)]
    return Claim("C3", "Linear attention keeps the spectrum shape it had at initialisation.", parts)


def c4(e: Conditions, variant: str = "") -> Claim:
    parts = []
    # the LRA reference: Mamba-2 of the same variant, on the LRA tasks where it learned
    lra = [(t, "mamba2", variant) for t in LRA if not e.gate([(t, "mamba2", variant)])[0]]
    for task in SELECTIVE:
        m2 = (task, "mamba2", variant)
        parts.append(
            part(
                e,
                f"{task}: Mamba-2 has mass near 0",
                "share in [0, 0.1]",
                [m2],
                lambda task=task: e.value(task, "mamba2", variant, NEAR0),
                PEAK_MASS,
            )
        )
        parts.append(
            part(
                e,
                f"{task}: Mamba-2's mass near 0 is a peak",
                "share in [0, 0.1] − share in (0.1, 0.5]",
                [m2],
                lambda task=task: e.share(task, "mamba2", [NEAR0], variant, minus=[NEXT]),
                0.0,
            )
        )
        among = [m2] + [(task, m, "") for m in e.models(task) if m != "mamba2"]
        parts.append(
            rank_part(
                e,
                f"{task}: Mamba-2 has the most mass near 0 of all models",
                "rank of Mamba-2 by the share in [0, 0.1] among the models that learned",
                m2,
                among,
                1.5,
                "<",
                value=lambda c: e.value(*c, column=NEAR0),
            )
        )
        name = f"{task}: Mamba-2 has more mass near 0 than on the LRA tasks"
        measure = "share in [0, 0.1]: this task − LRA mean"
        if lra:
            parts.append(
                part(
                    e,
                    name,
                    measure,
                    [m2, *lra],
                    lambda m2=m2: (
                        e.value(*m2, column=NEAR0)
                        - st.Estimate.average([e.value(*c, column=NEAR0) for c in lra])
                    ),
                    0.0,
                    note=f"LRA reference: Mamba-2{_context(variant)} on "
                    + ", ".join(c[0] for c in lra),
                )
            )
        else:
            state = (
                "missing"
                if all(e.gate([(t, "mamba2", variant)])[0] == "missing" for t in LRA)
                else "untestable"
            )
            why = f"Mamba-2{_context(variant)} " + (
                "has no LRA runs" if state == "missing" else "learned none of the LRA tasks"
            )
            parts.append(Part(name, measure, None, None, 0.0, ">", why, state, task=task))
    return Claim(
        "C4" + _context(variant),
        "On selective tasks the spectra peak near 0, most clearly for Mamba-2.",
        parts,
    )


def _context(variant: str) -> str:
    return " (Λ without weight decay)" if variant == NO_DECAY else ""


def c5(e: Conditions) -> Claim:
    parts = []
    for task in (*LRA, "mqar"):
        parts.append(
            rank_part(
                e,
                f"{task}: Mamba-2 is among the three most accurate models",
                "rank of Mamba-2 by accuracy (1 = best)",
                (task, "mamba2", ""),
                main_conditions(task, e.models(task)),
                3.5,
                "<",
            )
        )
    efficient = [m for m in e.models("mqar") if m != "softmax"]
    parts.append(
        rank_part(
            e,
            "mqar: Mamba-2 is the most accurate efficient model",
            "rank of Mamba-2 by accuracy among the efficient models",
            ("mqar", "mamba2", ""),
            main_conditions("mqar", efficient),
            1.5,
            "<",
        )
    )
    return Claim(
        "C5",
        "Mamba-2 is competitive across tasks and clearly best among the efficient models on MQAR.",
        parts,
    )


def c6(e: Conditions, variant: str = "") -> Claim:
    def grew(i, f):
        return float(f[list(SMALL)].sum() - i[list(SMALL)].sum())

    parts = [
        part(
            e,
            f"listops/{model}: the share of |λ| ≤ 0.5 grows in training",
            "share of |λ| ≤ 0.5: final − init",
            [("listops", model, variant)],
            lambda model=model: e.per_seed("listops", model, variant, grew, (-1.0, 1.0)),
            0.0,
            reads="training",
        )
        for model in ("lru", "mamba2")
    ]
    return Claim(
        "C6" + _context(variant), "ListOps develops small eigenvalues in LRU and Mamba-2.", parts
    )


def _diff(e: Conditions, task, model, variant, base, column) -> st.Estimate | None:
    a, b = e.value(task, model, base, column), e.value(task, model, variant, column)
    return None if a is None or b is None else b - a


def c7(e: Conditions) -> Claim:
    parts = []
    for model, base in (("linear", ""), ("norm", "noconv")):
        conds = [("image", model, base), ("image", model, "gate")]
        parts.append(
            part(
                e,
                f"image/{model}: the gate moves mass away from 0",
                "share in [0, 0.1]: without gate − with gate",
                conds,
                lambda model=model, base=base: _neg(_diff(e, "image", model, "gate", base, NEAR0)),
                0.0,
            )
        )
        parts.append(
            part(
                e,
                f"image/{model}: the gate moves mass towards 1",
                f"share in {ev.BAND_TEXT}: with gate − without",
                conds,
                lambda model=model, base=base: _diff(e, "image", model, "gate", base, NEAR1),
                0.0,
            )
        )
    for model in ("softmax", "linear"):
        parts.append(
            accuracy_part(
                e,
                f"text/{model}: the gate raises accuracy",
                "accuracy: with gate − without",
                ("text", model, ""),
                ("text", model, "gate"),
            )
        )
    return Claim(
        "C7", "An output gate moves attention spectra from 0 towards 1, and helps on Text.", parts
    )


def _neg(d: st.Estimate | None) -> st.Estimate | None:
    return None if d is None else -d


def solves(e: Conditions, name: str, cond: Condition) -> Part:
    """Every seed of ``cond`` reaches ``SOLVED`` (holds), none does (fails) or some do (within
    noise: a bimodal condition); gated like any part."""
    measure = f"share of seeds at or above {pct(SOLVED)}"
    state, why = e.gate([cond])
    if state:
        return Part(
            name, measure, None, None, 1.0, ">", why, state, "accuracy", False, task=cond[0]
        )
    accs = e.all_rows(*cond)["test_accuracy"]
    share = float((accs >= SOLVED).mean())
    word = "holds" if share == 1 else "fails" if share == 0 else "within noise"
    note = f"seeds: {', '.join(pct(a) for a in accs)}"
    return Part(
        name,
        measure,
        share,
        (share, share),
        1.0,
        ">",
        join(note, why),
        word,
        "accuracy",
        False,
        task=cond[0],
    )


def c8(e: Conditions) -> Claim:
    parts = []
    for model, base, conv in (
        ("softmax", "", "conv"),
        ("linear", "", "conv"),
        ("norm", "noconv", ""),
    ):
        parts.append(
            part(
                e,
                f"image/{model}: the convolution takes mass away from 1",
                f"share in {ev.BAND_TEXT}: without conv − with conv",
                [("image", model, base), ("image", model, conv)],
                lambda model=model, base=base, conv=conv: _neg(
                    _diff(e, "image", model, conv, base, NEAR1)
                ),
                0.0,
            )
        )
    parts.append(
        solves(
            e,
            "mqar: one softmax layer with a convolution solves MQAR",
            ("mqar", "softmax", "layers1-conv"),
        )
    )
    return Claim(
        "C8",
        "A short convolution moves attention spectra towards 0; with it, one "
        "attention layer solves MQAR.",
        parts,
    )


NORM_FNS = {"softplus": "", "exp": "exp", "elu": "elu", "sigmoid": "sigmoid"}


def c9(e: Conditions) -> Claim:
    conds = [("image", "norm", v) for v in NORM_FNS.values()]
    parts = [
        rank_part(
            e,
            "image/norm: softplus is the most accurate normalisation",
            "rank of softplus by accuracy among the four functions",
            conds[0],
            conds,
            1.5,
            "<",
        )
    ]
    name = "image/norm: retention trades against selectivity across the functions"
    measure = (
        "Spearman ρ of near-1 and near-0 shares over functions and seeds (dead heads "
        "excluded; interval: bootstrap over functions)"
    )
    missing = [c for c in conds if e.gate([c])[0] == "missing"]
    learned = [c for c in conds if not e.gate([c])[0]]
    rho, interval, state = None, None, ""
    if missing:
        note, state = f"no runs of {condition_name(*missing[0])}", "missing"
    elif len(learned) < 3:
        note, state = f"{len(learned)} of 4 functions learned the task (3 needed)", "untestable"
    else:
        rows = pd.concat([e.rows(*c) for c in learned])
        dead = int(rows["dead_heads"].sum()) if "dead_heads" in rows else 0
        rho, low, high = st.rho_interval(rows["band_live"], rows["near0_live"], rows["variant"])
        interval = (low, high)
        note = f"{dead} dead head(s) excluded; {len(learned)} functions"
        if math.isnan(rho):
            rho, interval = None, None
            note, state = "ρ is undefined (a share is constant)", "within noise"
    parts.append(
        Part(name, measure, rho, interval, 0.0, "<", note, state, "spectra", False, task="image")
    )
    return Claim(
        "C9",
        "The normalisation function trades retention against selectivity; softplus works best.",
        parts,
    )


def c10(e: Conditions) -> Claim:
    parts = []
    for task in ("image", "listops"):
        s4, lti, sel = conds = [(task, "s4", ""), (task, "mamba2", "lti"), (task, "mamba2", "")]

        def closer(s4=s4, lti=lti, sel=sel):
            ref = np.mean(e.seed_bins(*s4), 0)

            def to_s4(cond, ref=ref):
                bins = e.seed_bins(*cond)
                return st.estimate(pd.Series([st.tv(x, ref) for x in bins]), None, None, SHARE)

            return to_s4(sel) - to_s4(lti)

        at_init = [e.mean_bins(*c, stage="init") for c in conds]
        note = ""
        if all(b is not None for b in at_init):
            s40, lti0, sel0 = at_init
            note = (
                f"at initialisation already: TV to S4 {st.tv(lti0, s40):.2f} (pseudo-LTI) "
                f"vs {st.tv(sel0, s40):.2f} (selective)"
            )
        parts.append(
            part(
                e,
                f"{task}: pseudo-LTI Mamba-2 is closer to S4 than selective Mamba-2",
                "TV to S4: selective − pseudo-LTI",
                conds,
                closer,
                0.0,
                note=note,
            )
        )
    parts.append(
        accuracy_part(
            e,
            "listops: pseudo-LTI Mamba-2 is more accurate",
            "accuracy: pseudo-LTI − selective",
            ("listops", "mamba2", ""),
            ("listops", "mamba2", "lti"),
        )
    )
    return Claim(
        "C10", "A pseudo-LTI Mamba-2 has S4-like spectra and does better on ListOps.", parts
    )


# (task, model, shallow variant, deep variant): the depth ablations C11 reads; on MQAR at the
# learning rate the shared quick sweep chose for the model at two layers (configs/mqar)
DEPTH_PAIRS = [
    ("image", "softmax", "layers1", "layers4"),
    ("mqar", "softmax", "layers1-lr2e-3", "layers4-lr2e-3"),
    ("mqar", "mamba2", "layers1-lr1e-2", "layers4-lr1e-2"),
]


def c11(e: Conditions) -> Claim:
    parts = []
    for task, model, shallow, deep in DEPTH_PAIRS:
        a, b = (task, model, shallow), (task, model, deep)
        parts.append(
            part(
                e,
                f"{task}/{model} {shallow} vs {deep}: depth moves the spectrum",
                "TV between depths − TV between seeds of one depth (jackknife over seeds)",
                [a, b],
                lambda a=a, b=b: st.pair_contrast(e.seed_bins(*a), e.seed_bins(*b), st.tv),
                SAME_TV,
                ">",
            )
        )
        parts.append(
            accuracy_part(
                e,
                f"{task}/{model} {shallow} vs {deep}: depth changes the accuracy",
                "accuracy: 4 layers − 1 layer",
                a,
                b,
                SAME,
                "≠",
            )
        )
    return Claim("C11", "Depth changes both the spectra and the accuracy.", parts)


CLAIMS: tuple[Callable[[Conditions], Claim], ...] = (c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)
# claims evaluated again with the transition exempt from weight decay (variant nowd-lambda)
NO_DECAY_CLAIMS: tuple[Callable[[Conditions, str], Claim], ...] = (c4, c6)


def _claims(e: Conditions) -> list[Claim]:
    return [fn(e) for fn in CLAIMS] + [fn(e, NO_DECAY) for fn in NO_DECAY_CLAIMS]


def evaluate(
    measures: pd.DataFrame, analyses=("exact", "published")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every claim under each analysis: a verdict table (``claim, statement, analysis, verdict,
    deciding part``) and a parts table (``claim, analysis, part, task, measure, effect, low,
    high, threshold, direction, state, note, reads, scalable, init_state, settled, p_holm``).

    Two corrections come before the verdict. ``init_state`` is the state of a spectral part on
    the spectra at initialisation (the control; empty for other parts); ``settled``:
    initialisation alone already gives the part its state, and a settled part that fails
    cannot refute the claim (training did not make it fail): it is untestable. ``p_holm``:
    Holm's adjustment across the claim's parts (:func:`companion.decision.holm`)."""
    verdicts, parts = [], []
    for analysis in analyses:
        e = Conditions(measures, analysis)
        control = {
            (c.claim, p.name): p.state
            for c in _claims(Conditions(measures, analysis, "init"))
            for p in c.parts
            if p.reads == "spectra"
        }
        for c in _claims(e):
            extra = corrected(c, control)
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
            for p, more in zip(c.parts, extra, strict=True):
                low, high = p.interval if p.interval is not None else (None, None)
                parts.append(
                    dict(
                        claim=c.claim,
                        analysis=analysis,
                        part=p.name,
                        task=p.task,
                        measure=p.measure,
                        effect=p.effect,
                        low=low,
                        high=high,
                        threshold=p.threshold,
                        direction=p.direction,
                        state=p.state,
                        note=p.note,
                        reads=p.reads,
                        scalable=p.scalable,
                        **more,
                    )
                )
    return pd.DataFrame(verdicts), pd.DataFrame(parts)

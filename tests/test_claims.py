"""Claims C1–C11: for every claim, tables built by hand where it holds, where one part clearly
fails (the claim then does not hold, whatever the other parts say) and where a part is within
noise or missing (inconclusive); the aggregation rule and the statistics on their own."""

import math

import numpy as np
import pandas as pd
import pytest
from builders import cond, table
from scipy import stats

from companion import claims, decision, report, robustness
from companion import evidence as ev
from companion import statistics as st
from companion.spectra import MAGNITUDE_BINS
from companion.tasks import TASKS


def check(claim, measures: pd.DataFrame, expected: str, deciding: str = ""):
    c = claim(decision.Conditions(measures))
    word, part = decision.verdict(c.parts)
    states = {p.name: p.state for p in c.parts}
    assert word == expected, states
    assert deciding in part, (part, states)
    return c


# ---------------------------------------------------------------------------------------------
# the rule and the statistics


def p(state_effect, interval, threshold=0.0, direction=">"):
    return decision.Part("x", "m", state_effect, interval, threshold, direction)


def test_a_part_reads_its_interval_against_the_threshold():
    assert p(0.3, (0.1, 0.5)).state == "holds"
    assert p(-0.3, (-0.5, -0.1)).state == "fails"
    assert p(0.1, (-0.1, 0.3)).state == "within noise"
    assert p(0.1, None).state == "within noise"
    assert p(0.0, (0.0, 0.0)).state == "fails"  # exactly no effect, with no noise at all
    assert p(None, None).state == "missing"
    assert p(0.1, (0.05, 0.12), 0.15, "<").state == "holds"
    assert p(0.3, (0.2, 0.4), 0.15, "<").state == "fails"
    assert p(0.05, (0.03, 0.08), 0.02, "≠").state == "holds"
    assert p(0.0, (-0.01, 0.01), 0.02, "≠").state == "fails"
    assert p(0.01, (-0.01, 0.04), 0.02, "≠").state == "within noise"
    # an interval that excludes 0 but lies inside the ±threshold margin is no effect
    assert p(0.01, (0.005, 0.015), 0.02, "≠").state == "fails"
    assert p(0.01, (0.005, 0.03), 0.02, "≠").state == "within noise"
    assert p(-0.05, (-0.08, -0.03), 0.02, "≠").state == "holds"


def part(state):
    effect, interval = {
        "holds": (1.0, (0.5, 1.5)),
        "fails": (-1.0, (-1.5, -0.5)),
        "within noise": (0.0, (-1.0, 1.0)),
        "missing": (None, None),
        "untestable": (None, None),
    }[state]
    return decision.Part(state, "m", effect, interval, 0.0, state=state)


@pytest.mark.parametrize(
    ("states", "expected", "deciding"),
    [
        (["holds", "holds"], "holds", ""),
        (["holds", "fails"], "does not hold", "fails"),
        (["within noise", "fails", "missing"], "does not hold", "fails"),  # a clear failure wins
        (["holds", "within noise"], "inconclusive", "within noise"),
        (["holds", "missing"], "incomplete", "missing"),
        (["untestable", "missing"], "incomplete", "missing"),
        (["within noise", "untestable"], "untestable at this scale", "untestable"),
        (["untestable", "fails"], "does not hold", "fails"),
        ([], "incomplete", "no parts"),
    ],
)
def test_one_clearly_failed_part_refutes_a_claim(states, expected, deciding):
    assert decision.verdict([part(s) for s in states]) == (expected, deciding)


def test_intervals_are_students_t_on_the_pooled_seed_noise():
    rows = pd.DataFrame(
        {"task": "t", "model": ["a"] * 3 + ["b"] * 3, "variant": "", "x": [1, 2, 3, 2, 4, 6]}
    )
    sd, df = st.pooled_sd(rows, "x", ev.CONDITION)
    assert df == 4 and sd == pytest.approx(math.sqrt((1 + 4) / 2))
    est = st.estimate(rows["x"][:3], (sd, df))
    low, high = est.interval()
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(3)
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert st.estimate(pd.Series([0.5]), None).interval() is None  # one seed, no noise
    assert st.estimate(pd.Series([0.5]), None, pd.Series([0.1])).interval() == pytest.approx(
        (0.5 - 1.96 * 0.1, 0.5 + 1.96 * 0.1), rel=1e-3
    )
    diff = st.Estimate(1.0, 0.3, 10) - st.Estimate(0.5, 0.4, 4)
    assert diff.mean == 0.5 and diff.se == pytest.approx(0.5) and diff.df == 4


def test_w1_and_tv():
    q = np.linspace(-1, 1, 101)
    assert st.w1(q, q + 0.5) == pytest.approx(0.5)
    assert st.tv([1, 0], [0.5, 0.5]) == 0.5


# ---------------------------------------------------------------------------------------------
# each claim: holds, does not hold, inconclusive


def c1_world(best_near1=0.8, s4_final=None, jitter=0.0, drop=()):
    out = []
    for task in claims.LRA:
        out.append(
            cond(
                task,
                "mamba2",
                acc=0.9,
                init={"mid": 1.0},
                final={"near1": best_near1},
                jitter=jitter,
            )
        )
        out.append(cond(task, "softmax", acc=0.3, final={"near1": 0.2, "near0": 0.8}))
        for m in ("s4", "lru"):
            if (task, m) in drop:
                continue
            out.append(
                cond(
                    task,
                    m,
                    acc=0.5,
                    init={"near1": 1.0},
                    final=s4_final or {"near1": 0.95, "mid": 0.05},
                    jitter=jitter,
                )
            )
    return table(*out)


@pytest.mark.slow
def test_c1():
    check(claims.c1, c1_world(), "holds")
    check(claims.c1, c1_world(best_near1=0.2), "does not hold", "most accurate model")
    check(claims.c1, c1_world(s4_final={"mid": 1.0}), "does not hold", "stays near")
    check(claims.c1, c1_world(best_near1=0.5, jitter=0.05), "inconclusive", "most accurate")
    check(claims.c1, c1_world(drop=[("image", "lru")]), "incomplete", "image/lru")


def c2_world(near0=0.2, above=0.2, soft_acc=0.1, jitter=0.0, drop_text=False):
    out = []
    for task in claims.LRA:
        if drop_text and task == "text":
            continue
        out.append(
            cond(
                task,
                "softmax",
                acc=soft_acc,
                jitter=jitter,
                final={"near0": near0, "above": above, "mid": 1 - near0 - above},
            )
        )
        for i, m in enumerate(("linear", "norm", "lru", "s4", "mamba2")):
            out.append(cond(task, m, acc=0.5 + 0.05 * i))
    return table(*out)


def test_c2():
    check(claims.c2, c2_world(), "holds")
    check(claims.c2, c2_world(near0=0.0), "does not hold", "mass near 0")
    check(claims.c2, c2_world(soft_acc=0.9), "does not hold", "below the middle")
    check(claims.c2, c2_world(near0=0.05, jitter=0.03), "inconclusive", "near 0")
    check(claims.c2, c2_world(drop_text=True), "incomplete", "text")


def c3_world(moved=False, jitter=0.0, tasks=(*claims.LRA, *claims.SELECTIVE), control=True):
    """Linear attention on ``tasks``; ``control``: Mamba-2 beside it moves in training."""
    final = {"mid": 1.0} if moved else {"near1": 0.9, "mid": 0.1}
    out = [cond(t, "linear", init={"near1": 1.0}, final=final, jitter=jitter) for t in tasks]
    if control:
        out += [cond(t, "mamba2", init={"near1": 1.0}, final={"near0": 1.0}) for t in tasks]
    return table(*out)


@pytest.mark.slow
def test_c3():
    check(claims.c3, c3_world(), "holds")
    check(claims.c3, c3_world(moved=True), "does not hold", "keeps its initial shape")
    check(claims.c3, c3_world(tasks=claims.LRA), "incomplete", "mqar")
    blurred = c3_world(tasks=claims.LRA + ("lm",))
    blurred = pd.concat([blurred, c3_world(tasks=("mqar",), jitter=0.2)])
    check(claims.c3, blurred, "inconclusive", "mqar")


def test_a_shape_kept_needs_a_model_that_moved():
    # without the positive control, "kept" cannot be told from "training moved nothing"
    c = check(claims.c3, c3_world(control=False), "untestable at this scale", "listops")
    assert all("control: no other model" in p.note for p in c.parts)
    c = check(claims.c3, c3_world(), "holds")
    assert all("control: mamba2 moved" in p.note for p in c.parts)


def c4_world(peak=0.7, other_near0=0.1, lra_near0=0.0, jitter=0.0, variant=""):
    out = []
    for task in claims.SELECTIVE:
        out.append(
            cond(
                task,
                "mamba2",
                variant,
                jitter=jitter,
                final={"near0": peak, "mid": (1 - peak) / 2, "near1": (1 - peak) / 2},
            )
        )
        out.append(cond(task, "linear", final={"near0": other_near0, "near1": 1 - other_near0}))
    for task in claims.LRA:
        out.append(
            cond(task, "mamba2", variant, final={"near0": lra_near0, "near1": 1 - lra_near0})
        )
    return table(*out)


def test_c4():
    check(claims.c4, c4_world(), "holds")
    check(claims.c4, c4_world(peak=0.05), "does not hold", "has mass near 0")
    check(claims.c4, c4_world(other_near0=0.9), "does not hold", "most mass near 0 of all")
    check(claims.c4, c4_world(peak=0.12, jitter=0.05), "inconclusive", "has mass near 0")
    check(claims.c4, c4_world().query("task != 'lm'"), "incomplete", "lm")
    check(lambda e: claims.c4(e, claims.NO_DECAY), c4_world(variant=claims.NO_DECAY), "holds")


def test_c4_without_decay_compares_with_mamba2_without_decay_on_lra():
    # the selective task's no-decay Mamba-2 against the no-decay LRA runs, not the main ones
    world = c4_world(variant=claims.NO_DECAY, lra_near0=0.8)
    main_lra = [cond(t, "mamba2", final={"near0": 0.0, "near1": 1.0}) for t in claims.LRA]
    world = pd.concat([world, table(*main_lra)])
    c = claims.c4(decision.Conditions(world), claims.NO_DECAY)
    against_lra = [p for p in c.parts if "than on the LRA" in p.name]
    assert all(p.state == "fails" for p in against_lra), [p.note for p in against_lra]
    assert all("without weight decay" in p.note for p in against_lra)
    only_main = pd.concat(
        [c4_world(variant=claims.NO_DECAY).query("task in ['mqar', 'lm']"), table(*main_lra)]
    )
    c = claims.c4(decision.Conditions(only_main), claims.NO_DECAY)
    assert {p.state for p in c.parts if "than on the LRA" in p.name} == {"missing"}


def c5_world(m2=(0.8, 0.8, 0.8, 0.95), best_other=0.6, jitter=0.0):
    out = []
    for task, acc in zip((*claims.LRA, "mqar"), m2, strict=True):
        out.append(cond(task, "mamba2", acc=acc, jitter=jitter))
        for i, m in enumerate(("linear", "norm", "lru", "s4")):
            out.append(cond(task, m, acc=best_other - 0.1 * i))
        out.append(cond(task, "softmax", acc=0.99 if task == "mqar" else 0.7))
    return table(*out)


def test_c5():
    check(claims.c5, c5_world(), "holds")
    check(claims.c5, c5_world(m2=(0.1, 0.8, 0.8, 0.95)), "does not hold", "listops")
    check(claims.c5, c5_world(m2=(0.8, 0.8, 0.8, 0.3)), "does not hold", "mqar")
    check(claims.c5, c5_world(m2=(0.8, 0.8, 0.8, 0.6), jitter=0.05), "inconclusive", "mqar")
    check(claims.c5, c5_world().query("task != 'image'"), "incomplete", "image")


def c6_world(grown=0.3, jitter=0.0, variant="", models=("lru", "mamba2")):
    return table(
        *[
            cond(
                "listops",
                m,
                variant,
                init={"small": 0.3, "near1": 0.7},
                final={"small": 0.3 + grown, "near1": 0.7 - grown},
                jitter=jitter,
            )
            for m in models
        ]
    )


def test_c6():
    check(claims.c6, c6_world(), "holds")
    check(claims.c6, c6_world(grown=-0.3), "does not hold", "grows")
    check(claims.c6, c6_world(grown=0.02, jitter=0.05), "inconclusive", "grows")
    check(claims.c6, c6_world(models=("lru",)), "incomplete", "mamba2")
    check(lambda e: claims.c6(e, claims.NO_DECAY), c6_world(variant=claims.NO_DECAY), "holds")


def c7_world(gate_near1=0.6, gate_acc=0.8, jitter=0.0):
    out = []
    for model, base in (("linear", ""), ("norm", "noconv")):
        out.append(cond("image", model, base, final={"near0": 0.5, "near1": 0.3, "mid": 0.2}))
        out.append(
            cond(
                "image",
                model,
                "gate",
                jitter=jitter,
                final={"near0": 0.1, "near1": gate_near1, "mid": 0.9 - gate_near1},
            )
        )
    for model in ("softmax", "linear"):
        out.append(cond("text", model, acc=0.6))
        out.append(cond("text", model, "gate", acc=gate_acc, jitter=jitter))
    return table(*out)


def test_c7():
    check(claims.c7, c7_world(), "holds")
    check(claims.c7, c7_world(gate_near1=0.1), "does not hold", "towards 1")
    check(claims.c7, c7_world(gate_acc=0.4), "does not hold", "raises accuracy")
    check(claims.c7, c7_world(gate_acc=0.61, jitter=0.05), "inconclusive", "accuracy")
    check(claims.c7, c7_world().query("variant != 'gate' or task != 'text'"), "incomplete", "text")


def c8_world(conv_near1=0.2, one_layer=0.99, jitter=0.0):
    out = []
    for model, base, conv in (
        ("softmax", "", "conv"),
        ("linear", "", "conv"),
        ("norm", "noconv", ""),
    ):
        out.append(cond("image", model, base, final={"near1": 0.7, "near0": 0.3}))
        out.append(
            cond(
                "image",
                model,
                conv,
                jitter=jitter,
                final={"near1": conv_near1, "near0": 1 - conv_near1},
            )
        )
    out.append(cond("mqar", "softmax", "layers1-conv", acc=one_layer, jitter=jitter))
    return table(*out)


def test_c8():
    check(claims.c8, c8_world(), "holds")
    check(claims.c8, c8_world(conv_near1=0.9), "does not hold", "away from 1")
    check(claims.c8, c8_world(one_layer=0.2), "does not hold", "solves MQAR")  # was inconclusive
    check(claims.c8, c8_world(one_layer=0.9, jitter=0.02), "inconclusive", "solves MQAR")
    check(claims.c8, c8_world().query("variant != 'layers1-conv'"), "incomplete", "MQAR")


def c9_world(softplus_acc=0.9, trade=-1, jitter=0.002):
    out = []
    for i, (fn, variant) in enumerate(claims.NORM_FNS.items()):
        near1 = 0.2 + 0.15 * i
        near0 = 0.7 - 0.15 * i if trade < 0 else 0.1 + 0.15 * i
        acc = softplus_acc if fn == "softplus" else 0.5
        out.append(
            cond(
                "image",
                "norm",
                variant,
                acc=acc,
                jitter=jitter,
                final={"near1": near1, "near0": near0},
            )
        )
    return table(*out)


@pytest.mark.slow
def test_c9():
    check(claims.c9, c9_world(), "holds")
    check(claims.c9, c9_world(softplus_acc=0.2), "does not hold", "most accurate")
    check(claims.c9, c9_world(trade=+1), "does not hold", "trades")
    check(claims.c9, c9_world(softplus_acc=0.5, jitter=0.05), "inconclusive", "most accurate")
    check(claims.c9, c9_world().query("variant != 'exp'"), "incomplete", "most accurate")


def test_c9_leaves_dead_heads_out():
    world = c9_world()
    exp = world["variant"] == "exp"
    world.loc[exp, "dead_heads"] = 3
    c = claims.c9(decision.Conditions(world))
    assert "9 dead head(s) excluded" in c.parts[1].note  # 3 seeds × 3 heads, final, exact


def c10_world(lti_like_s4=True, lti_acc=0.7, jitter=0.0):
    out = []
    for task in ("image", "listops"):
        out.append(cond(task, "s4", final={"near1": 0.9, "mid": 0.1}))
        lti = {"near1": 0.85, "mid": 0.15} if lti_like_s4 else {"near0": 0.9, "near1": 0.1}
        out.append(cond(task, "mamba2", "lti", acc=lti_acc, final=lti, jitter=jitter))
        out.append(cond(task, "mamba2", acc=0.5, final={"near0": 0.5, "near1": 0.5}))
    return table(*out)


def test_c10():
    c = check(claims.c10, c10_world(), "holds")
    assert "at initialisation already" in c.parts[0].note
    check(claims.c10, c10_world(lti_like_s4=False), "does not hold", "closer to S4")
    check(claims.c10, c10_world(lti_acc=0.3), "does not hold", "more accurate")
    check(claims.c10, c10_world(lti_acc=0.51, jitter=0.05), "inconclusive", "more accurate")
    check(claims.c10, c10_world().query("model != 's4' or task != 'image'"), "incomplete", "image")


def c11_world(deep_near1=0.2, deep_acc=0.9, jitter=0.01):
    out = []
    for task, model, shallow, deep in claims.DEPTH_PAIRS:
        out.append(
            cond(task, model, shallow, acc=0.5, jitter=jitter, final={"near1": 0.8, "near0": 0.2})
        )
        out.append(
            cond(
                task,
                model,
                deep,
                acc=deep_acc,
                jitter=jitter,
                final={"near1": deep_near1, "near0": 1 - deep_near1},
            )
        )
    return table(*out)


def test_c11():
    check(claims.c11, c11_world(), "holds")
    check(claims.c11, c11_world(deep_acc=0.5), "does not hold", "changes the accuracy")
    check(claims.c11, c11_world(deep_near1=0.8), "does not hold", "moves the spectrum")
    check(claims.c11, c11_world(deep_acc=0.52, jitter=0.05), "inconclusive", "accuracy")
    check(claims.c11, c11_world().query("variant != 'layers4'"), "incomplete", "image")


@pytest.mark.slow
def test_every_claim_is_evaluated_under_both_analyses():
    world = c3_world()
    moved = (world["analysis"] == "published") & (world["stage"] == "final")
    world.loc[moved & (world["model"] == "linear"), "(0.5,0.9]"] = 1.0
    world.loc[moved & (world["model"] == "linear"), "(0.9,1]"] = 0.0
    verdicts, parts = claims.evaluate(world)
    assert set(verdicts["analysis"]) == {"exact", "published"}
    assert len(verdicts) == 2 * (len(claims.CLAIMS) + len(claims.NO_DECAY_CLAIMS))
    c3 = verdicts[verdicts["claim"] == "C3"].set_index("analysis")["verdict"]
    assert c3["exact"] == "holds" and c3["published"] == "does not hold"
    assert set(parts["state"]) <= set(decision.STATES)
    empty = claims.evaluate(table())[0]
    assert (empty["verdict"] == "incomplete").all()


# ---------------------------------------------------------------------------------------------
# competence, ranks, controls and the statistics behind them


def test_a_part_about_a_model_that_did_not_learn_is_untestable():
    world = c6_world()
    lru = world["model"] == "lru"
    world.loc[lru, "learned"] = world.loc[lru, "seed"] == 1000  # one seed of three learned
    c = check(claims.c6, world, "untestable at this scale", "listops/lru")
    note = c.parts[0].note
    assert "did not use its state: 1 of 3 seeds passed" in note
    assert "majority class" in note and "13.0 %" in note
    # two of three: the part is read from those two, and the note says the seeds split
    world.loc[lru, "learned"] = world.loc[lru, "seed"] != 1002
    c = check(claims.c6, world, "holds")
    assert "bimodal: 2 of 3 seeds of listops/lru used their state" in c.parts[0].note


def test_nothing_learned_means_no_claim_holds_or_fails():
    worlds = [
        c1_world(),
        c2_world(),
        c3_world(),
        c4_world(),
        c5_world(),
        c6_world(),
        c7_world(),
        c8_world(),
        c9_world(),
        c10_world(),
        c11_world(),
    ]
    world = pd.concat(worlds).assign(learned=False)
    verdicts, parts = claims.evaluate(world)
    assert set(verdicts["verdict"]) <= {"untestable at this scale", "incomplete"}
    assert "untestable at this scale" in set(verdicts["verdict"])
    assert not parts["state"].isin(["holds", "fails"]).any()


def test_ranks_come_from_clear_differences_not_from_the_largest_mean():
    # softmax and Mamba-2 within noise of each other: both are "the most accurate"
    world = table(
        cond("mqar", "mamba2", acc=0.80, jitter=0.05),
        cond("mqar", "softmax", acc=0.81, jitter=0.05),
        cond("mqar", "linear", acc=0.20, jitter=0.05),
    )
    e = decision.Conditions(world)
    r = decision.ranks(
        e,
        decision.main_conditions("mqar", ["mamba2", "softmax", "linear"]),
        lambda c: e.accuracy(*c),
        gated=False,
    )
    assert (r[("mqar", "mamba2", "")].low, r[("mqar", "mamba2", "")].high) == (1, 2)
    assert (r[("mqar", "linear", "")].low, r[("mqar", "linear", "")].high) == (3, 3)
    assert sorted(decision.top_models(e, "mqar")) == ["mamba2", "softmax"]
    # a spectrum is ranked only where the model passed its gate; an accuracy over all seeds
    world.loc[world["model"] == "softmax", "learned"] = False
    e = decision.Conditions(world)
    conds = decision.main_conditions("mqar", ["mamba2", "softmax", "linear"])
    gated = decision.ranks(e, conds, lambda c: e.value(*c, column="band"), gated=True)
    assert ("mqar", "softmax", "") not in gated and len(gated) == 2
    assert sorted(decision.top_models(e, "mqar")) == ["mamba2", "softmax"]


def test_a_tie_at_the_top_is_not_a_winner():
    world = c5_world(m2=(0.8, 0.8, 0.8, 0.61), best_other=0.6, jitter=0.05)
    c = claims.c5(decision.Conditions(world))
    best = [p for p in c.parts if "most accurate efficient" in p.name][0]
    assert best.state == "within noise" and best.interval[0] == 1.0 < best.interval[1]


def test_solving_mqar_asks_every_seed_not_the_mean():
    world = c8_world()
    one = world["variant"] == "layers1-conv"
    accuracy = world.loc[one, "seed"].map({1000: 0.99, 1001: 0.99, 1002: 0.14})
    world.loc[one, "test_accuracy"] = accuracy
    world.loc[one, "learned"] = accuracy > 0.5
    c = claims.c8(decision.Conditions(world))
    solved = c.parts[-1]
    assert solved.state == "within noise" and solved.effect == pytest.approx(2 / 3)
    world.loc[one, "test_accuracy"] = 0.95
    assert claims.c8(decision.Conditions(world)).parts[-1].state == "holds"
    world.loc[one, "test_accuracy"] = 0.5
    assert claims.c8(decision.Conditions(world)).parts[-1].state == "fails"


def test_a_difference_of_two_models_at_the_ceiling_is_untestable():
    world = c11_world(deep_acc=0.995, jitter=0.0)
    world.loc[world["test_accuracy"] == 0.5, "test_accuracy"] = 0.999
    c = claims.c11(decision.Conditions(world))
    acc = [p for p in c.parts if "changes the accuracy" in p.name]
    assert {p.state for p in acc} == {"untestable"}
    assert "ceiling" in acc[0].note


def test_c9_reads_the_trade_off_with_an_interval_over_functions():
    c = claims.c9(decision.Conditions(c9_world(jitter=0.01)))
    trade = c.parts[1]
    assert trade.interval[0] < trade.interval[1]  # not the zero-width interval of a p-value
    assert trade.interval[0] >= -1 and trade.interval[1] <= 1


def test_the_depth_contrast_counts_seeds_not_pairs():
    rng = np.random.default_rng(0)
    a = [rng.dirichlet(np.ones(7)) for _ in range(3)]
    b = [rng.dirichlet(np.ones(7)) for _ in range(3)]
    est = st.pair_contrast(a, b, st.tv)
    between = [st.tv(x, y) for x in a for y in b]
    within = [st.tv(x, y) for s in (a, b) for i, x in enumerate(s) for y in s[i + 1 :]]
    assert est.mean == pytest.approx(np.mean(between) - np.mean(within))
    assert est.df == 2
    naive = (st.estimate(pd.Series(between), None) - st.estimate(pd.Series(within), None)).se
    assert est.se > naive  # the pairs share seeds: they carry less than 15 samples' worth


def test_collapsed_conditions_do_not_shrink_the_pooled_noise():
    rows = pd.DataFrame(
        {
            "task": "t",
            "model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "variant": "",
            "x": [1, 2, 3, 5, 5, 5, 5, 5, 5],  # b and c collapsed to one constant output
        }
    )
    sd, df = st.pooled_sd(rows, "x", ev.CONDITION)
    assert sd == pytest.approx(1.0) and df == 2


def test_accuracy_intervals_stay_within_zero_and_one():
    bimodal = st.estimate(pd.Series([0.99, 0.99, 0.14]), None, None, decision.SHARE)
    low, high = bimodal.interval()
    assert low == 0.0 and high == 1.0
    world = c5_world()
    world.loc[(world["model"] == "mamba2") & (world["task"] == "mqar"), "test_accuracy"] = world[
        "seed"
    ].map({1000: 0.99, 1001: 0.99, 1002: 0.14})
    s = robustness.summary(world)
    assert (s["low"] >= 0).all() and (s["high"] <= 1).all()


@pytest.mark.slow
def test_a_spectral_part_decided_by_initialisation_alone_is_marked():
    settled = c2_world()  # init equals final: softmax had its mass near 0 from the start
    _, parts = claims.evaluate(settled, analyses=("exact",))
    near0 = parts[parts["part"] == "listops: softmax has mass near 0"].iloc[0]
    assert near0["state"] == "holds" and near0["init_state"] == "holds" and near0["settled"]
    moved = pd.concat([c6_world()])  # a change in training is never read at initialisation
    _, parts = claims.evaluate(moved, analyses=("exact",))
    assert (parts.loc[parts["claim"] == "C6", "init_state"] == "").all()
    trained = c2_world()
    trained.loc[
        (trained["stage"] == "init") & (trained["model"] == "softmax"), MAGNITUDE_BINS[0]
    ] = 0
    _, parts = claims.evaluate(trained, analyses=("exact",))
    near0 = parts[parts["part"] == "listops: softmax has mass near 0"].iloc[0]
    assert near0["state"] == "holds" and near0["init_state"] == "fails" and not near0["settled"]


@pytest.mark.slow
def test_the_sensitivity_table_reads_each_threshold_at_half_and_twice():
    _, parts = claims.evaluate(c1_world(best_near1=0.8), analyses=("exact",))
    table_ = robustness.sensitivity(parts)
    assert not table_["part"].str.contains("below the middle|among the three").any()  # ranks
    row = table_[table_["part"].str.startswith("listops: the most accurate")].iloc[0]
    assert (row["lower"], row["higher"]) == (0.25, 1.0)
    assert (row["state"], row["state at the lower"], row["state at the higher"]) == (
        "holds",
        "holds",
        "fails",
    )


def test_a_zero_threshold_is_read_again_two_points_either_side():
    # the share of small |λ| grew by 0.01: "grows" holds above 0, not above +0.02
    _, parts = claims.evaluate(c6_world(grown=0.01, jitter=0.001), analyses=("exact",))
    table_ = robustness.sensitivity(parts)
    row = table_[(table_["claim"] == "C6") & table_["part"].str.startswith("listops/lru")].iloc[0]
    assert (row["lower"], row["higher"]) == (-0.02, 0.02)
    assert row["state"] == "holds" and row["state at the higher"] == "fails"


def test_the_gate_table_counts_conditions_at_each_margin():
    world = pd.concat([c5_world(), table(cond("mqar", "lru", "nomix", acc=0.05))])
    near_line = (world["task"] == "listops") & (world["model"] == "s4")
    world.loc[near_line, "test_accuracy"] = 0.14  # the line is 0.13: the margin is 0.03
    world.loc[(world["task"] == "text") & (world["model"] == "linear"), "beyond_shallow"] = False
    g = report.gates(world).set_index("task")
    assert list(g.index) == ["listops", "text", "image", "mqar"]
    assert (g["conditions"] == 6).all()  # the no-mixing control is not a condition
    used = g.filter(like="used their state")
    assert list(used.loc["listops"]) == [6, 6, 5]  # at 0.5×, 1× and 2× the margin
    assert list(used.loc["text"]) == [6, 6, 6]
    assert g.loc["text", "beyond the shallow predictor"] == 5
    assert g.loc["listops", "strongest shallow predictor"] == "logistic regression (20.0 %)"


@pytest.mark.slow
def test_the_exported_measures_reproduce_the_verdicts(tmp_path):
    world = pd.concat([c1_world(), c3_world(), c6_world(), c9_world()])
    world["quantiles"] = [np.linspace(-1, 0, 101) * (i % 3) for i in range(len(world))]
    world["learned"] = np.arange(len(world)) % 7 != 0  # some seeds below their line
    path = tmp_path / "measures.csv"
    ev.export(world).to_csv(path, index=False)
    read = pd.read_csv(path)
    assert read["variant"].isna().any()  # what a reader gets: the main grid's variant is NaN
    for a, b in zip(claims.evaluate(world), claims.evaluate(read), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert read["learned"].dtype == bool
    read["learned"] = read["learned"].astype(object)
    read.loc[0, "learned"] = np.nan
    with pytest.raises(ValueError, match="'learned' column has empty cells"):
        claims.evaluate(read)


# ---------------------------------------------------------------------------------------------
# a model counts when it used its state, on a task instance that makes the demand


def test_a_condition_without_its_no_mixing_control_is_missing():
    world = table(cond("listops", "lru", control=float("nan")))
    state, why = decision.Conditions(world).gate([("listops", "lru", "")])
    assert state == "missing" and "no-mixing control (listops/lru nomix)" in why


def test_a_task_instance_that_makes_no_demand_is_untestable_not_refuted():
    # LRU used its state, but a shallow predictor does as well: nothing the claim reads
    # about the state can fail here
    world = c6_world()
    world.loc[world["model"] == "lru", "beyond_shallow"] = False
    c = check(claims.c6, world, "untestable at this scale", "listops/lru")
    assert "makes no demand on listops/lru" in c.parts[0].note
    assert "logistic regression 20.0 %" in c.parts[0].note


def test_accuracy_is_compared_over_every_seed_not_the_seeds_that_passed():
    # the minimal input: a gate with seeds 70.5 / 69.5 / 50.0 % against none at
    # 67 / 66 / 65 %; averaging the passing seeds alone read +4 points
    world = c7_world()
    text = world["task"] == "text"
    for variant, accs in (("", (0.67, 0.66, 0.65)), ("gate", (0.705, 0.695, 0.50))):
        rows = text & (world["variant"] == variant)
        world.loc[rows, "test_accuracy"] = world.loc[rows, "seed"].map(
            dict(zip((1000, 1001, 1002), accs, strict=True))
        )
        world.loc[rows, "learned"] = world.loc[rows, "test_accuracy"] > 0.6
    c = claims.c7(decision.Conditions(world))
    gate = [p for p in c.parts if p.name.startswith("text/softmax")][0]
    assert gate.effect == pytest.approx((0.705 + 0.695 + 0.50) / 3 - 0.66)
    assert gate.effect < 0


def test_identical_seeds_get_the_tasks_noise_not_a_zero_width_interval():
    # LRU's time-invariant bins can coincide in every seed; the task's other conditions
    # carry the noise of the measure
    world = pd.concat([c6_world(models=("lru",)), c6_world(models=("mamba2",), jitter=0.05)])
    c = claims.c6(decision.Conditions(world))
    lru = c.parts[0]
    assert lru.interval[0] < lru.effect < lru.interval[1]


def test_a_difference_of_two_shares_stays_within_its_bounds():
    world = c4_world(peak=0.02, jitter=0.2)
    c = claims.c4(decision.Conditions(world))
    peak = [p for p in c.parts if "is a peak" in p.name][0]
    assert -1 <= peak.interval[0] <= peak.interval[1] <= 1


def test_a_peak_near_0_is_a_local_maximum_and_a_second_peak_near_1_does_not_undo_it():
    world = c4_world()
    selective = world["task"].isin(claims.SELECTIVE) & (world["model"] == "mamba2")
    final = selective & (world["stage"] == "final")
    # 40 % near 0 and 45 % in (0.9, 1]: the largest-bin rule read "no peak"
    world.loc[final, ["[0,0.1]", "(0.5,0.9]", "(0.9,1]", "band"]] = [0.40, 0.15, 0.45, 0.45]
    c = claims.c4(decision.Conditions(world))
    assert {p.state for p in c.parts if "Mamba-2 has mass near 0" in p.name} == {"holds"}
    assert {p.state for p in c.parts if "is a peak" in p.name} == {"holds"}
    # more mass just above the near-0 bin: near 0 is the shoulder of a peak elsewhere
    world.loc[final, ["[0,0.1]", "(0.1,0.5]", "(0.5,0.9]"]] = [0.2, 0.35, 0.0]
    c = claims.c4(decision.Conditions(world))
    assert {p.state for p in c.parts if "is a peak" in p.name} == {"fails"}


def test_depth_moving_the_spectrum_is_one_sided():
    # a contrast below zero (depths closer than seeds) is no sign that depth moves anything
    p = decision.Part("x", "m", -0.33, (-0.5, -0.2), claims.SAME_TV, ">")
    assert p.state == "fails"
    world = c11_world()
    c = claims.c11(decision.Conditions(world))
    assert {p.direction for p in c.parts if "moves the spectrum" in p.name} == {">"}


@pytest.mark.slow
def test_a_part_that_already_fails_at_initialisation_cannot_refute():
    # softmax has no mass near 0 before or after training: training did not make it fail
    world = c2_world(near0=0.0)
    verdicts, parts = claims.evaluate(world, analyses=("exact",))
    near0 = parts[parts["part"].str.contains("softmax has mass near 0")]
    assert set(near0["state"]) == {"untestable"} and near0["settled"].all()
    assert near0["note"].str.contains("settled at initialisation").all()
    c2 = verdicts.set_index("claim").loc["C2", "verdict"]
    assert c2 == "untestable at this scale"
    # where training moved it there, the same failure refutes
    moved = c2_world(near0=0.0)
    moved.loc[moved["stage"] == "init", "[0,0.1]"] = 0.3
    verdicts = claims.evaluate(moved, analyses=("exact",))[0]
    assert verdicts.set_index("claim").loc["C2", "verdict"] == "does not hold"


def test_holm_takes_back_a_weak_decision_among_many_parts():
    strong = decision.Part("a", "m", 0.5, (0.4, 0.6), 0.0, estimate=st.Estimate(0.5, 0.05, 10))
    weak = [
        decision.Part(f"w{i}", "m", -0.1, (-0.19, -0.01), 0.0, estimate=st.Estimate(-0.1, 0.04, 10))
        for i in range(4)
    ]
    assert weak[0].state == "fails"  # alone, at 95 %
    adjusted = decision.holm([strong, *weak])
    assert adjusted[0] < decision.ALPHA < min(adjusted[1:])
    c = decision.Claim("CX", "x", [strong, *weak])
    decision.corrected(c, {})
    assert decision.verdict(c.parts)[0] == "inconclusive"
    assert "Holm-adjusted p" in c.parts[1].note


@pytest.mark.slow
def test_verdicts_are_read_again_with_the_bin_edges_moved():
    world = c1_world()
    assert robustness.edge_sensitivity(world).empty  # no shares counted at moved edges
    for shift in ev.SHIFTS:
        for column in [*MAGNITUDE_BINS, "band"]:
            world[ev.shifted(column, shift)] = world[column]
    # LRA's best model has its near-1 mass just inside the band: a narrower band loses it
    best = world["model"] == "mamba2"
    world.loc[best & (world["stage"] == "final"), ev.shifted("band", -0.02)] = 0.3
    world.loc[best & (world["stage"] == "init"), ev.shifted("band", -0.02)] = 0.9
    table = robustness.edge_sensitivity(world).set_index("claim")
    assert list(table.columns) == [
        "verdict at -0.02",
        "verdict",
        "verdict at +0.02",
        "parts that move",
    ]
    assert table.loc["C1", "verdict"] == "holds" == table.loc["C1", "verdict at +0.02"]
    assert table.loc["C1", "verdict at -0.02"] == "does not hold"
    assert table.loc["C1", "parts that move"] == 3 and table.loc["C2", "parts that move"] == 0


WORLDS = [c1_world, c2_world, c3_world, c4_world, c5_world, c6_world, c7_world, c8_world]


@pytest.mark.parametrize("world", [*WORLDS, c9_world, c10_world])
def test_every_part_carries_the_task_it_is_about(world):
    """A part's task is the task of the condition it reads first: the task its name opens
    with, so that a chapter or a ladder rung picks its parts without reading names."""
    measures = world()
    _, parts = claims.evaluate(measures, analyses=("exact",))
    opening = parts["part"].str.extract(r"^([a-z]+)[:/]", expand=False)
    assert parts["task"].isin(TASKS).all() and (parts["task"] == opening).all()

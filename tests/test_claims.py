"""Claims C1–C11: for every claim, tables built by hand where it holds, where one part clearly
fails (the claim then does not hold, whatever the other parts say) and where a part is within
noise or missing (inconclusive); the aggregation rule and the statistics on their own."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from companion import claims
from companion import evidence as ev
from companion.spectra import MAGNITUDE_BINS

SHORT = dict(zip(("near0", "small", "mid", "near1", "above"), MAGNITUDE_BINS, strict=False))


def cond(task, model, variant="", *, acc=0.5, final=None, init=None, jitter=0.0, seeds=3):
    """Rows of ``measures`` for one condition: ``seeds`` seeds, both stages, both analyses.
    ``final``/``init``: shares by short name (near0, small, mid, near1, above; ``band``
    defaults to near1); ``jitter``: the seed-to-seed spread of the final accuracy and shares
    (added to near0, small and near1, taken from mid and above)."""
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


def check(claim, measures: pd.DataFrame, expected: str, deciding: str = ""):
    c = claim(claims.Evidence(measures))
    word, part = claims.verdict(c.parts)
    states = {p.name: p.state for p in c.parts}
    assert word == expected, states
    assert deciding in part, (part, states)
    return c


# ---------------------------------------------------------------------------------------------
# the rule and the statistics


def p(state_effect, interval, threshold=0.0, direction=">"):
    return claims.Part("x", "m", state_effect, interval, threshold, direction)


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


def part(state):
    effect, interval = {
        "holds": (1.0, (0.5, 1.5)),
        "fails": (-1.0, (-1.5, -0.5)),
        "within noise": (0.0, (-1.0, 1.0)),
        "missing": (None, None),
    }[state]
    return claims.Part(state, "m", effect, interval, 0.0)


@pytest.mark.parametrize(
    ("states", "expected", "deciding"),
    [
        (["holds", "holds"], "holds", ""),
        (["holds", "fails"], "does not hold", "fails"),
        (["within noise", "fails", "missing"], "does not hold", "fails"),  # a clear failure wins
        (["holds", "within noise"], "inconclusive", "within noise"),
        (["holds", "missing"], "inconclusive", "missing"),
        ([], "inconclusive", "no parts"),
    ],
)
def test_one_clearly_failed_part_refutes_a_claim(states, expected, deciding):
    assert claims.verdict([part(s) for s in states]) == (expected, deciding)


def test_intervals_are_students_t_on_the_pooled_seed_noise():
    rows = pd.DataFrame(
        {"task": "t", "model": ["a"] * 3 + ["b"] * 3, "variant": "", "x": [1, 2, 3, 2, 4, 6]}
    )
    sd, df = ev.pooled_sd(rows, "x")
    assert df == 4 and sd == pytest.approx(math.sqrt((1 + 4) / 2))
    est = ev.estimate(rows["x"][:3], (sd, df))
    low, high = est.interval()
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(3)
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert ev.estimate(pd.Series([0.5]), None).interval() is None  # one seed, no noise
    assert ev.estimate(pd.Series([0.5]), None, pd.Series([0.1])).interval() == pytest.approx(
        (0.5 - 1.96 * 0.1, 0.5 + 1.96 * 0.1), rel=1e-3
    )
    diff = ev.Estimate(1.0, 0.3, 10) - ev.Estimate(0.5, 0.4, 4)
    assert diff.mean == 0.5 and diff.se == pytest.approx(0.5) and diff.df == 4


def test_w1_and_tv():
    q = np.linspace(-1, 1, 101)
    assert ev.w1(q, q + 0.5) == pytest.approx(0.5)
    assert ev.tv([1, 0], [0.5, 0.5]) == 0.5


# ---------------------------------------------------------------------------------------------
# each claim: holds, does not hold, inconclusive


def c1_world(best_near1=0.8, s4_final=None, jitter=0.0, drop=()):
    out = []
    for task in claims.LRA:
        out.append(cond(task, "mamba2", acc=0.9, final={"near1": best_near1}, jitter=jitter))
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


def test_c1():
    check(claims.c1, c1_world(), "holds")
    check(claims.c1, c1_world(best_near1=0.2), "does not hold", "most accurate model")
    check(claims.c1, c1_world(s4_final={"mid": 1.0}), "does not hold", "stays near")
    check(claims.c1, c1_world(best_near1=0.5, jitter=0.05), "inconclusive", "most accurate")
    check(claims.c1, c1_world(drop=[("image", "lru")]), "inconclusive", "image/lru")


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
    check(claims.c2, c2_world(drop_text=True), "inconclusive", "text")


def c3_world(moved=False, jitter=0.0, tasks=(*claims.LRA, *claims.SELECTIVE)):
    final = {"mid": 1.0} if moved else {"near1": 0.9, "mid": 0.1}
    return table(
        *[cond(t, "linear", init={"near1": 1.0}, final=final, jitter=jitter) for t in tasks]
    )


def test_c3():
    check(claims.c3, c3_world(), "holds")
    check(claims.c3, c3_world(moved=True), "does not hold", "keeps its initial shape")
    check(claims.c3, c3_world(tasks=claims.LRA), "inconclusive", "mqar")
    blurred = c3_world(tasks=claims.LRA + ("lm",))
    blurred = pd.concat([blurred, c3_world(tasks=("mqar",), jitter=0.2)])
    check(claims.c3, blurred, "inconclusive", "mqar")


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
        out.append(cond(task, "mamba2", final={"near0": lra_near0, "near1": 1 - lra_near0}))
    return table(*out)


def test_c4():
    check(claims.c4, c4_world(), "holds")
    check(claims.c4, c4_world(peak=0.2), "does not hold", "peaks near 0")
    check(claims.c4, c4_world(other_near0=0.9), "does not hold", "most mass near 0 of all")
    check(claims.c4, c4_world(peak=0.34, jitter=0.05), "inconclusive", "peaks near 0")
    check(claims.c4, c4_world().query("task != 'lm'"), "inconclusive", "lm")
    check(lambda e: claims.c4(e, claims.NO_DECAY), c4_world(variant=claims.NO_DECAY), "holds")


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
    check(claims.c5, c5_world().query("task != 'image'"), "inconclusive", "image")


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
    check(claims.c6, c6_world(models=("lru",)), "inconclusive", "mamba2")
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
    check(
        claims.c7, c7_world().query("variant != 'gate' or task != 'text'"), "inconclusive", "text"
    )


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
    check(claims.c8, c8_world().query("variant != 'layers1-conv'"), "inconclusive", "MQAR")


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


def test_c9():
    check(claims.c9, c9_world(), "holds")
    check(claims.c9, c9_world(softplus_acc=0.2), "does not hold", "most accurate")
    check(claims.c9, c9_world(trade=+1), "does not hold", "trades")
    check(claims.c9, c9_world(softplus_acc=0.5, jitter=0.05), "inconclusive", "most accurate")
    check(claims.c9, c9_world().query("variant != 'exp'"), "inconclusive", "most accurate")


def test_c9_leaves_dead_heads_out():
    world = c9_world()
    exp = world["variant"] == "exp"
    world.loc[exp, "dead_heads"] = 3
    c = claims.c9(claims.Evidence(world))
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
    check(
        claims.c10, c10_world().query("model != 's4' or task != 'image'"), "inconclusive", "image"
    )


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
    check(claims.c11, c11_world().query("variant != 'layers4'"), "inconclusive", "image")


def test_every_claim_is_evaluated_under_both_analyses():
    world = pd.concat([c3_world(), c6_world()])
    moved = (world["analysis"] == "published") & (world["stage"] == "final")
    world.loc[moved & (world["model"] == "linear"), "(0.5,0.9]"] = 1.0
    world.loc[moved & (world["model"] == "linear"), "(0.9,1]"] = 0.0
    verdicts, parts = claims.evaluate(world)
    assert set(verdicts["analysis"]) == {"exact", "published"}
    assert len(verdicts) == 2 * (len(claims.CLAIMS) + len(claims.NO_DECAY_CLAIMS))
    c3 = verdicts[verdicts["claim"] == "C3"].set_index("analysis")["verdict"]
    assert c3["exact"] == "holds" and c3["published"] == "does not hold"
    assert set(parts["state"]) <= set(claims.STATES)
    empty = claims.evaluate(table())[0]
    assert (empty["verdict"] == "inconclusive").all()

"""Claims C1–C11: verdicts follow the numbers, and missing runs make a claim inconclusive."""

import pandas as pd
import pytest

from companion import claims
from companion.spectra import MAGNITUDE_BINS


def bins(**shares):
    """A bin distribution from a few named shares: near0, mid, near1, above."""
    names = {"near0": 0, "small": 1, "mid": 2, "near1": 3, "above": 4}
    out = [0.0] * len(MAGNITUDE_BINS)
    for name, share in shares.items():
        out[names[name]] = share
    return out


def tables(runs: dict):
    """runs: {(task, model, variant, seed): (accuracy, init bins, final bins)}."""
    index, spectra = [], []
    for (task, model, variant, seed), (acc, init, final) in runs.items():
        index.append(dict(task=task, model=model, variant=variant, seed=seed, test_accuracy=acc))
        for stage, shares in (("init", init), ("final", final)):
            for layer in (0, 1):
                for b, share in zip(MAGNITUDE_BINS, shares, strict=True):
                    spectra.append(
                        dict(
                            task=task,
                            model=model,
                            variant=variant,
                            seed=seed,
                            stage=stage,
                            analysis="exact",
                            head="all",
                            kind="magnitude",
                            layer=layer,
                            bin=b,
                            mean=share,
                        )
                    )
    return pd.DataFrame(index), pd.DataFrame(spectra)


def verdict(claim, runs):
    return claim(claims.Evidence(*tables(runs)))


def test_linear_attention_keeping_its_shape():
    same = {("image", "linear", "", 1): (0.5, bins(near1=1.0), bins(near1=0.95, mid=0.05))}
    assert verdict(claims.c3, same).verdict == "holds"
    moved = {("image", "linear", "", 1): (0.5, bins(near1=1.0), bins(near1=0.5, near0=0.5))}
    v = verdict(claims.c3, moved)
    assert v.verdict == "does not hold" and "TV 0.50" in v.evidence
    assert verdict(claims.c3, {}).verdict == "inconclusive"


def test_small_eigenvalues_on_listops_need_both_models():
    grown = (0.3, bins(near1=1.0), bins(near1=0.7, near0=0.3))
    assert (
        verdict(
            claims.c6, {("listops", "lru", "", 1): grown, ("listops", "mamba2", "", 1): grown}
        ).verdict
        == "holds"
    )
    assert verdict(claims.c6, {("listops", "lru", "", 1): grown}).verdict == "inconclusive"
    same = (0.3, bins(near1=1.0), bins(near1=1.0))
    assert (
        verdict(
            claims.c6, {("listops", "lru", "", 1): grown, ("listops", "mamba2", "", 1): same}
        ).verdict
        == "inconclusive"
    )


def test_gate_on_text_must_beat_the_spread_between_seeds():
    flat = bins(near1=1.0)
    runs = {
        ("image", "linear", "", 1): (0.5, flat, bins(near0=0.5, near1=0.5)),
        ("image", "linear", "gate", 1): (0.5, flat, bins(near0=0.1, near1=0.9)),
        ("image", "norm", "noconv", 1): (0.5, flat, bins(near0=0.5, near1=0.5)),
        ("image", "norm", "gate", 1): (0.5, flat, bins(near0=0.1, near1=0.9)),
    }
    for seed, (base, gated) in enumerate([(0.60, 0.70), (0.62, 0.72)]):
        for model in ("softmax", "linear"):
            runs[("text", model, "", seed)] = (base, flat, flat)
            runs[("text", model, "gate", seed)] = (gated, flat, flat)
    assert verdict(claims.c7, runs).verdict == "holds"
    noisy = dict(runs)
    noisy[("text", "linear", "gate", 0)] = (0.45, flat, flat)  # a wide spread between seeds
    assert verdict(claims.c7, noisy).verdict == "inconclusive"


def test_one_layer_with_conv_must_solve_mqar():
    flat = bins(near1=1.0)
    base = {
        ("image", m, v, 1): (0.5, flat, bins(near1=0.9, mid=0.1))
        for m, v in (("softmax", ""), ("linear", ""), ("norm", "noconv"))
    }
    conv = {
        ("image", m, v, 1): (0.5, flat, bins(near1=0.5, near0=0.5))
        for m, v in (("softmax", "conv"), ("linear", "conv"), ("norm", ""))
    }
    solved = {("mqar", "softmax", "layers1-conv", 1): (0.99, flat, flat)}
    assert verdict(claims.c8, {**base, **conv, **solved}).verdict == "holds"
    failed = {("mqar", "softmax", "layers1-conv", 1): (0.2, flat, flat)}
    assert verdict(claims.c8, {**base, **conv, **failed}).verdict == "inconclusive"


@pytest.mark.parametrize("claim", claims.CLAIMS)
def test_every_claim_answers_on_no_runs(claim):
    v = verdict(claim, {})
    assert v.verdict in {"inconclusive", "does not hold"} and v.claim.startswith("C")


def test_evaluate_returns_all_eleven():
    table = claims.evaluate(
        *tables({("image", "linear", "", 1): (0.5, bins(near1=1.0), bins(near1=1.0))})
    )
    assert list(table["claim"]) == [f"C{i}" for i in range(1, 12)]
    assert set(table["verdict"]) <= {"holds", "does not hold", "inconclusive"}

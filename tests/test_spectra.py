"""The analysis takes Λ from each mixer's real input; bins, masks and the published mode."""

import pytest
import torch

from companion.layers import MIXERS, Transition
from companion.model import build_model
from companion.spectra import (
    MAGNITUDE_BINS,
    LayerSpectrum,
    collect,
    membership,
    summarize,
)


def tiny(mixer, **kw):
    cfg = dict(
        mixer=mixer, d_model=16, n_layers=2, n_heads=2, state_dim=8, vocab_size=11, n_classes=3
    )
    cfg.update(kw)
    torch.manual_seed(0)
    return build_model(cfg)


def batch(B=3, L=12):
    torch.manual_seed(1)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, L - 4 :] = False
    return {"input_ids": torch.randint(0, 11, (B, L)), "mask": mask}


@pytest.mark.parametrize("mixer", MIXERS)
def test_collect_uses_each_mixers_real_input(mixer):
    model = tiny(mixer, dropout=0.3).train()
    b = batch()
    inputs = []
    hooks = [
        blk.mixer.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
        for blk in model.blocks
    ]
    spectra = collect(model, b)
    for h in hooks:
        h.remove()
    assert model.training, "collect restores the training mode"
    assert [s.layer for s in spectra] == [0, 1] and all(s.mixer == mixer for s in spectra)
    # independently: layer 1's input is norm(block0(embed(x))) in eval mode
    model.eval()
    with torch.no_grad():
        u1 = model.blocks[1].norm(model.blocks[0](model.embed(b["input_ids"])))
    torch.testing.assert_close(inputs[1], u1)
    for s, u in zip(spectra, inputs, strict=True):
        expected = model.blocks[s.layer].mixer.transition(u).values
        torch.testing.assert_close(s.transition.values, expected)


def test_bins_are_right_closed_and_published_counts_edges_twice():
    x = torch.tensor([0.0, 0.1, 0.3, 0.9, 1.0, 1.0 + 1e-9, 10.0, 100.0, 1e3], dtype=torch.float64)
    exact = membership(x, (0.1, 0.5, 0.9, 1.0, 10.0, 100.0))
    assert exact.sum(-1).eq(1).all()
    assert exact.argmax(-1).tolist() == [0, 0, 1, 2, 3, 4, 4, 5, 6]
    published = membership(x, (0.1, 0.5, 0.9, 1.0, 10.0, 100.0), published=True)
    assert published.sum(-1).tolist() == [1, 2, 1, 2, 2, 1, 2, 1, 1]
    assert published[x == 1.0].nonzero()[:, 1].tolist() == [3, 4]


def test_summary_excludes_padding_and_pools_time():
    # one head; example 0 has 2 real steps out of 4 (values 0.05 and 0.95), example 1 has 4
    values = torch.tensor([[[0.05], [0.95], [50.0], [50.0]], [[0.05], [0.05], [0.95], [0.95]]])
    mask = torch.tensor([[True, True, False, False], [True] * 4])
    s = LayerSpectrum(0, "x", Transition(values), mask)
    df = summarize([s]).query("head == '0' and kind == 'magnitude'").set_index("bin")
    assert df.loc["[0,0.1]", "mean"] == pytest.approx(0.5)
    assert df.loc["(0.9,1]", "mean"] == pytest.approx(0.5)
    assert df.loc["(10,100]", "mean"] == 0.0
    assert df["mean"].sum() == pytest.approx(1.0)
    unmasked = summarize([LayerSpectrum(0, "x", Transition(values), None)])
    assert unmasked.query("head == '0' and bin == '(10,100]'")["mean"].item() == 0.25


def test_start_step_is_not_counted_and_std_is_over_the_batch():
    values = torch.tensor([[[0.0], [0.5]], [[0.0], [0.95]]])  # step 0 is a placeholder
    df = summarize([LayerSpectrum(0, "x", Transition(values, start=1), None)])
    df = df.query("head == 'all' and kind == 'magnitude'").set_index("bin")
    assert df.loc["[0,0.1]", "mean"] == 0.0
    assert df.loc["(0.1,0.5]", "mean"] == 0.5 and df.loc["(0.1,0.5]", "std"] == 0.5
    assert list(df.index) == list(MAGNITUDE_BINS)


def test_complex_spectra_get_phase_bins():
    lam = torch.polar(torch.full((4,), 0.95), torch.deg2rad(torch.tensor([0.5, 5.0, -30.0, 170.0])))
    df = summarize([LayerSpectrum(0, "lru", Transition(lam, group="mode"), None)])
    phase = df.query("kind == 'phase'").set_index("bin")["mean"]
    assert phase.tolist() == [0.25, 0.25, 0.25, 0.0, 0.25]
    published = LayerSpectrum(0, "lru", Transition(lam, group="mode"), None, published=True)
    phase = summarize([published]).query("kind == 'phase'").set_index("bin")["mean"]
    assert phase.sum() == pytest.approx(0.75), "negative angles fall in no bin"


def test_published_takes_each_layer_from_its_block_output_without_norm():
    model = tiny("linear").eval()
    b = batch()
    published = collect(model, b, as_published=True)
    with torch.no_grad():
        out0 = model.blocks[0](model.embed(b["input_ids"]))
        expected = model.blocks[0].mixer.transition(out0).values  # no conv: same formula
        exact_input = model.blocks[0].norm(model.embed(b["input_ids"]))
    torch.testing.assert_close(published[0].transition.values, expected)
    exact = collect(model, b)[0].transition.values
    torch.testing.assert_close(exact, model.blocks[0].mixer.transition(exact_input).values)
    assert not torch.allclose(exact[:, 1:], published[0].transition.values[:, 1:])
    assert published[0].mask is None, "pads are pooled"


@pytest.mark.parametrize("mixer", ["lru", "mamba2_lti"])
def test_published_agrees_with_exact_for_time_invariant_layers(mixer):
    model = tiny(mixer).eval()
    exact, published = collect(model, batch()), collect(model, batch(), as_published=True)
    for e, p in zip(exact, published, strict=True):
        torch.testing.assert_close(e.transition.values, p.transition.values)


def test_published_pass_keeps_dropout_on_in_training_mode():
    model = tiny("mamba2", dropout=0.5).train()
    b = batch()
    a, c = (collect(model, b, as_published=True)[1].transition.values for _ in range(2))
    assert not torch.allclose(a, c), "dropout makes the published pass random at init"
    x, y = (collect(model, b)[1].transition.values for _ in range(2))
    torch.testing.assert_close(x, y)

"""The analysis takes Λ from each mixer's real input; bins, masks and the published mode."""

import pytest
import torch
from builders import tiny

from companion.layers import MIXERS, Transition
from companion.spectra import (
    MAGNITUDE_BINS,
    LayerSpectrum,
    collect,
    membership,
    summarize,
)


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


def _mixer(name, **opts):
    from companion.layers import make_mixer

    torch.manual_seed(0)
    return make_mixer(name, d_model=8, n_heads=2, state_dim=4, **opts).double()


def test_published_softmax_normaliser_follows_the_public_mechanism():
    """Dense emulation of the public code: unscaled scores times a 0/1 mask, the row maximum
    over the whole row (masked zeros included) subtracted at unmasked entries only, exp, sum,
    and the correction exp(m_t − m_{t+1}) between consecutive rows."""
    m = _mixer("softmax", conv=4)
    u = 2 * torch.randn(2, 11, 8, dtype=torch.float64)
    q, k, _ = m.qkv(u, conv=False)
    mask = torch.ones(11, 11, dtype=torch.float64).tril()
    a = (q @ k.transpose(-1, -2)) * mask
    row_max = a.amax(-1)
    shifted = torch.where(mask.bool(), a - row_max[..., None], a)
    eta = torch.exp(shifted).sum(-1)  # (B, H, L), in each row's shifted frame
    lam = eta[..., :-1] * torch.exp(row_max[..., :-1] - row_max[..., 1:]) / eta[..., 1:]
    published = m.transition_as_published(u).values[:, 1:].transpose(1, 2)
    torch.testing.assert_close(published, lam)
    exact = m.transition(u).values[:, 1:].transpose(1, 2)
    assert not torch.allclose(published, exact)


def test_published_attention_skips_the_conv_and_agrees_without_it():
    for name in ("linear", "norm"):
        with_conv = _mixer(name, conv=4)
        u = torch.randn(2, 9, 8, dtype=torch.float64)
        published = with_conv.transition_as_published(u).values
        no_conv = _mixer(name)
        no_conv.load_state_dict(with_conv.state_dict(), strict=False)  # all but the conv
        tol = 1e-5 if name == "norm" else 1e-12  # norm's published exp(−f) runs in float32
        torch.testing.assert_close(published, no_conv.transition(u).values, rtol=tol, atol=0)
        if name == "linear":
            assert not torch.allclose(published, with_conv.transition(u).values)


def test_published_norm_attention_floors_underflow_at_one():
    m = _mixer("norm", norm_fn="exp")
    with torch.no_grad():
        m.W_n.bias.zero_()
    u = 0.01 * torch.randn(1, 7, 8, dtype=torch.float64)  # n ≈ 0: head 0 stays under the cap
    published = m.transition_as_published(u).values[:, 1:]  # (1, 6, 2)
    # offsets 4 and 9: exp(exp(9 + n)) overflows float32 for head 1, whose Λ is then exactly 1
    assert torch.equal(published[..., 1], torch.ones_like(published[..., 1]))
    exact = m.transition(u).values[:, 1:]
    torch.testing.assert_close(published[..., 0], exact[..., 0], rtol=1e-4, atol=0)


def test_published_s4_reports_one_channel():
    model = tiny("s4d").eval()
    exact, published = collect(model, batch()), collect(model, batch(), as_published=True)
    n_modes = 8 // 2
    for e, p in zip(exact, published, strict=True):
        assert p.transition.values.shape == (n_modes,)
        torch.testing.assert_close(p.transition.values, e.transition.values.view(16, n_modes)[1])

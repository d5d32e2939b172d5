"""The spectral analysis' own path: Λ as ``companion.spectra.collect`` asks for it (float32, eval
mode, under ``torch.no_grad()``) against Λ of a float64 copy with gradients on, which takes the
reference paths (e.g. the blocked softmax normaliser instead of the fused kernel)."""

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F

from companion.layers import MIXERS, Mixer, make_mixer, mixer_class
from companion.layers.norm import NORM_FNS
from companion.layers.softmax import causal_log_normaliser, fused_log_normaliser
from companion.spectra import collect

CONV = {"conv": (0, 4)}
GRID = {  # options that change how Λ is computed; mixers not named here run with their defaults
    "softmax": CONV,
    "linear": CONV,
    "linear_unnormalized": CONV,
    "mamba2": CONV,
    "mamba2_lti": CONV,
    "norm": {**CONV, "norm_fn": tuple(NORM_FNS), "feature_map": ("elu", "identity")},
    "s4d": {"init": ("lin", "inv")},
}
RTOL = 1e-5
# Norm attention with f = exp: log Λ_i = f(x_{i-1}) − f(x_i), x = n + o ≈ 4.4 where f ≈ 80, so a
# rounding of x (float32: 2.4e-7 absolute) moves log Λ by 80 · 2.4e-7 per term. Measured ≤ 3.8e-5
# (no_grad equals grad bit for bit there: float32 conditioning, not the analysis path).
RTOL_NORM_EXP = 1e-4
# Complex Λ = exp(ΔA): |λ| errs like float32 eps, arg λ (up to ~8 rad for S4D-Inv) by eps · arg.
# Measured over 100 seeds: values ≤ 5.0e-7, magnitudes ≤ 1.0e-7.
RTOL_COMPLEX, RTOL_MAGNITUDE = 2e-6, 5e-7


def cases():
    out = []
    for name in MIXERS:
        grid = GRID.get(name, {})
        for combo in itertools.product(*grid.values()):
            opts = dict(zip(grid, combo, strict=True))
            ids = [name, *(f"{k}={v}" for k, v in opts.items())]
            rtol = RTOL_NORM_EXP if opts.get("norm_fn") == "exp" else RTOL
            out.append(pytest.param(name, opts, rtol, id="-".join(ids)))
    return out


def reference(mixer, u):
    """Λ values of a float64 copy of ``mixer`` with gradients on: the training-time path."""
    with torch.enable_grad():
        return copy.deepcopy(mixer).double().transition(u.double()).values.detach()


def assert_matches(t, ref, rtol=RTOL):
    """Defined values of the float32 Transition ``t`` against the float64 values ``ref``."""
    ref = ref if t.time_invariant else ref[:, t.start :]
    got = t.defined().to(ref.dtype)
    assert got.shape == ref.shape and torch.isfinite(ref.abs()).all()

    def rel(a, b):
        return ((a - b).abs() / b.abs()).max().item()

    if ref.is_complex():
        assert rel(got.abs(), ref.abs()) < RTOL_MAGNITUDE
        assert rel(got, ref) < RTOL_COMPLEX
    else:
        assert rel(got, ref) < rtol


def test_softmax_with_conv_under_no_grad_matches_float64():
    """The fused CPU kernel returned a wrong log-sum-exp for q, k whose innermost dimension is
    strided, as after the causal conv: Λ was off by up to 14 % (median 2 %) here."""
    torch.manual_seed(0)
    m = make_mixer("softmax", d_model=128, n_heads=4, state_dim=64, conv=4).eval()
    u = torch.randn(2, 200, 128)
    with torch.no_grad():
        t = m.transition(u)
    assert_matches(t, reference(m, u))


LAYOUTS = {
    "contiguous": lambda x: x,
    "after_conv": lambda x: x.transpose(-1, -2).contiguous().transpose(-1, -2),  # d stride L
    "heads_transposed": lambda x: x.transpose(1, 2).contiguous().transpose(1, 2),
    "strided_d": lambda x: x.repeat_interleave(2, -1)[..., ::2],
    "prefix_of_d": lambda x: F.pad(x, (0, 5))[..., :-5],
    "padded_d": lambda x: F.pad(x, (0, 3)),
    "after_conv_padded": lambda x: F.pad(x.mT.contiguous().mT, (0, 3)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fused_log_normaliser_is_right_for_any_layout(layout):
    torch.manual_seed(0)
    q, k = (LAYOUTS[layout](3 * torch.randn(2, 3, 101, 8)) for _ in range(2))
    with torch.no_grad():
        fast = fused_log_normaliser(q, k).double()
    slow = causal_log_normaliser(q.double(), k.double())[0]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("batch", "length"), [(1, 37), (3, 37)], ids=["B1-L37", "B3-L37"])
@pytest.mark.parametrize(("name", "opts", "rtol"), cases())
def test_no_grad_eval_transition_matches_float64(name, opts, rtol, batch, length):
    torch.manual_seed(0)
    m = make_mixer(name, d_model=32, n_heads=4, state_dim=16, **opts).eval()
    u = torch.randn(batch, length, 32)
    with torch.no_grad():
        t = m.transition(u)
    assert_matches(t, reference(m, u), rtol)


@pytest.mark.parametrize("name", MIXERS)
def test_collect_reports_the_transition_of_each_mixers_real_input(name):
    from companion.model import ModelConfig, build_model  # being rewritten: fail this test only

    opts = {"conv": 4} if "conv" in mixer_class(name).OPTIONS else {}
    torch.manual_seed(0)
    cfg = ModelConfig(
        mixer=name, d_model=32, n_layers=2, n_heads=4, state_dim=16, mixer_options=opts,
        vocab_size=11, n_classes=3, max_len=64,
    )  # fmt: skip
    model = build_model(cfg)
    x = torch.randint(11, (3, 37))
    mask = torch.arange(37) < torch.tensor([[37], [30], [12]])
    seen = []

    def grab(mod, args):
        seen.append((mod, mod.training, args[0].clone()))

    hooks = [m.register_forward_pre_hook(grab) for m in model.modules() if isinstance(m, Mixer)]
    try:
        spectra = collect(model, {"input_ids": x, "mask": mask})
    finally:
        for h in hooks:
            h.remove()
    assert [s.layer for s in spectra] == [0, 1] and len(seen) == 2
    for s, (mixer, training, u) in zip(spectra, seen, strict=True):
        assert not training  # collect runs the model in eval mode
        assert_matches(s.transition, reference(mixer, u))

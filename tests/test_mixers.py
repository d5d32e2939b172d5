"""Every mixer, every option: the fast path equals the literal DSF recurrence (float64)."""

import sys

import pytest
import torch

from companion.layers import MIXERS, REGISTRY, Transition, make_mixer
from companion.model import MLP_KINDS
from companion.ops import chunked_linear_attention

D_MODEL, N_HEADS, STATE = 8, 2, 4

CASES = [
    ("softmax", {}),
    ("softmax", {"conv": 4}),
    ("linear", {}),
    ("linear", {"conv": 4}),
    ("linear_unnormalized", {}),
    ("linear_unnormalized", {"conv": 4}),
    ("norm", {"norm_fn": "exp"}),
    ("norm", {"norm_fn": "softplus"}),
    ("norm", {"norm_fn": "sigmoid"}),
    ("norm", {"norm_fn": "elu"}),
    ("norm", {"conv": 4}),
    ("norm", {"feature_map": "identity"}),
    ("s4", {}),
    ("s4", {"l_max": 300}),
    ("s4d", {"init": "lin"}),
    ("s4d", {"init": "inv"}),
    ("lru", {}),
    ("mamba2", {}),
    ("mamba2_lti", {}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in opts.items()) for name, opts in CASES]


def build(name, opts, seed=0):
    torch.manual_seed(seed)
    return make_mixer(name, d_model=D_MODEL, n_heads=N_HEADS, state_dim=STATE, **opts).double()


def test_every_mixer_has_a_case():
    assert {name for name, _ in CASES} == set(MIXERS)


def test_every_mixer_declares_its_family_name_and_colour():
    classes = [REGISTRY[name] for name in MIXERS]
    assert all(cls.family in MLP_KINDS for cls in classes)
    for fact in ("label", "color"):
        values = [getattr(cls, fact) for cls in classes]
        assert all(values) and len(set(values)) == len(values), fact


@pytest.mark.parametrize("name", MIXERS)
def test_a_mixer_is_chunked_when_its_forward_runs_the_chunked_op(name, monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return chunked_linear_attention(*args, **kwargs)

    for cls in REGISTRY[name].__mro__:
        module = sys.modules[cls.__module__]
        if hasattr(module, "chunked_linear_attention"):
            monkeypatch.setattr(module, "chunked_linear_attention", counted)
    build(name, {})(torch.randn(1, 5, D_MODEL, dtype=torch.float64))
    assert bool(calls) == REGISTRY[name].chunked


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("length", [1, 2, 63, 64, 65, 200])
@pytest.mark.parametrize(("name", "opts"), CASES, ids=IDS)
def test_fast_path_equals_recurrence(name, opts, length, batch):
    m = build(name, opts)
    torch.manual_seed(1)
    x = torch.randn(batch, length, D_MODEL, dtype=torch.float64, requires_grad=True)
    y = m(x)
    y_ref = m.recurrent(x)
    assert y.shape == (batch, length, D_MODEL)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-10)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    (grad_ref,) = torch.autograd.grad(y_ref, x, g)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize(("name", "opts"), CASES, ids=IDS)
def test_recurrence_uses_transition(name, opts, monkeypatch):
    """``recurrent`` must run on the Λ that ``transition`` reports: changing it changes y.
    (S4's Λ is a dense Ā whose eigenvalues ``transition`` reports; ``test_s4`` ties the two.)"""
    if name == "s4":
        pytest.skip("S4 recurs on the dense Ā, not on its eigenvalues")
    m = build(name, opts)
    x = torch.randn(2, 17, D_MODEL, dtype=torch.float64)
    t = m.transition(x)
    assert isinstance(t, Transition)
    y = m.recurrent(x)
    monkeypatch.setattr(m, "transition", lambda u: t)
    torch.testing.assert_close(m.recurrent(x), y)
    halved = Transition(t.values * 0.5, t.start, t.multiplicity, t.group)
    monkeypatch.setattr(m, "transition", lambda u: halved)
    assert (m.recurrent(x) - y).abs().max() > 1e-6


@pytest.mark.parametrize(("name", "opts"), CASES, ids=IDS)
def test_float32_and_shapes(name, opts):
    torch.manual_seed(0)
    m = make_mixer(name, d_model=D_MODEL, n_heads=N_HEADS, state_dim=STATE, **opts)
    x = torch.randn(3, 33, D_MODEL)
    y = m(x)
    assert y.dtype == torch.float32 and y.shape == x.shape and torch.isfinite(y).all()
    t = m.transition(x)
    ev = t.eigenvalues()
    assert ev.dim() == 1 and torch.isfinite(ev).all()
    if not t.time_invariant:
        assert t.values.shape[:2] == (3, 33)


def test_unknown_mixer_names_the_choices():
    with pytest.raises(ValueError, match="choose one of: softmax, linear"):
        make_mixer("transformer", d_model=8)


@pytest.mark.parametrize(
    ("name", "opts", "valid"),
    [
        ("norm", {"norm_fun": "exp"}, "conv, dropout, norm_fn, feature_map"),
        ("mamba2", {"norm_fn": "exp"}, "conv"),
        ("lru", {"conv": 4}, "r_min, r_max, max_phase"),
        ("mamba2_lti", {"r_min": 0.5}, "conv"),
    ],
)
def test_a_misspelt_or_misplaced_option_names_the_valid_ones(name, opts, valid):
    with pytest.raises(ValueError, match=f"of mixer '{name}'; valid here: {valid}"):
        make_mixer(name, d_model=8, **opts)


@pytest.mark.parametrize(("name", "opts"), CASES, ids=IDS)
def test_under_bfloat16_autocast_every_fft_and_complex_op_sees_float32(name, opts, monkeypatch):
    """cuFFT takes no bfloat16 and complex tensors have no bfloat16 dtype, though the CPU's FFT
    accepts bfloat16 input: so the FFTs are made to refuse it here as a GPU would, and every
    mixer runs forward and backward under the GPU path's bfloat16 autocast on bfloat16 input."""
    for fn in ("fft", "ifft", "rfft", "irfft"):
        real = getattr(torch.fft, fn)

        def checked(x, *args, real=real, fn=fn, **kwargs):
            assert x.dtype not in (torch.bfloat16, torch.float16), f"torch.fft.{fn} got {x.dtype}"
            return real(x, *args, **kwargs)

        monkeypatch.setattr(torch.fft, fn, checked)
    torch.manual_seed(0)
    m = make_mixer(name, d_model=D_MODEL, n_heads=N_HEADS, state_dim=STATE, **opts)
    # the input as a block gives it under autocast: the output of a bfloat16 matmul
    u = torch.randn(2, 13, D_MODEL).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(u)
    y.float().square().mean().backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().max() > 0

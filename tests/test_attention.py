"""Attention mixers: Λ_i = η_{i-1}/η_i against η computed from its definition (float64)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from companion.layers import make_mixer
from companion.spectra import attention_factors

D_MODEL, N_HEADS, STATE, L = 8, 2, 4, 12


def build(name, n_heads=N_HEADS, **opts):
    torch.manual_seed(0)
    return make_mixer(name, d_model=D_MODEL, n_heads=n_heads, state_dim=STATE, **opts).double()


def inputs(batch=2, length=L, seed=1):
    torch.manual_seed(seed)
    return torch.randn(batch, length, D_MODEL, dtype=torch.float64)


def heads(x):
    """(B, L, H·d) -> (B, H, L, d)."""
    return x.unflatten(-1, (N_HEADS, -1)).transpose(1, 2)


def raw_qk(m, u, prefilter=True):
    """q, k from the layer's weights, with its conv + SiLU unless ``prefilter`` is False."""
    q, k = m.W_q(u), m.W_k(u)
    if m.conv and prefilter:
        q, k = F.silu(m.conv_q(q)), F.silu(m.conv_k(k))
    return heads(q), heads(k)


def eta_softmax(q, k):
    """η_i = Σ_{j≤i} exp(q_i·k_j/√d_k): (B, H, L)."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return (torch.exp(s) * torch.ones_like(s).tril()).sum(-1)


def eta_linear(q, k):
    """η_i = φ(q_i)ᵀ Σ_{j≤i} φ(k_j), φ = elu + 1: (B, H, L)."""
    s = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-1, -2)
    return (s * torch.ones_like(s).tril()).sum(-1)


REFERENCE_F = {
    "exp": lambda x: torch.exp(x).clamp(max=80.0),  # log η is capped at 80 (see norm.py)
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
}


def eta_norm(m, u):
    """η_i = exp(f(n_i + o)), n_i = w_nᵀ u_i + b read from the unfiltered input: (B, H, L)."""
    return torch.exp(REFERENCE_F[m.norm_fn](m.W_n(u) + m.offset)).transpose(1, 2)


def eta_of(name, m, u):
    if name == "norm":
        return eta_norm(m, u)
    return (eta_softmax if name == "softmax" else eta_linear)(*raw_qk(m, u))


def assert_telescopes(lam, eta):
    """Λ_i = η_{i-1}/η_i and Π_{k=j+1..i} Λ_k = η_j/η_i for all j < i; lam: (B, L, H)."""
    eta = eta.transpose(1, 2)  # (B, L, H)
    torch.testing.assert_close(lam[:, 1:], eta[:, :-1] / eta[:, 1:], rtol=1e-10, atol=0)
    prod = F.pad(lam[:, 1:].cumprod(1), (0, 0, 1, 0), value=1.0)  # Π_{k=2..i} Λ_k = η_1/η_i
    ratio = prod[:, None] / prod[:, :, None]  # [b, j, i] = Π_{k=j+1..i} Λ_k
    expected = eta[:, :, None] / eta[:, None]  # [b, j, i] = η_j/η_i
    upper = torch.ones(L, L, dtype=torch.bool).triu(1)
    torch.testing.assert_close(ratio[:, upper], expected[:, upper], rtol=1e-9, atol=0)


TELESCOPING = [
    ("softmax", {}),
    ("linear", {}),
    ("norm", {}),
    ("norm", {"norm_fn": "sigmoid", "conv": 4}),
    ("norm", {"norm_fn": "elu", "feature_map": "identity"}),
]


@pytest.mark.parametrize(("name", "opts"), TELESCOPING, ids=lambda x: str(x))
def test_transition_telescopes_to_eta(name, opts):
    m, u = build(name, **opts), inputs()
    t = m.transition(u)
    assert t.values.shape == (2, L, N_HEADS) and t.start == 1 and t.group == "head"
    assert t.multiplicity == (STATE // N_HEADS) * (D_MODEL // N_HEADS)  # d_k · d_v
    assert_telescopes(t.values, eta_of(name, m, u))


@pytest.mark.parametrize("name", ["softmax", "linear"])
def test_transition_uses_prefiltered_q_and_k(name):
    m, u = build(name, conv=4), inputs()
    lam = m.transition(u).values
    assert_telescopes(lam, eta_of(name, m, u))
    eta = {"softmax": eta_softmax, "linear": eta_linear}[name]
    unfiltered = eta(*raw_qk(m, u, prefilter=False)).transpose(1, 2)
    assert (lam[:, 1:] - unfiltered[:, :-1] / unfiltered[:, 1:]).abs().max() > 1e-3


def test_softmax_transition_is_finite_for_long_large_inputs():
    torch.manual_seed(0)
    m = make_mixer("softmax", d_model=D_MODEL, n_heads=N_HEADS, state_dim=STATE)
    u = 100 * torch.randn(1, 4096, D_MODEL)
    with torch.no_grad():
        lam = m.transition(u).values
        lam64 = copy.deepcopy(m).double().transition(u.double()).values
    assert torch.isfinite(lam).all() and (lam >= 0).all()
    assert lam.max() > 1e30 and lam.min() < 1e-30  # the inputs really are extreme
    resolved = (lam64 > 1e-30) & (lam64 < 1e30)  # float32 agrees with float64 where both resolve
    assert resolved.sum() > 50
    torch.testing.assert_close(
        lam[resolved].log().double(), lam64[resolved].log(), rtol=1e-3, atol=0.05
    )


@pytest.mark.parametrize("conv", [0, 4])
def test_unnormalized_linear_attention_has_unit_transition(conv):
    t = build("linear_unnormalized", conv=conv).transition(inputs())
    assert torch.equal(t.values, torch.ones_like(t.values))


@pytest.mark.parametrize(
    ("option", "value", "choices"),
    [("norm_fn", "relu", "exp, softplus, sigmoid, elu"), ("feature_map", "relu", "elu, identity")],
)
def test_bad_norm_options_name_the_choices(option, value, choices):
    with pytest.raises(ValueError, match=f"{option} = 'relu': expected one of: {choices}$"):
        make_mixer("norm", d_model=D_MODEL, n_heads=N_HEADS, **{option: value})


@pytest.mark.parametrize("norm_fn", ["exp", "softplus", "sigmoid", "elu"])
def test_norm_transition_at_init_lies_in_the_range_set_by_the_offsets(norm_fn):
    """With |n_i| ≤ N and offsets o_h: |log Λ| ≤ f(o_h + N) − f(o_h − N) for increasing f."""
    m, u = build("norm", norm_fn=norm_fn, n_heads=4), inputs()
    torch.testing.assert_close(m.offset.data, torch.linspace(4, 9, 4, dtype=torch.float64))
    f = REFERENCE_F[norm_fn]
    with torch.no_grad():
        n_max = m.W_n(u).abs().amax(dim=(0, 1))  # (H,)
        bound = f(m.offset + n_max) - f(m.offset - n_max)  # (H,)
        log_lam = m.transition(u).values[:, 1:].log()  # (B, L-1, H)
    assert (log_lam.abs() <= bound + 1e-12).all()
    assert (log_lam.abs().amax(dim=(0, 1)) > 0.01 * bound).any()  # not trivially 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_log_normaliser_equals_the_blocked_reference(dtype):
    from companion.layers.softmax import causal_log_normaliser, fused_log_normaliser

    torch.manual_seed(0)
    q, k = (10 * torch.randn(2, 3, 301, 8, dtype=dtype) for _ in range(2))
    with torch.no_grad():
        fast = fused_log_normaliser(q, k)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(fast, causal_log_normaliser(q, k)[0], rtol=tol, atol=tol)


# --- the two factors of attention's Λ ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "opts"), [("softmax", {}), ("softmax", {"conv": 3}), ("linear", {})]
)
@pytest.mark.parametrize("batch", [1, 2])
def test_the_query_change_and_the_retention_multiply_to_lambda(name, opts, batch):
    m = build(name, **opts).eval()
    u = inputs(batch=batch, length=7)  # odd length
    change, retention = attention_factors(m, u)
    lam = m.transition(u).values
    assert change.shape == retention.shape == lam.shape
    torch.testing.assert_close(change * retention, lam, rtol=1e-12, atol=1e-12)
    assert (retention > 0).all() and (retention <= 1 + 1e-12).all()
    assert (change[:, 0] == 1).all() and (retention[:, 0] == 1).all()  # η_0 is the empty sum
    above = lam[:, 1:] > 1
    assert (change[:, 1:][above] > 1).all()  # every Λ above 1 is the query change's


def test_the_retention_is_1_minus_the_attention_a_query_pays_its_own_key():
    m = build("softmax").eval()
    u = inputs(batch=1, length=5)
    q, k, _ = m.qkv(u)
    attn = torch.softmax(
        (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(
            torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf")
        ),
        -1,
    )  # (B, H, L, L)
    own = attn.diagonal(dim1=-2, dim2=-1).transpose(1, 2)  # p_ii: (B, L, H)
    torch.testing.assert_close(attention_factors(m, u)[1][:, 1:], 1 - own[:, 1:])


def test_a_constant_on_every_key_moves_lambda_but_not_the_attention_or_the_retention():
    m = build("softmax").eval()
    u = inputs(batch=2, length=9)
    before_y, before = m(u), attention_factors(m, u)
    shifted = copy.deepcopy(m)
    with torch.no_grad():
        shifted.W_k.bias += 3.0 * torch.randn(shifted.W_k.bias.shape, dtype=torch.float64)
    after_y, after = shifted(u), attention_factors(shifted, u)
    torch.testing.assert_close(after_y, before_y, rtol=1e-10, atol=1e-12)  # softmax cancels it
    torch.testing.assert_close(after[1], before[1], rtol=1e-10, atol=1e-12)  # retention
    assert (after[0] - before[0]).abs().max() > 1e-3  # the query change, and so Λ, moved
    lam = shifted.transition(u).values
    torch.testing.assert_close(after[0] * after[1], lam, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["norm", "linear_unnormalized", "s4"])
def test_a_mixer_without_a_summed_normaliser_has_no_factors(name):
    m = make_mixer(name, d_model=8, n_heads=2, state_dim=4).double()
    with pytest.raises(ValueError, match="softmax and normalised linear attention have one"):
        attention_factors(m, torch.randn(1, 4, 8, dtype=torch.float64))

"""State space mixers: initial spectra, transition formulas, SSM tags, float32 accuracy."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from companion.layers import make_mixer


def build(name, seed=0, d_model=16, n_heads=4, state_dim=64, **opts):
    torch.manual_seed(seed)
    return make_mixer(name, d_model=d_model, n_heads=n_heads, state_dim=state_dim, **opts)


def test_s4d_lin_init_spectrum():
    """S4D-Lin: λ_{h,n} = exp(Δ_h (−1/2 + iπn)), so |λ| = exp(−Δ/2) and arg λ = πnΔ."""
    m = build("s4d", init="lin").double()
    t = m.transition(torch.zeros(1, 5, 16))
    assert t.time_invariant and t.group == "channel_mode" and t.values.shape == (16 * 32,)
    lam = t.values.view(16, 32)  # channel-major
    dt = m.log_dt.exp()[:, None]  # (H, 1)
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1 and dt.std() > 0  # one Δ per channel
    n = torch.arange(32, dtype=torch.float64)
    torch.testing.assert_close(lam.abs(), torch.exp(-dt / 2).expand(16, 32))
    torch.testing.assert_close(lam / lam.abs(), torch.exp(1j * math.pi * n * dt), rtol=0, atol=1e-6)


def test_s4d_inv_init_spectrum():
    """S4D-Inv: A_n = −1/2 + i (S/π)(S/(2n+1) − 1) with S = state_dim."""
    S = 64
    m = build("s4d", init="inv", state_dim=S)
    lam = m.transition(torch.zeros(1, 5, 16)).values.view(16, S // 2).cdouble()
    dt = m.log_dt.exp().double()[:, None]  # (H, 1)
    n = torch.arange(S // 2, dtype=torch.float64)
    A = -0.5 + 1j * (S / math.pi) * (S / (2 * n + 1) - 1)
    torch.testing.assert_close(lam, torch.exp(dt * A), rtol=0, atol=1e-4)


def test_s4d_rejects_unknown_init():
    with pytest.raises(ValueError, match="init = 'legs': expected one of: lin, inv"):
        build("s4d", init="legs")


@pytest.mark.parametrize(
    ("r_min", "r_max", "max_phase"), [(0.9, 0.99, 2 * math.pi), (0.5, 0.6, 1.0)]
)
def test_lru_init_ring(r_min, r_max, max_phase):
    """λ uniform on the ring r_min ≤ |λ| ≤ r_max (|λ|² uniform), phase in [0, max_phase]."""
    N = 4096
    m = build("lru", state_dim=N, r_min=r_min, r_max=r_max, max_phase=max_phase).double()
    t = m.transition(torch.zeros(1, 5, 16))
    assert t.time_invariant and t.group == "mode" and t.values.shape == (N,)
    r2 = t.values.abs() ** 2
    assert r2.min() >= r_min**2 - 1e-9 and r2.max() <= r_max**2 + 1e-9
    width = r_max**2 - r_min**2  # uniform: mean at the centre, std width/√12
    assert abs(r2.mean() - (r_min**2 + r_max**2) / 2) < 4 * width / math.sqrt(12 * N)
    phase = m.theta_log.exp()  # arg λ before wrapping to (−π, π]
    assert phase.min() > 0 and phase.max() <= max_phase and phase.max() > 0.99 * max_phase
    torch.testing.assert_close(
        t.values.angle().remainder(2 * math.pi), phase.remainder(2 * math.pi)
    )
    torch.testing.assert_close(m.gamma_log.exp(), torch.sqrt(1 - r2))  # γ = √(1 − |λ|²)


def test_lru_gamma_keeps_state_energy():
    """With γ the stationary state energy equals the input energy: for white noise the SSM part
    of the output, Re(C h), has variance ≈ 1 (without γ it would be ≈ 13 for the default ring)."""
    m = build("lru", d_model=32, state_dim=256)
    u = torch.randn(4, 2048, 32)
    with torch.no_grad():
        ssm_part = m(u)[:, 512:] - m.D * u[:, 512:]  # after the transient
    assert 0.6 < ssm_part.var() < 1.6


def test_mamba2_transition_is_selective():
    """Λ_{i,h} = exp(Δ_{i,h} A_h) ∈ (0, 1), Δ = softplus(raw + dt_bias) > 0, per step and head."""
    m = build("mamba2").double()
    dt0 = F.softplus(m.dt_bias)  # initial Δ, log-uniform in [1e-3, 1e-1]
    assert dt0.min() >= 1e-3 * (1 - 1e-9) and dt0.max() <= 0.1 * (1 + 1e-9)
    A = -m.A_log.exp()
    assert A.min() >= -16 and A.max() <= -1
    x = torch.randn(2, 50, 16, dtype=torch.float64)
    t = m.transition(x)
    assert not t.time_invariant and t.values.shape == (2, 50, 4) and t.group == "head"
    assert t.multiplicity == (16 // 4) * 64  # P · N
    lam = t.values
    assert lam.min() > 0 and lam.max() < 1
    dt = lam.log() / A  # Δ recovered from Λ
    assert dt.min() > 0
    assert lam.std(1).min() > 0  # varies over time in every head
    assert (m.transition(torch.randn_like(x)).values - lam).abs().max() > 1e-3  # depends on u
    # zero input: the projection vanishes, Δ = softplus(dt_bias)
    zero = m.transition(torch.zeros(1, 3, 16, dtype=torch.float64)).values
    torch.testing.assert_close(zero, torch.exp(F.softplus(m.dt_bias) * A).expand(1, 3, 4))


def test_mamba2_pseudo_lti_transition():
    """Pseudo-LTI: Λ_h = exp(−softplus(a_h)) constant in time, a_h ~ U(−8, −2)."""
    m = build("mamba2_lti", n_heads=8, d_model=32).double()
    t = m.transition(torch.randn(2, 30, 32, dtype=torch.float64))
    assert t.time_invariant and t.values.shape == (8,) and t.multiplicity == 4 * 64
    torch.testing.assert_close(t.values, torch.exp(-F.softplus(m.a)))
    assert m.a.min() >= -8 and m.a.max() <= -2
    lo, hi = math.exp(-F.softplus(torch.tensor(-2.0))), math.exp(-F.softplus(torch.tensor(-8.0)))
    assert t.values.min() >= lo and t.values.max() <= hi  # ≈ (0.881, 0.9997)


def test_mamba2_pseudo_lti_needs_heads_dividing_state():
    with pytest.raises(ValueError, match="state_dim"):
        build("mamba2_lti", n_heads=3, d_model=12, state_dim=16)


SSM_PARAMS = {  # the parameters an ``ssm_lr`` would apply to (used by S4's configs only)
    "s4d": {"log_dt", "log_A_real", "A_imag", "B"},
    "lru": {"nu_log", "theta_log", "gamma_log", "B"},
    "mamba2": set(),
    "mamba2_lti": set(),
}
TRANSITION_PARAMS = {  # the parameters that set Λ (the weight-decay experiment exempts them)
    "s4d": {"log_dt", "log_A_real", "A_imag"},
    "lru": {"nu_log", "theta_log"},
    "mamba2": {"A_log", "dt_bias"},
    "mamba2_lti": {"a", "dt_bias"},
}


@pytest.mark.parametrize("name", list(SSM_PARAMS))
def test_tags_name_exactly_the_ssm_and_transition_parameters(name):
    m = build(name)
    tagged = {n for n, p in m.named_parameters() if getattr(p, "_ssm", False)}
    assert tagged == SSM_PARAMS[name]
    tagged = {n for n, p in m.named_parameters() if getattr(p, "_transition", False)}
    assert tagged == TRANSITION_PARAMS[name]


@pytest.mark.parametrize(
    ("name", "opts", "tol"),
    [
        ("s4d", {"init": "lin"}, 1e-5),
        ("s4d", {"init": "inv"}, 1e-5),
        ("lru", {}, 1e-5),
        ("lru", {"r_min": 0.999, "r_max": 0.9999}, 5e-4),  # |λ| very near 1
        ("mamba2", {}, 1e-5),
        ("mamba2_lti", {}, 1e-5),
    ],
)
def test_float32_fast_path_matches_float64_recurrence_at_4096(name, opts, tol):
    """Error of the float32 fast path, relative to the largest output, at L = 4096."""
    m = build(name, d_model=4, n_heads=2, state_dim=8, **opts).double()
    x = torch.randn(2, 4096, 4, dtype=torch.float64)
    with torch.no_grad():
        y_ref = m.recurrent(x)
        y = copy.deepcopy(m).float()(x.float())
    assert y.dtype == torch.float32
    assert (y.double() - y_ref).abs().max() < tol * y_ref.abs().max()


@pytest.mark.parametrize("name", list(SSM_PARAMS))
def test_fast_path_parameter_gradients_equal_recurrence(name):
    """The fast path trains the same parameters the same way (float64, every parameter)."""
    m = build(name, d_model=8, n_heads=2, state_dim=8).double()
    x = torch.randn(2, 77, 8, dtype=torch.float64)
    g = torch.randn(2, 77, 8, dtype=torch.float64)
    params = list(m.parameters())
    fast = torch.autograd.grad((m(x) * g).sum(), params)
    ref = torch.autograd.grad((m.recurrent(x) * g).sum(), params)
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)

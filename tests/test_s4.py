"""S4 (DPLR HiPPO-LegS, bilinear): spectrum, fast path = recurrence, published analysis, tags."""

import contextlib
import copy
import math

import pytest
import torch

from companion.layers import make_mixer


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build(seed=0, d_model=4, state_dim=16, float64_init=False, **opts):
    """A float64 model; ``float64_init`` keeps the init in float64 instead of rounding the
    parameters through float32 (which moves the LegS spectrum, see ``companion.layers.s4``)."""
    torch.manual_seed(seed)
    with default_dtype(torch.float64 if float64_init else torch.float32):
        m = make_mixer("s4", d_model=d_model, state_dim=state_dim, **opts)
    return m.double()


def closed_form(dt, N):
    """Exact discrete LegS spectrum: ``(1 − Δ(n+1)/2)/(1 + Δ(n+1)/2)``, ``(..., N)``."""
    n = torch.arange(N, dtype=torch.float64)
    x = torch.as_tensor(dt, dtype=torch.float64)[..., None] * (n + 1) / 2
    return (1 - x) / (1 + x)


def perturb(m, seed=1):
    """Random parameters away from LegS; ``Lambda_re`` stays negative."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            if name == "Lambda_re":
                p.copy_(-0.05 - torch.rand(p.shape, generator=g, dtype=p.dtype))
            elif name == "log_step":
                p.add_(0.5 * noise)
            else:
                p.add_(0.3 * noise * p.abs().mean().clamp(min=1))
    return m


def test_init_spectrum_matches_closed_form():
    """eig(A) = eig(A_legs) = −(n+1): every channel's Ā has the real closed-form spectrum. Only
    for small N: beyond N ≈ 12 even the float64-rounded parameters have another spectrum."""
    N, H = 8, 6
    m = build(d_model=H, state_dim=N, float64_init=True)
    t = m.transition(torch.zeros(1, 3, H, dtype=torch.float64))
    assert t.time_invariant and t.group == "channel_mode" and t.values.shape == (H * N,)
    assert t.values.dtype == torch.complex128
    lam = t.values.view(H, N)  # channel-major
    dt = m.log_step.exp().detach()  # (H,)
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1 and dt.std() > 0
    lam = torch.gather(lam, 1, lam.real.argsort(1, descending=True))
    torch.testing.assert_close(lam.real, closed_form(dt, N), rtol=0, atol=1e-8)
    assert lam.imag.abs().max() < 1e-8
    assert m.transition(torch.zeros(1, 3, H)).values.dtype == torch.complex64


def test_init_spectrum_at_64_modes():
    """At Δ = 0.01, N = 64: 54 closed-form eigenvalues lie in (0.5, 0.9]. The stored parameters'
    eigenvalues are ill-conditioned one by one (≈0.36 away, also at 60 digits), but their sum
    (trace of A) and product (det Ā) are well-conditioned and keep the closed form."""
    N, dt = 64, 0.01
    exact = closed_form(dt, N)
    assert ((exact > 0.5) & (exact <= 0.9)).sum() == 54
    m = build(state_dim=N, float64_init=True)
    with torch.no_grad():
        m.log_step.fill_(math.log(dt))
        lam = m.transition(torch.zeros(1, 1, 4, dtype=torch.float64)).values.view(4, N)
    z = (2 / dt) * (lam - 1) / (lam + 1)  # eigenvalues of A
    torch.testing.assert_close(
        z.sum(1).real, torch.full((4,), -N * (N + 1) / 2.0, dtype=torch.float64)
    )
    torch.testing.assert_close(lam.log().sum(1).real, exact.log().sum().expand(4))
    dev = (lam.abs().sort(1).values - exact.sort().values).abs().max()
    print(f"\nN=64, Δ=0.01, float64 parameters: sorted |λ| off the closed form by {dev:.3f}")
    assert dev > 0.1


def test_published_transition_float32_artefact():
    """The public analysis (channel 1, complex64 Woodbury Ā, numpy eigvals): complex modes and
    magnitudes far from the exact LegS spectrum."""
    N, dt = 64, 0.01
    torch.manual_seed(0)
    m = make_mixer("s4", d_model=4, state_dim=N)
    with torch.no_grad():
        m.log_step.fill_(math.log(dt))
    t = m.transition_as_published(torch.zeros(1, 3, 4))
    assert t.values.shape == (N,) and t.group == "mode" and t.values.dtype == torch.complex64
    pub = t.values.to(torch.complex128)
    mags = pub.abs().sort().values
    dev = (mags - closed_form(dt, N).sort().values).abs().max()
    n_complex = int((pub.imag.abs() > 1e-3).sum())
    own = m.transition(torch.zeros(1, 3, 4, dtype=torch.float64)).values.view(4, N)[1]
    dev_own = (mags - own.abs().sort().values).abs().max()
    print(f"\npublished: |λ| off the closed form by {dev:.3f}, {n_complex}/64 with |Im| > 1e-3;")
    print(f"|λ| off the float32 parameters' exact eigenvalues by {dev_own:.3f}")
    assert dev > 0.05 and n_complex > 30


@pytest.mark.parametrize("perturbed", [False, True], ids=["legs", "perturbed"])
@pytest.mark.parametrize("l_max", [None, 100])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("length", [1, 7, 64, 65])
def test_fast_path_equals_recurrence(length, batch, l_max, perturbed):
    """Checks the Woodbury kernel and ``C = C̃* (I − Ā^{L_k})⁻¹`` (also with L_k = l_max > L)."""
    m = build(l_max=l_max)
    if perturbed:
        perturb(m)
    x = torch.randn(batch, length, 4, dtype=torch.float64)
    y, y_ref = m(x), m.recurrent(x)
    assert y.shape == (batch, length, 4)
    assert (y - y_ref).abs().max() < 1e-8 * y_ref.abs().max()


def test_fast_path_equals_recurrence_at_64_modes():
    m = build(state_dim=64)
    x = torch.randn(2, 130, 4, dtype=torch.float64)
    y_ref = m.recurrent(x)
    assert (m(x) - y_ref).abs().max() < 1e-8 * y_ref.abs().max()


def test_fast_path_parameter_gradients_equal_recurrence():
    m = perturb(build(state_dim=8))
    x = torch.randn(2, 33, 4, dtype=torch.float64)
    g = torch.randn(2, 33, 4, dtype=torch.float64)
    params = list(m.parameters())
    fast = torch.autograd.grad((m(x) * g).sum(), params)
    ref = torch.autograd.grad((m.recurrent(x) * g).sum(), params)
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9 * b.abs().max())


def test_gradients_reach_every_parameter_float32():
    torch.manual_seed(0)
    m = make_mixer("s4", d_model=8, state_dim=32)
    x = torch.randn(2, 50, 8, requires_grad=True)
    m(x).square().mean().backward()
    for name, p in [*m.named_parameters(), ("u", x)]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_bfloat16_autocast_computes_in_float32():
    torch.manual_seed(0)
    m = make_mixer("s4", d_model=8, state_dim=16)
    x = torch.randn(2, 40, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, m(x))


def test_transition_is_the_spectrum_of_the_recurrent_matrix():
    """``transition`` (eig A, mapped) = eigvals of the dense Ā that ``recurrent`` runs on."""
    m = perturb(build(state_dim=8))
    lam = m.transition(torch.zeros(1, 5, 4, dtype=torch.float64)).values.view(4, 8)
    A_bar = m.discrete(5, torch.float64)[0].detach()
    for row, ev in zip(lam.detach(), torch.linalg.eigvals(A_bar), strict=True):
        dist = (row[:, None] - ev[None, :]).abs()  # (N, N)
        assert dist.min(1).values.max() < 1e-10 and dist.min(0).values.max() < 1e-10
    assert (lam.abs() < 1).all()  # Re Λ < 0 makes A dissipative, so |λ| < 1


def test_transition_same_without_grad_and_in_eval():
    m = perturb(build(state_dim=16))
    x = torch.zeros(1, 5, 4, dtype=torch.float64)
    ref = m.transition(x).values
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m.transition(x).values, ref.detach(), rtol=0, atol=0)


def test_mark_ssm_and_transition_tags():
    m = build()
    ssm = {n for n, p in m.named_parameters() if getattr(p, "_ssm", False)}
    trans = {n for n, p in m.named_parameters() if getattr(p, "_transition", False)}
    assert ssm == {"Lambda_re", "Lambda_im", "P", "B", "log_step"}
    assert trans == {"Lambda_re", "Lambda_im", "P", "log_step"}


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="of mixer 's4'; valid here: init, l_max"):
        make_mixer("s4", d_model=4, r_min=0.5)
    with pytest.raises(ValueError, match="init = 'lin': expected one of: legs"):
        make_mixer("s4", d_model=4, init="lin")
    m = make_mixer("s4", d_model=4, state_dim=8, l_max=16)
    with pytest.raises(ValueError, match="l_max"):
        m(torch.randn(1, 17, 4))


def test_float32_fast_path_matches_float64_recurrence_at_1024():
    m = build(d_model=8, state_dim=64)
    x = torch.randn(1, 1024, 8, dtype=torch.float64)
    with torch.no_grad():
        y_ref = m.recurrent(x)
        y = copy.deepcopy(m).float()(x.float())
    assert y.dtype == torch.float32
    err = (y.double() - y_ref).abs().max() / y_ref.abs().max()
    print(f"\nfloat32 fast path vs float64 recurrence, L=1024: {err:.2e}")
    assert err < 1e-5

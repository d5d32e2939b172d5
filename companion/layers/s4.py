"""S4: a diagonal-plus-low-rank (DPLR) state space model per channel, bilinear discretisation.

Each of the ``H = d_model`` channels has its own ``N = state_dim`` complex modes and parameters::

    A = diag(Λ) − P Pᴴ,   Λ = min(Λ_re, −1e-4) + i Λ_im,
    Ā = (I − Δ/2 A)⁻¹ (I + Δ/2 A),   B̄ = Δ (I − Δ/2 A)⁻¹ B              (bilinear)
    h_i = Ā h_{i-1} + B̄ u_i,   y_i = Re(C h_i) + D u_i,   C = C̃* (I − Ā^{L_k})⁻¹

as in the paper's public S4 (an annotated-S4 port). The learned ``C̃`` is what the fast path
uses: at the ``L_k``-th roots of unity ``ω_l = exp(−2πi l/L_k)``, with ``g = (2/Δ)(1−ω)/(1+ω)``,
``c = 2/(1+ω)`` and Cauchy sums ``k_ab = Σ_n a_n b_n / (g − Λ_n)``, a ∈ {C̃*, P*}, b ∈ {B, P},

    K̂(ω) = c [k_00 − k_01 k_10 / (1 + k_11)]   (Woodbury for the rank-1 term),  K = Re(ifft(K̂))

and ``y = causal_conv(u, K) + D u``; so ``K_l = Re(C Ā^l B̄)`` for ``l < L_k``. We evaluate the
same sums as ``2 [k'_00 − (1+ω) k'_01 k'_10 / (1 + (1+ω) k'_11)]`` with ``k_ab = (1+ω) k'_ab``,
``k'_ab = Σ_n a_n b_n / ((2/Δ)(1−ω) − Λ_n (1+ω))``, which never divides by ``1 + ω`` (ω = −1).
``L_k`` is the input length, or ``l_max`` if given (the kernel is then truncated to ``L``).

Initialisation (HiPPO-LegS): ``A_legs[n,k] = −√(2n+1)√(2k+1)`` (n > k), ``−(n+1)`` (n = k),
``P = √(n+½)``, ``B = √(2n+1)``; ``S = A_legs + P Pᵀ = −½ I + skew``, ``Λ_im, V = eigh(−i skew)``,
``P ← Vᴴ P``, ``B ← Vᴴ B``; ``C̃`` parts ``N(0, ½)``, ``D = 1``, ``log Δ ~ U[log 1e-3, log 1e-1]``.
The init is computed in float64 and stored in the default dtype.

Here the DSF's ``Λ`` is the dense matrix ``Ā`` (not diagonal): ``recurrent`` uses Ā itself and
``transition`` returns its eigenvalues for the parameters as stored, as ``eig(A)`` in complex128
mapped by ``z ↦ (1 + Δz/2)/(1 − Δz/2)``. Against 60-digit eigenvalues (mpmath), this errs by
2e-3 at N = 64 where ``eigvals(Ā)`` errs by 5e-3 (N = 20: 7e-5 vs 4e-3; N = 8, against the
closed form: 2e-13 vs 6e-12), so we use ``eig(A)``. HiPPO-LegS is so far from normal that
rounding the parameters moves the spectrum: eig(A_legs) = −(n+1) gives the discrete closed form
``(1 − Δ(n+1)/2)/(1 + Δ(n+1)/2)``, but at N = 64, Δ = 0.01 the sorted |λ| of the stored parameters
(60 digits) differ from it by up to 0.28 in float64 (59 complex modes) and 0.47 in float32 (58);
the closed form holds to 1e-8 only for N ≤ 12 (float64) and N ≤ 4 (float32). Sum and product of
the eigenvalues (trace A, det Ā) stay right (to 1e-13, 1e-6). ``transition_as_published``
(channel 1) builds Ā in complex64 by the public Woodbury form and calls ``numpy.linalg.eigvals``
(LAPACK in complex128 inside numpy, rounded to complex64): its sorted |λ| are 0.40 off the
closed form (62 complex) and 0.07 off the float32 parameters' exact eigenvalues (0.43 matching
each to its nearest).

float32 fast path vs float64 recurrence: 1.4e-6 of the largest output (L = 1024, H = 8, N = 64).
CPU fwd+bwd (2 threads) at B=8, H=128, N=64, L=1024: 0.20 s.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from companion.layers.base import Mixer, Transition, mark_ssm, mark_transition
from companion.layers.lru import complex_precision
from companion.ops import fft_conv
from companion.schema import MAX_LENGTH, Rule


def hippo_legs_dplr(N: int) -> tuple[Tensor, Tensor, Tensor]:
    """``Λ, P, B``: ``(N,)`` complex128 each, ``diag(Λ) − P Pᴴ`` unitarily similar to A_legs."""
    n = torch.arange(N, dtype=torch.float64)  # (N,)
    q = torch.sqrt(2 * n + 1)  # (N,)
    A = -torch.tril(q[:, None] * q, -1) - torch.diag(n + 1)  # (N, N) A_legs
    P = torch.sqrt(n + 0.5)  # (N,)
    S = A + P[:, None] * P  # (N, N) = −½ I + skew-symmetric
    skew = S - torch.diag(S.diagonal())  # (N, N)
    lam_im, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))  # (N,), (N, N)
    lam = torch.complex(S.diagonal().mean().expand(N), lam_im)  # (N,) Re Λ = −½
    return lam, V.mH @ P.to(V.dtype), V.mH @ q.to(V.dtype)


def _tag(p: nn.Parameter) -> nn.Parameter:
    """Λ, P, log Δ: trained in the SSM group and they set Ā (``mark_ssm``, ``mark_transition``)."""
    return mark_transition(mark_ssm(p))


def _dense_A(lam: Tensor, P: Tensor) -> Tensor:
    """``A = diag(Λ) − P Pᴴ``: ``(..., N)`` complex -> ``(..., N, N)``."""
    return torch.diag_embed(lam) - P[..., :, None] * P.conj()[..., None, :]


class S4(Mixer):
    """S4 mixer on ``(B, L, d_model)``; ``n_heads`` is ignored, ``state_dim`` is N (complex).

    Options: ``init`` = ``"legs"`` (HiPPO-LegS, the only one); ``l_max`` = kernel length (int) or
    None (the input's length). Complex parameters are stored as real tensors with a trailing
    (re, im) axis of size 2.
    """

    family = "sequence_layer"
    label, color = "S4", "#332288"

    OPTIONS = {
        "init": Rule(str, choices=("legs",)),
        "l_max": Rule(int, at_least=1, at_most=MAX_LENGTH, optional=True),
    }

    def __init__(
        self,
        d_model: int,
        n_heads: int = 1,
        state_dim: int = 64,
        *,
        init: str = "legs",
        l_max: int | None = None,
    ):
        super().__init__()
        if init != "legs":
            raise ValueError(f"unknown S4 init {init!r}; choose 'legs'")
        H, N, dtype = d_model, state_dim, torch.get_default_dtype()
        self.l_max = l_max
        lam, P, B = hippo_legs_dplr(N)  # (N,) complex128 each

        def per_channel(z: Tensor) -> Tensor:  # (N,) complex -> (H, N, 2) real
            return torch.view_as_real(z).to(dtype).repeat(H, 1, 1)

        self.Lambda_re = _tag(nn.Parameter(lam.real.to(dtype).repeat(H, 1)))  # (H, N)
        self.Lambda_im = _tag(nn.Parameter(lam.imag.to(dtype).repeat(H, 1)))  # (H, N)
        self.P = _tag(nn.Parameter(per_channel(P)))  # (H, N, 2)
        self.B = mark_ssm(nn.Parameter(per_channel(B)))  # (H, N, 2)
        self.C = nn.Parameter(torch.randn(H, N, 2) * math.sqrt(0.5))  # (H, N, 2) C̃
        self.D = nn.Parameter(torch.ones(H))  # (H,)
        log_step = torch.empty(H).uniform_(math.log(1e-3), math.log(1e-1))  # (H,) log Δ
        self.log_step = _tag(nn.Parameter(log_step))

    def _ssm(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``Λ, P, B, C̃``, each ``(H, N)`` complex, and ``Δ`` ``(H,)``, in real ``dtype``."""
        lam = torch.complex(self.Lambda_re.to(dtype).clamp(max=-1e-4), self.Lambda_im.to(dtype))
        P, B, C = (torch.view_as_complex(p.to(dtype)) for p in (self.P, self.B, self.C))
        return lam, P, B, C, self.log_step.to(dtype).exp()

    def _kernel_length(self, L: int) -> int:
        if self.l_max is not None and L > self.l_max:
            raise ValueError(f"S4 input length {L} exceeds l_max={self.l_max}")
        return L if self.l_max is None else self.l_max

    def kernel(self, L_k: int, dtype: torch.dtype) -> Tensor:
        """``K_l = Re(C Ā^l B̄)`` for ``l < L_k`` from the roots of unity: ``(H, L_k)`` real."""
        lam, P, B, C, dt = self._ssm(dtype)
        l = torch.arange(L_k, dtype=torch.float64, device=lam.device)  # (L_k,)
        omega = torch.exp(-2j * math.pi * l / L_k).to(lam.dtype)  # (L_k,)
        x = ((2 / dt)[:, None] * (1 - omega))[:, None]  # (H, 1, L_k)
        denom = torch.addcmul(x, lam[..., None], 1 + omega, value=-1)  # (H, N, L_k) x − Λ(1+ω)
        a = torch.stack([C.conj(), P.conj()], 1)  # (H, 2, N)
        b = torch.stack([B, P], 1)  # (H, 2, N)
        ab = (a[:, :, None] * b[:, None]).flatten(1, 2)  # (H, 4, N)
        k00, k01, k10, k11 = (ab @ denom.reciprocal()).unbind(1)  # (H, L_k) each, k'_ab
        K_hat = 2 * (k00 - (1 + omega) * k01 * k10 / (1 + (1 + omega) * k11))  # (H, L_k)
        return torch.fft.ifft(K_hat).real  # (H, L_k)

    def forward(self, u: Tensor) -> Tensor:
        """Fast path: Cauchy kernel at the roots of unity, then FFT convolution, plus ``D u``."""
        with complex_precision(u) as u:
            L = u.shape[1]
            K = self.kernel(self._kernel_length(L), u.dtype)[:, :L]  # (H, L)
            # contiguous: element-wise backward passes after it run 2× slower on a transposed layout
            y = fft_conv(u.transpose(1, 2), K).transpose(1, 2).contiguous()  # (B, L, H)
            return y + self.D * u

    def discrete(self, L_k: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """Bilinear ``Ā`` (H, N, N), ``B̄`` (H, N) and ``C = C̃* (I − Ā^{L_k})⁻¹`` (H, N)."""
        lam, P, B, C_tilde, dt = self._ssm(dtype)
        A = _dense_A(lam, P)  # (H, N, N)
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)  # (N, N)
        half = (dt / 2)[:, None, None]  # (H, 1, 1)
        A_bar = torch.linalg.solve(eye - half * A, eye + half * A)  # (H, N, N)
        B_bar = dt[:, None] * torch.linalg.solve(eye - half * A, B)  # (H, N)
        A_pow = torch.linalg.matrix_power(A_bar, L_k)  # (H, N, N)
        C = torch.linalg.solve(eye - A_pow, C_tilde.conj()[:, None], left=False)  # (H, 1, N)
        return A_bar, B_bar, C[:, 0]

    def recurrent(self, u: Tensor) -> Tensor:
        """The literal recurrence ``h_i = Ā h_{i-1} + B̄ u_i``, ``y_i = Re(C h_i) + D u_i``."""
        with complex_precision(u) as u:
            A_bar, B_bar, C = self.discrete(self._kernel_length(u.shape[1]), u.dtype)
            h = torch.zeros(u.shape[0], *B_bar.shape, dtype=B_bar.dtype, device=u.device)
            ys = []
            for u_i in u.unbind(1):  # (B, H)
                h = torch.einsum("hmn,bhn->bhm", A_bar, h) + B_bar * u_i[..., None]  # (B, H, N)
                ys.append((C * h).sum(-1).real + self.D * u_i)  # (B, H)
            return torch.stack(ys, 1)  # (B, L, H)

    def transition(self, u: Tensor) -> Transition:
        """Eigenvalues of every channel's dense Ā: ``(H·N,)`` complex, channel-major, computed as
        ``eig(A)`` in complex128 mapped by ``z ↦ (1 + Δz/2)/(1 − Δz/2)`` (module docstring)."""
        lam, P, _, _, dt = self._ssm(torch.float64)
        z = torch.linalg.eigvals(_dense_A(lam, P))  # (H, N) eigenvalues of A
        half = (dt / 2)[:, None]  # (H, 1)
        values = ((1 + half * z) / (1 - half * z)).reshape(-1)  # (H·N,)
        real = torch.promote_types(u.dtype, torch.float32)
        return Transition(values.to(real.to_complex()), group="channel_mode")

    def transition_as_published(self, u: Tensor) -> Transition:
        """Channel 1 only, as the public code: Ā built in complex64 by its Woodbury form
        (``A0 = (2/Δ) I + A``, ``A1 = D − D P (1 + Pᴴ D P)⁻¹ Pᴴ D``, ``D = diag(1/(2/Δ − Λ))``,
        ``Ā = A1 A0``), then ``numpy.linalg.eigvals``: ``(N,)`` complex64."""
        h = min(1, self.Lambda_re.shape[0] - 1)
        lam, P, _, _, dt = (x[h].detach().cpu().numpy() for x in self._ssm(torch.float32))
        lam, P, two_dt = lam.astype(np.complex64), P.astype(np.complex64), np.float32(2) / dt
        A0 = two_dt * np.eye(len(lam), dtype=np.complex64) + np.diag(lam) - np.outer(P, P.conj())
        Dm = np.diag(np.float32(1) / (two_dt - lam))  # (N, N) complex64
        DP, PhD = Dm @ P, P.conj() @ Dm  # (N,) each
        A1 = Dm - np.outer(DP, PhD) / (1 + PhD @ P)  # (N, N) = (2/Δ − A)⁻¹ by Woodbury
        values = np.linalg.eigvals(A1 @ A0).astype(np.complex64)  # (N,)
        return Transition(torch.from_numpy(values).to(u.device), group="mode")

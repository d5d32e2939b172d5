"""S4D: one diagonal complex state space model per channel, discretised by zero-order hold.

Each of the ``H = d_model`` channels runs ``N = state_dim // 2`` complex modes; the other half of
the ``state_dim`` real state dimensions are their complex conjugates, hence the ``2·Re``::

    h_i = Λ h_{i-1} + B̄ u_i,   y_i = 2 Re(Σ_n C_n h_{i,n}) + D u_i,
    Λ = exp(ΔA),   B̄ = (Λ − 1)/A · B           (ZOH, per channel h and mode n)

The GELU and the GLU projection that follow it belong to the block (``companion.model``), as in
the paper's public code. The fast path convolves each channel with its kernel
``K_l = 2 Re(Σ_n C_n B̄_n Λ_n^l)`` by FFT.

S4D is a variant here, not the paper's S4 (that is the DPLR ``s4`` mixer): S4D-Lin starts every
mode at ``|λ| = e^{−Δ/2} ∈ [0.951, 0.9995]``, all of its spectral mass in ``(0.9, 1]``.

Initialisation (Gu et al., *On the Parameterization and Initialization of Diagonal State Space
Models*, 2022): ``A_n = −1/2 + iπn`` (S4D-Lin) or ``A_n = −1/2 + i (S/π)(S/(2n+1) − 1)`` with
``S = state_dim`` (S4D-Inv); ``log Δ ~ U[log 1e-3, log 1e-1]`` per channel; ``B = 1``,
``C ~ CN(0, 1)``, ``D ~ N(0, 1)``. So at initialisation ``|λ| = exp(−Δ/2)`` and
``arg λ = Δ · Im A``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from companion.layers.base import Mixer, Transition, mark_ssm, mark_transition
from companion.layers.lru import complex_precision
from companion.ops import fft_conv
from companion.schema import Rule


def _vandermonde(c: Tensor, log_z: Tensor, L: int) -> Tensor:
    """``K_l = Σ_n c_n exp(l · log_z_n)`` for ``l < L``: ``(H, N)`` complex -> ``(H, L)`` complex.

    Two-level Vandermonde product: writing ``l = aT + b`` with ``T ≈ √L``,
    ``K_{aT+b} = Σ_n (c_n z_n^{aT}) z_n^b`` is one ``(⌈L/T⌉ × N) @ (N × T)`` matmul per channel and
    needs ``N (T + L/T)`` exponentials instead of ``N L`` (README, *Speed*: why the fast paths
    are what they are). Each power is a product of two exponentials, never a chain of products.
    """
    T = 2 ** math.ceil(math.log2(L) / 2)  # block length ≈ √L
    n_blocks = -(-L // T)
    b = torch.arange(T, device=c.device, dtype=c.real.dtype)  # (T,)
    aT = T * torch.arange(n_blocks, device=c.device, dtype=c.real.dtype)  # (n_blocks,)
    inner = torch.exp(log_z[..., None] * b)  # (H, N, T) z^b
    outer = c[..., None] * torch.exp(log_z[..., None] * aT)  # (H, N, n_blocks) c z^{aT}
    return (outer.transpose(-1, -2) @ inner).flatten(1)[:, :L]  # (H, n_blocks·T) -> (H, L)


class S4D(Mixer):
    """S4D mixer on ``(B, L, d_model)``; ``n_heads`` is ignored, ``state_dim`` is 2N.

    Options: ``init`` = ``"lin"`` (S4D-Lin, default) or ``"inv"`` (S4D-Inv).
    Complex parameters are stored as real tensors with a trailing (re, im) axis of size 2.
    """

    family = "sequence_layer"
    label, color = "S4D", "#6699CC"

    OPTIONS = {"init": Rule(str, choices=("lin", "inv"))}

    def __init__(self, d_model: int, n_heads: int = 1, state_dim: int = 64, *, init: str = "lin"):
        super().__init__()
        H, N = d_model, state_dim // 2
        n = torch.arange(N, dtype=torch.float32)
        if init == "lin":
            A_imag = math.pi * n  # (N,)
        elif init == "inv":
            A_imag = state_dim / math.pi * (state_dim / (2 * n + 1) - 1)  # (N,)
        else:
            raise ValueError(f"unknown S4D init {init!r}; choose 'lin' or 'inv'")
        log_dt = torch.empty(H).uniform_(math.log(1e-3), math.log(1e-1))  # (H,)
        self.log_dt = mark_transition(mark_ssm(nn.Parameter(log_dt)))  # (H,) log Δ
        self.log_A_real = mark_transition(
            mark_ssm(nn.Parameter(torch.full((H, N), math.log(0.5))))
        )  # Re A = −e^·
        self.A_imag = mark_transition(mark_ssm(nn.Parameter(A_imag.repeat(H, 1))))  # (H, N)
        self.B = mark_ssm(nn.Parameter(torch.view_as_real(torch.ones(H, N, dtype=torch.cfloat))))
        C = torch.randn(H, N, dtype=torch.cfloat)  # (H, N) CN(0, 1)
        self.C = nn.Parameter(torch.view_as_real(C))  # (H, N, 2)
        self.D = nn.Parameter(torch.randn(H))  # (H,)

    def _ssm(self) -> tuple[Tensor, Tensor, Tensor]:
        """``ΔA``, ``B̄`` and ``C``, each ``(H, N)`` complex (ZOH: ``B̄ = (exp(ΔA) − 1)/A · B``)."""
        A = torch.complex(-self.log_A_real.exp(), self.A_imag)  # (H, N)
        dtA = A * self.log_dt.exp()[:, None]  # (H, N)
        B_bar = (dtA.exp() - 1) / A * torch.view_as_complex(self.B)  # (H, N)
        return dtA, B_bar, torch.view_as_complex(self.C)

    def forward(self, u: Tensor) -> Tensor:
        """Fast path: FFT convolution with the kernel ``K_l = 2 Re(Σ_n C_n B̄_n Λ_n^l)``."""
        with complex_precision(u) as u:
            dtA, B_bar, C = self._ssm()
            K = 2 * _vandermonde(C * B_bar, dtA, u.shape[1]).real  # (H, L)
            # contiguous: element-wise backward passes after it run 2× slower transposed
            y = fft_conv(u.transpose(1, 2), K).transpose(1, 2).contiguous()  # (B, L, H)
            return y + self.D * u  # (B, L, H)

    def recurrent(self, u: Tensor) -> Tensor:
        """The literal recurrence ``h_i = Λ h_{i-1} + B̄ u_i``, ``y_i = 2 Re(C h_i)``, per step."""
        with complex_precision(u) as u:
            return self._recurrence(u)

    def _recurrence(self, u: Tensor) -> Tensor:
        _, B_bar, C = self._ssm()
        lam = self.transition(u).values.view_as(B_bar)  # (H, N)
        h = torch.zeros(u.shape[0], *lam.shape, dtype=lam.dtype, device=u.device)  # (B, H, N)
        ys = []
        for u_i in u.unbind(1):  # (B, H)
            h = lam * h + B_bar * u_i[..., None]  # (B, H, N)
            ys.append(2 * (C * h).sum(-1).real)  # (B, H)
        return torch.stack(ys, 1) + self.D * u  # (B, L, H)

    def transition(self, u: Tensor) -> Transition:
        """``Λ = exp(ΔA)``: ``(H·N,)`` complex, constant in time, channel-major."""
        return Transition(self._ssm()[0].exp().reshape(-1), group="channel_mode")

    def transition_as_published(self, u: Tensor) -> Transition:
        """The public analysis reports the modes of one channel (index 1) only."""
        lam = self._ssm()[0].exp()  # (H, N)
        return Transition(lam[min(1, lam.shape[0] - 1)], group="mode")

"""Mamba-2 (SSD) without the z-gate, expand 1, one group, and its pseudo-LTI variant.

``in_proj`` maps ``u_i`` to ``x_i`` (``d_model``, split into ``H`` heads of ``P = d_model/H``),
``B_i``, ``C_i`` (``N = state_dim`` each, shared by the heads) and raw step sizes; ``x, B, C``
pass a short causal convolution (``conv`` taps, 0 = off) and SiLU, the step sizes do not.
Per head ``h`` the state ``h_i`` is a ``(P, N)`` matrix::

    selective:  h_i = Λ_{i,h} h_{i-1} + (Δ_{i,h} x_{i,h}) B_iᵀ,   Λ_{i,h} = exp(Δ_{i,h} A_h)
    pseudo-LTI: h_i = Λ_h h_{i-1} + x_{i,h} (Δ̃_i ⊙ B_i)ᵀ,        Λ_h = exp(−softplus(a_h))
    y_{i,h} = h_i C_i + D_h x_{i,h},                              out = out_proj(y_i)

with ``Δ = softplus(raw + dt_bias) > 0``, ``A_h = −exp(A_log_h)``. Without the z-gate the
reference code (the paper's ``SSD``) has no normalisation either: ``y`` goes straight to
``out_proj``. Initialisation as in ``state-spaces/mamba``: ``dt_bias = softplus⁻¹(Δ₀)`` with
``Δ₀`` log-uniform in ``[1e-3, 1e-1]``, ``A_log = log U[1, 16]``, ``D = 1``, bias-free projections.

The pseudo-LTI variant follows the paper's ``SSD_LTI``: ``a_h ~ U(−8, −2)`` (so
``Λ_h ∈ (0.881, 0.9997)``); ``in_proj`` emits one raw step size per step (not per head), made
per head by ``dt_bias``; and Δ scales the *state* coordinates of ``B``: coordinate ``n`` gets the
step size of head ``⌊n H / N⌋`` (``Δ̃_i = Δ_i`` repeated ``N/H`` times), so ``N`` must be a multiple
of ``H``. ``x`` is not scaled.

The fast path is the chunked SSD algorithm (:func:`companion.ops.chunked_linear_attention` with
``q = C``, ``k = B``, ``v = Δ x`` and ``log_decay = log Λ``); the recurrence is its reference
loop (:func:`companion.ops.linear_attention_recurrence`) on ``Λ`` itself.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.layers.base import Mixer, Transition, inverse_softplus, mark_transition
from companion.ops import CausalConv, chunked_linear_attention, linear_attention_recurrence
from companion.schema import MAX_LENGTH, Rule


class Mamba2(Mixer):
    """Mamba-2 mixer on ``(B, L, d_model)`` with ``H = n_heads`` heads and ``N = state_dim``.

    :class:`Mamba2LTI` is the pseudo-LTI variant (registry name ``mamba2_lti``).
    Options: ``conv`` (kernel size of the short causal convolution, 0 = off; default 4).
    """

    family, chunked = "mamba", True
    label, color = "Mamba-2", "#117733"
    OPTIONS = {"conv": Rule(int, at_least=0, at_most=MAX_LENGTH)}
    lti: ClassVar[bool] = False  # one step size per step, shared by the heads

    def __init__(
        self,
        d_model: int,
        n_heads: int = 1,
        state_dim: int = 64,
        *,
        conv: int = 4,
    ):
        super().__init__()
        H, N, lti = n_heads, state_dim, self.lti
        if d_model % H or (lti and N % H):
            raise ValueError(
                f"Mamba2 needs n_heads ({H}) to divide d_model ({d_model})"
                + (f" and state_dim ({N})" if lti else "")
            )
        self.H, self.P, self.N = H, d_model // H, N
        self.n_dt = 1 if lti else H  # raw step sizes per step (the paper's pseudo-LTI: one)
        self.in_proj = nn.Linear(d_model, d_model + 2 * N + self.n_dt, bias=False)
        xbc = d_model + 2 * N
        self.conv = nn.Sequential(CausalConv(xbc, conv), nn.SiLU()) if conv else nn.Identity()
        dt = torch.empty(H).uniform_(math.log(1e-3), math.log(1e-1)).exp()  # (H,) Δ₀
        self.dt_bias = mark_transition(nn.Parameter(inverse_softplus(dt)))  # (H,)
        if lti:
            self.a = mark_transition(nn.Parameter(torch.empty(H).uniform_(-8, -2)))  # (H,)
        else:
            self.A_log = mark_transition(nn.Parameter(torch.empty(H).uniform_(1, 16).log()))  # (H,)
        self.D = nn.Parameter(torch.ones(H))  # (H,)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def _project(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Split the projected input ``(B, L, d_model)`` into the SSD operands.

        Returns ``x`` ``(B, L, H, P)``, ``v`` ``(B, L, H, P)`` (``Δ x``, or ``x`` if LTI),
        ``B`` ``(B, L, N)`` (``B_i``, or ``Δ̃_i ⊙ B_i`` if LTI), ``C`` ``(B, L, N)`` and
        ``Δ`` ``(B, L, H)``.
        """
        xbc, dt = self.in_proj(u).split([self.H * self.P + 2 * self.N, self.n_dt], -1)
        x, B, C = self.conv(xbc).split([self.H * self.P, self.N, self.N], -1)
        x = x.unflatten(-1, (self.H, self.P))  # (B, L, H, P)
        dt = F.softplus(dt + self.dt_bias)  # (B, L, H)
        if self.lti:
            return x, x, B * dt.repeat_interleave(self.N // self.H, -1), C, dt
        return x, x * dt[..., None], B, C, dt

    def _log_lambda(self, dt: Tensor) -> Tensor:
        """``log Λ``: ``Δ A`` ``(B, L, H)``, or ``−softplus(a)`` ``(H,)`` if LTI."""
        return -F.softplus(self.a) if self.lti else -dt * self.A_log.exp()

    def forward(self, u: Tensor) -> Tensor:
        """Fast path: chunked SSD, all heads at once (C and B play the roles of q and k)."""
        x, v, B, C, dt = self._project(u)
        y = chunked_linear_attention(
            q=C[:, None],  # (B, 1, L, N): shared by the heads
            k=B[:, None],  # (B, 1, L, N)
            v=v.transpose(1, 2),  # (B, H, L, P)
            log_decay=self._log_lambda(dt).expand_as(dt).transpose(1, 2),  # (B, H, L)
        ).transpose(1, 2)  # (B, L, H, P)
        return self.out_proj((y + self.D[:, None] * x).flatten(2))

    def recurrent(self, u: Tensor) -> Tensor:
        """The literal recurrence ``h_i = Λ_i h_{i-1} + B_i v_iᵀ``, ``y_i = h_iᵀ C_i + D x_i``
        (per head, state ``(N, P)``), on the ``Λ`` that :meth:`transition` reports."""
        x, v, B, C, dt = self._project(u)
        lam = self.transition(u).values.expand_as(dt).transpose(1, 2)  # (B, H, L)
        y = linear_attention_recurrence(C[:, None], B[:, None], v.transpose(1, 2), lam)
        return self.out_proj((y.transpose(1, 2) + self.D[:, None] * x).flatten(2))

    def transition(self, u: Tensor) -> Transition:
        """``Λ_{i,h} = exp(Δ_{i,h} A_h)`` ``(B, L, H)``, or ``exp(−softplus(a_h))`` ``(H,)`` if LTI.

        Each value repeats ``P·N`` times on the diagonal of ``Λ_i`` (one head's state).
        """
        dt = None if self.lti else self._project(u)[-1]
        return Transition(self._log_lambda(dt).exp(), multiplicity=self.P * self.N)


class Mamba2LTI(Mamba2):
    """The paper's pseudo-LTI Mamba-2: one step size ``Δ_i`` per step shared by all heads, and
    ``Λ_h = exp(−softplus(a_h))`` fixed per head, so that ``Λ`` does not depend on the input."""

    lti = True
    label, color = "Mamba-2 (pseudo-LTI)", "#44AA99"

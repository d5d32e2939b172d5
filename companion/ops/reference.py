"""Readable references beside the fast ops: the literal loop each fast op must equal.

The mixers' ``recurrent`` views run on these, and ``tests/test_ops.py`` checks every fast op
against its reference (outputs and gradients, in float64).
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_attention_recurrence(
    q: Tensor, k: Tensor, v: Tensor, decay: Tensor | None = None
) -> Tensor:
    """The recurrence that :func:`~companion.ops.chunked_linear_attention` computes in chunks::

        S_i = Λ_i S_{i-1} + k_i v_iᵀ,    y_i = S_iᵀ q_i,    S_0 = 0.

    q, k: ``(B, H, L, d_k)``, or ``(B, 1, L, d_k)`` when shared by the heads; v:
    ``(B, H, L, d_v)``; decay: ``(B, H, L)`` holding ``Λ_i`` (not its log), or ``None`` for
    ``Λ_i = 1``. Returns ``(B, H, L, d_v)``. One Python step per time step.
    """
    Bsz, H, L, d_v = v.shape
    S = v.new_zeros(Bsz, H, q.shape[-1], d_v)  # (B, H, d_k, d_v)
    lams = decay.unbind(2) if decay is not None else [None] * L
    ys = []
    for q_i, k_i, v_i, lam_i in zip(q.unbind(2), k.unbind(2), v.unbind(2), lams, strict=True):
        if lam_i is not None:
            S = lam_i[..., None, None] * S
        S = S + k_i[..., :, None] * v_i[..., None, :]  # (B, H, d_k, d_v)
        ys.append((q_i[..., None, :] @ S).squeeze(-2))  # (B, H, d_v)
    return torch.stack(ys, 2)


def causal_conv_direct(u: Tensor, kernel: Tensor) -> Tensor:
    """``y_i = Σ_{j≤i} kernel_{i-j} u_j`` along the last axis, as a sum over lags: the
    reference of :func:`~companion.ops.fft_conv`. u: ``(..., L)``; kernel: ``(..., L)``."""
    L = u.shape[-1]
    y = torch.zeros_like(u * kernel[..., :1])
    for lag in range(L):
        y[..., lag:] = y[..., lag:] + kernel[..., lag : lag + 1] * u[..., : L - lag]
    return y

"""Causal linear attention (Katharopoulos et al., 2020) with feature map ``φ = elu + 1``.

Per head, with ``S_i = Σ_{j≤i} φ(k_j) v_jᵀ`` and ``z_i = Σ_{j≤i} φ(k_j)``:

* normalised:    ``η_i = φ(q_i)ᵀ z_i``, ``y_i = φ(q_i)ᵀ S_i / η_i``, ``Λ_i = η_{i-1}/η_i``;
* unnormalised:  ``η_i = 1``, ``y_i = φ(q_i)ᵀ S_i``, ``Λ_i = 1`` (a pure integrator).

Keys are not scaled by ``1/√d_k``, as in the paper's public code.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from companion.layers.attention import SeparableAttention, elu_plus_one


class LinearAttention(SeparableAttention):
    """Linear attention, normalised (``"linear"``; ``"linear_unnormalized"`` is
    :class:`UnnormalizedLinearAttention`).

    DSF view per head: ``h_i = S_i / η_i``, ``Λ_i = η_{i-1}/η_i``,
    ``B_i u_i = φ(k_i) v_iᵀ / η_i``, ``C_i = φ(q_i)ᵀ``, ``D_i = 0``.
    """

    chunked = True
    label, color = "Linear attn.", "#E69F00"
    normalized: ClassVar[bool] = True

    def parts(self, u: Tensor, conv: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        q, k, v = self.qkv(u, conv)
        phi_q, phi_k = elu_plus_one(q), elu_plus_one(k)  # (B, H, L, d_k)
        if self.normalized:
            log_eta = torch.log((phi_q * phi_k.cumsum(2)).sum(-1))  # (B, H, L): log φ(q_i)ᵀ z_i
        else:
            log_eta = torch.zeros_like(phi_q[..., 0])  # η ≡ 1, so Λ ≡ 1 exactly
        return phi_q, phi_k, v, log_eta


class UnnormalizedLinearAttention(LinearAttention):
    """Linear attention without its normaliser: ``η ≡ 1``, so ``Λ_i ≡ 1`` (the pure
    integrator, the grey reference of the figures)."""

    normalized = False
    label, color = "Linear attn. (unnorm.)", "#7F7F7F"

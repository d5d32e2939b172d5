"""Norm attention: linear attention whose normaliser is a learned, input-dependent scalar.

Per head, with ``φ`` the feature map (``elu + 1`` by default, identity for the image task) and
keys scaled by ``1/√d_k``::

    S_i = Σ_{j≤i} φ(k_j) v_jᵀ / √d_k,    n_i = w_nᵀ u_i + b,    η_i = exp(f(n_i + o)),
    y_i = φ(q_i)ᵀ S_i / η_i,             Λ_i = η_{i-1}/η_i = exp(f(n_{i-1} + o) − f(n_i + o)).

``n`` is read from the mixer input ``u`` (never through the short convolution); the per-head
offset ``o`` is learnable and starts at ``linspace(4, 9, H)``; ``f`` is ``norm_fn``. All of this
follows the paper's public code (``offset_init="exp"``, ``scale_B=True``; the projection of ``n``
keeps PyTorch's default ``nn.Linear`` initialisation).

One deviation: ``log η = f(n + o)`` is capped at ``LOG_ETA_MAX = 80``. The public code multiplies
by ``exp(−f)``, which in float32 turns subnormal at ``f ≈ 87`` and 0 at ``f ≈ 104``; with
``f = exp`` and offsets ``4…9`` every head but the first starts there (``exp(5.7) ≈ 290``).
Uncapped, ``Λ`` would reach ``e^{±8000}`` and the recurrence would compute ``∞ · 0``. Below the
cap the model is unchanged; above it a head's output is scaled by ``≤ e^{−80}`` and its ``n``
gets no gradient, in both versions: the head is switched off (and its ``Λ`` reads 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.layers.attention import FEATURE_MAPS, SeparableAttention
from companion.layers.base import Transition, check_choice
from companion.schema import Rule

LOG_ETA_MAX = 80.0


def _exp(x: Tensor) -> Tensor:
    """``min(exp(x), LOG_ETA_MAX)`` computed without overflowing (no ``inf`` to back-propagate)."""
    return torch.exp(x.clamp(max=math.log(LOG_ETA_MAX)))


NORM_FNS = {"exp": _exp, "softplus": F.softplus, "sigmoid": torch.sigmoid, "elu": F.elu}


class NormAttention(SeparableAttention):
    """Norm attention (Sieber et al., 2024, arXiv:2405.15731): ``(B, L, d)`` -> ``(B, L, d)``.

    DSF view per head: ``h_i = S_i / η_i``, ``Λ_i = exp(f(n_{i-1}+o) − f(n_i+o))``,
    ``B_i u_i = φ(k_i) v_iᵀ / (√d_k η_i)``, ``C_i = φ(q_i)ᵀ``, ``D_i = 0``.

    Options: ``conv`` (short causal conv on q, k, v), ``norm_fn`` (``f``: exp, softplus, sigmoid,
    elu), ``feature_map`` (``φ``: elu, identity).
    """

    chunked = True
    label, color = "Norm attn.", "#AA4499"

    OPTIONS = {
        **SeparableAttention.OPTIONS,
        "norm_fn": Rule(str, choices=tuple(NORM_FNS)),
        "feature_map": Rule(str, choices=tuple(FEATURE_MAPS)),
    }

    def __init__(
        self,
        d_model: int,
        n_heads: int = 1,
        state_dim: int = 64,
        *,
        conv: int = 0,
        norm_fn: str = "softplus",
        feature_map: str = "elu",
        dropout: float = 0.0,
    ):
        check_choice("norm_fn", norm_fn, NORM_FNS)
        check_choice("feature_map", feature_map, FEATURE_MAPS)
        super().__init__(d_model, n_heads, state_dim, conv=conv, dropout=dropout)
        self.norm_fn, self.feature_map = norm_fn, feature_map
        self.W_n = nn.Linear(d_model, n_heads)  # n_i = w_nᵀ u_i + b, one scalar per head
        self.offset = nn.Parameter(torch.linspace(4.0, 9.0, n_heads))  # o

    def log_eta(self, u: Tensor) -> Tensor:
        """``log η_i = min(f(n_i + o), LOG_ETA_MAX)``: ``(B, L, d_model)`` -> ``(B, H, L)``."""
        f = NORM_FNS[self.norm_fn]
        return f(self.W_n(u) + self.offset).clamp(max=LOG_ETA_MAX).transpose(1, 2)

    def parts(self, u: Tensor, conv: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        q, k, v = self.qkv(u, conv)
        phi = FEATURE_MAPS[self.feature_map]
        return phi(q), phi(k) / math.sqrt(self.d_k), v, self.log_eta(u)

    def transition_as_published(self, u: Tensor) -> Transition:
        """The public analysis' Λ: ``e_i = exp(−f(n_i + o))`` uncapped in float32, exact zeros
        replaced by ``2e-23``, then ``Λ_i = e_i / e_{i-1}`` (so two underflowed steps give 1)."""
        f = torch.exp if self.norm_fn == "exp" else NORM_FNS[self.norm_fn]
        e = torch.exp(-f((self.W_n(u) + self.offset).float())).to(u.dtype)  # (B, L, H)
        e = e.masked_fill(e == 0, 2e-23)
        return self.eta_transition(-torch.log(e).transpose(1, 2))

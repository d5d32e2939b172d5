"""What the three attention mixers share: projections, prefilter, heads, and the η-ratio Λ.

Every attention layer here has scores ``φ(q_i)ᵀψ(k_j)`` (for softmax with infinite-dimensional
features) and a positive normaliser ``η_i``, so with ``S_i = Σ_{j≤i} ψ(k_j) v_jᵀ`` its state is
``h_i = S_i / η_i`` and::

    h_i = Λ_i h_{i-1} + ψ(k_i) v_iᵀ / η_i,    y_i = h_iᵀ φ(q_i),    Λ_i = (η_{i-1} / η_i) · I,

one positive scalar per (batch, step, head) that repeats ``d_k · d_v`` times on the diagonal.

Widths follow the paper's public code: queries and keys are ``state_dim`` wide
(``d_k = state_dim / H`` per head), values ``d_model`` wide (``d_v = d_model / H``), so a head's
state ``h_i`` is ``d_k × d_v``. With ``conv = K > 0`` each of q, k, v passes through its own
causal depthwise convolution of width ``K`` and then SiLU (the public code's "full" variant);
Λ is always computed from these prefiltered q and k. Option ``dropout`` is the public code's
attention dropout: on the attention weights for softmax, on the attention output (before
``W_o``) for linear and norm attention; it acts in training mode only and never touches ``Λ``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.layers.base import Mixer, Transition
from companion.ops import (
    CausalConv,
    causal_depthwise_conv,
    chunked_linear_attention,
    linear_attention_recurrence,
)
from companion.schema import MAX_LENGTH, Rule


def eta_ratio(log_eta: Tensor) -> Tensor:
    """``Λ_i = η_{i-1} / η_i`` from ``log η``: ``(B, H, L)`` -> ``(B, L, H)``.

    ``Λ_1`` (``η_0`` is the empty sum) is the placeholder 1. Ratios beyond the dtype's range
    saturate at ``e^{cap}`` (about 1e38 in float32) instead of becoming ``inf``; every spectral
    bin above 100 is unaffected.
    """
    log_lam = F.pad(log_eta[..., :-1] - log_eta[..., 1:], (1, 0))  # (B, H, L), log Λ_1 = 0
    cap = math.floor(math.log(torch.finfo(log_eta.dtype).max))
    return log_lam.clamp(max=cap).exp().transpose(1, 2)


def elu_plus_one(x: Tensor) -> Tensor:
    """``φ(x) = elu(x) + 1 > 0``, the feature map of linear attention."""
    return F.elu(x) + 1


def identity(x: Tensor) -> Tensor:
    return x


FEATURE_MAPS = {"elu": elu_plus_one, "identity": identity}


class Attention(Mixer):
    """Base of the attention mixers: ``u (B, L, d_model)`` -> ``q, k (B, H, L, d_k)``,
    ``v (B, H, L, d_v)`` and back through ``W_o``; subclasses supply the attention itself."""

    family = "transformer"

    OPTIONS = {
        "conv": Rule(int, at_least=0, at_most=MAX_LENGTH),
        "dropout": Rule(float, at_least=0, below=1),
    }

    def __init__(
        self,
        d_model: int,
        n_heads: int = 1,
        state_dim: int = 64,
        *,
        conv: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model % n_heads or state_dim % n_heads:
            raise ValueError(
                f"d_model={d_model}, state_dim={state_dim}: not multiples of {n_heads=}"
            )
        self.n_heads, self.d_k, self.d_v = n_heads, state_dim // n_heads, d_model // n_heads
        self.W_q = nn.Linear(d_model, state_dim)
        self.W_k = nn.Linear(d_model, state_dim)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        self.conv = conv
        self.dropout = dropout  # attention dropout (public ``att_dropout``), training only
        self.drop = nn.Dropout(dropout)
        if conv:
            self.conv_q = CausalConv(state_dim, conv)
            self.conv_k = CausalConv(state_dim, conv)
            self.conv_v = CausalConv(d_model, conv)

    def qkv(self, u: Tensor, conv: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``W_q u, W_k u, W_v u`` (then conv and SiLU if ``conv`` is on and not skipped), each
        split into heads: ``(B, H, L, d_k)``, ``(B, H, L, d_k)``, ``(B, H, L, d_v)``.
        ``conv=False`` is only for the published analysis, which skips the prefilter.

        The three projections run as one product with the weights stacked, and their three
        depthwise convolutions as one over the stacked channels: the same numbers as three
        separate layers, in a third of the passes over the activations.
        """
        names = ("q", "k", "v")
        x = F.linear(
            u,
            torch.cat([getattr(self, f"W_{n}").weight for n in names]),
            torch.cat([getattr(self, f"W_{n}").bias for n in names]),
        )  # (B, L, 2·state_dim + d_model)
        if self.conv and conv:
            convs = [getattr(self, f"conv_{n}").conv for n in names]
            weight = torch.cat([c.weight[:, 0] for c in convs])  # (C, K)
            x = F.silu(causal_depthwise_conv(x, weight, torch.cat([c.bias for c in convs])))
        widths = [self.n_heads * self.d_k] * 2 + [self.n_heads * self.d_v]
        return tuple(
            t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2).contiguous()
            for t in x.split(widths, -1)
        )

    def output(self, y: Tensor) -> Tensor:
        """Merge heads ``(B, H, L, d_v)`` -> ``(B, L, d_model)`` and apply ``W_o``."""
        return self.W_o(y.transpose(1, 2).flatten(-2))

    def eta_transition(self, log_eta: Tensor) -> Transition:
        """The Transition of ``Λ_i = η_{i-1}/η_i`` given ``log η`` of shape ``(B, H, L)``."""
        return Transition(eta_ratio(log_eta), start=1, multiplicity=self.d_k * self.d_v)


class SeparableAttention(Attention):
    """Attention with scores ``φ(q_i)ᵀψ(k_j)`` and a normaliser ``η_i`` known in closed form.

    Subclasses return from :meth:`parts` the query features ``C_i = φ(q_i)``, the key features
    ``ψ(k_j)``, the values and ``log η``; the three views below follow from them:
    ``y_i = φ(q_i)ᵀ S_i / η_i`` (chunked, no loop over time), ``Λ_i = η_{i-1}/η_i``, and the
    recurrence ``h_i = Λ_i h_{i-1} + ψ(k_i) v_iᵀ / η_i``, ``y_i = h_iᵀ φ(q_i)``.
    """

    def parts(self, u: Tensor, conv: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return ``φ(q), ψ(k)``: ``(B, H, L, d_k)``; ``v``: ``(B, H, L, d_v)``;
        ``log η``: ``(B, H, L)``. ``conv=False`` skips the prefilter (published analysis)."""
        raise NotImplementedError  # pragma: no cover

    def forward(self, u: Tensor) -> Tensor:
        phi_q, psi_k, v, log_eta = self.parts(u)
        numerator = chunked_linear_attention(phi_q, psi_k, v)  # (B, H, L, d_v): φ(q_i)ᵀ S_i
        return self.output(self.drop(numerator * torch.exp(-log_eta)[..., None]))

    def transition(self, u: Tensor) -> Transition:
        return self.eta_transition(self.parts(u)[3])

    def transition_as_published(self, u: Tensor) -> Transition:
        """The public analysis' Λ: the same ratio, from q and k without the conv."""
        return self.eta_transition(self.parts(u, conv=False)[3])

    def recurrent(self, u: Tensor) -> Tensor:
        """The literal DSF recurrence, with ``Λ_i`` taken from :meth:`transition`."""
        phi_q, psi_k, v, log_eta = self.parts(u)
        b = psi_k * torch.exp(-log_eta)[..., None]  # (B, H, L, d_k): B_i u_i = b_i v_iᵀ
        lam = self.transition(u).values.transpose(1, 2)  # (B, H, L)
        return self.output(linear_attention_recurrence(phi_q, b, v, lam))

"""The identity mixer: the network with its sequence mixer removed, the floor of "used its state".

As a DSF system it is the memoryless one, with one channel per model dimension::

    h_i = 0 · h_{i-1} + u_i,    y_i = h_i,    Λ_i = 0,  B_i = C_i = I,  D = 0.

Every step sees only its own input: whatever a network with this mixer learns, it learns
without carrying anything across time (the learned positional embeddings of the attention
models still tell it where it is). The book trains it as the ``nomix`` control of every
experiment (``companion.grid.CONTROL``); it is not one of the paper's mixers, so it is not in
``companion.layers.MIXERS``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from companion.layers.base import Mixer, Transition


class Identity(Mixer):
    """``y = u`` on ``(B, L, d_model)``; ``n_heads`` and ``state_dim`` are ignored."""

    def __init__(self, d_model: int, n_heads: int = 1, state_dim: int = 1):
        super().__init__()
        self.d_model = d_model

    def forward(self, u: Tensor) -> Tensor:  # (B, L, d) -> (B, L, d)
        return u

    def recurrent(self, u: Tensor) -> Tensor:
        """The literal recurrence ``h_i = Λ h_{i-1} + u_i``, ``y_i = h_i`` with ``Λ = 0``."""
        lam = self.transition(u).values  # (d,)
        h = u.new_zeros(u.shape[0], u.shape[2])  # (B, d)
        out = []
        for u_i in u.unbind(1):  # (B, d)
            h = lam * h + u_i
            out.append(h)
        return torch.stack(out, 1) if out else u.clone()  # (B, L, d)

    def transition(self, u: Tensor) -> Transition:
        """``Λ = 0`` for every channel, time invariant: ``values`` ``(d_model,)``."""
        return Transition(u.new_zeros(self.d_model), group="mode")

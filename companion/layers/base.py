"""The contract every sequence mixer fulfils: one layer, three views of it.

A mixer maps ``u`` of shape ``(B, L, d_model)`` to ``y`` of the same shape and can be written as
the linear time-varying system of the Dynamical Systems Framework (DSF)::

    h_i = Λ_i h_{i-1} + B_i u_i,    y_i = C_i h_i + D_i u_i,    h_0 = 0.

* ``forward(u)``    the fast path (chunked matmuls, FFTs, fused attention);
* ``recurrent(u)``  the literal recurrence above, one step at a time, built on ``transition(u)``;
* ``transition(u)`` the eigenvalues of ``Λ_i`` as a :class:`Transition`.

In every mixer of this package but S4 ``Λ_i`` is diagonal (a scalar per head for attention and
Mamba-2, one complex value per mode for S4D and LRU), so its eigenvalues are its diagonal entries
and no matrix is built; S4's ``Λ`` is the dense discretised DPLR matrix ``Ā`` of each channel,
whose eigenvalues it computes in double precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from companion.schema import Rule


@dataclass(frozen=True)
class Transition:
    """Eigenvalues of the DSF state transition ``Λ_i`` of one layer.

    values:  ``(B, L, G)`` when ``Λ_i`` depends on the input, ``(G,)`` when the layer is time
             invariant; real or complex. ``G`` indexes the distinct eigenvalues (heads for
             attention and Mamba-2, channel × mode for S4D, modes for LRU).
    start:   first step at which ``Λ_i`` is defined. Attention layers have ``start=1`` because
             ``Λ_1 = η_0/η_1`` involves the empty normaliser ``η_0`` (``h_0 = 0`` makes it
             irrelevant); ``values[:, :start]`` is then a placeholder that the recurrence may
             use freely and that no summary reads.
    multiplicity: how often each value repeats on the diagonal of ``Λ_i`` (for attention, the
             ``d_k · d_v`` entries of one head's state; 1 for SSM modes).
    group:   what ``G`` indexes, for plots: ``"head"``, ``"channel_mode"`` or ``"mode"``.
    """

    values: Tensor
    start: int = 0
    multiplicity: int = 1
    group: str = "head"

    @property
    def time_invariant(self) -> bool:
        return self.values.dim() == 1

    def defined(self) -> Tensor:
        """``values`` restricted to the steps where ``Λ_i`` is defined: ``(B, L-start, G)``."""
        return self.values if self.time_invariant else self.values[:, self.start :]

    def eigenvalues(self) -> Tensor:
        """All defined eigenvalues as a flat 1-D tensor (multiplicity aside)."""
        return self.defined().reshape(-1)


class Mixer(nn.Module):
    """Base class of the sequence mixers; see the module docstring for the three views.

    Subclasses list in ``OPTIONS`` the keyword options they act on, each with the
    :class:`~companion.schema.Rule` of its values. Every mixer has the same constructor
    signature ``(d_model, n_heads, state_dim, **options)``, so model code can build any mixer
    from one config; ``companion.layers.make_mixer`` (and through it the model configuration)
    rejects an option that is not in ``OPTIONS``, or a value outside its rule, in one line.

    Each mixer also declares the facts the rest of the package reads from it, so that adding a
    mixer touches its module and the registry (``companion.layers.MIXERS``) only: ``family``,
    the blocks that wrap it (``companion.model``); ``chunked``, whether ``forward`` runs the
    chunked matmul op (``companion.ops.chunked``, timed by ``make bench``); ``label`` and
    ``color``, its name and colour in the book's figures (``companion.style``; colour-blind-safe
    hues of Okabe–Ito and Paul Tol's muted set: attention warm, SSMs cool, distinct lightness
    within each pair that is often compared).
    """

    OPTIONS: ClassVar[dict[str, Rule]] = {}
    family: ClassVar[str] = ""  # transformer | mamba | sequence_layer
    chunked: ClassVar[bool] = False
    label: ClassVar[str] = ""
    color: ClassVar[str] = "#4D4D4D"

    def forward(self, u: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def recurrent(self, u: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def transition(self, u: Tensor) -> Transition:  # pragma: no cover - abstract
        raise NotImplementedError

    def transition_as_published(self, u: Tensor) -> Transition:
        """Λ as the paper's public analysis computes it from ``u`` (``companion.spectra``
        documents the defects). Mixers whose published formula differs from the exact one
        override this next to ``transition``; for the others it is the exact transition."""
        return self.transition(u)


def check_choice(name: str, value, choices) -> None:
    """Raise a one-line ``ValueError`` naming the valid ``choices`` unless ``value`` is one."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def inverse_softplus(x: Tensor) -> Tensor:
    """``softplus⁻¹(x) = log(exp(x) − 1)``, stable for small and large ``x``."""
    return x + torch.log(-torch.expm1(-x))


def mark_ssm(param: nn.Parameter) -> nn.Parameter:
    """Tag an SSM parameter that the public code trains in its own optimiser group, with
    ``train.ssm_lr`` and no weight decay (S4's Λ, P, B, log Δ; see
    ``companion.model.param_groups``). Without ``ssm_lr`` the tag has no effect."""
    param._ssm = True
    return param


def mark_transition(param: nn.Parameter) -> nn.Parameter:
    """Tag a parameter that sets the transition ``Λ`` directly (Mamba-2's ``A_log``,
    ``dt_bias``, ``a``; LRU's ν, θ; S4's Λ, P, log Δ), so that ``train.decay_transition=false``
    can exempt exactly these from weight decay (the optimiser experiment of the book)."""
    param._transition = True
    return param

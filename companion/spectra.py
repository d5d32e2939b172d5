"""Eigenvalues of every layer's transition ``Λ_i``, taken from the real forward pass.

``collect(model, batch)`` runs the model once with forward hooks on each mixer: the hook sees
the mixer's actual input (after the block's norm; the mixer applies its own conv inside) and
asks the mixer for ``transition(u)``, the same ``Λ`` its ``recurrent`` path runs on. There is
no second copy of the model's equations here, so the analysis cannot drift from the model.

Summaries follow the paper: the share of ``|λ|`` in 7 magnitude bins with edges
0.1, 0.5, 0.9, 1, 10, 100, pooled over time steps (pad steps excluded) per layer and head, then
mean ± std over the batch elements; and 5 phase bins (degrees) for complex spectra.
Boundary convention: bins are closed on the right, ``(a, b]``, the first one ``[0, 0.1]``; so
``|λ| = 1`` (a perfect integrator) counts as memory ``(0.9, 1]``, not as amplification.

``as_published=True`` reproduces, one by one, the defects of the paper's public analysis
(see ``PUBLISHED_DEFECTS``) so the book can show both side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from companion.layers.base import Mixer, Transition
from companion.layers.linear import LinearAttention
from companion.layers.softmax import SoftmaxAttention
from companion.model import model_inputs

MAGNITUDE_EDGES = (0.1, 0.5, 0.9, 1.0, 10.0, 100.0)
MAGNITUDE_BINS = ("[0,0.1]", "(0.1,0.5]", "(0.5,0.9]", "(0.9,1]", "(1,10]", "(10,100]", ">100")
PHASE_EDGES = (1.0, 10.0, 45.0, 90.0)  # degrees; the last bin ends at 180
PHASE_BINS = ("[0,1]", "(1,10]", "(10,45]", "(45,90]", "(90,180]")

PUBLISHED_DEFECTS = {
    "layer_output": "Λ of layer ℓ is computed from the output of block ℓ, not from the input "
    "of its mixer",
    "no_norm": "the block's LayerNorm is not applied before the mixer's projections",
    "no_conv": "the short convolution and its SiLU are skipped (attention mixers)",
    "softmax_normalizer": "softmax scores lack 1/√d_h and masked future positions are multiplied "
    "by 0 before exp, adding (L−1−i)·exp(m_i) to every normaliser η_i",
    "dropout_at_init": "the pass at initialisation runs in training mode, dropout on",
    "s4_one_channel": "S4 reports the modes of one channel (index 1) instead of all channels",
    "s4_float32_eig": "S4's eigenvalues come from numpy.linalg.eigvals of the float32 discretised "
    "DPLR matrix; HiPPO-LegS is far from normal, so single precision invents complex parts and "
    "moves magnitudes (the exact ones are real at initialisation)",
    "boundaries_twice": "bins are closed on both sides: values on an edge count in two bins",
    "padding_pooled": "pad positions are pooled with real ones",
    "negative_phase": "phases are signed; negative angles fall in no bin",
}


@dataclass
class LayerSpectrum:
    """The transition of one layer on one batch.

    transition: the mixer's :class:`Transition` (values ``(B, L, G)`` or ``(G,)``).
    mask: ``(B, L)`` true at real (non-pad) steps, or ``None``.
    mixer: the mixer's registry name.
    """

    layer: int
    mixer: str
    transition: Transition
    mask: Tensor | None
    published: bool = False

    def samples(self) -> tuple[Tensor, Tensor | None]:
        """Defined values ``(B, L', G)`` (or ``(G,)``) and the matching mask ``(B, L')``."""
        t = self.transition
        if t.time_invariant or self.mask is None:
            return t.defined(), None
        return t.defined(), self.mask[:, t.start :]


def bin_index(x: Tensor, edges: tuple[float, ...]) -> Tensor:
    """Index of the right-closed bin ``(edges[i-1], edges[i]]`` holding each value of ``x``."""
    edges_t = torch.tensor(edges, dtype=x.dtype, device=x.device)
    return torch.bucketize(x.contiguous(), edges_t, right=False)


def membership(x: Tensor, edges: tuple[float, ...], published: bool = False, top=None) -> Tensor:
    """``(..., n_bins)`` 0/1 bin membership of each value of ``x``.

    Exact: one right-closed bin per value. Published: bin ``k`` is ``lo_k ≤ x ≤ hi_k`` with
    ``lo_0 = 0``, so edge values count twice and negative values nowhere; the last bin is
    ``x > edges[-1]``, or ``edges[-1] ≤ x ≤ top`` when ``top`` is given (phases)."""
    n_bins = len(edges) + 1
    if not published:
        return torch.nn.functional.one_hot(bin_index(x, edges), n_bins).to(torch.float64)
    lo = (0.0, *edges)
    hi = (*edges, top)
    cols = [(x >= a) & (x <= b) for a, b in zip(lo[:-1], hi[:-1], strict=True)]
    cols.append((x >= lo[-1]) & (x <= top) if top is not None else x > lo[-1])
    return torch.stack(cols, -1).to(torch.float64)


def fractions(member: Tensor, mask: Tensor | None) -> Tensor:
    """Share of each bin over time. member ``(B, L, G, n_bins)`` -> ``(B, G, n_bins)``;
    ``(G, n_bins)`` -> ``(1, 1, n_bins)`` (a time-invariant layer has one spectrum, pooled
    over its modes)."""
    if member.dim() == 2:
        return member.mean(0)[None, None]
    w = torch.ones(member.shape[:2], dtype=torch.float64) if mask is None else mask.double()
    counts = (member * w[..., None, None]).sum(1)  # (B, G, n_bins)
    return counts / w.sum(1).clamp_min(1.0)[:, None, None]


def summarize(spectra: list[LayerSpectrum]) -> pd.DataFrame:
    """Long table of bin shares: one row per (layer, head, kind, bin) with mean and std over the
    batch. ``head`` is the group index, or ``"all"`` for the pooled spectrum of the layer."""
    rows = []
    for s in spectra:
        values, mask = s.samples()
        values = values.detach().cpu()
        mask = None if mask is None else mask.cpu()
        kinds = [("magnitude", values.abs().double(), MAGNITUDE_EDGES, MAGNITUDE_BINS, None)]
        if values.is_complex():
            angle = torch.rad2deg(values.angle().double())
            kinds.append(
                ("phase", angle if s.published else angle.abs(), PHASE_EDGES, PHASE_BINS, 180.0)
            )
        for kind, x, edges, labels, top in kinds:
            member = membership(x, edges, s.published, top=top if s.published else None)
            frac = fractions(member, mask)  # (B, G, n_bins)
            per_head = {"all": frac.mean(1)}  # equal weight per head
            if x.dim() > 1:
                per_head.update({str(g): frac[:, g] for g in range(frac.shape[1])})
            for head, f in per_head.items():  # f: (B, n_bins)
                std = f.std(0, unbiased=False)
                for b, label in enumerate(labels):
                    rows.append(
                        dict(
                            layer=s.layer,
                            mixer=s.mixer,
                            head=head,
                            kind=kind,
                            bin=label,
                            mean=f[:, b].mean().item(),
                            std=std[b].item(),
                        )
                    )
    return pd.DataFrame(rows)


@torch.no_grad()
def collect(
    model: torch.nn.Module, batch: dict, as_published: bool = False, view=None
) -> list[LayerSpectrum]:
    """Λ of every mixer of ``model`` on ``batch`` from one forward pass.

    batch: a collated batch with ``input_ids`` ``(B, L)`` or ``inputs`` ``(B, L, d)`` and
    optionally ``mask`` ``(B, L)``. The model runs in eval mode (dropout off); its mode is
    restored afterwards. ``view(mixer, u)``: what is read from each mixer's actual input ``u``
    instead of ``mixer.transition(u)`` (a :class:`Transition`, or None to skip the mixer).
    """
    if as_published:
        return collect_published(model, batch)
    mixers = [m for m in model.modules() if isinstance(m, Mixer)]
    names = {id(b.mixer): b.mixer_name for b in getattr(model, "blocks", [])}
    found: list[tuple[int, Transition]] = []
    view = view or (lambda mixer, u: mixer.transition(u))

    def hook(module, args):
        seen = view(module, args[0])
        if seen is not None:
            found.append((mixers.index(module), seen))

    handles = [m.register_forward_pre_hook(hook) for m in mixers]
    was_training = model.training
    try:
        model.eval()
        model(*model_inputs(batch))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    mask = batch.get("mask")
    return [
        LayerSpectrum(
            layer=i,
            mixer=names.get(id(mixers[i]), type(mixers[i]).__name__),
            transition=t,
            mask=mask,
        )
        for i, t in found
    ]


@torch.no_grad()
def collect_published(model: torch.nn.Module, batch: dict) -> list[LayerSpectrum]:
    """The paper's public analysis, defects included (``PUBLISHED_DEFECTS``): embed without
    dropout, run the blocks one by one in the model's *current* mode (training mode at
    initialisation reproduces ``dropout_at_init``), and compute layer ℓ's Λ from block ℓ's
    output with ``transition_as_published`` (no norm, no conv). Pads are pooled."""
    x, _ = model_inputs(batch)
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    modes = [m.training for m in batch_norms]
    for m in batch_norms:  # the pass must not move running statistics: the published analysis
        m.eval()  # of the BatchNorm models (LRU, S4) reads parameters only
    try:
        u = model.embed(x)
        spectra = []
        for i, block in enumerate(model.blocks):
            u = block(u)
            t = block.mixer.transition_as_published(u)
            spectra.append(LayerSpectrum(i, block.mixer_name, t, mask=None, published=True))
    finally:
        for m, mode in zip(batch_norms, modes, strict=True):
            m.train(mode)
    return spectra


FACTORS = ("query change", "retention")  # the two factors of attention's Λ, in their order


def attention_factors(mixer: Mixer, u: Tensor) -> tuple[Tensor, Tensor]:
    """The two factors of an attention layer's ``Λ_i = η_{i-1}(q_{i-1}) / η_i(q_i)``, where
    ``η_t(q) = Σ_{j≤t} e(q, k_j)`` scores the keys up to ``t`` with query ``q``
    (``e = exp(q·k/√d_k)`` for softmax attention, ``φ(q)ᵀφ(k)`` for normalised linear attention)::

        Λ_i = [η_{i-1}(q_{i-1}) / η_{i-1}(q_i)] · [η_{i-1}(q_i) / η_i(q_i)]
            =        query change               ·   retention = 1 − p_ii ∈ (0, 1],

    ``p_ii`` being the attention the new key takes from its own query. Retention never exceeds
    1, so every ``Λ_i > 1`` comes from the query change: the same past keys scored by two
    consecutive queries. A constant added to every key leaves the attention (and retention) of
    softmax attention as they are but scales the query change by ``exp((q_{i-1} − q_i)·b/√d_k)``.

    ``u``: the mixer's input ``(B, L, d_model)``; returns ``(query_change, retention)``, each
    ``(B, L, H)`` like ``mixer.transition(u).values``, from the same q and k, 1 at the first step
    (``η_0`` is the empty sum); their product is ``Λ``.
    """
    if isinstance(mixer, SoftmaxAttention):
        q, k, _ = mixer.qkv(u)  # (B, H, L, d_k)
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, L, L): s_ij
        pos = torch.arange(scores.shape[-1], device=u.device)
        now = scores.masked_fill(pos > pos[:, None], float("-inf")).logsumexp(-1)  # log η_i(q_i)
        past = scores.masked_fill(pos >= pos[:, None], float("-inf")).logsumexp(-1)  # η_{i-1}(q_i)
    elif isinstance(mixer, LinearAttention) and mixer.normalized:
        phi_q, phi_k, _, _ = mixer.parts(u)  # (B, H, L, d_k)
        z = phi_k.cumsum(2)  # z_i = Σ_{j≤i} φ(k_j)
        z_before = torch.nn.functional.pad(z[..., :-1, :], (0, 0, 1, 0))  # z_{i-1}, z_0 = 0
        now = torch.log((phi_q * z).sum(-1))
        past = torch.log((phi_q * z_before).sum(-1))
    else:
        raise ValueError(
            f"attention factors: {type(mixer).__name__} has no normaliser summed over the past "
            "keys; softmax and normalised linear attention have one"
        )
    log_change = now[..., :-1] - past[..., 1:]  # log η_{i-1}(q_{i-1}) − log η_{i-1}(q_i), i ≥ 2
    log_retention = past[..., 1:] - now[..., 1:]
    pad = torch.nn.functional.pad
    return tuple(pad(x, (1, 0)).exp().transpose(1, 2) for x in (log_change, log_retention))

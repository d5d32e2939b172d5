"""Chunked causal linear attention with an optional scalar decay (the SSD algorithm).

Computes, for every head, ``y_i = Σ_{j≤i} exp(a_{j+1} + … + a_i) (q_i · k_j) v_j``, which is the
output of the recurrence ``S_i = exp(a_i) S_{i-1} + k_i v_iᵀ``, ``y_i = S_iᵀ q_i``. Without decay
(``log_decay=None``) it is plain causal linear attention. The sequence is cut into chunks of
``T`` steps: inside a chunk the work is a masked ``T × T`` matmul, across chunks the states are
carried by one small matmul over chunk indices (or, when the heads share ``q`` and ``k`` as
Mamba-2's do, passed from chunk to chunk), so no Python loop runs over time steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _segsum(a: Tensor) -> Tensor:
    """``out[..., t, s] = a[..., s+1] + … + a[..., t]`` for ``s ≤ t``, ``-inf`` above the diagonal.

    a: ``(..., T)`` -> ``(..., T, T)``. Computed from differences of one cumulative sum, which is
    safe at the chunk lengths used (T ≤ 128, see :func:`default_chunk`): the difference
    ``cs_t − cs_s`` carries an absolute rounding error of about ``ε·T·max|a|``, so the decay
    ``exp(cs_t − cs_s)`` gets that relative error (float32, T = 128, ``|a| ≤ 3``: 5e-5), and
    where the sums are large the decay itself is ``e^{−large}`` ≈ 0. Across chunks (the
    ``n × n`` carry) the same form applies to chunk totals; ``tests/test_ops.py`` compares the
    whole op with the step-by-step recurrence.
    """
    T = a.shape[-1]
    cs = a.cumsum(-1)  # (..., T)
    out = cs[..., :, None] - cs[..., None, :]  # (..., T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=a.device).tril()
    return out.masked_fill(~causal, float("-inf"))


LONG = 512  # sequence lengths from which the chunk follows the long-sequence rule


def default_chunk(d_k: int, d_v: int, length: int | None = None) -> int:
    """The chunk length ``T`` that balances the two costs of the algorithm: the intra-chunk
    products grow as ``L·T·(d_k + d_v)``, the chunk states as ``(L/T)·d_k·d_v``, so the best
    ``T`` grows as ``√(h)``, ``h = d_k d_v / (d_k + d_v)``; a power of 2.

    Short sequences (``length`` under :data:`LONG`, or not given): ``√(24 h)`` in [16, 128],
    chosen on whole CPU training steps of the quick runs; long sequences: ``√(320 h)`` in
    [64, 128], chosen on ``make bench``'s sweep of the op at the paper profile's shapes. The
    measurements behind both are in the README's section "Speed" and in ``make bench``'s
    ``chunks.csv``; ``make gpu-check`` times the same sweep on CUDA and fails at any paper shape
    where this chunk is more than 10 % slower than the best there."""
    h = d_k * d_v / (d_k + d_v)
    if length is not None and length >= LONG:
        return int(min(128, max(64, 2 ** round(math.log2(math.sqrt(320 * h))))))
    return int(min(128, max(16, 2 ** round(math.log2(math.sqrt(24 * h))))))


def chunked_linear_attention(
    q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor | None = None, chunk: int | None = None
) -> Tensor:
    """Causal (decayed) linear attention in chunks of ``chunk`` steps (default:
    :func:`default_chunk` of the head sizes and the length).

    q, k: ``(B, H, L, d_k)``, or ``(B, 1, L, d_k)`` when shared by all heads (Mamba-2's B and
    C; their scores are then formed once); v: ``(B, H, L, d_v)``; log_decay: ``(B, H, L)``
    holding ``a_i`` (``Λ_i = exp(a_i)``) or ``None`` for ``Λ_i = 1``. Returns ``(B, H, L, d_v)``.
    Any ``L`` works: the tail is padded with zeros, which a causal map never reads.
    """
    Bsz, H, L, _ = v.shape
    T = min(chunk or default_chunk(q.shape[-1], v.shape[-1], L), L)
    n = -(-L // T)
    pad = n * T - L
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        if log_decay is not None:
            log_decay = F.pad(log_decay, (0, pad))
    if log_decay is not None and q.shape[1] == k.shape[1] == 1:
        return _shared_qk(q[:, 0], k[:, 0], v, log_decay, T).transpose(1, 2)[:, :, :L]
    # 1. split into chunks: (B, H, n, T, d)
    q, k, v = (t.reshape(Bsz, t.shape[1], n, T, t.shape[-1]) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2)  # (B, H or 1, n, T, T)
    if log_decay is None:
        causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        # 2. intra-chunk outputs
        y = scores.masked_fill(~causal, 0.0) @ v  # (B, H, n, T, d_v)
        # 3. state at the end of each chunk, then the state entering each chunk
        chunk_states = k.transpose(-1, -2) @ v  # (B, H, n, d_k, d_v)
        states_in = chunk_states.cumsum(2) - chunk_states  # exclusive prefix sum over chunks
        # 4. inter-chunk outputs
        return (y + q @ states_in).reshape(Bsz, H, n * T, -1)[:, :, :L]
    a = log_decay.reshape(Bsz, H, n, T)
    a_cum = a.cumsum(-1)  # (B, H, n, T)
    # 2. intra-chunk outputs with decay exp(a_{s+1} + … + a_t)
    y = (scores * torch.exp(_segsum(a))) @ v  # (B, H, n, T, d_v)
    # 3. state at the end of each chunk: Σ_s exp(a_{s+1..T}) k_s v_sᵀ
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (B, H, n, T)
    chunk_states = (k * decay_to_end[..., None]).transpose(-1, -2) @ v  # (B, H, n, d_k, d_v)
    # 4. states entering each chunk: decay between chunk ends, one (n × n) matmul
    chunk_totals = F.pad(a_cum[..., -1], (1, 0))  # (B, H, n+1); pad = "before the first chunk"
    # carry[c, c'] = exp(total decay of the chunks strictly between c' and c), 0 unless c' < c
    carry = torch.exp(_segsum(chunk_totals))[..., :-1, 1:]  # (B, H, n, n)
    states_in = torch.einsum("bhcz,bhzkv->bhckv", carry, chunk_states)  # (B, H, n, d_k, d_v)
    # 5. inter-chunk outputs, decayed from the chunk start to step t
    y = y + (q * torch.exp(a_cum)[..., None]) @ states_in
    return y.reshape(Bsz, H, n * T, -1)[:, :, :L]


def _shared_qk(q: Tensor, k: Tensor, v: Tensor, log_decay: Tensor, T: int) -> Tensor:
    """The decayed case when every head shares ``q`` and ``k`` (Mamba-2's C and B), in the
    layout ``(B, chunk, step, head, d_v)`` so that the heads widen the products instead of
    copying ``q`` and ``k`` once per head: the chunk states are one ``(d_k × T) @ (T × H·d_v)``
    product per chunk, the decays multiply ``v`` (``d_v`` wide) rather than ``k``.

    q, k: ``(B, L, d_k)``; v: ``(B, H, L, d_v)``; log_decay: ``(B, H, L)``; ``L`` a multiple
    of ``T``. Returns ``(B, L, H, d_v)``.
    """
    Bsz, H, L, d_v = v.shape
    n = L // T
    q, k = (t.reshape(Bsz, n, T, -1) for t in (q, k))  # (B, n, T, d_k)
    v = v.transpose(1, 2).reshape(Bsz, n, T, H, d_v)
    a_cum = log_decay.reshape(Bsz, H, n, T).cumsum(-1)  # (B, H, n, T)
    # 1. intra-chunk outputs, per head: (q_t · k_s) exp(a_{s+1} + … + a_t) v_s
    decay = torch.exp(_segsum(log_decay.reshape(Bsz, H, n, T)))  # (B, H, n, T, T)
    weights = (q @ k.transpose(-1, -2))[:, None] * decay  # (B, H, n, T, T)
    y = (weights @ v.permute(0, 3, 1, 2, 4)).permute(0, 2, 3, 1, 4)  # (B, n, T, H, d_v)
    # 2. state at the end of each chunk: Σ_s k_s (exp(a_{s+1..T}) v_s)ᵀ, all heads in one product
    to_end = torch.exp(a_cum[..., -1:] - a_cum).permute(0, 2, 3, 1)  # (B, n, T, H)
    decayed_v = (v * to_end[..., None]).flatten(-2)  # (B, n, T, H·d_v)
    chunk_states = (k.transpose(-1, -2) @ decayed_v).unflatten(-1, (H, d_v))  # (B, n, d_k, H, d_v)
    # 3. states entering each chunk, passed from chunk to chunk: S_c = exp(Σ a over chunk c−1)
    # S_{c−1} + (state of chunk c−1). A loop over the n chunks (not the L steps): in this layout
    # the (n × n) product of the general case would copy every chunk state twice (transposed)
    chunk_decay = torch.exp(a_cum[..., -1]).permute(0, 2, 1)[:, :, None, :, None]  # (B,n,1,H,1)
    state = torch.zeros_like(chunk_states[:, 0])  # (B, d_k, H, d_v)
    states_in = [state]
    pairs = zip(chunk_decay[:, :-1].unbind(1), chunk_states[:, :-1].unbind(1), strict=True)
    for decay_c, state_c in pairs:
        state = decay_c * state + state_c
        states_in.append(state)
    states_in = torch.stack(states_in, 1)  # (B, n, d_k, H, d_v)
    # 4. inter-chunk outputs, decayed from the chunk start to step t
    from_start = torch.exp(a_cum).permute(0, 2, 3, 1)  # (B, n, T, H)
    inter = (q @ states_in.flatten(-2)).unflatten(-1, (H, d_v))  # (B, n, T, H, d_v)
    return (y + inter * from_start[..., None]).reshape(Bsz, L, H, d_v)

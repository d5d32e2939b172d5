"""Causal softmax attention and its DSF transition.

Per head, with scores ``s_ij = q_iᵀ k_j / √d_k``::

    η_i = Σ_{j≤i} exp(s_ij),    y_i = Σ_{j≤i} exp(s_ij) v_j / η_i,    Λ_i = η_{i-1} / η_i.

``φ(q_i)ᵀψ(k_j) = exp(s_ij)`` separates only through infinite-dimensional features, so there is
no finite state ``h_i``; ``Λ_i`` is still the scalar ratio of consecutive normalisers, which is
what the paper analyses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from companion.layers.attention import Attention
from companion.layers.base import Transition

SCORE_BUDGET = 2**24  # most score entries held at once when computing log η (64 MiB in float32)


def causal_log_normaliser(
    q: Tensor, k: Tensor, scale: float | None = None
) -> tuple[Tensor, Tensor]:
    """``log η_i = logsumexp_{j≤i} s_ij`` and ``max_{j≤i} s_ij`` with ``s_ij = scale · q_iᵀk_j``
    (default scale ``1/√d_k``): q, k ``(B, H, L, d_k)`` -> two ``(B, H, L)``.

    Masked entries are ``-inf`` (never multiplied by 0). Queries are taken in blocks so that at
    most ``SCORE_BUDGET`` scores exist at a time; a block only sees the keys up to its last query.
    """
    Bsz, H, L, d_k = q.shape
    scale = 1 / math.sqrt(d_k) if scale is None else scale
    block = max(1, SCORE_BUDGET // (Bsz * H * L))
    pos = torch.arange(L, device=q.device)
    lse, row_max = [], []
    for q_b, pos_b in zip(q.split(block, dim=2), pos.split(block), strict=True):
        end = int(pos_b[-1]) + 1
        s = q_b @ k[:, :, :end].transpose(-1, -2) * scale  # (B, H, T, end)
        s = s.masked_fill(pos_b[:, None] < pos[None, :end], float("-inf"))
        lse.append(s.logsumexp(-1))  # (B, H, T)
        row_max.append(s.amax(-1))
    return torch.cat(lse, dim=-1), torch.cat(row_max, dim=-1)


def fused_log_normaliser(q: Tensor, k: Tensor) -> Tensor:
    """``log η`` as :func:`causal_log_normaliser`, from PyTorch's fused CPU flash-attention
    kernel, which returns the row log-sum-exp it computes anyway. It has no backward for that
    output, so it serves only where no gradient is needed (the spectral analysis); elsewhere the
    blocked reference runs.

    Fixed, not dropped: q and k are made contiguous first. In PyTorch ≤ 2.13 this private
    kernel returns a wrong log-sum-exp when the innermost dimension is strided, as it is after
    the short causal conv (``conv > 0``; Λ off by up to 14 % at ``d_model = 128``, ``H = 4``),
    after a transpose of the last two axes or a strided slice of ``d_k``; the public SDPA (the
    layer output) is right. After the copy the kernel only ever sees one layout, and it matches
    the blocked reference to float rounding for every layout tried (after conv, transposed,
    strided, sliced or padded ``d_k``, expanded, offset; the first five are in
    ``tests/test_analysis_path.py``). It stays because it is still much faster than the
    blocked reference, copy included (README, *Speed*).
    """
    flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad)
    if flash is None or needs_grad or q.device.type != "cpu":
        return causal_log_normaliser(q, k)[0]
    q, k = q.contiguous(), k.contiguous()
    values = torch.zeros_like(q)  # the kernel needs d_v = d_k; the values do not matter
    return flash(q, k, values, 0.0, True, scale=1 / math.sqrt(q.shape[-1]))[1]


def published_log_normaliser(q: Tensor, k: Tensor) -> Tensor:
    """The normaliser of the paper's public analysis, as it computes it.

    Scores ``a_ij = q_iᵀk_j`` lack ``1/√d_k`` and are multiplied by a 0/1 causal mask before
    ``exp``, so each of the ``L−1−i`` future entries adds ``exp(m_i)`` with
    ``m_i = max(0, max_{j≤i} a_ij)`` (the row maximum it subtracts, masked zeros included)::

        η̃_i = Σ_{j≤i} exp(a_ij) + (L − 1 − i) · exp(m_i).

    q, k ``(B, H, L, d_k)`` -> ``log η̃`` ``(B, H, L)``.
    """
    L = q.shape[2]
    lse, row_max = causal_log_normaliser(q, k, scale=1.0)
    future = torch.arange(L - 1, -1, -1, device=q.device, dtype=q.dtype)  # L − 1 − i
    spurious = torch.log(future) + row_max.clamp(min=0.0)  # log((L−1−i) exp(m_i)); -inf at the end
    return torch.logaddexp(lse, spurious)


def causal_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0) -> Tensor:
    """Fused causal softmax attention with scale ``1/√d_k``: q, k ``(B, H, L, d_k)``,
    v ``(B, H, L, d_v)`` -> ``(B, H, L, d_v)``; ``dropout`` acts on the attention weights.

    PyTorch's fused CPU kernel needs ``d_k = d_v`` (otherwise it materialises the ``L × L``
    scores, about 3× slower at ``L = 1024``), so the narrower side is zero-padded: zeros change
    neither ``q_i·k_j`` nor the output's first ``d_v`` columns.
    """
    d_k, d_v = q.shape[-1], v.shape[-1]
    d = max(d_k, d_v)
    q, k, v = (F.pad(x, (0, d - x.shape[-1])) for x in (q, k, v))
    y = F.scaled_dot_product_attention(
        q, k, v, dropout_p=dropout, is_causal=True, scale=1 / math.sqrt(d_k)
    )
    return y[..., :d_v]


class SoftmaxAttention(Attention):
    """Multi-head causal softmax attention: ``(B, L, d_model)`` -> ``(B, L, d_model)``.

    ``forward`` uses PyTorch's fused ``scaled_dot_product_attention``; ``transition`` computes
    ``log η`` with a blocked, masked logsumexp, so ``Λ_i = exp(log η_{i-1} − log η_i)`` stays
    finite where ``η`` itself would overflow.
    """

    label, color = "Softmax attn.", "#882255"

    def forward(self, u: Tensor) -> Tensor:
        q, k, v = self.qkv(u)
        return self.output(causal_attention(q, k, v, self.dropout if self.training else 0.0))

    def transition(self, u: Tensor) -> Transition:
        q, k, _ = self.qkv(u)
        return self.eta_transition(fused_log_normaliser(q, k))

    def transition_as_published(self, u: Tensor) -> Transition:
        """The public analysis' Λ: no conv, no ``1/√d_k``, spurious masked terms (see
        :func:`published_log_normaliser`)."""
        q, k, _ = self.qkv(u, conv=False)
        return self.eta_transition(published_log_normaliser(q, k))

    def recurrent(self, u: Tensor) -> Tensor:
        """Step-by-step reference: softmax attention has no finite state to recur on.

        For each step ``i`` the numerator ``Σ_{j≤i} exp(s_ij − m_i) v_j`` (``m_i = max_j s_ij``)
        is formed explicitly from a ``-inf``-masked score row, and the normaliser comes from the
        telescoping of ``transition``'s ``Λ``: ``log η_i = log η_1 − Σ_{k=2..i} log Λ_k`` with
        ``η_1 = exp(s_11)``. So ``y_i = numerator_i · exp(m_i − log η_i)`` is correct exactly
        when ``Λ`` is.
        """
        q, k, v = self.qkv(u)  # (B, H, L, d)
        k, v = k.contiguous(), v.contiguous()  # else every step's matmul copies them
        scale = 1 / math.sqrt(self.d_k)
        log_lam = torch.log(self.transition(u).values).transpose(1, 2)  # (B, H, L)
        log_eta_1 = (q[:, :, 0] * k[:, :, 0]).sum(-1) * scale  # (B, H): log η_1 = s_11
        log_eta = log_eta_1[..., None] - F.pad(log_lam[..., 1:].cumsum(-1), (1, 0))  # (B, H, L)
        pos = torch.arange(u.shape[1], device=u.device)
        ys = []
        for i, (q_i, log_eta_i) in enumerate(zip(q.unbind(2), log_eta.unbind(-1), strict=True)):
            s = (k @ q_i[..., None]).squeeze(-1) * scale  # (B, H, L): s_ij
            s = s.masked_fill(pos > i, float("-inf"))
            m = s.amax(-1, keepdim=True)  # (B, H, 1)
            numerator = (torch.exp(s - m)[..., None, :] @ v).squeeze(-2)  # (B, H, d_v)
            ys.append(numerator * torch.exp(m - log_eta_i[..., None]))
        return self.output(torch.stack(ys, dim=2))

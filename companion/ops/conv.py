"""Convolutions: the short causal depthwise prefilter and long causal convolution by FFT."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _CausalDepthwise(torch.autograd.Function):
    """``y_i = b + Σ_{j<K} w_{K-1-j} ⊙ x_{i-j}`` on channel-last ``(B, L, C)``, with its backward
    written out: ``K`` shifted multiply-adds each way and one product-sum per tap for ``w``.

    The input stays channel-last, so no transpose is copied and the output is contiguous for
    the element-wise ops that follow (through ``nn.Conv1d`` these ran on a strided layout and
    their backward passes took up to 8× longer). Weights ``(C, K)`` in ``nn.Conv1d``'s order
    (tap ``K-1`` multiplies the current step), bias ``(C,)``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        L, K = x.shape[1], weight.shape[1]
        y = torch.addcmul(bias, x, weight[:, K - 1])  # lag 0
        for lag in range(1, min(K, L)):
            y[:, lag:].addcmul_(x[:, : L - lag], weight[:, K - 1 - lag])
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, weight = ctx.saved_tensors
        L, K = x.shape[1], weight.shape[1]
        grad_x = grad * weight[:, K - 1]
        grad_w = torch.zeros_like(weight)
        grad_w[:, K - 1] = (grad * x).sum((0, 1))
        for lag in range(1, min(K, L)):
            grad_x[:, : L - lag].addcmul_(grad[:, lag:], weight[:, K - 1 - lag])
            grad_w[:, K - 1 - lag] = (grad[:, lag:] * x[:, : L - lag]).sum((0, 1))
        return grad_x, grad_w, grad.sum((0, 1))


def causal_depthwise_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Depthwise causal convolution over time: ``x`` ``(B, L, C)``, ``weight`` ``(C, K)`` as
    ``nn.Conv1d`` stores it (less its middle axis), ``bias`` ``(C,)`` -> ``(B, L, C)``. The
    ``K-1`` steps before the sequence are zeros, so output ``i`` never sees inputs after ``i``."""
    return _CausalDepthwise.apply(x, weight.to(x.dtype), bias.to(x.dtype))


class CausalConv(nn.Module):
    """Depthwise causal 1-D convolution over time: ``x_i ← Σ_{j<K} w_j x_{i-j} + b``.

    Acts on ``(B, L, C)`` and returns ``(B, L, C)``. Parameters and initialisation are those of
    ``nn.Conv1d(C, C, K, groups=C)`` (the public code's); :func:`causal_depthwise_conv` computes
    it. In the DSF it is a nilpotent prefilter.
    """

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return causal_depthwise_conv(x, self.conv.weight[:, 0], self.conv.bias)


def fft_conv(u: Tensor, kernel: Tensor) -> Tensor:
    """Causal convolution ``y_i = Σ_{j≤i} kernel_{i-j} u_j`` along the last axis, by FFT.

    u: ``(..., L)``; kernel: ``(..., L)`` broadcastable against ``u``; real or complex.
    Zero-padding to ``2L`` turns the FFT's circular convolution into a linear one.
    """
    L = u.shape[-1]
    if u.is_complex() or kernel.is_complex():
        y = torch.fft.ifft(torch.fft.fft(u, n=2 * L) * torch.fft.fft(kernel, n=2 * L), n=2 * L)
    else:
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(kernel, n=2 * L), n=2 * L)
    return y[..., :L]

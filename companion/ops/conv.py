"""Convolutions: the short causal depthwise prefilter and long causal convolution by FFT."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _channels_last(x: Tensor) -> Tensor:
    """``(B, L, C)`` contiguous as the ``(B, C, 1, L)`` view that 2-D convolutions read in their
    channels-last layout (no copy)."""
    return x.transpose(1, 2).unsqueeze(2)


class _CausalDepthwise(torch.autograd.Function):
    """``y_i = b + Σ_{j<K} w_{K-1-j} ⊙ x_{i-j}`` on channel-last ``(B, L, C)``.

    The input gets ``K-1`` zero steps in front (by concatenation: ``F.pad`` would first fill
    the whole output with zeros) and is handed, still channel-last, to PyTorch's 2-D depthwise
    convolution as ``(B, C, 1, L+K-1)``: on the CPU this is oneDNN's channels-last kernel (4×
    faster than ``K`` shifted multiply-adds, with no transposed copy), and the output is
    contiguous ``(B, L, C)`` for the element-wise ops that follow. The backward is the
    convolution's own for ``x`` and ``w``; ``b``'s gradient is a column sum (the convolution's
    own took 50× longer at ``32 × 64 × 192``). Weights ``(C, K)`` in ``nn.Conv1d``'s order (tap
    ``K-1`` multiplies the current step), bias ``(C,)``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        K = weight.shape[1]
        padded = torch.cat([x.new_zeros(x.shape[0], K - 1, x.shape[2]), x], 1)  # (B, L+K-1, C)
        kernel = weight[:, None, None, :]  # (C, 1, 1, K)
        y = F.conv2d(_channels_last(padded), kernel, bias, groups=weight.shape[0])
        ctx.save_for_backward(padded, kernel)
        return y.squeeze(2).transpose(1, 2)  # (B, L, C), contiguous

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        padded, kernel = ctx.saved_tensors
        C, K = kernel.shape[0], kernel.shape[-1]
        grad = grad.contiguous()
        grad_padded, grad_kernel, _ = torch.ops.aten.convolution_backward(
            _channels_last(grad),
            _channels_last(padded),
            kernel,
            None,  # no bias sizes: its gradient is not asked for
            [1, 1],  # stride
            [0, 0],  # padding (done above)
            [1, 1],  # dilation
            False,  # not transposed
            [0, 0],  # output padding
            C,  # groups: depthwise
            [True, True, False],
        )
        grad_x = grad_padded.squeeze(2).transpose(1, 2)[:, K - 1 :]
        return grad_x, grad_kernel[:, 0, 0], grad.sum((0, 1))


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

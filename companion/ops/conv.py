"""Convolutions: the short causal depthwise prefilter and long causal convolution by FFT."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv(nn.Module):
    """Depthwise causal 1-D convolution over time: ``x_i ← Σ_{j<K} w_j x_{i-j} + b``.

    Acts on ``(B, L, C)`` and returns ``(B, L, C)``; the ``K-1`` steps before the sequence are
    zeros, so output ``i`` never sees inputs after ``i``. In the DSF it is a nilpotent prefilter.
    """

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x.transpose(1, 2), (self.kernel_size - 1, 0))  # (B, C, K-1+L)
        return self.conv(x).transpose(1, 2)


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

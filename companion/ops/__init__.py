"""Fast algorithms shared by the mixers; the mixers' ``recurrent`` paths are their references."""

from companion.ops.chunked import chunked_linear_attention
from companion.ops.conv import CausalConv, fft_conv

__all__ = ["CausalConv", "chunked_linear_attention", "fft_conv"]

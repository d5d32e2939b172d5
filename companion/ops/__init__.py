"""Fast algorithms shared by the mixers; each has a literal reference in the mixers' ``recurrent``."""

from companion.ops.chunked import chunked_linear_attention
from companion.ops.conv import CausalConv, fft_conv

__all__ = ["CausalConv", "chunked_linear_attention", "fft_conv"]

"""Fast algorithms shared by the mixers, and beside them (``reference``) the literal loops
they must equal."""

from companion.ops.chunked import chunked_linear_attention
from companion.ops.conv import CausalConv, causal_depthwise_conv, fft_conv
from companion.ops.reference import causal_conv_direct, linear_attention_recurrence

__all__ = [
    "CausalConv",
    "causal_conv_direct",
    "causal_depthwise_conv",
    "chunked_linear_attention",
    "fft_conv",
    "linear_attention_recurrence",
]

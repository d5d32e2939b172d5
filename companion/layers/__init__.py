"""The sequence mixers of the paper, each a :class:`~companion.layers.base.Mixer`.

>>> from companion.layers import make_mixer, MIXERS
>>> m = make_mixer("mamba2", d_model=64, n_heads=4, state_dim=16)
"""

from __future__ import annotations

from companion.layers.base import Mixer, Transition
from companion.layers.identity import Identity
from companion.layers.linear import LinearAttention, UnnormalizedLinearAttention
from companion.layers.lru import LRU
from companion.layers.mamba2 import Mamba2, Mamba2LTI
from companion.layers.norm import NormAttention
from companion.layers.s4 import S4
from companion.layers.s4d import S4D
from companion.layers.softmax import SoftmaxAttention
from companion.schema import check

# name -> class, in the book's order of models; every list of mixers derives from it
REGISTRY: dict[str, type[Mixer]] = {
    "softmax": SoftmaxAttention,
    "linear": LinearAttention,
    "linear_unnormalized": UnnormalizedLinearAttention,
    "norm": NormAttention,
    "s4": S4,
    "s4d": S4D,
    "lru": LRU,
    "mamba2": Mamba2,
    "mamba2_lti": Mamba2LTI,
    "identity": Identity,
}
IDENTITY = "identity"  # the no-mixing control (``model.mixing: false``), not a paper mixer
MIXERS: tuple[str, ...] = tuple(n for n in REGISTRY if n != IDENTITY)


def mixer_class(name: str) -> type[Mixer]:
    """The class behind a mixer name; raises ``ValueError`` naming the valid choices."""
    if name not in REGISTRY:
        raise ValueError(f"unknown mixer {name!r}; choose one of: {', '.join(MIXERS)}")
    return REGISTRY[name]


def mixer_key(name: str) -> tuple:
    """Sort key of the registry's order (the book's order of models); unknown names last,
    alphabetically."""
    return (MIXERS.index(name) if name in MIXERS else len(MIXERS), str(name))


def check_options(name: str, options) -> dict:
    """``options`` of mixer ``name`` checked against its ``OPTIONS`` and normalised; an option
    it does not act on, or a value outside its rule, is a one-line ``ConfigError``."""
    return check(mixer_class(name), options, "model.mixer_options.", owner=f" of mixer {name!r}")


def make_mixer(name: str, d_model: int, n_heads: int = 1, state_dim: int = 64, **options) -> Mixer:
    """Build mixer ``name`` acting on ``(B, L, d_model)``; a misspelt or misplaced option is a
    one-line ``ConfigError`` naming the valid ones."""
    options = check_options(name, options)
    return mixer_class(name)(d_model=d_model, n_heads=n_heads, state_dim=state_dim, **options)


__all__ = [
    "IDENTITY",
    "MIXERS",
    "REGISTRY",
    "Mixer",
    "Transition",
    "check_options",
    "make_mixer",
    "mixer_class",
    "mixer_key",
]

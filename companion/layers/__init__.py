"""The sequence mixers of the paper, each a :class:`~companion.layers.base.Mixer`.

>>> from companion.layers import make_mixer, MIXERS
>>> m = make_mixer("mamba2", d_model=64, n_heads=4, state_dim=16)
"""

from __future__ import annotations

from importlib import import_module

from companion.layers.base import Mixer, Transition
from companion.schema import check

# name -> (module, class, fixed keyword arguments)
_REGISTRY: dict[str, tuple[str, str, dict]] = {
    "softmax": ("companion.layers.softmax", "SoftmaxAttention", {}),
    "linear": ("companion.layers.linear", "LinearAttention", {"normalized": True}),
    "linear_unnormalized": ("companion.layers.linear", "LinearAttention", {"normalized": False}),
    "norm": ("companion.layers.norm", "NormAttention", {}),
    "s4": ("companion.layers.s4", "S4", {}),
    "s4d": ("companion.layers.s4d", "S4D", {}),
    "lru": ("companion.layers.lru", "LRU", {}),
    "mamba2": ("companion.layers.mamba2", "Mamba2", {"lti": False}),
    "mamba2_lti": ("companion.layers.mamba2", "Mamba2", {"lti": True}),
    "identity": ("companion.layers.identity", "Identity", {}),
}
IDENTITY = "identity"  # the no-mixing control (``model.mixing: false``), not a paper mixer
MIXERS: tuple[str, ...] = tuple(n for n in _REGISTRY if n != IDENTITY)


def mixer_class(name: str) -> type[Mixer]:
    """The class behind a mixer name; raises ``ValueError`` naming the valid choices."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown mixer {name!r}; choose one of: {', '.join(MIXERS)}")
    module, cls, _ = _REGISTRY[name]
    return getattr(import_module(module), cls)


def check_options(name: str, options) -> dict:
    """``options`` of mixer ``name`` checked against its ``OPTIONS`` and normalised; an option
    it does not act on, or a value outside its rule, is a one-line ``ConfigError``."""
    return check(mixer_class(name), options, "model.mixer_options.", owner=f" of mixer {name!r}")


def make_mixer(name: str, d_model: int, n_heads: int = 1, state_dim: int = 64, **options) -> Mixer:
    """Build mixer ``name`` acting on ``(B, L, d_model)``; a misspelt or misplaced option is a
    one-line ``ConfigError`` naming the valid ones."""
    options = check_options(name, options)
    return mixer_class(name)(
        d_model=d_model, n_heads=n_heads, state_dim=state_dim, **_REGISTRY[name][2], **options
    )


__all__ = [
    "IDENTITY",
    "MIXERS",
    "Mixer",
    "Transition",
    "check_options",
    "make_mixer",
    "mixer_class",
]

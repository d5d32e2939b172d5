"""Model assembly: encoder, a stack of pre-norm residual blocks around one mixer each, a head.

::

    u⁰ = Embed(tokens) [+ positions]   or   Linear(pixels)          (B, L, d_model)
    for each block ℓ:   x = u + Mixer(Norm(u))
                        x = x + MLP(Norm(x))                          (MLP / GLU / none)
                        u = x ⊙ SiLU(W_z u)                           (optional output gate)
    logits = Head(Norm(u))        masked mean over time -> classes, or per token -> vocabulary

The output gate is the paper's "gating": it changes the read-out ``C_i`` of the DSF view, never
the transition ``Λ_i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.layers import make_mixer, mixer_class

MLP_KINDS = ("mlp", "glu", "none")
HEADS = ("classify", "token")


@dataclass
class ModelConfig:
    """Everything ``build_model`` needs. Input is tokens (``vocab_size``) or continuous
    features (``input_dim``); the head classifies (``n_classes``) or predicts a token per
    position (``head="token"``: language modelling and MQAR)."""

    mixer: str
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 1
    state_dim: int = 64
    mixer_options: dict = field(default_factory=dict)
    mlp: str = "mlp"
    mlp_ratio: float = 2.0  # MLP width = mlp_ratio · d_model
    gate: bool = False
    dropout: float = 0.0
    positional: bool = False  # learned positional embeddings (needs max_len)
    # facts of the task, filled in by the training code:
    vocab_size: int | None = None
    input_dim: int | None = None
    max_len: int | None = None
    head: str = "classify"
    n_classes: int | None = None

    def __post_init__(self):
        cls = mixer_class(self.mixer)
        unknown = set(self.mixer_options) - set(cls.OPTIONS)
        if unknown:
            valid = ", ".join(cls.OPTIONS) or "none"
            raise ValueError(
                f"option(s) {', '.join(sorted(unknown))} do not apply to mixer {self.mixer!r}; "
                f"its options: {valid}"
            )
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"unknown mlp {self.mlp!r}; choose one of: {', '.join(MLP_KINDS)}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of: {', '.join(HEADS)}")
        if (self.vocab_size is None) == (self.input_dim is None):
            raise ValueError("give exactly one of vocab_size (tokens) or input_dim (features)")
        if self.head == "classify" and not self.n_classes:
            raise ValueError("a classification head needs n_classes")
        if self.head == "token" and not self.vocab_size:
            raise ValueError("a per-token head needs vocab_size")
        if self.positional and not self.max_len:
            raise ValueError("learned positional embeddings need max_len")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")


class MLP(nn.Module):
    """Position-wise feed-forward: ``W₂ GELU(W₁ x)`` or, for ``glu``, ``W₂ (W₁ x ⊙ SiLU(W₃ x))``."""

    def __init__(self, d_model: int, ratio: float, glu: bool):
        super().__init__()
        hidden = max(1, round(ratio * d_model))
        self.glu = glu
        self.up = nn.Linear(d_model, 2 * hidden if glu else hidden)
        self.down = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:  # (B, L, d) -> (B, L, d)
        h = self.up(x)
        h = h.chunk(2, -1)[0] * F.silu(h.chunk(2, -1)[1]) if self.glu else F.gelu(h)
        return self.down(h)


class Block(nn.Module):
    """Pre-norm residual block around one mixer, with optional MLP and output gate."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.mixer_name = cfg.mixer
        self.mixer = make_mixer(
            cfg.mixer, cfg.d_model, cfg.n_heads, cfg.state_dim, **cfg.mixer_options
        )
        self.mlp = None
        if cfg.mlp != "none":
            self.mlp_norm = nn.LayerNorm(cfg.d_model)
            self.mlp = MLP(cfg.d_model, cfg.mlp_ratio, glu=cfg.mlp == "glu")
        self.gate = None
        if cfg.gate:
            self.gate = nn.Linear(cfg.d_model, cfg.d_model)
            nn.init.xavier_uniform_(self.gate.weight, gain=0.1)  # small weights and bias 1:
            nn.init.ones_(self.gate.bias)  # the gate starts near SiLU(1) ≈ 0.73 everywhere
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, u: Tensor) -> Tensor:  # (B, L, d) -> (B, L, d)
        x = u + self.drop(self.mixer(self.norm(u)))
        if self.mlp is not None:
            x = x + self.drop(self.mlp(self.mlp_norm(x)))
        if self.gate is not None:
            x = x * F.silu(self.gate(u))
        return x


class SequenceModel(nn.Module):
    """Encoder, ``n_layers`` blocks, final norm and head. ``forward(x, mask)`` returns logits:
    ``(B, n_classes)`` for classification, ``(B, L, vocab_size)`` per token."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        if cfg.vocab_size is not None:
            self.encoder = nn.Embedding(cfg.vocab_size, cfg.d_model)
        else:
            self.encoder = nn.Linear(cfg.input_dim, cfg.d_model)
        self.positions = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.positional else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.head == "classify":
            self.head = nn.Sequential(
                nn.Linear(cfg.d_model, cfg.d_model),
                nn.ReLU(),
                nn.Linear(cfg.d_model, cfg.n_classes),
            )
        else:
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def embed(self, x: Tensor) -> Tensor:
        """Encoder and positions, before dropout: ``(B, L)`` or ``(B, L, input_dim)`` ->
        ``(B, L, d)``."""
        u = self.encoder(x)
        if self.positions is not None:
            u = u + self.positions(torch.arange(u.shape[1], device=u.device))
        return u

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: tokens ``(B, L)`` or features ``(B, L, input_dim)``; mask: ``(B, L)`` true at real
        positions (padding is at the end, so causal mixers never read it before a real token)."""
        u = self.drop(self.embed(x))  # (B, L, d)
        for block in self.blocks:
            u = block(u)
        u = self.norm(u)
        if self.config.head == "token":
            return self.head(u)  # (B, L, vocab)
        if mask is None:
            pooled = u.mean(1)
        else:
            w = mask.to(u.dtype)[..., None]  # (B, L, 1)
            pooled = (u * w).sum(1) / w.sum(1).clamp_min(1.0)  # masked mean over time
        return self.head(pooled)  # (B, n_classes)

    def mixers(self) -> list[nn.Module]:
        """The mixer of each block, in depth order."""
        return [block.mixer for block in self.blocks]


def build_model(config: ModelConfig | dict) -> SequenceModel:
    """Build a model from a :class:`ModelConfig` or a dict of its fields."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig(**config)
    return SequenceModel(cfg)


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, ssm_lr: float | None
) -> list[dict]:
    """AdamW parameter groups: SSM parameters (tagged with ``mark_ssm``) get ``ssm_lr`` and no
    weight decay; biases, norms and embeddings no weight decay; the rest ``weight_decay``.
    With ``ssm_lr=None`` SSM parameters are treated like all others (the public configs do
    this for LRU and Mamba-2)."""
    groups = {"ssm": [], "no_decay": [], "decay": []}
    no_decay_modules = (nn.LayerNorm, nn.Embedding)
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if ssm_lr is not None and getattr(p, "_ssm", False):
                groups["ssm"].append(p)
            elif name.endswith("bias") or isinstance(module, no_decay_modules) or p.dim() < 2:
                groups["no_decay"].append(p)
            else:
                groups["decay"].append(p)
    return [
        {"params": groups["decay"], "lr": lr, "weight_decay": weight_decay},
        {"params": groups["no_decay"], "lr": lr, "weight_decay": 0.0},
        {"params": groups["ssm"], "lr": ssm_lr or lr, "weight_decay": 0.0},
    ]

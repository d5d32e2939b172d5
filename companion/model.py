"""Model assembly as the paper's public code builds it: encoder, ``n_layers`` blocks, head.

The public code has three model families, and each mixer belongs to one of them (its class's
``family``):

* ``transformer`` (softmax, linear, norm attention; public ``models/transformer.py``)::

      z = W_z u                                   (optional output gate, from the block input)
      x = u + drop(Attention(LN u))
      y = x + MLP(LN x)     or, without MLP,   y = LN x        (one LayerNorm, used twice)
      out = y ⊙ SiLU(z)     or   out = y

  Encoder: embedding (+ learned positions) or ``Linear`` on features, then dropout. Head: final
  LayerNorm, then mean over time → ``Linear(d, mlp_dim)`` → ReLU → ``Linear(mlp_dim, classes)``,
  or a bias-free ``Linear(d, vocab)`` per token.

* ``mamba`` (Mamba-2 and its pseudo-LTI variant; public ``models/mamba.py``) and
  ``sequence_layer`` (LRU and S4; public ``models/jax_layers.py``, ``activation: full_glu``)::

      x = Norm u  (pre-norm)   or   x = u  (post-norm)
      x = drop(GELU(Mixer x))
      x = W₁x ⊙ σ(W₂x)                            (GLU; ``mlp: none`` leaves it out)
      out = u + drop(x)        then, with post-norm, out = Norm(out)

  Norm is LayerNorm or BatchNorm over batch and time (``norm``). Encoder: embedding or
  ``Linear`` on features, no dropout, no positions. Head: mean over time → ``Linear(d,
  classes)``, or ``Linear(d, vocab)`` per token; no final norm. The two families differ only in
  the encoder's initialisation (the JAX models feed one-hot tokens to a dense layer, so their
  embedding starts with standard deviation ``1/√vocab``) and in dropout, which the JAX models
  draw once per example and channel and share across time.

Pooling is a mean over the real (unpadded) steps in every family. The output gate is the
paper's "gating": it changes the read-out ``C_i`` of the DSF view, never the transition ``Λ_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.layers import IDENTITY, MIXERS, check_options, make_mixer, mixer_class
from companion.layers.base import check_choice
from companion.schema import MAX_WIDTH, setting, validate

MLP_KINDS = {"transformer": ("mlp", "glu", "none"), "mamba": ("glu", "none")}
MLP_KINDS["sequence_layer"] = MLP_KINDS["mamba"]
NORMS = ("layer", "batch")
HEADS = ("classify", "token")


@dataclass
class ModelConfig:
    """Everything ``build_model`` needs. Input is tokens (``vocab_size``) or continuous
    features (``input_dim``); the head classifies (``n_classes``) or predicts a token per
    position (``head="token"``: language modelling and MQAR).

    ``mlp``: the channel mixer after the sequence mixer (``mlp``, ``glu`` or ``none``; the SSM
    families allow ``glu`` and ``none``); ``mlp_ratio``: width of the transformer MLP and of its
    classification head, as a multiple of ``d_model``; ``norm``, ``prenorm``: the SSM
    families' block norm and its place (transformer blocks are pre-norm with LayerNorm);
    ``bn_momentum``: how fast BatchNorm's running statistics follow the batches (the JAX
    models' Flax momentum 0.99 is PyTorch's 0.01); ``gate``: the output gate (transformer
    family only, as in the public code); ``mixing=False``: the same network with every
    sequence mixer replaced by the identity (``companion.layers.identity``), the control that
    tells what the network learns without carrying anything across time.
    """

    mixer: str = setting("", choices=MIXERS)
    d_model: int = setting(128, at_least=1, at_most=MAX_WIDTH)
    n_layers: int = setting(2, at_least=1, at_most=1024)
    n_heads: int = setting(1, at_least=1, at_most=MAX_WIDTH)
    state_dim: int = setting(64, at_least=1, at_most=MAX_WIDTH)
    mixer_options: dict = field(default_factory=dict)  # checked by the mixer (layers.OPTIONS)
    # None: the family's own (mlp for attention, glu for the SSMs)
    mlp: str | None = setting(None, choices=MLP_KINDS["transformer"], optional=True)
    mlp_ratio: float = setting(2.0, above=0, at_most=64)
    norm: str = setting("layer", choices=NORMS)
    prenorm: bool = setting(True)
    bn_momentum: float = setting(0.01, above=0, at_most=1)  # PyTorch's convention; Flax's 0.99
    gate: bool = setting(False)
    dropout: float = setting(0.0, at_least=0, below=1)
    positional: bool = setting(False)  # learned positional embeddings (needs max_len)
    mixing: bool = setting(True)  # false: the mixer replaced by the identity (the control)
    # facts of the task, filled in by the training code:
    vocab_size: int | None = None
    input_dim: int | None = None
    max_len: int | None = None
    head: str = setting("classify", choices=HEADS)
    n_classes: int | None = None

    @property
    def family(self) -> str:
        return mixer_class(self.mixer).family

    def __post_init__(self):
        validate(self, "model.")
        self.mixer_options = check_options(self.mixer, self.mixer_options)
        if self.mlp is None:
            self.mlp = MLP_KINDS[self.family][0]
        check_choice(f"model.mlp for the {self.family} family", self.mlp, MLP_KINDS[self.family])
        if self.family == "transformer" and (self.norm != "layer" or not self.prenorm):
            raise ValueError(
                "attention blocks are pre-norm with LayerNorm: model.norm=layer, model.prenorm=true"
            )
        if self.gate and self.family != "transformer":
            raise ValueError(
                "model.gate=true: the output gate belongs to attention blocks (the public code's)"
            )
        if self.positional and self.family != "transformer":
            raise ValueError(
                "model.positional=true: learned positional embeddings belong to attention models"
            )
        if (self.vocab_size is None) == (self.input_dim is None):
            raise ValueError("give exactly one of vocab_size (tokens) or input_dim (features)")
        if self.head == "classify" and not self.n_classes:
            raise ValueError("a classification head needs n_classes")
        if self.head == "token" and not self.vocab_size:
            raise ValueError("a per-token head needs vocab_size")
        if self.positional and not self.max_len:
            raise ValueError("learned positional embeddings need max_len")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}"
            )

    @property
    def mlp_dim(self) -> int:
        return max(1, round(self.mlp_ratio * self.d_model))

    def make_mixer(self, **extra):
        """The block's sequence mixer: ``mixer`` with its options (and ``extra`` defaults), or
        the identity when ``mixing`` is off."""
        if not self.mixing:
            return make_mixer(IDENTITY, self.d_model)
        options = {**extra, **self.mixer_options}
        return make_mixer(self.mixer, self.d_model, self.n_heads, self.state_dim, **options)

    @property
    def mixer_name(self) -> str:
        return self.mixer if self.mixing else IDENTITY


class MLP(nn.Module):
    """The transformer's feed-forward: ``Linear → GELU → drop → Linear → drop``."""

    def __init__(self, d_model: int, hidden: int, dropout: float):
        super().__init__()
        self.up, self.down = nn.Linear(d_model, hidden), nn.Linear(hidden, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, L, d) -> (B, L, d)
        return self.drop(self.down(self.drop(F.gelu(self.up(x)))))


class GLU(nn.Module):
    """``W₁x ⊙ σ(W₂x)`` with one ``Linear(d, 2d)`` (the public ``GLU`` and ``full_glu``)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, 2 * d_model)

    def forward(self, x: Tensor) -> Tensor:  # (B, L, d) -> (B, L, d)
        return F.glu(self.proj(x), -1)  # first half ⊙ σ(second half), one fused kernel


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm over batch and time of ``(B, L, d)``, as the JAX models' ``norm: batch``
    (pad steps included in the batch statistics). The steps are normalised as one batch of
    ``B·L`` rows, channel-last, so no transposed copy is made."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)


class TimeSharedDropout(nn.Dropout):
    """Dropout whose mask is drawn per example and channel and shared by every time step
    (the JAX models' ``broadcast_dims=[0]``): ``(B, L, d)``."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.bernoulli(x.new_full((x.shape[0], 1, x.shape[2]), 1 - self.p))
        return x * keep / (1 - self.p)


def _norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "layer":
        return nn.LayerNorm(cfg.d_model)
    return BatchNorm(cfg.d_model, momentum=cfg.bn_momentum)


class TransformerBlock(nn.Module):
    """The public ``TransformerBlock``; see the module docstring."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mixer_name = cfg.mixer_name
        self.norm = nn.LayerNorm(cfg.d_model)  # shared by the mixer and the MLP
        self.mixer = cfg.make_mixer()
        self.drop = nn.Dropout(cfg.dropout)
        self.mlp = {
            "mlp": lambda: MLP(cfg.d_model, cfg.mlp_dim, cfg.dropout),
            "glu": lambda: GLU(cfg.d_model),
            "none": lambda: None,
        }[cfg.mlp]()
        self.gate = None
        if cfg.gate:
            self.gate = nn.Linear(cfg.d_model, cfg.d_model)
            nn.init.xavier_uniform_(self.gate.weight, gain=0.1)  # small weights and bias 1:
            nn.init.ones_(self.gate.bias)  # the gate starts near SiLU(1) ≈ 0.73 everywhere

    def forward(self, u: Tensor) -> Tensor:  # (B, L, d) -> (B, L, d)
        x = u + self.drop(self.mixer(self.norm(u)))
        y = self.norm(x) if self.mlp is None else x + self.mlp(self.norm(x))
        return y if self.gate is None else y * F.silu(self.gate(u))

    def describe(self) -> str:
        body = f"LN → {self.mixer_name} → drop → + → LN"
        if self.mlp is not None:
            body += f" → {'MLP(GELU)' if isinstance(self.mlp, MLP) else 'GLU(σ)'} → +"
        return body + (" → ⊙SiLU(W_z u)" if self.gate is not None else "")


class SSMBlock(nn.Module):
    """The public ``MambaBlock`` and JAX ``SequenceLayer``; see the module docstring."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mixer_name, self.prenorm = cfg.mixer_name, cfg.prenorm
        self.norm = _norm(cfg)
        # S4's kernel at the task's length, as published
        extra = {"l_max": cfg.max_len} if cfg.mixer == "s4" and cfg.max_len else {}
        self.mixer = cfg.make_mixer(**extra)
        shared = cfg.family == "sequence_layer"
        self.drop = (TimeSharedDropout if shared else nn.Dropout)(cfg.dropout)
        self.glu = GLU(cfg.d_model) if cfg.mlp == "glu" else None

    def forward(self, u: Tensor) -> Tensor:  # (B, L, d) -> (B, L, d)
        x = self.drop(F.gelu(self.mixer(self.norm(u) if self.prenorm else u)))
        if self.glu is not None:
            x = self.glu(x)
        x = u + self.drop(x)
        return x if self.prenorm else self.norm(x)

    def describe(self) -> str:
        norm = "LN" if isinstance(self.norm, nn.LayerNorm) else "BN"
        glu = " → GLU(σ)" if self.glu is not None else ""
        body = f"{self.mixer_name} → GELU → drop{glu} → drop → +"
        return f"{norm} → {body}" if self.prenorm else f"{body} → {norm}"


class SequenceModel(nn.Module):
    """Encoder, ``n_layers`` blocks and head of the mixer's family. ``forward(x, mask)``
    returns logits: ``(B, n_classes)`` for classification, ``(B, L, vocab_size)`` per token."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        transformer = cfg.family == "transformer"
        if cfg.vocab_size is not None:
            self.encoder = nn.Embedding(cfg.vocab_size, cfg.d_model)
            if cfg.family == "sequence_layer":  # a dense layer on one-hot tokens (LeCun normal)
                nn.init.normal_(self.encoder.weight, std=1 / math.sqrt(cfg.vocab_size))
        else:
            self.encoder = nn.Linear(cfg.input_dim, cfg.d_model)
        self.positions = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.positional else None
        self.drop = nn.Dropout(cfg.dropout if transformer else 0.0)
        block = TransformerBlock if transformer else SSMBlock
        self.blocks = nn.ModuleList(block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model) if transformer else nn.Identity()
        if cfg.head == "token":
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=not transformer)
        elif transformer:
            self.head = nn.Sequential(
                nn.Linear(cfg.d_model, cfg.mlp_dim),
                nn.ReLU(),
                nn.Linear(cfg.mlp_dim, cfg.n_classes),
            )
        else:
            self.head = nn.Linear(cfg.d_model, cfg.n_classes)

    def embed(self, x: Tensor) -> Tensor:
        """Encoder and positions, before dropout: ``(B, L)`` or ``(B, L, input_dim)`` ->
        ``(B, L, d)``."""
        u = self.encoder(x)
        if self.positions is not None:
            u = u + self.positions(torch.arange(u.shape[1], device=u.device))
        return u

    def forward(self, x: Tensor, mask: Tensor | None = None, read: Tensor | None = None) -> Tensor:
        """x: tokens ``(B, L)`` or features ``(B, L, input_dim)``; mask: ``(B, L)`` true at real
        positions (padding is at the end, so causal mixers never read it before a real token).
        read: ``(n_read,)`` positions of the flattened ``(B·L)`` sequence, for a per-token head
        only: logits at these positions alone, ``(n_read, vocab)`` (MQAR scores 1 position in
        8; the others' head products and softmax would be thrown away). Indices, not a mask:
        selecting by a mask on a GPU makes the host wait for the count."""
        u = self.drop(self.embed(x))  # (B, L, d)
        for block in self.blocks:
            u = block(u)
        u = self.norm(u)
        if self.config.head == "token":
            if read is not None:
                u = u.flatten(0, 1).index_select(0, read)  # (n_read, d)
            return self.head(u)  # (B, L, vocab) or (n_read, vocab)
        if mask is None:
            pooled = u.mean(1)
        else:
            w = mask.to(u.dtype)[..., None]  # (B, L, 1)
            pooled = (u * w).sum(1) / w.sum(1).clamp_min(1.0)  # masked mean over time
        return self.head(pooled)  # (B, n_classes)


def model_inputs(batch: dict) -> tuple[Tensor, Tensor | None]:
    """What a collated batch feeds the model: tokens ``input_ids`` ``(B, L)`` or features
    ``inputs`` ``(B, L, d)``, and the mask ``(B, L)`` of real steps (or ``None``)."""
    x = batch["input_ids"] if "input_ids" in batch else batch["inputs"]
    return x, batch.get("mask")


def build_model(config: ModelConfig | dict) -> SequenceModel:
    """Build a model from a :class:`ModelConfig` or a dict of its fields."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig(**config)
    return SequenceModel(cfg)


def describe(config: ModelConfig | dict) -> str:
    """The model's structure in one line, read from the modules it builds, e.g.
    ``"Embed → [LN → lru → GELU → drop → GLU(σ) → drop → +] ×6 → mean → Linear"``."""
    model = build_model(config)
    cfg = model.config
    encoder = "Embed" if cfg.vocab_size is not None else "Linear"
    if model.positions is not None:
        encoder += " + pos"
    if cfg.family == "transformer":
        encoder += " → drop"
    blocks = f"[{model.blocks[0].describe()}] ×{cfg.n_layers}" if cfg.n_layers else "no blocks"
    tail = "LN → " if cfg.family == "transformer" else ""
    if cfg.head == "token":
        head = "Linear" + ("" if model.head.bias is not None else " (no bias)")
    elif isinstance(model.head, nn.Sequential):
        head = "mean → Linear → ReLU → Linear"
    else:
        head = "mean → Linear"
    return f"{encoder} → {blocks} → {tail}{head}"


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    ssm_lr: float | None,
    decay_transition: bool = True,
) -> list[dict]:
    """AdamW parameter groups as the public code forms them.

    Every parameter is decayed with ``weight_decay`` (the public PyTorch models put all
    parameters in one AdamW group; the JAX optimiser decays every "regular" parameter, biases
    and norms included), except: with ``ssm_lr``, parameters tagged by ``mark_ssm`` (S4's Λ, P,
    B, log Δ) get ``ssm_lr`` and no weight decay; with ``decay_transition=False``, parameters
    tagged by ``mark_transition`` (those that set Λ) get no weight decay. Groups:
    ``[decay, no_decay, ssm]``.
    """
    groups = {"decay": [], "no_decay": [], "ssm": []}
    for p in model.parameters():
        if ssm_lr is not None and getattr(p, "_ssm", False):
            groups["ssm"].append(p)
        elif not decay_transition and getattr(p, "_transition", False):
            groups["no_decay"].append(p)
        else:
            groups["decay"].append(p)
    return [
        {"params": groups["decay"], "lr": lr, "weight_decay": weight_decay},
        {"params": groups["no_decay"], "lr": lr, "weight_decay": 0.0},
        {"params": groups["ssm"], "lr": ssm_lr or lr, "weight_decay": 0.0},
    ]

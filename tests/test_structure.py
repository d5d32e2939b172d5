"""Every experiment of the main grid has the structure of the paper's public code.

``PUBLIC`` is transcribed by hand from the public repository (``models/transformer.py``,
``models/mamba.py``, ``models/jax_layers.py`` and each task's configuration file); the
structure on the other side is read from the modules ``build_model`` builds. A config whose
structure differs must say so in its ``departures`` (part ``structure``), and only then.
"""

import pytest
import torch

from companion import config as C
from companion import grid
from companion.model import ModelConfig, build_model, describe

ATTN = "LN → {m} → drop → + → LN → MLP(GELU) → +"
ATTN_MQAR = "LN → {m} → drop → + → LN"
PRE = "{n} → {m} → GELU → drop → GLU(σ) → drop → +"
POST = "{m} → GELU → drop → GLU(σ) → drop → + → {n}"
CLS_T = "LN → mean → Linear → ReLU → Linear"
CLS_S = "mean → Linear"


def row(encoder, block, layers, head, **names):
    return f"{encoder} → [{block.format(**names)}] ×{layers} → {head}"


PUBLIC = {
    **{("image", m): row("Embed + pos → drop", ATTN, 6, CLS_T, m=m) for m in ("softmax", "linear")},
    ("image", "norm"): row("Linear → drop", ATTN, 6, CLS_T, m="norm"),
    ("image", "mamba2"): row("Linear", POST, 6, CLS_S, m="mamba2", n="LN"),
    **{("image", m): row("Linear", POST, 6, CLS_S, m=m, n="BN") for m in ("lru", "s4")},
    **{
        (t, m): row("Embed + pos → drop", ATTN, n, CLS_T, m=m)
        for t, n in (("listops", 6), ("text", 4))
        for m in ("softmax", "linear")
    },
    **{
        (t, "norm"): row("Embed → drop", ATTN, n, CLS_T, m="norm")
        for t, n in (("listops", 6), ("text", 4))
    },
    **{
        (t, "mamba2"): row("Embed", PRE, n, CLS_S, m="mamba2", n="LN")
        for t, n in (("listops", 6), ("text", 4))
    },
    **{
        (t, m): row("Embed", PRE, n, CLS_S, m=m, n="BN")
        for t, n in (("listops", 6), ("text", 4))
        for m in ("lru", "s4")
    },
    **{
        ("mqar", m): row("Embed + pos → drop", ATTN_MQAR, 2, "LN → Linear (no bias)", m=m)
        for m in ("softmax", "linear")
    },
    ("mqar", "norm"): row("Embed → drop", ATTN_MQAR, 2, "LN → Linear (no bias)", m="norm"),
    ("mqar", "mamba2"): row("Embed", PRE, 2, "Linear", m="mamba2", n="LN"),
    **{("mqar", m): row("Embed", POST, 2, "Linear", m=m, n="BN") for m in ("lru", "s4")},
    **{
        ("lm", m): row("Embed + pos → drop", ATTN, 6, "LN → Linear (no bias)", m=m)
        for m in ("softmax", "linear")
    },
    ("lm", "norm"): row("Embed → drop", ATTN, 6, "LN → Linear (no bias)", m="norm"),
    ("lm", "mamba2"): row("Embed", PRE, 6, "Linear", m="mamba2", n="LN"),
    **{("lm", m): row("Embed", POST, 6, "Linear", m=m, n="BN") for m in ("lru", "s4")},
}
FACTS = {  # the tasks' inputs and heads at paper scale, small vocabularies to keep this fast
    "image": dict(input_dim=1, n_classes=10, max_len=64),
    "listops": dict(vocab_size=18, n_classes=10, max_len=64),
    "text": dict(vocab_size=135, n_classes=2, max_len=64),
    "mqar": dict(vocab_size=64, head="token", max_len=64),
    "lm": dict(vocab_size=64, head="token", max_len=64),
}
MAIN = sorted((t, m) for t in grid.tasks() for m in grid.models(t))


def paper_model(task, model):
    cfg = C.resolve(task, model, profile="paper")
    facts = dict(FACTS[task])
    if task == "image":  # pixel tokens for the token-input models
        facts = (
            dict(vocab_size=256, n_classes=10, max_len=64)
            if cfg.data.get("encoding") == "tokens"
            else facts
        )
    return ModelConfig(**cfg.model, **facts)


def test_the_table_covers_the_main_grid():
    assert sorted(PUBLIC) == MAIN


@pytest.mark.parametrize(("task", "model"), MAIN, ids=[f"{t}-{m}" for t, m in MAIN])
@pytest.mark.slow
def test_structure_is_the_public_one_or_a_listed_departure(task, model):
    structural = [d for d in grid.departures(task, model) if d["part"] == "structure"]
    same = describe(paper_model(task, model)) == PUBLIC[task, model]
    assert same != bool(structural), (describe(paper_model(task, model)), PUBLIC[task, model])


@pytest.mark.parametrize(("task", "model"), MAIN, ids=[f"{t}-{m}" for t, m in MAIN])
def test_every_departure_says_what_and_why(task, model):
    for d in grid.departures(task, model):
        assert set(d) == {"part", "what", "why"} and d["what"] and d["why"]
        assert d["part"] in ("structure", "model", "optimiser", "schedule", "data")


def small(mixer, **kw):
    torch.manual_seed(0)
    base = dict(mixer=mixer, d_model=16, n_layers=1, n_heads=2, state_dim=8, vocab_size=11)
    return build_model({**base, "n_classes": 3, **kw})


@pytest.mark.parametrize("mixer", ["lru", "s4d", "mamba2"])
def test_ssm_block_is_not_linear_in_its_input(mixer):
    """GELU sits between the mixer and the GLU: scaling the block input does not scale the
    block's update (an LRU block without it would be exactly linear after the norm)."""
    block = small(mixer, prenorm=False, mlp="none").blocks[0].double().eval()
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    update = block(u) - u
    torch.testing.assert_close(block(u), u + update)
    assert not torch.allclose(block(2 * u) - 2 * u, 2 * update, atol=1e-6)


@pytest.mark.parametrize(("mixer", "norm"), [("lru", "batch"), ("mamba2", "layer")])
def test_post_norm_blocks_end_in_their_norm(mixer, norm):
    block = small(mixer, prenorm=False, norm=norm).blocks[0].train()
    y = block(torch.randn(4, 9, 16) * 3 + 1)
    dims = (0, 1) if norm == "batch" else (2,)
    torch.testing.assert_close(y.mean(dims), torch.zeros_like(y.mean(dims)), atol=1e-5, rtol=0)


def test_attention_block_without_mlp_returns_the_norm_of_the_residual():
    block = small("softmax", mlp="none").blocks[0].eval()
    u = torch.randn(2, 9, 16)
    x = u + block.mixer(block.norm(u))
    torch.testing.assert_close(block(u), block.norm(x))


def test_time_shared_dropout_keeps_a_channel_for_every_step():
    block = small("lru", dropout=0.5).blocks[0]
    drop = block.drop.train()
    y = drop(torch.ones(3, 50, 16))
    assert ((y == 0).all(1) | (y != 0).all(1)).all()  # each (example, channel) on or off
    assert (y == 0).any() and (y != 0).any()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(mixer="lru", mlp="mlp"), "choose one of: glu, none"),
        (dict(mixer="softmax", norm="batch"), "pre-norm with LayerNorm"),
        (dict(mixer="mamba2", gate=True), "output gate belongs to attention"),
        (dict(mixer="lru", norm="group"), "model.norm = 'group': expected one of: layer, batch"),
    ],
)
def test_structure_errors_name_the_choices(kw, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kw, vocab_size=5, n_classes=2)


def test_batch_norm_momentum_is_a_setting():
    assert small("lru", norm="batch").blocks[0].norm.momentum == 0.01  # Flax's 0.99
    assert small("lru", norm="batch", bn_momentum=0.1).blocks[0].norm.momentum == 0.1
    with pytest.raises(ValueError, match=r"model.bn_momentum = 0.0: expected a number > 0 and ≤ 1"):
        small("lru", norm="batch", bn_momentum=0.0)

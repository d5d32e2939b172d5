"""Model assembly: shapes, masked pooling, the output gate, parameter groups, config errors."""

import pytest
import torch
from builders import tiny

from companion.layers import MIXERS
from companion.model import ModelConfig, param_groups
from companion.tasks.common import IGNORE_INDEX
from companion.train import loss_and_counts


@pytest.mark.parametrize("mixer", MIXERS)
def test_masked_mean_pooling_ignores_padding(mixer):
    model = tiny(mixer).eval()
    x = torch.randint(1, 11, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 6:] = False
    y = model(x, mask)
    x2 = x.clone()
    x2[0, 6:] = torch.randint(1, 11, (3,))  # change only the padded tail of example 0
    torch.testing.assert_close(model(x2, mask), y)
    assert y.shape == (2, 3)


def test_continuous_input_and_token_head():
    model = tiny("s4d", vocab_size=None, input_dim=1)
    assert model(torch.rand(2, 7, 1)).shape == (2, 3)
    lm = tiny("linear", head="token", n_classes=None, positional=True, max_len=32)
    assert lm(torch.randint(0, 11, (2, 7))).shape == (2, 7, 11)


def test_a_token_head_reads_only_the_scored_positions_with_the_same_loss():
    """``read=`` gives the full head's logits at those positions, and the training loss on them
    equals the cross-entropy over every position with the others ignored."""
    model = tiny("mamba2", head="token", n_classes=None).double().eval()
    x = torch.randint(0, 11, (3, 9))
    labels = torch.randint(0, 11, (3, 9)).masked_fill(torch.rand(3, 9) < 0.7, IGNORE_INDEX)
    labels[0, 0] = 5  # at least one scored position
    scored = labels != IGNORE_INDEX
    full = model(x)  # (3, 9, 11)
    read = scored.flatten().nonzero().squeeze(1)  # flat positions, in row-major order
    torch.testing.assert_close(model(x, read=read), full[scored])
    batch = {"input_ids": x, "mask": torch.ones(3, 9, dtype=torch.bool), "labels": labels}
    loss, correct, count = loss_and_counts(model, batch, "cpu")
    expected = torch.nn.functional.cross_entropy(
        full.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(loss, expected.float())  # the loss is taken in float32
    assert count == int(scored.sum())
    assert correct == int((full.argmax(-1) == labels)[scored].sum())


def test_gate_changes_the_readout_not_the_transition():
    """The first block's mixer sees the same input with and without the gate."""
    plain, gated = tiny("linear"), tiny("linear", gate=True)
    gated.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randint(0, 11, (2, 9))
    u = plain.blocks[0].norm(plain.embed(x))
    torch.testing.assert_close(
        plain.blocks[0].mixer.transition(u).values, gated.blocks[0].mixer.transition(u).values
    )
    assert not torch.allclose(plain(x), gated(x))
    assert torch.allclose(gated.blocks[0].gate.bias, torch.ones(16))


@pytest.mark.parametrize("mixer", ["s4", "s4d", "lru", "mamba2", "mamba2_lti", "norm"])
@pytest.mark.parametrize("decay_transition", [True, False])
def test_param_groups_follow_the_public_optimiser(mixer, decay_transition):
    """Every parameter is decayed (biases and norms too), except the ``mark_ssm`` group with
    ``ssm_lr`` and, on request, the parameters that set Λ (``mark_transition``)."""
    model = tiny(mixer, gate=mixer == "norm", mlp="glu")
    groups = param_groups(model, 1e-3, 0.1, ssm_lr=1e-4, decay_transition=decay_transition)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    decay, no_decay, ssm = groups
    assert ssm["lr"] == 1e-4 and ssm["weight_decay"] == 0.0 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in ssm["params"]} == {
        id(p) for p in model.parameters() if getattr(p, "_ssm", False)
    }
    assert any(p.dim() == 1 for p in decay["params"])  # biases and norms are decayed
    exempt = {id(p) for p in no_decay["params"]}
    transition = {
        id(p)
        for p in model.parameters()
        if getattr(p, "_transition", False) and not getattr(p, "_ssm", False)
    }
    assert exempt == (set() if decay_transition else transition)
    if mixer in ("mamba2", "mamba2_lti") and not decay_transition:
        assert exempt, "the parameters that set Λ must be tagged"


def test_without_ssm_lr_every_parameter_is_decayed():
    model = tiny("lru")
    decay, no_decay, ssm = param_groups(model, 1e-3, 0.1, ssm_lr=None)
    assert len(decay["params"]) == len(list(model.parameters())) and not ssm["params"]
    exempt = param_groups(model, 1e-3, 0.1, ssm_lr=None, decay_transition=False)[1]["params"]
    assert {id(p) for p in exempt} == {id(model.blocks[i].mixer.nu_log) for i in (0, 1)} | {
        id(model.blocks[i].mixer.theta_log) for i in (0, 1)
    }


def test_config_errors_name_the_choices():
    with pytest.raises(ValueError, match="'model.mixer_options.norm_fn' of mixer 'mamba2'"):
        ModelConfig(mixer="mamba2", vocab_size=5, n_classes=2, mixer_options={"norm_fn": "exp"})
    with pytest.raises(ValueError, match="model.mlp = 'moe': expected one of: mlp, glu, none"):
        ModelConfig(mixer="softmax", vocab_size=5, n_classes=2, mlp="moe")
    with pytest.raises(ValueError, match="model.mixer = 'gru': expected one of: softmax"):
        ModelConfig(mixer="gru", vocab_size=5, n_classes=2)

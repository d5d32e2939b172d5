"""The no-mixing control: the identity mixer as a DSF system, the ``nomix`` variant of every
experiment, and the model it builds (the network unchanged but for its mixers)."""

import pytest
import torch
from builders import ladder_runs

from companion import config as C
from companion import grid
from companion.layers import IDENTITY, MIXERS, make_mixer
from companion.model import build_model
from companion.spectra import collect


@pytest.mark.parametrize("length", [1, 7])
def test_the_identity_is_the_memoryless_recurrence(length):
    m = make_mixer(IDENTITY, d_model=5)
    u = torch.randn(1, length, 5, dtype=torch.float64)
    assert torch.equal(m(u), u)
    assert torch.allclose(m.recurrent(u), u)
    t = m.transition(u)
    assert t.time_invariant and torch.equal(t.values, torch.zeros(5, dtype=torch.float64))
    assert IDENTITY not in MIXERS  # not one of the paper's mixers


@pytest.mark.slow
def test_every_experiment_has_its_no_mixing_control():
    for task in grid.tasks():
        for model in grid.models(task):
            assert grid.CONTROL in grid.variants(task, model)
    run = C.resolve("image", "softmax", grid.CONTROL, "quick")
    main = C.resolve("image", "softmax", None, "quick")
    assert run.model == {**main.model, "mixing": False} and run.train == main.train
    assert run.run_id == "image-softmax-nomix-s1919"
    assert grid.control_of(None) == grid.CONTROL and grid.control_of("gate") == grid.CONTROL
    assert grid.control_of("lti-ladder-depth4") == "nomix-ladder-depth4"
    quick = {(r.task, r.model_name, r.variant) for r in C.book_runs("quick")}
    assert ("mqar", "lru", grid.CONTROL) in quick
    ladder = {r.variant for r in ladder_runs("mqar/lru/*")}
    assert "nomix-ladder-L128x16" in ladder


@pytest.mark.parametrize("mixer", ["softmax", "lru", "mamba2"])
def test_the_control_keeps_the_network_and_removes_only_the_mixer(mixer):
    cfg = dict(mixer=mixer, d_model=8, n_layers=2, n_heads=2, state_dim=4, vocab_size=11)
    cfg.update(n_classes=3, positional=mixer == "softmax", max_len=12)
    full, control = build_model(cfg), build_model({**cfg, "mixing": False})
    names = {n for n, _ in control.named_parameters()}
    assert names == {n for n, _ in full.named_parameters() if ".mixer." not in n}
    assert all(b.mixer_name == IDENTITY for b in control.blocks)
    x = torch.randint(0, 11, (2, 12))
    # no step sees another: changing the last token leaves every other position unchanged
    control.eval()
    y = control.blocks[0](control.embed(x))
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 11
    y2 = control.blocks[0](control.embed(x2))
    assert torch.equal(y[:, :-1], y2[:, :-1]) and not torch.equal(y[:, -1], y2[:, -1])
    spectra = collect(control, {"input_ids": x})
    assert [s.mixer for s in spectra] == [IDENTITY, IDENTITY]
    assert all(float(s.transition.values.abs().max()) == 0 for s in spectra)

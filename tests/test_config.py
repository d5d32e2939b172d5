"""Configuration files resolve per profile in a fixed order, and every experiment exists."""

import re

import pytest

from companion import cli, grid, report
from companion import config as C


def test_paper_profile_is_the_file_as_written():
    cfg = C.resolve("image", "linear", None, "paper")
    assert (cfg.model["d_model"], cfg.model["n_layers"], cfg.train.lr) == (512, 6, 2e-4)
    assert cfg.train.epochs == 50 and cfg.train.warmup_epochs == 5 and cfg.train.steps is None


def test_overlays_then_variant_then_set():
    quick = C.resolve("mqar", "softmax", None, "quick")
    assert quick.model["d_model"] == 64  # the task's quick overlay
    assert quick.train.lr == 2e-3  # the model file's own quick overlay wins over the file
    variant = C.resolve("mqar", "softmax", "layers4-lr1e-2", "quick")
    assert variant.model["n_layers"] == 4 and variant.train.lr == 1e-2  # after the overlays
    both = C.resolve(
        "mqar",
        "softmax",
        "layers4-lr1e-2",
        "quick",
        overrides=cli.parse_set(["train.lr=3e-3", "seed=5"]),
    )
    assert (
        both.train.lr == 3e-3 and both.seed == 5 and re.search(r"-s5-set[0-9a-f]{6}$", both.run_id)
    )


# the quick MQAR learning-rate sweep (seed 1919, 3,000 steps) that every model went through
MQAR_SWEEP = (5e-4, 2e-3, 1e-2)


def test_every_quick_mqar_model_trains_as_long_at_a_rate_of_one_shared_sweep():
    quick = {m: C.resolve("mqar", m, None, "quick").train for m in grid.models("mqar")}
    assert {m: t.steps for m, t in quick.items()} == dict.fromkeys(quick, 3000)
    assert {m: t.lr in MQAR_SWEEP for m, t in quick.items()} == dict.fromkeys(quick, True)


@pytest.mark.slow
def test_every_experiment_resolves_at_every_profile_with_distinct_hashes():
    hashes = set()
    for task, model, variant in grid.experiments():
        for profile in C.PROFILES:
            hashes.add(C.resolve(task, model, variant, profile).hash())
    assert len(hashes) == 3 * len(grid.experiments())
    assert len(grid.experiments()) >= 5 * 6 + 20


@pytest.mark.parametrize(
    ("task", "model", "variant", "expected"),
    [
        ("image", "linear", "gate", {"gate": True}),
        (
            "image",
            "norm",
            "exp",
            {"mixer_options": {"conv": 4, "norm_fn": "exp", "feature_map": "identity"}},
        ),
        ("image", "mamba2", "lti", {"mixer": "mamba2_lti"}),
        ("listops", "mamba2", "lti", {"mixer": "mamba2_lti"}),
        ("text", "softmax", "gate", {"gate": True}),
        ("mqar", "softmax", "layers1-conv", {"n_layers": 1, "mixer_options": {"conv": 4}}),
    ],
)
def test_ablations_change_what_they_name(task, model, variant, expected):
    cfg = C.resolve(task, model, variant, "paper")
    for key, value in expected.items():
        assert cfg.model[key] == value


def test_parse_set_reads_yaml_values():
    assert cli.parse_set(["a.b=1e-3", "c=true", "d=[1, 2]"]) == {
        "a": {"b": 1e-3},
        "c": True,
        "d": [1, 2],
    }


def test_the_weight_decay_experiment_runs_where_the_book_needs_it():
    """``nowd-lambda`` exempts the parameters that set Λ from weight decay, for the five
    experiments whose spectra C4 and C6 read; everything else stays as in the main run."""
    where = sorted((t, m) for t, m, v in grid.experiments() if v == "nowd-lambda")
    assert where == [
        ("image", "lru"),
        ("listops", "lru"),
        ("listops", "mamba2"),
        ("lm", "mamba2"),
        ("mqar", "mamba2"),
    ]
    for task, model in where:
        main, free = (C.resolve(task, model, v, "quick") for v in (None, "nowd-lambda"))
        assert main.train.decay_transition and not free.train.decay_transition
        free.train.decay_transition, free.variant = True, None
        assert free.hash() == main.hash()


def test_departures_are_documentation_not_settings():
    cfg = C.resolve("mqar", "mamba2", None, "quick")
    assert grid.departures("mqar", "mamba2") and "departures" not in cfg.to_dict()


@pytest.mark.slow
def test_the_appendix_lists_every_model_at_both_profiles_and_every_ablation():
    text = report.appendix()
    for task in grid.tasks():
        assert f"## {task}\n" in text
        for model in grid.models(task):
            assert f"| {model} | paper |" in text and f"| {model} | quick |" in text
            ablations = [v for v in grid.variants(task, model) if v != grid.CONTROL]
            assert all(f"- `{model}/{v}`:" in text for v in ablations)
    assert "encoder → blocks → head" in text and "*Why:*" in text
    assert f"also runs as `{grid.CONTROL}`" in text  # the control, once for every experiment

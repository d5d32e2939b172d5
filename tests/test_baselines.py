"""Baselines and the competence gate: the predictors against hand counts, the gate's margin,
and the table stored beside a cache (reused while the data stay, refitted when they change)."""

import json
import math

import numpy as np
import pytest
from fixtures.sources import install_fixture_sources

from companion import baselines as B
from companion import cli, shallow
from companion.tasks import get_task, trivial
from companion.tasks.common import IGNORE_INDEX


def acc(name, value, n=1000, kind="trivial"):
    return B.Baseline(name, kind, "accuracy", value, n)


def test_gate_margin_is_three_points_or_two_standard_errors():
    big = B.gate([acc("majority", 0.30, n=100_000), acc("guess", 0.10, n=100_000)])
    assert big.baseline == "majority" and big.line == pytest.approx(0.33)  # 3 points
    small = B.gate([acc("majority", 0.5, n=100)])
    assert small.line == pytest.approx(0.5 + 2 * math.sqrt(0.25 / 100))  # 2 SE = 10 points
    assert "standard errors" in small.margin and "points" in big.margin
    assert small.passes(0.6) and not small.passes(0.59)
    assert not small.passes(float("nan")) and not small.passes(None)


def test_gate_of_a_language_model_is_a_tenth_below_the_unigram_perplexity():
    table = [
        B.Baseline("unigram", "trivial", "perplexity", 20.0, 500),
        B.Baseline("bigram", "shallow", "perplexity", 10.0, 500),
    ]
    g = B.gate(table)
    assert (g.metric, g.line, g.baseline) == ("perplexity", pytest.approx(18.0), "unigram")
    assert g.passes(17.9) and not g.passes(18.1)  # lower is better
    assert B.strongest(table, "shallow").name == "bigram"
    assert B.strongest([acc("a", 0.2), acc("b", 0.4)], "trivial").name == "b"
    assert B.strongest(table, "none") is None


def test_majority_given_the_first_token_counts_by_hand():
    x_train = np.array([1, 1, 1, 2, 2, 3])
    y_train = np.array([0, 0, 5, 9, 9, 5])
    # x=1 → 0, x=2 → 9, x=3 → 5; an unseen x=4 takes the overall majority (0 and 5 and 9
    # tie at two each, the smallest label wins)
    x_test, y_test = np.array([1, 2, 3, 4, 1]), np.array([0, 9, 0, 0, 5])
    assert trivial.majority_given(x_train, y_train, x_test, y_test) == pytest.approx(3 / 5)
    assert trivial.majority(y_train, y_test) == pytest.approx(3 / 5)


def test_listops_root_operator_baseline_on_the_smoke_data():
    task = get_task("listops", "smoke")
    table = B.load(task)
    train, test = task.split("train"), task.split("test")
    root = {}
    for ids, y in zip(train["input_ids"], train["label"], strict=True):
        root.setdefault(ids[0], []).append(y)
    best = {op: np.bincount(ys).argmax() for op, ys in root.items()}
    hits = [best[ids[0]] == y for ids, y in zip(test["input_ids"], test["label"], strict=True)]
    (by_root,) = [b for b in table if b.name == "majority label given the root operator"]
    assert by_root.value == pytest.approx(np.mean(hits)) and by_root.n == len(test)
    assert by_root.value > [b for b in table if b.name == "majority class"][0].value
    assert {b.kind for b in table} == {"trivial", "shallow"}


def test_lm_unigram_perplexity_by_hand_and_bigram_below_it():
    task = get_task("lm", "smoke")
    table = {b.name: b for b in B.load(task)}

    def targets(split):
        y = np.concatenate([np.asarray(s) for s in task.split(split)["labels"]])
        return y[y != IGNORE_INDEX]

    counts = np.bincount(targets("train"), minlength=task.vocab_size) + 1.0
    log_p = np.log(counts / counts.sum())[targets("test")]
    assert table["unigram"].value == pytest.approx(np.exp(-log_p.mean()))
    bigram = table[shallow.BIGRAM]
    assert bigram.kind == "trivial" and bigram.value < table["unigram"].value
    assert [b.kind for b in table.values() if "gram (" in b.name and b is not bigram] == [
        "shallow"
    ] * 3  # orders 3, 4, 5


def test_the_table_is_stored_beside_the_cache_and_refitted_when_the_data_change(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path))
    assert cli.main(["data", "prepare", "--profile", "smoke", "--task", "mqar"]) == 0
    assert "a value guessed from the context: 25.0 %" in capsys.readouterr().out
    task = get_task("mqar", "smoke")
    stored = task.cache_dir() / B.FILE
    first = json.loads(stored.read_text())
    assert [b["name"] for b in first["baselines"]][0] == "a value guessed from the context"

    def refit(task):
        raise AssertionError("refitted although the data did not change")

    with monkeypatch.context() as m:
        m.setattr(B, "compute", refit)
        assert B.load(get_task("mqar", "smoke")) == [B.Baseline(**b) for b in first["baselines"]]
        assert cli.main(["data", "info", "--profile", "smoke", "--task", "mqar"]) == 0
    info = capsys.readouterr().out
    assert "baselines on the test split" in info and "gate    used its state = at least" in info

    stored.write_text(json.dumps({**first, "data": "other files"}))  # as after a rebuild
    table = B.load(get_task("mqar", "smoke"))
    assert json.loads(stored.read_text()) == first
    assert table == [B.Baseline(**b) for b in first["baselines"]]

    stored.write_text('{"data": "v')  # damaged: named, computed again, replaced
    lines = []
    assert B.load(get_task("mqar", "smoke"), log=lines.append) == table
    assert lines == [f"  {stored} is damaged; computing the baselines again"]
    assert json.loads(stored.read_text()) == first

    # --force rebuilds the cache and what was derived from it, however equal the new files
    stored.write_text(json.dumps({**first, "baselines": []}))
    assert cli.main(["data", "prepare", "--profile", "smoke", "--task", "mqar", "--force"]) == 0
    assert json.loads(stored.read_text()) == first


def test_image_runs_of_either_encoding_are_gated_by_the_same_images(tmp_path, monkeypatch):
    # a float-encoded cache serves no token column, yet stores the same pixel tokens
    install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path / "data"))
    tokens, floats = get_task("image", "quick"), get_task("image", "quick", encoding="floats")
    for task in (tokens, floats):
        task.prepare(log=lambda *a: None)
    assert "input_ids" not in floats.split("test").column_names
    assert B.load(floats) == B.load(tokens)
    assert B.for_task("image", "quick", encoding="floats") == B.for_task("image", "quick")
    assert (tmp_path / "data" / "image" / floats.cache_key / B.FILE).is_file()


def test_the_no_mixing_control_raises_the_line_where_it_beats_the_trivial_predictors():
    table = [acc("majority", 0.30, n=100_000), acc("pixels", 0.90, n=100_000, kind="shallow")]
    g = B.gate(table, control=0.60)
    assert g.baseline == B.CONTROL_NAME and g.line == pytest.approx(0.63) and g.control == 0.60
    assert g.shallow == "pixels" and g.shallow_line == pytest.approx(0.93)
    assert g.passes(0.7) and not g.beyond_shallow(0.7) and g.beyond_shallow(0.95)
    # a control below the trivial predictor leaves the trivial line
    assert B.gate(table, control=0.2).baseline == "majority"
    # a control with no runs: nothing passes, whatever the score
    missing = B.gate(table, control=float("nan"))
    assert not missing.passes(0.99) and math.isnan(missing.line)
    # perplexity: the lower control sets the line
    lm = [B.Baseline("bigram", "trivial", "perplexity", 12.0, 500)]
    assert B.gate(lm, control=10.0).line == pytest.approx(9.0)

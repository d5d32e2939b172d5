"""`companion reproduce` at the smoke profile: every experiment of the configs, every ablation,
the extra seeds; a second call trains nothing; a failing run is reported with its log."""

import time

import pandas as pd
import pytest

from companion import config as C
from companion.reproduce import book_runs, reproduce_runs
from companion.runs import RunDir


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    lines = []
    outcomes = reproduce_runs("smoke", workers=2, root=root, report=lines.append)
    return root, outcomes, lines


def test_every_experiment_and_ablation_runs(smoke_runs):
    root, outcomes, lines = smoke_runs
    assert {o.status for o in outcomes} == {"ran"}
    index = pd.read_csv(root / "smoke" / "index.csv", keep_default_na=False)
    assert len(index) == len(book_runs("smoke")) == len(outcomes)
    experiments = set(zip(index["task"], index["model"], index["variant"], strict=True))
    assert experiments == {(t, m, v or "") for t, m, v in C.experiments()}
    assert {1919, 2222, 2929, 1717} <= set(index.query("task == 'mqar'")["seed"])
    assert lines[0].startswith(f"{len(outcomes)} runs at profile smoke")


@pytest.mark.parametrize("row", range(0, 72, 7))
def test_each_run_folder_is_complete(smoke_runs, row):
    root, _, _ = smoke_runs
    index = pd.read_csv(root / "smoke" / "index.csv", keep_default_na=False)
    run = RunDir(index.loc[row % len(index), "path"])
    metric = "test_perplexity" if index.loc[row % len(index), "task"] == "lm" else "test_accuracy"
    assert run.complete and metric in run.read_json("metrics.json")
    spectra = pd.read_csv(run.path / "spectra.csv", keep_default_na=False)
    assert set(spectra["stage"]) == {"init", "train", "final"}
    assert set(spectra["analysis"]) == {"exact", "published"}


def test_a_second_call_trains_nothing(smoke_runs):
    root, outcomes, _ = smoke_runs
    start = time.perf_counter()
    again = reproduce_runs("smoke", workers=2, root=root, report=lambda m: None)
    assert {o.status for o in again} == {"skipped"} and len(again) == len(outcomes)
    assert time.perf_counter() - start < 30


def test_only_selects_experiments():
    assert {c.run_id for c in book_runs("quick", only="image/norm/*")} == {
        "image-norm-s1919",
        "image-norm-s2222",
        "image-norm-noconv-s1919",
        "image-norm-gate-s1919",
        "image-norm-exp-s1919",
        "image-norm-elu-s1919",
        "image-norm-sigmoid-s1919",
    }
    with pytest.raises(ValueError, match="no run of the book matches"):
        reproduce_runs("smoke", root="unused", only="nothing/*")


def test_failed_runs_are_listed_with_their_logs(tmp_path):
    cfg = book_runs("smoke", only="text/lru/")[0]
    folder = RunDir.for_config(cfg, tmp_path).path
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("config_hash: not-this-one\n")
    with pytest.raises(RuntimeError, match=rf"run\(s\) failed: {cfg.run_id} \(.*\.log\)"):
        reproduce_runs("smoke", workers=1, root=tmp_path, only="text/lru/", report=lambda m: None)
    log = (tmp_path / "smoke" / "logs" / f"{cfg.run_id}.log").read_text()
    assert "another configuration" in log

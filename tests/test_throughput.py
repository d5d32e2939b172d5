"""`companion throughput`: step times on the runs' batches, beside those of another
revision, and the estimate of the grid built from them."""

import math

import pandas as pd
import pytest

from companion import cli
from companion import config as C
from companion import throughput as T
from companion.config import book_runs
from companion.runs import RunDir
from companion.train import run

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)


def test_total_steps_counts_as_training_does(tmp_path):
    overrides = cli.parse_set(["train.steps=null", "train.epochs=1.5"])
    cfg = C.resolve("listops", "lru", None, "smoke", 1919, overrides)
    run(cfg, root=tmp_path, progress=False)
    assert (
        T.total_steps(cfg)
        == RunDir.for_config(cfg, tmp_path).read_json("timing.json")["total_steps"]
    )
    assert T.total_steps(C.resolve("mqar", "mamba2", None, "paper", 1919)) == 40_000


def test_paper_epochs_use_the_paper_training_sets():
    cfg = C.resolve("image", "s4", None, "paper", 1919)
    assert T.total_steps(cfg) == cfg.train.epochs * (45_000 // cfg.train.batch_size)


@pytest.mark.parametrize("name", ["mqar/mamba2/", "image/s4/", "lm/softmax/"])
def test_measure_times_real_steps_on_the_run_shapes(name):
    cfg = book_runs("smoke", name)[0]
    row = T.measure(cfg, steps=2, warmup=1)
    assert row["batch_size"] == cfg.train.batch_size and row["step_seconds"] > 0
    assert row["tokens_per_second"] == pytest.approx(
        cfg.train.batch_size * row["length"] / row["step_seconds"]
    )


def test_only_matrix_products_are_counted():
    """The short convolution adds no matrix product: Mamba-2's count is the same without it
    (PyTorch's counter would count a depthwise weight gradient as a dense one)."""
    with_conv = C.resolve("mqar", "mamba2", None, "smoke", 1919)
    without = C.resolve(
        "mqar", "mamba2", None, "smoke", 1919, cli.parse_set(["model.mixer_options={conv: 0}"])
    )
    assert (
        with_conv.model["mixer_options"]["conv"] == 4
        and without.model["mixer_options"]["conv"] == 0
    )
    counted = [T.measure(c, steps=1, warmup=1)["gflop_per_step"] for c in (with_conv, without)]
    assert counted[0] == pytest.approx(counted[1], rel=1e-9) and counted[0] > 0


def test_the_grid_scales_the_main_step_time_by_depth():
    main = [c for c in book_runs("smoke", "mqar/*/") if c.variant is None and c.seed == 1919]
    measured = pd.DataFrame({"run_id": [c.run_id for c in main], "step_seconds": 1.8})
    grid = T.grid_estimate("smoke", measured).set_index("run_id")
    assert grid.loc["mqar-mamba2-layers4-lr1e-2-s1919", "hours"] == pytest.approx(
        6 * 1.8 * 4 / 2 / 3600
    )
    assert grid.loc["mqar-softmax-s2222", "hours"] == pytest.approx(6 * 1.8 / 3600)
    assert math.isnan(grid.loc["image-s4-s1919", "hours"])
    assert len(grid) == len(book_runs("smoke"))


def test_a_pattern_without_main_experiments_is_one_line_status_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        T.main(["--profile", "smoke", "--only", "mqar/mamba2/layers4*", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "no main experiment matches 'mqar/mamba2/layers4*'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_baseline_is_measured_with_its_own_package_run_by_run(tmp_path, capsys):
    """``--baseline``: each run timed once with the package exported from the revision and
    once with the working tree's, each in its own process, on the run's training batches."""
    code = T.main(
        ["--profile", "smoke", "--only", "mqar/[lm][ra]*/", "--steps", "1", "--warmup", "0"]
        + ["--threads", "1", "--baseline", "HEAD", "--out", str(tmp_path)]
    )
    assert code == 0
    table = pd.read_csv(tmp_path / "smoke" / "compare.csv")
    assert list(table["run_id"]) == ["mqar-lru-s1919", "mqar-mamba2-s1919"]
    assert table["package_before"].str.contains("companion-baseline-").all()
    assert (table["package_after"] == str(T.REPOSITORY / "companion")).all()
    assert (table["batches"] == "data").all() and (table["ratio"] > 0).all()
    markdown = (tmp_path / "smoke" / "compare.md").read_text()
    assert markdown.count("\n") == len(table) + 2 and "| mqar-mamba2 |" in markdown
    assert "slowest quarter" in capsys.readouterr().out


def test_an_unknown_baseline_is_one_line_status_2_before_any_timing(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        T.main(["--profile", "smoke", "--baseline", "no-such-rev", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--baseline 'no-such-rev' is not a commit of this repository" in err
    assert "matmul peak" not in err and not any(tmp_path.iterdir())

"""The ``slurm`` executor on a real single-node Slurm cluster (``slurm_cluster.py``): the smoke
sweep as one job array gives the same runs index and the same metrics as the local pool; a
task killed mid-run is a failed run whose checkpoint stays, and the resubmission trains it
alone; an interrupted wait leaves the jobs running and the next call waits for them."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from builders import exit_code
from slurm_cluster import SlurmCluster

from companion import cli, grid
from companion.config import book_runs
from companion.reproduce import reproduce_runs
from companion.runs import RunDir
from companion.slurm import SlurmError, SlurmOptions, check_cluster

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)

FAST = SlurmOptions(cpus_per_run=1, poll_s=0.5)


def quiet(_message: str) -> None:
    """A ``report`` that drops the progress lines."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SlurmCluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def _complete_times(root: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in root.glob("*/complete.json")}


def task_process(job_id: str) -> int | None:
    """The pid of the Python process of array task ``job_id`` ("<array>_<index>"), if running
    (the cluster is this machine)."""
    array, index = job_id.split("_")
    marks = {f"SLURM_ARRAY_JOB_ID={array}".encode(), f"SLURM_ARRAY_TASK_ID={index}".encode()}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or not marks <= set(
                (proc / "environ").read_bytes().split(b"\0")
            ):
                continue
            if (proc / "cmdline").read_bytes().split(b"\0")[0] == sys.executable.encode():
                return int(proc.name)
        except OSError:  # gone, or not ours to read
            continue
    return None


def kill_one_mid_run(profile_root: Path) -> str:
    """SIGKILL the Python process of the first Slurm task seen between its run's first
    checkpoint and its end (as the kernel's OOM killer or a failing node would); return that
    run's id. Tries the next run when one ends before the kill lands."""
    jobs_file = profile_root / "slurm" / "jobs.json"
    deadline = time.monotonic() + 600
    while not jobs_file.exists():
        assert time.monotonic() < deadline, "the job array was never submitted"
        time.sleep(0.05)
    jobs = json.loads(jobs_file.read_text())
    for run_id, entry in sorted(jobs.items(), key=lambda kv: int(kv[1]["job_id"].split("_")[1])):
        run, pid = RunDir(profile_root / run_id), None
        while pid is None and not run.complete:
            assert time.monotonic() < deadline, f"{run_id} never started"
            pid = task_process(entry["job_id"])
            time.sleep(0.005)
        while not (run.file("checkpoint.pt").exists() or run.complete):
            time.sleep(0.001)
        if run.complete:
            continue
        os.kill(pid, signal.SIGKILL)
        if not run.complete:
            return run_id
    raise AssertionError("every run ended before its task could be killed")


def test_the_slurm_sweep_equals_the_local_one_and_resubmits_only_the_killed_run(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    # one thread per run on both sides, so that the arithmetic is the same to the last bit
    reproduce_runs("smoke", workers=os.cpu_count(), root=local, report=quiet)

    lines, ended = [], {}

    def sweep():
        try:
            ended["outcomes"] = reproduce_runs(
                "smoke", root=remote, report=lines.append, slurm=FAST
            )
        except RuntimeError as e:
            ended["error"] = str(e)

    thread = threading.Thread(target=sweep)
    thread.start()
    killed = kill_one_mid_run(remote / "smoke")
    thread.join(timeout=900)
    assert not thread.is_alive()
    n = len(book_runs("smoke"))
    assert lines[0].startswith(f"{n} runs at profile smoke: {n} to train")
    assert sum("submitted array" in line for line in lines) == 1
    assert any(line.startswith("slurm: ") and "running" in line for line in lines)
    # the killed run is the one failure, listed with its log, and its checkpoint is kept
    assert ended.get("error", "").startswith(f"1 run(s) failed: {killed} (")
    assert "--failed" in ended["error"]
    failed = json.loads((remote / "smoke" / "failed.json").read_text())
    assert list(failed) == [killed] and Path(failed[killed]).exists()
    run = RunDir(remote / "smoke" / killed)
    assert run.file("checkpoint.pt").exists() and not run.complete
    config = next(c for c in book_runs("smoke") if c.run_id == killed)
    assert 0 < run.load("checkpoint.pt")["step"] < config.train.steps

    # the resubmission of the failed run alone trains it, and nothing else
    before = _complete_times(remote / "smoke")
    again = []
    outcomes = reproduce_runs("smoke", root=remote, report=again.append, slurm=FAST, failed=True)
    assert again[0].startswith("1 runs at profile smoke: 1 to train, 0 complete")
    assert any("with 1 task(s)" in line for line in again)
    assert [(o.run_id, o.status) for o in outcomes] == [(killed, "ran")]
    after = _complete_times(remote / "smoke")
    assert set(after) - set(before) == {killed}
    assert all(after[r] == t for r, t in before.items())
    assert json.loads((remote / "smoke" / "failed.json").read_text()) == {}

    # a third call has nothing to submit
    third = []
    reproduce_runs("smoke", root=remote, report=third.append, slurm=FAST)
    assert third[0].startswith(f"{n} runs at profile smoke: 0 to train, {n} complete")
    assert not any("submitted" in line for line in third)

    # the same index (but for where the folders are) and the same metrics, run for run
    a = pd.read_csv(local / "smoke" / "index.csv", keep_default_na=False)
    b = pd.read_csv(remote / "smoke" / "index.csv", keep_default_na=False)
    assert len(a) == n
    pd.testing.assert_frame_equal(a.drop(columns="path"), b.drop(columns="path"))
    for run_id in a["run_id"]:
        for name in ("metrics.json", "spectra.csv"):
            left = (local / "smoke" / run_id / name).read_bytes()
            assert left == (remote / "smoke" / run_id / name).read_bytes(), (run_id, name)
        # the training curves too, but for the measured throughput
        left, right = (RunDir(r / "smoke" / run_id).history() for r in (local, remote))
        for row in (*left, *right):
            row.pop("tokens_per_second")
        assert left == right, run_id


def test_an_interrupted_wait_leaves_the_jobs_and_the_next_call_waits_for_them(cluster, tmp_path):
    # Ctrl-C as from a terminal: a job a shell starts in the background inherits SIGINT
    # ignored, and Python keeps it ignored
    interruptible = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('companion.cli', run_name='__main__')"
    )
    command = [
        sys.executable, "-c", interruptible, "reproduce", "--profile", "smoke", "--no-book",
        "--executor", "slurm", "--only", "mqar/softmax/", "--workers", "1", "--poll", "0.5",
        "--root", str(tmp_path),
    ]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobs_file = tmp_path / "smoke" / "slurm" / "jobs.json"
    deadline = time.monotonic() + 120
    while not jobs_file.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 130, out
    assert "the jobs go on in Slurm" in out and "scancel" in out

    lines = []
    outcomes = reproduce_runs(
        "smoke", root=tmp_path, only="mqar/softmax/", report=lines.append, slurm=FAST
    )
    assert any("still in Slurm from an earlier call" in line for line in lines)
    assert not any("submitted array" in line for line in lines)
    assert len(outcomes) == 4 and all(o.status in ("ran", "skipped") for o in outcomes)
    assert all(RunDir.for_config(c, tmp_path).complete for c in book_runs("smoke", "mqar/softmax/"))


def test_a_bad_partition_is_one_line_naming_the_partitions_and_writes_nothing(
    cluster, tmp_path, capsys
):
    argv = ["reproduce", "--profile", "smoke", "--executor", "slurm", "--partition", "gpu"]
    assert cli.main([*argv, "--root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err == "companion: error: unknown partition 'gpu'; this cluster has: debug\n"
    assert not (tmp_path / "runs").exists()


def test_no_cluster_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"  # a controller that is not there (a closed port)
    conf.write_text(
        "ClusterName=gone\nSlurmctldHost=localhost\nSlurmctldPort=1\n"
        "NodeName=localhost CPUs=1\nPartitionName=p Nodes=localhost\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(SlurmError, match="^Slurm does not answer: .*Unable to contact"):
        check_cluster(SlurmOptions())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SlurmError, match="needs sbatch, sacct, sinfo, srun on the PATH"):
        check_cluster(SlurmOptions())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--partition", "gpu"], "--partition: only for --executor slurm"),
        (["--gpus-per-run", "1", "--time", "30"], "--time, --gpus-per-run: only for"),
        (["--executor", "slurm", "--time", "0"], "time_min (--time) must be at least 1"),
        (["--executor", "slurm", "--cpus-per-run", "0"], "cpus_per_run (--cpus-per-run)"),
        (["--executor", "slurm", "--sbatch", "account"], "malformed --sbatch 'account'"),
        (["--executor", "cloud"], "argument --executor: invalid choice: 'cloud'"),
    ],
)
def test_bad_slurm_options_are_one_line_status_2(argv, message, tmp_path, capsys):
    assert exit_code(["reproduce", "--root", str(tmp_path / "runs"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_slurm_options_become_sbatch_parameters():
    args = cli.build_parser().parse_args(
        [
            "reproduce", "--executor", "slurm", "--partition", "gpu", "--time", "240",
            "--gpus-per-run", "1", "--cpus-per-run", "8", "--mem-gb", "32", "--workers", "16",
            "--sbatch", "account=lab", "--sbatch=--qos=high",
        ]
    )  # fmt: skip
    assert cli.slurm_options(args).parameters() == {
        "job_name": "companion",
        "time": 240,
        "cpus_per_task": 8,
        "partition": "gpu",
        "gpus_per_node": 1,
        "mem": "32768M",
        "array_parallelism": 16,
        "additional_parameters": {"account": "lab", "qos": "high"},
    }


def test_a_refused_submission_is_one_line_and_leaves_no_submission(cluster, tmp_path, capsys):
    argv = ["reproduce", "--profile", "smoke", "--no-book", "--executor", "slurm"]
    argv += ["--gpus-per-run", "1", "--only", "mqar/lru/", "--root", str(tmp_path)]
    assert exit_code(argv) == 2  # the cluster has no GPU
    err = capsys.readouterr().err
    assert err.startswith("companion: error: sbatch refused the array: ")
    assert err.count("\n") == 1
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("jobs.json"))


def test_data_not_prepared_is_one_line_before_submitting(cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path / "data"))
    argv = ["reproduce", "--profile", "smoke", "--no-book", "--executor", "slurm"]
    assert exit_code([*argv, "--only", "mqar/lru/", "--root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("companion: error: the runs need their data first: no prepared data")
    assert "run `companion data prepare --profile smoke`" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_the_ladder_runs_take_the_same_job_array(cluster, tmp_path, monkeypatch):
    """``reproduce --profile ladder`` on Slurm: a rung's runs (here a tiny rung of ListOps, so
    that they take seconds) are submitted as they are locally and land with the quick runs."""
    import yaml

    from companion.tasks import get_task

    spec = yaml.safe_load(grid.BOOK_RUNS.read_text())
    tiny = {
        "data": {"max_depth": 2, "min_length": 1},
        "model": {"d_model": 8, "n_layers": 1, "state_dim": 4},
        "train": {"steps": 2, "eval_every": 1, "checkpoint_every": 2, "eval_examples": 8,
                  "analysis_examples": 2, "spectra_points": 0},
    }  # fmt: skip
    spec["ladder"]["rungs"] = {"listops": {"depth2": tiny, "depth3": {}}}
    book = tmp_path / "book.yaml"
    book.write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(grid, "BOOK_RUNS", book)
    get_task("listops", "quick", **tiny["data"]).prepare(log=quiet)  # the rung's data
    outcomes = reproduce_runs(
        "ladder", root=tmp_path / "runs", only="listops/lru/ladder-*", report=quiet, slurm=FAST
    )
    assert [o.status for o in outcomes] == ["ran"] * 3  # the ladder's three seeds
    index = pd.read_csv(tmp_path / "runs" / "quick" / "index.csv")
    assert set(index["variant"]) == {"ladder-depth2"}
    assert {json.loads(d)["max_depth"] for d in index["data"]} == {2}

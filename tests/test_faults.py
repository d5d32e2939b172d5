"""Faults a user's machine or hands inflict on runs: kills, damaged files, a full disk, a
second process, a broken configuration file. Each test asserts that nothing of the user's is
lost (the damaged files are left as they were, or moved aside, never deleted) and that the
failure reads as one line that names the file and what to do.

Every run here is MQAR with linear attention at the smoke profile: 6 steps, a checkpoint at
step 3 (``tests/test_train.py`` has the kill-and-resume tests of every architecture)."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from builders import exit_code, killed_at

from companion import cli, executors, grid, io, runs
from companion import config as C
from companion import train as T
from companion.runs import RunDir, RunFolderError

ARGV = "train --task mqar --model linear --profile smoke --quiet".split()
CONFIG = C.resolve("mqar", "linear", None, "smoke")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread, as ``companion reproduce``'s workers (``executors.run_logged``) train:
    results are compared to the last bit, and float sums depend on the number of threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread) -> dict:
    """A complete run, a run killed after its checkpoint of step 3, and a complete run of
    another architecture (its checkpoint does not fit)."""
    root = tmp_path_factory.mktemp("reference")
    metrics = T.run(CONFIG, out=root / "complete", progress=False)
    mp = pytest.MonkeyPatch()
    mp.setattr(T, "train_step", killed_at(5))
    with pytest.raises(KeyboardInterrupt):
        T.run(CONFIG, out=root / "partial", progress=False)
    mp.undo()
    T.run(C.resolve("mqar", "mamba2", None, "smoke"), out=root / "other", progress=False)
    return {"root": root, "metrics": metrics}


def _copy(reference, which: str, dest: Path) -> RunDir:
    shutil.copytree(reference["root"] / which, dest)
    return RunDir(dest)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _cli(out: Path, *extra: str) -> int:
    return exit_code([*ARGV, "--out", str(out), *extra])


def _same_metrics(run: RunDir, reference) -> None:
    assert run.complete and run.read_json("metrics.json") == reference["metrics"]


# --- damaged files -----------------------------------------------------------------------------


def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(p: Path):
    p.write_bytes(b"")


def _random(p: Path):
    p.write_bytes(os.urandom(4096))


def _not_a_checkpoint(p: Path):
    torch.save({"weights": torch.zeros(3)}, p)


def _a_folder(p: Path):
    p.unlink()
    p.mkdir()


def _other_architecture(reference):
    def damage(p: Path):
        shutil.copy(reference["root"] / "other" / "checkpoint.pt", p)

    return damage


def _config_text(text: str):
    def damage(p: Path):
        p.write_text(text)

    return damage


def _binary(p: Path):
    p.write_bytes(b"\xff\xfe\x00garbage")


# (file, how it is damaged) -> damage(path); "other" stands for another model's checkpoint
DAMAGE = {
    ("checkpoint.pt", "truncated"): _truncate,
    ("checkpoint.pt", "empty"): _empty,
    ("checkpoint.pt", "random bytes"): _random,
    ("checkpoint.pt", "not a checkpoint"): _not_a_checkpoint,
    ("checkpoint.pt", "a folder"): _a_folder,
    ("checkpoint.pt", "another architecture"): "other",
    ("config.yaml", "not YAML"): _config_text("run_id: [unclosed\n"),
    ("config.yaml", "empty"): _empty,
    ("config.yaml", "a list"): _config_text("- 1\n- 2\n"),
    ("config.yaml", "no hash"): _config_text("run_id: mqar-linear-s1919\n"),
    ("config.yaml", "binary"): _binary,
    ("config.yaml", "edited by hand"): lambda p: p.write_text(
        p.read_text().replace("lr: 0.", "lr: 0.5", 1)
    ),
}
WHAT_TO_DO = {"checkpoint.pt": "delete", "config.yaml": "choose another --out"}


def _damaged_copy(damage, reference, folder: Path) -> RunDir:
    run = _copy(reference, "partial", folder)
    name, _ = damage
    how = DAMAGE[damage]
    how = _other_architecture(reference) if how == "other" else how
    how(run.file(name))
    return run


@pytest.mark.parametrize("damage", DAMAGE, ids=[" ".join(d) for d in DAMAGE])
@pytest.mark.slow
def test_a_damaged_file_is_named_and_kept(damage, reference, tmp_path, capsys):
    run = _damaged_copy(damage, reference, tmp_path / "run")
    before = _digest(run.path)
    assert _cli(run.path) == 2
    _one_line(capsys, f"{run.file(damage[0])} is damaged", WHAT_TO_DO[damage[0]])
    assert _digest(run.path) == before


@pytest.mark.parametrize("damage", DAMAGE, ids=[" ".join(d) for d in DAMAGE])
@pytest.mark.slow
def test_reproduce_moves_a_damaged_folder_aside_and_trains_it_anew(damage, reference, tmp_path):
    run = _damaged_copy(damage, reference, RunDir.for_config(CONFIG, tmp_path).path)
    _moved_aside_and_trained_anew(run, reference, tmp_path)


def _moved_aside_and_trained_anew(run: RunDir, reference, root: Path) -> None:
    """What reproduce does with the damaged folder ``run`` of CONFIG under ``root``."""
    before = _digest(run.path)
    assert not executors.is_current(CONFIG, root)
    outcome = executors.run_logged(CONFIG, root, threads=1)
    assert outcome.status == "ran" and ".stale" in outcome.note
    _same_metrics(run, reference)
    (kept,) = (root / "smoke" / ".stale").iterdir()
    assert _digest(kept) == before


def _edit_json(key: str, value):
    def damage(p: Path):
        data = json.loads(p.read_text())
        if value is None:
            del data[key]
        else:
            data[key] = value
        p.write_text(json.dumps(data))

    return damage


def _spectra_value(p: Path):
    lines = p.read_text().splitlines()
    fields = lines[1].split(",")
    fields[5] = "oops"  # the first row's mean
    p.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")


# the outputs of a complete run: (file, how it is damaged) -> damage(path); None deletes it
OUTPUT_DAMAGE = {
    ("metrics.json", "missing"): None,
    ("metrics.json", "not JSON"): _config_text("{oops"),
    ("metrics.json", "a list"): _config_text("[1, 2]"),
    ("metrics.json", "a word for a number"): _edit_json("test_accuracy", "high"),
    ("metrics.json", "no test metric"): _edit_json("test_accuracy", None),
    ("spectra.csv", "missing"): None,
    ("spectra.csv", "empty"): _empty,
    ("spectra.csv", "a column short"): _config_text("layer,mixer\n0,linear\n"),
    ("spectra.csv", "a word for a number"): _spectra_value,
}


def _damage_output(damage, run: RunDir) -> None:
    how = OUTPUT_DAMAGE[damage]
    if how is None:
        run.file(damage[0]).unlink()
    else:
        how(run.file(damage[0]))


@pytest.mark.parametrize("damage", OUTPUT_DAMAGE, ids=[" ".join(d) for d in OUTPUT_DAMAGE])
def test_a_complete_run_whose_outputs_do_not_read_is_named(damage, reference, tmp_path, capsys):
    run = _copy(reference, "complete", tmp_path / "run")
    _damage_output(damage, run)
    before = _digest(run.path)
    assert _cli(run.path) == 2
    _one_line(capsys, f"{damage[0]} is damaged", f"delete {run.file('complete.json')}")
    assert _digest(run.path) == before


@pytest.mark.parametrize("damage", OUTPUT_DAMAGE, ids=[" ".join(d) for d in OUTPUT_DAMAGE])
@pytest.mark.slow
def test_reproduce_moves_a_complete_run_whose_outputs_do_not_read_aside(
    damage, reference, tmp_path
):
    run = _copy(reference, "complete", RunDir.for_config(CONFIG, tmp_path).path)
    _damage_output(damage, run)
    _moved_aside_and_trained_anew(run, reference, tmp_path)


@pytest.mark.parametrize("damage", OUTPUT_DAMAGE, ids=[" ".join(d) for d in OUTPUT_DAMAGE])
def test_the_index_lists_damaged_folders_and_keeps_the_others(damage, reference, tmp_path, capsys):
    good = _copy(reference, "complete", tmp_path / "smoke" / "good")
    bad = _copy(reference, "complete", tmp_path / "smoke" / "bad")
    _damage_output(damage, bad)
    assert exit_code(["runs", "index", "--root", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and str(bad.path) in captured.err
    assert "1 damaged run folder(s) left out" in captured.out
    index = (tmp_path / "index.csv").read_text()
    assert str(good.path.resolve()) in index and str(bad.path.resolve()) not in index


def test_the_index_skips_a_folder_with_a_damaged_config(reference, tmp_path, capsys):
    _copy(reference, "complete", tmp_path / "smoke" / "good")
    bad = _copy(reference, "complete", tmp_path / "smoke" / "bad")
    bad.file("config.yaml").write_text("{{{")
    assert exit_code(["runs", "index", "--root", str(tmp_path)]) == 0
    assert "config.yaml is damaged" in capsys.readouterr().err


def test_runs_moved_aside_are_not_in_the_index(reference, tmp_path):
    _copy(reference, "complete", tmp_path / "smoke" / "good")
    _copy(reference, "complete", tmp_path / "smoke" / ".stale" / "old")
    assert len(runs.index(tmp_path)) == 1


# --- kills -------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [1, 2, 4, 5, 6])
def test_a_run_killed_at_any_step_resumes_to_the_same_result(
    call, reference, tmp_path, monkeypatch
):
    monkeypatch.setattr(T, "train_step", killed_at(call))
    with pytest.raises(KeyboardInterrupt):
        T.run(CONFIG, out=tmp_path / "run", progress=False)
    monkeypatch.undo()
    T.run(CONFIG, out=tmp_path / "run", progress=False)
    _same_metrics(RunDir(tmp_path / "run"), reference)


@pytest.mark.parametrize(
    "where", ["record_spectra", "evaluate", "Training.checkpoint", "RunDir.write_json"]
)
def test_a_kill_inside_a_write_resumes_to_the_same_result(where, reference, tmp_path, monkeypatch):
    owner, name = (T, where) if "." not in where else where.split(".")
    owner = {"Training": T.Training, "RunDir": RunDir}.get(owner, owner)
    real, calls = getattr(owner, name), []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, dies)
    with pytest.raises(KeyboardInterrupt):
        T.run(CONFIG, out=tmp_path / "run", progress=False)
    monkeypatch.undo()
    T.run(CONFIG, out=tmp_path / "run", progress=False)
    _same_metrics(RunDir(tmp_path / "run"), reference)


def test_a_kill_interrupts_the_command_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(T, "train_step", killed_at(2))
    assert _cli(tmp_path / "run") == 130
    _one_line(capsys, "interrupted")


@pytest.mark.slow
def test_ctrl_c_on_reproduce_starts_no_other_run_and_says_what_finished(tmp_path):
    cmd = [sys.executable, "-m", "companion", "reproduce", "--profile", "smoke", "--no-book"]
    cmd += ["--workers", "2", "--only", "mqar/*", "--root", str(tmp_path / "runs")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    total = len(C.book_runs("smoke", "mqar/*"))
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    for line in proc.stdout:  # wait for the first finished run
        if line.startswith("[1/"):
            break
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole group
    started = time.monotonic()
    assert proc.wait(timeout=60) == 130 and time.monotonic() - started < 30
    err = proc.stderr.read()
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("companion: interrupted: ") and f"of {total} runs finished" in last
    finished = int(last.split("interrupted: ")[1].split(" of ")[0])
    assert 1 <= finished < total - 2  # the queued runs never started
    done = list((tmp_path / "runs" / "smoke").glob("*/complete.json"))
    assert len(done) == finished  # a run in flight when it stopped is not complete


def test_temporary_files_of_a_killed_writer_are_removed_on_resume(reference, tmp_path):
    run = _copy(reference, "partial", tmp_path / "run")
    orphans = [
        run.file(f".checkpoint.pt.x1y2{io.TEMP_SUFFIX}"),
        run.file(f"spectra/.step_0000003.pt.a1b2{io.TEMP_SUFFIX}"),
    ]
    for p in orphans:
        p.write_bytes(b"half a file")
    T.run(CONFIG, out=run.path, progress=False)
    assert not any(p.exists() for p in orphans)
    _same_metrics(run, reference)


def _start_cli(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "companion", *ARGV, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the resuming test process
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


@pytest.mark.slow
def test_a_real_sigkill_resumes_to_the_same_result(reference, tmp_path):
    run = RunDir(tmp_path / "run")
    proc = _start_cli(run.path)
    deadline = time.monotonic() + 120
    while not run.file("checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()  # still training
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not run.complete
    T.run(CONFIG, out=run.path, progress=False)
    _same_metrics(run, reference)


# --- the disk, memory, the unexpected ---------------------------------------------------------


def test_a_full_disk_is_one_line_and_the_run_resumes_after(
    reference, tmp_path, capsys, monkeypatch
):
    real, calls = torch.save, []

    def full(obj, path, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the checkpoint of step 3 (after the spectra of steps 0 and 3)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    assert _cli(tmp_path / "run") == 1
    _one_line(capsys, "the disk is full writing", "run the same command again")
    monkeypatch.undo()
    assert not list((tmp_path / "run").rglob(f"*{io.TEMP_SUFFIX}"))
    assert _cli(tmp_path / "run") == 0
    _same_metrics(RunDir(tmp_path / "run"), reference)


@pytest.fixture
def small_disk(tmp_path):
    """A file system of its own (tmpfs) that a test can fill and then enlarge; skipped where
    mounting one is not allowed (not root)."""
    where = tmp_path / "disk"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a small file system needs root")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def _resize(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def test_a_really_full_disk_is_one_line_and_the_same_command_resumes(reference, small_disk, capsys):
    """torch.save on a full disk raises a RuntimeError of its own words, without errno: the
    command still names the disk and the file, leaves no partial file, and resumes."""
    size = sum(p.stat().st_size for p in (reference["root"] / "complete").rglob("*"))
    _resize(small_disk, str(size // 2))
    assert _cli(small_disk / "run") == 1
    _one_line(capsys, "the disk is full writing", str(small_disk / "run"), "same command again")
    assert not list(small_disk.rglob(f"*{io.TEMP_SUFFIX}"))
    _resize(small_disk, str(4 * size))
    assert _cli(small_disk / "run") == 0
    _same_metrics(RunDir(small_disk / "run"), reference)


def test_an_error_is_put_down_to_the_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    words = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    with pytest.raises(RuntimeError) as passed:  # the control: space left, the error unchanged
        with io.writing(tmp_path / "x.pt"):
            raise words
    assert passed.value is words
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(9, 9, 0))
    with pytest.raises(OSError) as full:
        with io.writing(tmp_path / "x.pt"):
            raise words
    assert (full.value.errno, full.value.filename) == (errno.ENOSPC, str(tmp_path / "x.pt"))
    assert full.value.__cause__ is words


def test_running_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(T, "build_model", no_memory)
    assert _cli(tmp_path / "run") == 1
    _one_line(capsys, "out of memory; lower model.d_model")
    assert not (tmp_path / "run").exists()


def test_torch_failing_to_allocate_is_the_same_one_line(tmp_path, capsys, monkeypatch):
    """torch's CPU allocator raises a RuntimeError, not a MemoryError; any other RuntimeError
    stays unexpected (the control)."""

    def huge(*args, **kwargs):
        return torch.empty(2**50, dtype=torch.uint8)  # a petabyte: refused at once

    monkeypatch.setattr(T, "build_model", huge)
    assert _cli(tmp_path / "run") == 1
    _one_line(capsys, "out of memory; lower model.d_model")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where its traceback goes
    message, status = cli.failure_line(RuntimeError("shapes do not match"))
    assert status == 1 and message.startswith("unexpected RuntimeError: shapes do not match")


def test_an_unexpected_error_names_the_file_with_its_traceback(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("something nobody expected")

    monkeypatch.setattr(T, "build_model", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert _cli(tmp_path / "run") == 1
    line = _one_line(capsys, "unexpected TypeError: something nobody expected", "traceback in")
    report = Path(line.rsplit("traceback in ", 1)[1].rstrip(")"))
    assert "Traceback" in report.read_text() and "build_model" in report.read_text()


def test_a_diverging_run_is_one_line_and_keeps_its_checkpoint(tmp_path, capsys, monkeypatch):
    real, calls = T.train_step, []

    def nan_at_5(*args):
        calls.append(1)
        return torch.tensor(float("nan")) if len(calls) == 5 else real(*args)

    monkeypatch.setattr(T, "train_step", nan_at_5)
    assert _cli(tmp_path / "run") == 1
    _one_line(capsys, "loss is nan at step 5", "checkpoint of step 3 is kept")
    assert RunDir(tmp_path / "run").load("checkpoint.pt")["step"] == 3


def test_a_folder_where_a_data_file_should_be_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path / "data"))
    assert exit_code(["data", "prepare", "--profile", "smoke", "--task", "mqar"]) == 0
    capsys.readouterr()
    (cache,) = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and "train" in p.name][:1]
    cache.unlink()
    cache.mkdir()
    assert _cli(tmp_path / "run") == 1
    _one_line(capsys, f"a folder stands where this file belongs; move it away: {cache}")
    assert cache.is_dir()


# --- files for others ------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_files_follow_the_umask(mask, tmp_path):
    old = os.umask(mask)
    try:
        T.run(CONFIG, out=tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "run").rglob("*") if p.is_file()} - {
        (0o666 & ~mask)
    }
    assert modes <= {0o666 & ~mask}, {oct(m) for m in modes}


# --- a second process ------------------------------------------------------------------------

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"process %d on test-host" % os.getpid())
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """A run folder whose lock another process holds."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.file(".lock"))], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


def test_a_folder_in_use_is_refused_in_one_line_naming_the_holder(held, capsys):
    run, proc = held
    assert _cli(run.path) == 2
    _one_line(capsys, f"{run.path} is in use by process {proc.pid} on test-host")
    assert not run.file("config.yaml").exists()


def test_reproduce_reports_a_run_in_use_and_goes_on(held, tmp_path):
    run, proc = held
    config = CONFIG
    target = RunDir.for_config(config, tmp_path)
    target.path.parent.mkdir(parents=True)
    shutil.move(run.path, target.path)
    outcome = executors.run_logged(config, tmp_path, threads=1)
    assert outcome.status == "failed" and f"in use by process {proc.pid}" in outcome.error
    proc.kill()
    proc.wait()
    assert executors.run_logged(config, tmp_path, threads=1).status == "ran"


def test_two_configurations_on_one_folder_never_mix(reference, tmp_path, capsys):
    run = _copy(reference, "partial", tmp_path / "run")
    before = _digest(run.path)
    assert _cli(run.path, "--set", "train.lr=0.01") == 2
    _one_line(capsys, "holds a run of another configuration")
    assert _digest(run.path) == before


def test_the_lock_is_released_when_a_run_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "train_step", killed_at(2))
    with pytest.raises(KeyboardInterrupt):
        T.run(CONFIG, out=tmp_path / "run", progress=False)
    with RunDir(tmp_path / "run").lock():
        pass


def test_a_lock_file_alone_does_not_hold_a_folder(reference, tmp_path):
    run = _copy(reference, "partial", tmp_path / "run")
    run.file(".lock").write_text("process 1 on a-host-that-died")
    T.run(CONFIG, out=run.path, progress=False)
    with pytest.raises(RunFolderError, match="in use"):
        with run.lock(), run.lock():
            pass


# --- configuration files and the user's runs -------------------------------------------------


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A copy of the configuration files that a test may break."""
    folder = tmp_path / "configs"
    shutil.copytree(grid.CONFIG_DIR, folder)
    monkeypatch.setattr(grid, "CONFIG_DIR", folder)
    monkeypatch.setattr(grid, "BOOK_RUNS", folder / "book.yaml")
    return folder


def test_a_malformed_config_file_names_its_path_and_line(configs, tmp_path, capsys):
    broken = configs / "mqar" / "lru.yaml"
    broken.write_text(broken.read_text() + "\nmodel: {d_model: [\n")
    argv = [*ARGV[:4], "lru", *ARGV[5:], "--out", str(tmp_path / "run")]
    assert exit_code(argv) == 2
    err = _one_line(capsys, f"{broken} line")
    assert not (tmp_path / "run").exists() and "fix or restore" in err


def test_a_malformed_config_file_stops_only_its_runs(configs, tmp_path):
    broken = configs / "mqar" / "lru.yaml"
    broken.write_text(": : :\n")
    assert T.run(CONFIG, out=tmp_path / "run", progress=False)  # another experiment trains
    found: list[str] = []
    runs_ = C.book_runs("smoke", "mqar/*", found)
    assert runs_ and not any(r.model_name == "lru" for r in runs_)
    assert len(found) == 1 and str(broken) in found[0]
    with pytest.raises(C.ConfigError, match=str(broken)):
        C.book_runs("smoke", "mqar/*")


@pytest.mark.slow
def test_a_broken_task_file_stops_its_task_only(configs):
    (configs / "lm" / "task.yaml").write_text("train: [\n")
    found: list[str] = []
    runs_ = C.book_runs("smoke", None, found)
    assert runs_ and not any(r.task == "lm" for r in runs_) and found


def test_a_users_run_with_overrides_never_takes_the_books_folder(tmp_path, capsys):
    root = tmp_path / "runs"
    argv = [*ARGV, "--root", str(root), "--set", "train.lr=0.002"]
    assert exit_code(argv) == 0
    capsys.readouterr()
    (mine,) = (root / "smoke").iterdir()
    assert mine.name.startswith("mqar-linear-s1919-set")
    assert executors.run_logged(CONFIG, root, threads=1).status == "ran"
    assert mine.exists() and RunDir.for_config(CONFIG, root).complete


def test_reproduce_moves_a_stale_folder_aside_and_names_it(reference, tmp_path):
    run = RunDir.for_config(CONFIG, tmp_path)
    _copy(reference, "other", run.path)  # another configuration in the book's folder
    before = _digest(run.path)
    outcome = executors.run_logged(CONFIG, tmp_path, threads=1)
    assert outcome.status == "ran" and ".stale" in executors.describe(outcome)
    (kept,) = (tmp_path / "smoke" / ".stale").iterdir()
    assert _digest(kept) == before
    _same_metrics(run, reference)


def test_a_stray_summary_is_not_read_back(reference, tmp_path):
    run = _copy(reference, "partial", tmp_path / "run")
    run.file("spectra/summary_0009999.csv").write_text("a,b\n1,2\n")
    T.run(CONFIG, out=run.path, progress=False)
    assert "9999" not in run.file("spectra.csv").read_text()
    assert json.loads(run.file("complete.json").read_text())["run_id"] == CONFIG.run_id

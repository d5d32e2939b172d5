"""The ``slurm`` executor of ``companion reproduce``: the runs as one Slurm job array.

Each run is one array task that calls :func:`companion.executors.run_logged`, the worker
function of the local pool too, so a run trains the same way on both executors (with the same
number of threads, the same metrics to the last bit). Through ``submitit``:

- the array goes to ``sbatch`` with the partition, time limit, GPUs, CPUs and memory of
  :class:`SlurmOptions`; Slurm's own output of each task is in ``<root>/<profile>/slurm/<array
  id>/``, the run's output in ``<root>/<profile>/logs/<run_id>.log`` as with the local pool;
- while the array runs (``squeue`` every ``poll_s`` seconds), a line per finished run and a
  line whenever the count of pending and running tasks changes;
- the job id of every submitted run is kept in ``<root>/<profile>/slurm/jobs.json``, so a
  second call (after Ctrl-C, or from another shell) waits for the runs that are still queued
  or running instead of submitting them twice;
- a task that ends without a result (cancelled, out of time or memory, node failure) is a
  failed run whose log paths are listed; its checkpoint stays, and a resubmission resumes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from companion import config as C
from companion.config import task_of
from companion.executors import Outcome, describe, is_current, log_path, run_logged, skipped
from companion.io import atomic_write_text
from companion.tasks import DataError

# the command-line flag of each option (``companion reproduce --executor slurm ...``)
FLAGS = {
    "partition": "--partition",
    "time_min": "--time",
    "gpus_per_run": "--gpus-per-run",
    "cpus_per_run": "--cpus-per-run",
    "mem_gb": "--mem-gb",
    "max_parallel": "--workers",
    "sbatch": "--sbatch",
    "poll_s": "--poll",
}


class SlurmError(RuntimeError):
    """Slurm cannot be used (no client on the PATH, a rejected submission); one line."""


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each run's array task, and how the submitting process waits.

    ``sbatch`` holds further ``sbatch`` options (``account``, ``qos``, ``constraint``, ...)
    without their leading dashes; ``max_parallel`` caps the tasks running at once (Slurm's
    ``--array=...%N``); ``poll_s`` is how often ``squeue`` is asked for the states."""

    partition: str | None = None
    time_min: int = 60
    gpus_per_run: int = 0
    cpus_per_run: int = 1
    mem_gb: float | None = None
    max_parallel: int | None = None
    sbatch: dict[str, str] = field(default_factory=dict)
    poll_s: float = 15.0

    def __post_init__(self):
        least = {"time_min": 1, "cpus_per_run": 1, "gpus_per_run": 0, "max_parallel": 1}
        least |= {"mem_gb": 1e-3, "poll_s": 1e-3}
        for name, low in least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name} ({FLAGS[name]}) must be at least {low:g}, got {value}")

    def parameters(self) -> dict:
        """The ``submitit.SlurmExecutor`` parameters."""
        params = {
            "job_name": "companion",
            "time": self.time_min,
            "cpus_per_task": self.cpus_per_run,
            "additional_parameters": dict(self.sbatch),
        }
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_run:
            params["gpus_per_node"] = self.gpus_per_run
        if self.mem_gb:
            params["mem"] = f"{round(self.mem_gb * 1024)}M"
        if self.max_parallel:
            params["array_parallelism"] = self.max_parallel
        return params


def last_line(text: str, default: str = "no message") -> str:
    """The last line of a command's complaint (Slurm's tools end with the one that matters)."""
    return (text.strip().splitlines() or [default])[-1]


def check_cluster(options: SlurmOptions) -> None:
    """Fail in one line, before anything is written, when there is no Slurm client, the
    cluster does not answer, or the partition is not one of its partitions."""
    missing = [cmd for cmd in ("sbatch", "sacct", "sinfo", "srun") if shutil.which(cmd) is None]
    if missing:
        raise SlurmError(
            f"the slurm executor needs {', '.join(missing)} on the PATH (run it on a Slurm "
            "login node), or use --executor local"
        )
    try:
        answer = subprocess.run(
            ["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise SlurmError("Slurm does not answer: sinfo took over 60 s") from None
    if answer.returncode != 0:
        raise SlurmError(f"Slurm does not answer: {last_line(answer.stderr)}")
    partitions = answer.stdout.split()
    if options.partition and options.partition not in partitions:
        raise SlurmError(
            f"unknown partition {options.partition!r}; this cluster has: {', '.join(partitions)}"
        )


def check_data(configs: list[C.RunConfig]) -> None:
    """Fail in one line when the data of a run is not prepared: prepared where the command
    runs (a login node with internet), not by every array task at once."""
    distinct = {(c.task, c.profile, json.dumps(c.data, sort_keys=True)): c for c in configs}
    for config in distinct.values():
        try:
            task_of(config).manifest()
        except DataError as e:
            raise SlurmError(f"the runs need their data first: {e}") from None


class JobBook:
    """``<root>/<profile>/slurm/jobs.json``: the Slurm job of every run submitted from here."""

    def __init__(self, folder: Path):
        self.path = folder / "jobs.json"
        self.jobs = json.loads(self.path.read_text()) if self.path.exists() else {}

    def record(self, config: C.RunConfig, job_id: str) -> None:
        self.jobs[config.run_id] = {"job_id": job_id, "config_hash": config.hash()}

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.jobs, indent=1, sort_keys=True))

    def job_of(self, config: C.RunConfig) -> str | None:
        entry = self.jobs.get(config.run_id)
        return entry["job_id"] if entry and entry["config_hash"] == config.hash() else None


def queue() -> dict[str, str]:
    """``{job id: state}`` of this user's jobs still known to ``squeue`` (array tasks one by
    one, e.g. ``{"812_0": "RUNNING", "812_1": "PENDING"}``)."""
    answer = subprocess.run(
        ["squeue", "--me", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=120
    )
    if answer.returncode != 0:
        raise SlurmError(f"squeue failed: {last_line(answer.stderr)}")
    return dict(line.split("|", 1) for line in answer.stdout.split())


def run_slurm(configs: list[C.RunConfig], root: str | Path, options: SlurmOptions, report=print):
    """Train ``configs`` as one Slurm job array (runs still queued or running from an earlier
    call are waited for, not submitted again) and wait for every task; returns the outcomes.
    Raises :class:`SlurmError` before writing anything when the cluster cannot take them."""
    check_cluster(options)
    check_data(configs)
    folder = (Path(root) / configs[0].profile / "slurm").resolve()
    book, live = JobBook(folder), queue()
    jobs = {
        c.run_id: submitit.SlurmJob(folder / "%A", book.job_of(c))
        for c in configs
        if book.job_of(c) in live
    }
    if jobs:
        report(f"slurm: {len(jobs)} run(s) still in Slurm from an earlier call; waiting for them")
    todo = [c for c in configs if c.run_id not in jobs]
    if todo:
        executor = submitit.SlurmExecutor(folder=folder / "%A")
        executor.update_parameters(**options.parameters())
        try:  # sbatch's complaints come back in the error, not on stderr
            with contextlib.redirect_stderr(io.StringIO()), executor.batch():
                submitted = [
                    executor.submit(run_logged, c, str(Path(root).resolve()), options.cpus_per_run)
                    for c in todo
                ]
        except Exception as e:  # sbatch's own message: a bad account, qos, time ...
            for pickle in folder.glob("*.pkl"):  # the submissions that did not go
                pickle.unlink()
            raise SlurmError(f"sbatch refused the array: {last_line(str(e))}") from None
        for config, job in zip(todo, submitted, strict=True):
            book.record(config, job.job_id)
            jobs[config.run_id] = job
        book.save()
        array = submitted[0].job_id.split("_")[0]
        report(
            f"slurm: submitted array {array} with {len(todo)} task(s); Slurm's output in "
            f"{folder / array}"
        )
    by_id = {c.run_id: c for c in configs}
    try:
        return _wait([(by_id[r], j) for r, j in jobs.items()], root, options.poll_s, report)
    except KeyboardInterrupt:
        arrays = sorted({j.job_id.split("_")[0] for j in jobs.values()})
        report(
            f"slurm: stopped waiting; the jobs go on in Slurm (array {', '.join(arrays)}). Run "
            f"the same command to wait for them again, or `scancel {' '.join(arrays)}`."
        )
        raise


def _wait(jobs: list, root, poll_s: float, report) -> list:
    """Wait for every job of ``[(config, job), ...]``: a job has ended when it has left the
    queue (or left its result). Reports each finished run, and the counts of pending and
    running tasks whenever they change."""
    pending = dict(enumerate(jobs))
    outcomes, last_counts = [], None
    while pending:
        try:
            live = queue()
        except SlurmError as e:  # a busy controller times out now and then
            report(f"slurm: {e}; asking again in {poll_s:g} s")
            time.sleep(poll_s)
            continue
        for key, (config, job) in list(pending.items()):
            if job.paths.result_pickle.exists() or job.job_id not in live:
                outcomes.append(_outcome(config, job, root))
                del pending[key]
                report(f"[{len(outcomes)}/{len(jobs)}] {describe(outcomes[-1])}")
        states = [live.get(job.job_id) for _, job in pending.values()]
        counts = (states.count("PENDING"), states.count("RUNNING"))
        if pending and counts != last_counts:
            failed = sum(o.status == "failed" for o in outcomes)
            report(
                f"slurm: {counts[0]} pending, {counts[1]} running, {len(outcomes)}/{len(jobs)} "
                f"finished ({failed} failed)"
            )
            last_counts = counts
        if pending:
            time.sleep(poll_s)
    return outcomes


def _outcome(config: C.RunConfig, job, root):
    """The :class:`~companion.executors.Outcome` of a task that has ended: the one
    ``run_logged`` returned; or, when its result is not there, "ran" if the run folder is
    complete, else "failed" with the state ``sacct`` gives and the log paths."""
    if job.paths.result_pickle.exists():
        try:
            return job.result()
        except Exception as e:  # the job's Python process raised outside the run
            error = last_line(str(e), type(e).__name__)
    elif is_current(config, root):
        return dataclasses.replace(skipped(config, root), status="ran")
    else:
        state = job.watcher.get_state(job.job_id, mode="force")
        error = f"Slurm job {job.job_id} ended {state} without a result"
    return Outcome(
        config.run_id,
        "failed",
        0.0,
        str(log_path(config, root)),
        {},
        f"{error}; Slurm's output: {job.paths.stderr}",
    )

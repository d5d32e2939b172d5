"""What every executor of ``companion reproduce`` shares: one run trained with its output in its
log file, the :class:`Outcome` it reports, and the local executor (a pool of processes).

:func:`run_logged` is the worker function of both executors: the local pool here
(:func:`run_local`) and the Slurm job array (:mod:`companion.slurm`), so a run trains the same
way on both. A run's output goes to ``<root>/<profile>/logs/<run_id>.log`` (:func:`log_path`); a
run that is complete and of the very same configuration (:func:`is_current`) is not trained
again but reported as ``skipped``.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from companion import config as C
from companion import train
from companion.runs import RunDir


@dataclass
class Outcome:
    run_id: str
    status: str  # "ran" | "skipped" | "failed"
    seconds: float
    log: str
    metrics: dict
    error: str = ""
    tokens_per_second: float = 0.0  # median over the run's evaluation intervals
    note: str = ""  # e.g. where an earlier folder of the run was moved aside


def log_path(config: C.RunConfig, root: str | Path) -> Path:
    return Path(root) / config.profile / "logs" / f"{config.run_id}.log"


def is_current(config: C.RunConfig, root: str | Path) -> bool:
    """Complete, of this very configuration (a changed configuration file retrains), and
    readable (a damaged folder is moved aside and trained anew)."""
    run = RunDir.for_config(config, root)
    return run.complete and train.unusable(run, config) is None


def skipped(config: C.RunConfig, root: str | Path) -> Outcome:
    """The outcome of a run that is already complete."""
    metrics = RunDir.for_config(config, root).read_json("metrics.json")
    return Outcome(config.run_id, "skipped", 0.0, str(log_path(config, root)), metrics)


def run_logged(config: C.RunConfig, root: str | Path, threads: int) -> Outcome:
    """Train one run with its output in its log file (the worker function of every executor)."""
    torch.set_num_threads(threads)
    log = log_path(config, root)
    log.parent.mkdir(parents=True, exist_ok=True)
    if is_current(config, root):
        return skipped(config, root)
    run_dir = RunDir.for_config(config, root)
    set_aside = run_dir.path.parent / ".stale"
    kept_before = set(set_aside.glob(f"{config.run_id}-*"))
    start = time.perf_counter()
    with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            metrics = train.run(config, root=root, progress=False, replace_stale=True)
        except Exception as e:  # reported with its log; the other runs go on
            traceback.print_exc()
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            return Outcome(
                config.run_id, "failed", time.perf_counter() - start, str(log), {}, first
            )
    seconds = time.perf_counter() - start
    speed = run_dir.read_json("timing.json")["tokens_per_second_median"]
    kept = sorted(set(set_aside.glob(f"{config.run_id}-*")) - kept_before)
    note = f"its earlier folder was moved aside to {kept[-1]}" if kept else ""
    return Outcome(
        config.run_id, "ran", seconds, str(log), metrics, tokens_per_second=speed, note=note
    )


def describe(o: Outcome) -> str:
    """One line for a finished run: its time, speed and first test metric, or its error."""
    if o.status == "failed":
        after = f" after {o.seconds:.0f} s" if o.seconds else ""
        return f"{o.run_id}: failed{after}: {o.error} (log: {o.log})"
    metric = next(
        (
            f"{k} {v:.4g}"
            for k, v in o.metrics.items()
            if k.startswith("test_") and not k.endswith("loss")
        ),
        "",
    )
    when = "already complete" if o.status == "skipped" else f"{o.seconds:.0f} s"
    speed = f", {o.tokens_per_second:.3g} tokens/s" if o.tokens_per_second else ""
    note = f" ({o.note})" if o.note else ""
    return f"{o.run_id}: {when}{speed}, {metric}{note}"


_HALT = None  # a pool worker's copy of run_local's stop event (see stop)


def _start_worker(gpus, halt) -> None:
    """Pool initializer: a worker gets SIGTERM when the process that started it dies (Linux),
    so a killed ``companion reproduce`` leaves no run training in the background; it ignores
    Ctrl-C between runs (:func:`_pooled`) and takes its GPU (:func:`take_gpu`)."""
    global _HALT
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _HALT = halt
    take_gpu(gpus)


def _pooled(config: C.RunConfig, root: str | Path, threads: int) -> Outcome | None:
    """:func:`run_logged` in a pool worker: nothing (None) once :func:`stop` has been called,
    and Ctrl-C (SIGINT) stops the run at its current step, so that the worker, which ignores
    it between runs, exits cleanly afterwards."""
    if _HALT is not None and _HALT.is_set():
        return None
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_logged(config, root, threads)
    finally:
        signal.signal(signal.SIGINT, before)


def take_gpu(gpus) -> None:
    """Take the next GPU of the queue ``gpus`` as the only one this process sees (before
    anything in it touches CUDA); ``None`` (no GPUs) changes nothing."""
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()


def expected_work(config: C.RunConfig) -> float:
    """A rough size of a run, to start the largest first: optimiser steps × batch size × layers
    (a run that trains in epochs counts as larger than any run with a fixed number of steps)."""
    steps = config.train.steps or math.inf
    return steps * config.train.batch_size * config.model.get("n_layers", 1)


THREADS_PER_RUN = 1  # the quick models gain little from a second thread inside one run


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's control group in cores (``docker --cpus``, Kubernetes
    limits, Binder), from cgroup v2's ``cpu.max`` or v1's CFS files; None without one."""
    v2, v1 = root / "cpu.max", root / "cpu" / "cpu.cfs_quota_us"
    with contextlib.suppress(OSError, ValueError):
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if v1.is_file():
            quota = int(v1.read_text())
            period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    return None


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask (Slurm, ``taskset``), which
    ``os.cpu_count()`` ignores, capped by the control group's quota; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_quota()
    return max(1, min(cores or 1, math.floor(quota) if quota else cores or 1))


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (its own list when
    it is set, e.g. by Slurm; else every device CUDA counts); [] without CUDA."""
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    if named is not None:
        return [g.strip() for g in named.split(",") if g.strip() and g.strip() != "-1"]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def default_workers() -> int:
    """Runs to train at once when none is asked for: one per visible GPU; without one, the
    usable cores, each run with :data:`THREADS_PER_RUN` threads (one run on Binder's single
    core)."""
    return len(visible_gpus()) or max(1, usable_cores() // THREADS_PER_RUN)


def gpu_slots(workers: int, gpus: list[str]) -> list[str]:
    """The GPU each of ``workers`` workers sees: one each, in turn (two workers share one GPU
    only when more workers than GPUs are asked for)."""
    return [gpus[i % len(gpus)] for i in range(workers)]


def run_local(configs: list[C.RunConfig], root: str | Path, workers: int, report=print):
    """Run ``configs`` in a pool of ``workers`` processes, splitting the usable cores between
    them and giving each its own GPU where there are GPUs (:func:`gpu_slots`). The largest runs
    start first (:func:`expected_work`), so that no long run is left to finish alone at the
    end."""
    threads = max(1, usable_cores() // workers)
    outcomes = []
    context = get_context("spawn")
    gpus = visible_gpus()
    slots, halt = None, context.Event()
    if gpus:
        slots = context.Queue()
        for gpu in gpu_slots(workers, gpus):
            slots.put(gpu)
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(slots, halt)
    )
    try:
        ordered = sorted(configs, key=expected_work, reverse=True)  # stable: book order on ties
        futures = {pool.submit(_pooled, c, root, threads): c for c in ordered}
        for i, future in enumerate(as_completed(futures), 1):
            outcome = future.result()
            outcomes.append(outcome)
            report(f"[{i}/{len(configs)}] {describe(outcome)}")
    except KeyboardInterrupt:
        stop(pool, halt)
        # a run in flight may have finished after the signal: count what is complete on disk
        done = sum(RunDir.for_config(c, root).complete for c in configs)
        raise Interrupted(
            f"interrupted: {done} of {len(configs)} runs finished, no other started; "
            "the same command resumes the rest (a run in flight from its last checkpoint)"
        ) from None
    pool.shutdown()
    return outcomes


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_local`, with the line that says what finished."""


def stop(pool: ProcessPoolExecutor, halt) -> None:
    """After Ctrl-C: start no queued run (``halt``, the event the workers read before a run),
    interrupt the runs in flight (a worker that missed the terminal's signal gets its own; a
    run's files are written atomically, so it resumes from its last checkpoint) and wait until
    the workers have exited."""
    halt.set()
    workers = list((pool._processes or {}).values())  # the pool's live processes
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(process.pid, signal.SIGINT)
    pool.shutdown(wait=True)

"""``companion reproduce``: every run of the book, in parallel, then its index.

The runs are listed by ``configs/book.yaml`` (every experiment of the configs, more seeds for
some, a few left out at some profiles). A complete run is skipped, an interrupted one resumes,
so a second call with nothing changed trains nothing. Each run's output goes to
``<root>/<profile>/logs/<run_id>.log``; failures are listed with those paths at the end and do
not stop the others.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import yaml

from companion import config as C
from companion.runs import RunDir, write_index

BOOK_RUNS = C.CONFIG_DIR / "book.yaml"


def book_runs(profile: str, only: str | None = None) -> list[C.RunConfig]:
    """The resolved configurations of every run of the book at ``profile``, in a fixed order;
    ``only`` keeps the experiments matching a "task/model/variant" pattern (e.g. ``mqar/*``)."""
    spec = yaml.safe_load(BOOK_RUNS.read_text())
    skip = spec.get("skip", {}).get(profile) or []
    runs = []
    for task, model, variant in C.experiments():
        name = f"{task}/{model}/{variant or ''}"
        if any(fnmatch.fnmatch(name, pattern) for pattern in skip):
            continue
        if only is not None and not fnmatch.fnmatch(name, only):
            continue
        seeds = [spec["seed"]]
        for extra in spec.get("more_seeds", []):
            if (
                variant is None
                and fnmatch.fnmatch(task, extra["task"])
                and fnmatch.fnmatch(model, extra["model"])
            ):
                seeds += extra["seeds"]
        runs += [C.resolve(task, model, variant, profile, seed) for seed in seeds]
    return runs


@dataclass
class Outcome:
    run_id: str
    status: str  # "ran" | "skipped" | "failed"
    seconds: float
    log: str
    metrics: dict
    error: str = ""


def log_path(config: C.RunConfig, root: str | Path) -> Path:
    return Path(root) / config.profile / "logs" / f"{config.run_id}.log"


def run_logged(config: C.RunConfig, root: str | Path, threads: int) -> Outcome:
    """Train one run with its output in its log file (the worker function of every executor)."""
    import torch

    from companion.train import run

    torch.set_num_threads(threads)
    log = log_path(config, root)
    log.parent.mkdir(parents=True, exist_ok=True)
    if RunDir.for_config(config, root).complete:
        metrics = RunDir.for_config(config, root).read_json("metrics.json")
        return Outcome(config.run_id, "skipped", 0.0, str(log), metrics)
    start = time.perf_counter()
    with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            metrics = run(config, root=root, progress=False)
        except Exception as e:  # reported with its log; the other runs go on
            traceback.print_exc()
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            return Outcome(
                config.run_id, "failed", time.perf_counter() - start, str(log), {}, first
            )
    return Outcome(config.run_id, "ran", time.perf_counter() - start, str(log), metrics)


def run_local(configs: list[C.RunConfig], root: str | Path, workers: int, report=print):
    """Run ``configs`` in a pool of ``workers`` processes, splitting the cores between them."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    outcomes = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_logged, c, root, threads): c for c in configs}
        for i, future in enumerate(as_completed(futures), 1):
            outcome = future.result()
            outcomes.append(outcome)
            report(f"[{i}/{len(configs)}] {describe(outcome)}")
    return outcomes


def describe(o: Outcome) -> str:
    if o.status == "failed":
        return f"{o.run_id}: failed after {o.seconds:.0f} s: {o.error} (log: {o.log})"
    metric = next(
        (
            f"{k} {v:.4g}"
            for k, v in o.metrics.items()
            if k.startswith("test_") and not k.endswith("loss")
        ),
        "",
    )
    when = "already complete" if o.status == "skipped" else f"{o.seconds:.0f} s"
    return f"{o.run_id}: {when}, {metric}"


def reproduce_runs(
    profile: str,
    workers: int = 2,
    root: str | Path = "runs",
    only: str | None = None,
    report=print,
):
    """Every run of the book at ``profile`` (or those matching ``only``), then
    ``<root>/<profile>/index.csv``; returns the outcomes. Raises ``RuntimeError`` listing the
    failed runs and their logs, if any."""
    configs = book_runs(profile, only)
    if not configs:
        raise ValueError(f"no run of the book matches {only!r}; patterns look like mqar/*/*")
    todo = sum(not RunDir.for_config(c, root).complete for c in configs)
    report(
        f"{len(configs)} runs at profile {profile}: {todo} to train, "
        f"{len(configs) - todo} complete; {workers} worker(s)"
    )
    start = time.perf_counter()
    outcomes = (
        run_local(configs, root, workers, report)
        if todo
        else [run_logged(c, root, 1) for c in configs]
    )
    index = write_index(Path(root) / profile)
    failed = [o for o in outcomes if o.status == "failed"]
    ran = sum(o.status == "ran" for o in outcomes)
    report(
        f"runs: {ran} trained, {len(outcomes) - ran - len(failed)} already complete, "
        f"{len(failed)} failed in {time.perf_counter() - start:.0f} s; index: {index}"
    )
    if failed:
        lines = "; ".join(f"{o.run_id} ({o.log})" for o in failed)
        raise RuntimeError(f"{len(failed)} run(s) failed: {lines}")
    return outcomes

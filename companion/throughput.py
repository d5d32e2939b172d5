"""Training throughput of the book's runs on this machine, and what the whole grid costs.

    python -m companion.throughput --profile paper --only 'mqar/*/' --steps 200
    python -m companion.throughput --profile quick --threads 1 --baseline d08dc6b

For each selected run, the model of its configuration trains ``steps`` optimiser steps (after
``warmup`` untimed ones) exactly as :func:`companion.train.run` does (CUDA with bfloat16
autocast when there is a GPU), on the run's own first training batches when its task's data is
prepared, else on random batches of its batch size at the task's full length (an upper bound on
the step time for tasks whose examples are shorter, ListOps and Text). The warm-up steps are
counted with PyTorch's ``FlopCounterMode`` (matrix products, forward and backward), so each row
also says how many GFLOP/s the step reaches and which fraction of this machine's measured
matmul peak that is (``matmul_peak``: a large float32 product on the CPU, bfloat16 on a GPU, on
the same number of threads). Tokens are the positions of the batches, padding included.

``--baseline REV`` measures the same runs, on the same batches, with the package as it was at
git revision ``REV`` and as it is now, alternating the two run by run in fresh processes, and
writes ``compare.csv`` (before, after, ratio): absolute times differ between machines and
sessions, ratios measured side by side do not.

The estimate of the grid: every run of the book at the profile costs its number of steps times
the step time measured for its (task, model) main experiment, scaled by its number of layers.
Runs with early stopping (MQAR) may end sooner: their figure is an upper bound.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from companion import config as C
from companion import train
from companion.config import book_runs
from companion.io import atomic_write_text
from companion.model import build_model, param_groups
from companion.tasks import DataError
from companion.tasks.cache import data_root

# a copy of this module also times older revisions of the package (--baseline), so its imports
# at the top must resolve there too: a run's task and architecture come through companion.train,
# which has held them at every revision
from companion.train import count_steps, device_and_autocast, model_config, task_of, train_step

# the character vocabulary of IMDb is counted on the prepared data; this stands in without it
STAND_IN_VOCAB = 256
REPOSITORY = Path(__file__).resolve().parents[1]
# FlopCounterMode also counts convolutions, and a grouped convolution's weight gradient as if it
# were dense (C× too many for the depthwise prefilter): here only matrix products count
NOT_MATRIX_PRODUCTS = {
    op: (lambda *args, **kwargs: 0)
    for op in (
        torch.ops.aten.convolution,
        torch.ops.aten._convolution,
        torch.ops.aten.convolution_backward,
    )
}


def random_batch(config: C.RunConfig, generator: torch.Generator) -> tuple[dict, int]:
    """A batch shaped as the run's (``batch_size`` × the task's full length) with random
    inputs and targets, and the vocabulary size it was drawn from."""
    task = task_of(config)
    b, n = config.train.batch_size, task.seq_len
    try:
        vocab = task.vocab_size
    except DataError:
        vocab = STAND_IN_VOCAB
    batch = {"mask": torch.ones(b, n, dtype=torch.bool)}
    if task.input_dim is not None:
        batch["inputs"] = torch.randn(b, n, task.input_dim, generator=generator)
    else:
        batch["input_ids"] = torch.randint(1, vocab, (b, n), generator=generator)
    if task.kind == "classification":
        batch["label"] = torch.randint(0, task.n_classes, (b,), generator=generator)
    else:
        batch["labels"] = torch.randint(0, vocab, (b, n), generator=generator)
    return batch, vocab


def training_batches(config: C.RunConfig, count: int) -> tuple[list[dict], int | None, str]:
    """The run's first ``count`` training batches, its vocabulary (``None``: the task's) and
    ``"data"``; or, when the task's data is not prepared, ``count`` copies of one
    :func:`random_batch`, its vocabulary and ``"random"``."""
    try:
        batches = train.Batches(task_of(config), "train", config.train.batch_size, config.seed)
        return [batches(step) for step in range(count)], None, "data"
    except DataError:
        batch, vocab = random_batch(config, torch.Generator().manual_seed(config.seed))
        return [batch] * count, vocab, "random"


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` ``n × n`` matrix products on this device, in the
    dtype training computes in (float32 on the CPU, bfloat16 on a GPU)."""
    device, _ = device_and_autocast()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = math.inf
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def optimizer(model, tc) -> torch.optim.Optimizer:
    """The optimiser as the measured version of the package builds it: ``optimizer_for``, or
    for a ``--baseline`` revision older than it, AdamW's per-parameter loop it had then."""
    if hasattr(train, "optimizer_for"):
        return train.optimizer_for(model, tc)
    groups = param_groups(model, tc.lr, tc.weight_decay, tc.ssm_lr, tc.decay_transition)
    return torch.optim.AdamW(groups, lr=tc.lr, betas=tc.betas)


def stepper(config: C.RunConfig, count: int):
    """``(step, batches, source)``: ``count`` training batches of ``config`` on the host, as
    training takes them (:func:`training_batches`, and where they came from), and ``step(batch)``,
    one optimiser step of ``config``'s model, seeded and on the training device, as
    :func:`companion.train.run` takes it."""
    device, autocast = device_and_autocast()
    torch.manual_seed(config.seed)
    batches, vocab, source = training_batches(config, count)
    model = build_model(model_config(config, task_of(config), vocab_size=vocab)).to(device)
    tc = config.train
    opt = optimizer(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    def step(batch: dict) -> None:
        train_step(model, opt, scheduler, batch, device, tc.grad_clip, autocast)

    return step, batches, source


def measure(config: C.RunConfig, steps: int, warmup: int) -> dict:
    """Seconds per optimiser step of ``config``'s model (mean of ``steps`` after ``warmup``
    counted ones, at least one), tokens per second, matmul GFLOP per step, and the peak GPU
    memory (0 on the CPU)."""
    device, _ = device_and_autocast()
    tc = config.train
    counted = max(1, warmup)
    step, batches, source = stepper(config, counted + steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run(chunk: list[dict]) -> float:
        start = time.perf_counter()
        for batch in chunk:
            step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    with FlopCounterMode(display=False, custom_mapping=NOT_MATRIX_PRODUCTS) as counter:
        run(batches[:counted])
    gflop_per_token = (
        counter.get_total_flops() / 1e9 / sum(b["mask"].numel() for b in batches[:counted])
    )
    timed = batches[counted:]
    seconds = run(timed)
    tokens = sum(b["mask"].numel() for b in timed)
    return {
        "run_id": config.run_id,
        "package": str(Path(train.__file__).resolve().parent),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batches": source,
        "batch_size": tc.batch_size,
        "length": round(tokens / len(timed) / tc.batch_size),
        "step_seconds": seconds / steps,
        "tokens_per_second": tokens / seconds,
        "gflop_per_step": gflop_per_token * tokens / steps,
        "gflops": gflop_per_token * tokens / seconds,
        "peak_memory_gb": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        ),
    }


def total_steps(config: C.RunConfig) -> int:
    """Optimiser steps of ``config``'s full run (as :func:`companion.train.run` counts them),
    on the paper's training-set sizes when the paper data are not prepared here."""
    if config.train.steps:
        return config.train.steps
    task = task_of(config)
    try:
        examples = len(task.split("train"))
    except DataError:
        if config.profile != "paper" or task.paper_train_examples is None:
            raise
        examples = task.paper_train_examples
    return count_steps(config.train, examples)


def grid_estimate(profile: str, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the book at ``profile``: its steps and its estimated hours, from the
    step time of its (task, model) main experiment in ``measured`` (NaN when not measured)."""
    main = {
        (c.task, c.model_name): (c.model["n_layers"], row.step_seconds)
        for c in book_runs(profile)
        for row in measured.itertuples()
        if c.variant is None and row.run_id == c.run_id
    }
    rows = []
    for c in book_runs(profile):
        layers, seconds = main.get((c.task, c.model_name), (1, math.nan))
        step = seconds * c.model["n_layers"] / layers
        steps = total_steps(c)
        rows.append(
            {"run_id": c.run_id, "task": c.task, "steps": steps, "hours": steps * step / 3600}
        )
    return pd.DataFrame(rows)


def commit_of(revision: str) -> str:
    """The full hash of git ``revision`` of this repository; ``ValueError`` naming it if git
    does not know it as a commit."""
    found = subprocess.run(
        [
            "git",
            "-C",
            str(REPOSITORY),
            "rev-parse",
            "--verify",
            "--quiet",
            f"{revision}^{{commit}}",
        ],
        capture_output=True,
        text=True,
    )
    if found.returncode:
        raise ValueError(f"--baseline {revision!r} is not a commit of this repository")
    return found.stdout.strip()


def export_package(commit: str, dest: Path) -> None:
    """The package as it was at ``commit``, extracted as ``dest/companion``."""
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", commit, "companion"],
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")


def measure_version(root: Path, harness: Path, config: C.RunConfig, args, out: Path) -> dict:
    """:func:`measure` of ``config`` in a fresh process whose ``companion`` is the one under
    ``root``, by this module's code (``harness``, a copy outside any package)."""
    command = [
        sys.executable,
        str(harness),
        "--profile",
        args.profile,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--out",
        str(out),
        "--only",
        f"{config.task}/{config.model_name}/",
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(root), "COMPANION_DATA": str(data_root())}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{config.run_id} at {root}: {last}")
    return pd.read_csv(out / args.profile / "measured.csv").iloc[0].to_dict()


def compare(configs: list[C.RunConfig], args, peak: float) -> pd.DataFrame:
    """Every run of ``configs`` measured with the package at ``args.baseline`` ("before") and
    as it is ("after"), alternating which goes first from run to run; one row per run."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="companion-baseline-") as tmp:
        tmp = Path(tmp)
        roots = {"before": tmp / "before", "after": REPOSITORY}
        export_package(commit_of(args.baseline), roots["before"])
        harness = tmp / "harness.py"
        shutil.copyfile(__file__, harness)
        for i, config in enumerate(configs):
            pair = {}
            for version in ("before", "after")[:: 1 if i % 2 == 0 else -1]:
                out = tmp / "measured" / version / str(i)
                pair[version] = measure_version(roots[version], harness, config, args, out)
            before, after = pair["before"], pair["after"]
            rows.append(
                {
                    "run_id": config.run_id,
                    "batches": after["batches"],
                    "batch_size": after["batch_size"],
                    "length": after["length"],
                    "ms_per_step_before": 1e3 * before["step_seconds"],
                    "ms_per_step_after": 1e3 * after["step_seconds"],
                    "tokens_per_second_before": before["tokens_per_second"],
                    "tokens_per_second_after": after["tokens_per_second"],
                    "ratio": after["tokens_per_second"] / before["tokens_per_second"],
                    "gflop_per_step": after["gflop_per_step"],
                    "gflops_after": after["gflops"],
                    "peak_fraction_after": after["gflops"] / peak,
                    "package_before": before["package"],
                    "package_after": after["package"],
                }
            )
            r = rows[-1]
            print(
                f"[{i + 1}/{len(configs)}] {config.run_id}: {r['ms_per_step_before']:.1f} -> "
                f"{r['ms_per_step_after']:.1f} ms/step, {r['ratio']:.2f}x tokens/s, "
                f"{r['peak_fraction_after']:.0%} of peak after",
                flush=True,
            )
    return pd.DataFrame(rows).assign(baseline=args.baseline, matmul_peak_gflops=peak)


def compare_summary(table: pd.DataFrame) -> list[str]:
    """The lines that judge a comparison: median tokens/s before and after, the gain of the
    slowest quarter of runs (by tokens/s before), and the lowest share of the matmul peak."""
    slowest = table.nsmallest(max(1, len(table) // 4), "tokens_per_second_before")
    low = table.loc[table["peak_fraction_after"].idxmin()]
    before = table["tokens_per_second_before"].median()
    after = table["tokens_per_second_after"].median()
    return [
        f"median tokens/s: {before:.3g} before, {after:.3g} after ({after / before:.2f}x); "
        f"median of the runs' ratios {table['ratio'].median():.2f}x",
        f"slowest quarter ({len(slowest)} runs by tokens/s before): median ratio "
        f"{slowest['ratio'].median():.2f}x, lowest {slowest['ratio'].min():.2f}x",
        f"lowest share of the matmul peak after: {low['peak_fraction_after']:.0%} "
        f"({low['run_id']})",
    ]


def compare_markdown(table: pd.DataFrame) -> str:
    """``compare.csv`` as the Markdown table the README shows (:func:`report.markdown_table`)."""
    from companion.report import markdown_table  # not at the top: older revisions lack it

    shown = pd.DataFrame(
        {
            "run": table["run_id"].str.rsplit("-s", n=1).str[0],
            "B × L": [
                f"{b} × {n}" for b, n in zip(table["batch_size"], table["length"], strict=True)
            ],
            "ms/step before": table["ms_per_step_before"].map("{:.0f}".format),
            "ms/step after": table["ms_per_step_after"].map("{:.0f}".format),
            "tokens/s ratio": table["ratio"].map("{:.2f}".format),
            "GFLOP/s after": table["gflops_after"].map("{:.1f}".format),
            "share of peak": table["peak_fraction_after"].map("{:.0%}".format),
        }
    )
    return markdown_table(shown) + "\n"


MAX_STEPS = 100_000  # timed (or warm-up) steps per run: a quarter of an hour at the slowest here
MAX_THREADS = 1024


class OneLineParser(argparse.ArgumentParser):
    """Errors in one line, as at the front door (``companion.cli``), whose parser this module
    cannot import: it also runs as a copy against older revisions of the package."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv=None) -> int:
    parser = OneLineParser(prog="companion throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=C.PROFILES, default="paper")
    parser.add_argument(
        "--only",
        default="*/*/",
        metavar="PATTERN",
        help="main experiments to measure, as task/model/variant (default: all, '*/*/')",
    )
    parser.add_argument("--steps", type=int, default=200, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--out", default="bench/results/throughput", help="folder for the CSVs")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per run (default: torch's; `make reproduce` gives each of its "
        "2 workers 1 thread on 2 cores)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure the package at this git revision, run by run beside the current "
        "one, and write compare.csv (before, after, ratio)",
    )
    args = parser.parse_args(argv)
    if not (1 <= args.steps <= MAX_STEPS and 0 <= args.warmup <= MAX_STEPS):
        raise ValueError(
            f"--steps {args.steps} --warmup {args.warmup}: expected --steps from 1 and "
            f"--warmup from 0, both at most {MAX_STEPS}"
        )
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise ValueError(f"--threads {args.threads}: expected from 1 to {MAX_THREADS}")
    configs, seen = [], set()
    for c in book_runs(args.profile, args.only):  # the main experiments, with the book's seed
        if c.variant is None and (c.task, c.model_name) not in seen:
            configs.append(c)
            seen.add((c.task, c.model_name))
    if not configs:
        parser.error(f"no main experiment matches {args.only!r}; patterns look like 'mqar/*/'")
    if args.baseline:
        try:
            commit_of(args.baseline)
        except ValueError as e:
            parser.error(str(e))
    out = Path(args.out) / args.profile
    try:  # the folder of the results, made before anything is measured
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {args.out}: cannot make the folder ({e.strerror})") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    peak = matmul_peak()
    print(f"matmul peak: {peak:.0f} GFLOP/s on {torch.get_num_threads()} thread(s)", flush=True)
    if args.baseline:
        table = compare(configs, args, peak)
        atomic_write_text(out / "compare.csv", table.to_csv(index=False))
        atomic_write_text(out / "compare.md", compare_markdown(table))
        print("\n".join([*compare_summary(table), f"tables in {out}"]))
        return 0
    rows = []
    for i, config in enumerate(configs, 1):
        row = measure(config, args.steps, args.warmup)
        row["peak_fraction"] = row["gflops"] / peak
        rows.append(row)
        print(
            f"[{i}/{len(configs)}] {row['run_id']}: {row['step_seconds'] * 1e3:.1f} ms/step, "
            f"{row['tokens_per_second']:.3g} tokens/s, {row['gflops']:.1f} GFLOP/s "
            f"({row['peak_fraction']:.0%} of peak), B={row['batch_size']} L={row['length']}, "
            f"peak memory {row['peak_memory_gb']:.1f} GB on {row['device']}",
            flush=True,
        )
    measured = pd.DataFrame(rows).assign(matmul_peak_gflops=peak)
    grid = grid_estimate(args.profile, measured)
    atomic_write_text(out / "measured.csv", measured.to_csv(index=False))
    atomic_write_text(out / "grid.csv", grid.to_csv(index=False))
    known = grid.dropna(subset=["hours"])
    for task, part in known.groupby("task"):
        print(f"{task}: {len(part)} runs, {part['hours'].sum():.3g} h at most")
    print(
        f"grid at profile {args.profile}: {len(known)} of {len(grid)} runs estimated, "
        f"{known['hours'].sum():.3g} device-hours on {rows[0]['device']} (one run at a time); "
        f"tables in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput of the book's runs on this machine, and what the whole grid costs.

    python -m companion.throughput --profile paper --only 'mqar/*/' --steps 200

For each selected run, the model of its configuration trains ``steps`` optimiser steps (after
``warmup`` untimed ones) exactly as :func:`companion.train.run` does (CUDA with bfloat16
autocast when there is a GPU), on random batches of the run's batch size at the task's full
length: an upper bound on the step time for tasks whose examples are shorter (ListOps, Text).
No data needs to be prepared. One more step is counted with PyTorch's ``FlopCounterMode``
(matrix products, forward and backward), so each row also says how many GFLOP/s the step
reaches and which fraction of this machine's measured matmul peak that is (``matmul_peak``: a
large float32 product on the CPU, bfloat16 on a GPU, on the same number of threads).

The estimate of the grid: every run of the book at the profile costs its number of steps times
the step time measured for its (task, model) main experiment, scaled by its number of layers.
Runs with early stopping (MQAR) may end sooner: their figure is an upper bound.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from companion import config as C
from companion.config import book_runs
from companion.io import atomic_write_text
from companion.model import build_model
from companion.tasks import DataError
from companion.tasks.image import PRESETS as IMAGE_PRESETS
from companion.train import (
    count_steps,
    device_and_autocast,
    model_config,
    optimizer_for,
    task_of,
    train_step,
)

# training examples of the paper's data, for the tasks that train in epochs when that data is
# not prepared here: LRA listops-1000 basic_train.tsv; IMDb train; CIFAR-10 train less val
PAPER_TRAIN_EXAMPLES = {
    "listops": 96_000,
    "text": 25_000,
    "image": round(50_000 * (1 - IMAGE_PRESETS["paper"].val_fraction)),
}
# the character vocabulary of IMDb is counted on the prepared data; this stands in without it
STAND_IN_VOCAB = 256


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


def measure(config: C.RunConfig, steps: int, warmup: int) -> dict:
    """Seconds per optimiser step of ``config``'s model (mean of ``steps`` after ``warmup``),
    tokens per second, matmul GFLOP per step, and the peak GPU memory (0 on the CPU)."""
    device, autocast = device_and_autocast()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    batch, vocab = random_batch(config, generator)
    batch = {k: v.to(device) for k, v in batch.items()}
    model = build_model(model_config(config, task_of(config), vocab_size=vocab)).to(device)
    tc = config.train
    optimizer = optimizer_for(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            train_step(model, optimizer, scheduler, batch, device, tc.grad_clip, autocast)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    with FlopCounterMode(display=False) as counter:
        run(1)
    run(warmup)
    seconds = run(steps) / steps
    gflop = counter.get_total_flops() / 1e9
    return {
        "run_id": config.run_id,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch_size": tc.batch_size,
        "length": batch["mask"].shape[1],
        "step_seconds": seconds,
        "tokens_per_second": batch["mask"].numel() / seconds,
        "gflop_per_step": gflop,
        "gflops": gflop / seconds,
        "peak_memory_gb": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        ),
    }


def total_steps(config: C.RunConfig) -> int:
    """Optimiser steps of ``config``'s full run (as :func:`companion.train.run` counts them),
    on the paper's training-set sizes when the paper data are not prepared here."""
    if config.train.steps:
        return config.train.steps
    try:
        examples = len(task_of(config).split("train"))
    except DataError:
        if config.profile != "paper":
            raise
        examples = PAPER_TRAIN_EXAMPLES[config.task]
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m companion.throughput", description=__doc__.split("\n\n")[0]
    )
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
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    configs, seen = [], set()
    for c in book_runs(args.profile, args.only):  # the main experiments, with the book's seed
        if c.variant is None and (c.task, c.model_name) not in seen:
            configs.append(c)
            seen.add((c.task, c.model_name))
    if not configs:
        parser.error(f"no main experiment matches {args.only!r}; patterns look like 'mqar/*/'")
    peak = matmul_peak()
    print(f"matmul peak: {peak:.0f} GFLOP/s on {torch.get_num_threads()} thread(s)", flush=True)
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
    out = Path(args.out) / args.profile
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

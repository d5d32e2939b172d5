"""``make gpu-check``: the package's CUDA path checked and timed on one GPU, in one table.

    companion gpu-check            # python -m companion.gpu_check

Without a GPU it says so in one line and exits 0. On a CUDA device it runs, in order:

1. **parity**: every mixer in float64, its fast path, its input gradient and the eigenvalues
   of its ``transition()`` on the GPU against the same mixer on the CPU, and the fast path
   against its own literal recurrence on the GPU (largest error relative to the largest value);
2. **bf16**: every mixer forward and backward under bfloat16 autocast, as training runs it:
   a finite output within 10 % of the float32 one, and a finite, non-zero input gradient;
3. **speed**: 200 steps of the paper profile's MQAR Mamba-2, Image S4 and S4D and LM softmax
   runs (:func:`companion.throughput.measure`): ms per step, tokens/s, peak memory and the
   share of the GPU's measured bfloat16 matmul peak (measurements, no pass or fail);
4. **chunk length**: the chunked op (forward + backward, ``B = 8``) at the paper profile's
   shapes and each chunk length of :data:`companion.bench.CHUNKS`
   (:func:`companion.bench.bench_chunks`): the chunk that
   :func:`~companion.ops.chunked.default_chunk` chooses must be within 10 % of the best;
5. **syncs**: host synchronisations in one training step, counted by CUDA's sync debug mode;
6. **end to end**: a 300-step MQAR Mamba-2 run on the smoke data (evaluations, both analyses,
   checkpoints every 50 steps) trained whole, and trained again in a fresh folder, dropped at
   step 160 and resumed in fresh objects from the checkpoint of step 150, as a new process
   would: losses, metrics and spectra must repeat bit for bit; its spectra are then compared
   with the same run trained on the CPU.

It prints one table (check, result, pass) and exits 1 when a check failed. The functions take
the device, so that the tests run every check on the CPU at small sizes.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from companion import bench, throughput, train
from companion import config as C
from companion.layers import MIXERS, make_mixer
from companion.runs import RunDir

D_MODEL, N_HEADS, STATE, LENGTH, BATCH = 8, 2, 4, 65, 2
PARITY_TOLERANCE = 1e-9  # float64 on two devices: rounding only
BF16_TOLERANCE = 0.1  # bfloat16 keeps 8 bits: about 0.4 % per rounding
SPECTRA_TOLERANCE = 0.2  # bin shares after 300 steps in bfloat16 against float32
CHUNK_TOLERANCE = 1.1  # the chosen chunk's time over the best one's
# (task, model, variant) timed at the paper profile
SPEED_RUNS = [("mqar", "mamba2", None), ("image", "s4", None), ("image", "s4", "s4d")]
SPEED_RUNS += [("lm", "softmax", None)]


@dataclass(frozen=True)
class Check:
    """One row of the table: what was checked, what was seen, and whether it passed (``None``
    for a measurement)."""

    name: str
    result: str
    passed: bool | None = None


def relative(a: Tensor, b: Tensor) -> float:
    """``max |a − b| / max |b|`` on the CPU in float64 (complex values by their modulus)."""
    a, b = a.detach().cpu(), b.detach().cpu()
    scale = b.abs().max().double().clamp_min(1e-300)
    return float((a - b).abs().max().double() / scale)


def set_distance(a: Tensor, b: Tensor) -> float:
    """The largest distance from a value of either set to the nearest of the other, relative
    to the largest modulus: eigenvalues that a solver returns in its own order."""
    a, b = a.detach().cpu().reshape(-1), b.detach().cpu().reshape(-1)
    pairs = torch.cdist(*(torch.view_as_real(x.to(torch.complex128))[None] for x in (a, b)))[0]
    gap = max(pairs.min(1).values.max(), pairs.min(0).values.max())
    return float(gap / b.abs().max().double().clamp_min(1e-300))


def mixer_parity(name: str, device: torch.device) -> Check:
    """Fast path, input gradient and Λ's eigenvalues of mixer ``name`` on ``device`` against
    the CPU, and against the recurrence on ``device``, in float64."""
    torch.manual_seed(0)
    on_cpu = make_mixer(name, d_model=D_MODEL, n_heads=N_HEADS, state_dim=STATE).double()
    there = copy.deepcopy(on_cpu).to(device)
    x = torch.randn(BATCH, LENGTH, D_MODEL, dtype=torch.float64, requires_grad=True)
    x_there = x.detach().to(device).requires_grad_()
    g = torch.randn(BATCH, LENGTH, D_MODEL, dtype=torch.float64)
    y, y_there = on_cpu(x), there(x_there)
    (grad,) = torch.autograd.grad(y, x, g)
    (grad_there,) = torch.autograd.grad(y_there, x_there, g.to(device))
    with torch.no_grad():
        lam, lam_there = on_cpu.transition(x).values, there.transition(x_there).values
        recurrence = there.recurrent(x_there)
    eig = set_distance if lam.dim() == 1 else relative  # Λ of S4 comes from an eigensolver
    errors = {
        "output": relative(y_there, y),
        "gradient": relative(grad_there, grad),
        "eigenvalues": eig(lam_there, lam),
        "recurrence": relative(y_there, recurrence),
    }
    worst = max(errors, key=errors.get)
    return Check(
        f"parity {name}",
        f"largest error {errors[worst]:.1e} ({worst})",
        errors[worst] <= PARITY_TOLERANCE,
    )


def mixer_bf16(name: str, device: torch.device) -> Check:
    """Mixer ``name`` in float32 on ``device``, forward and backward under bfloat16 autocast
    on a bfloat16 input (what a block feeds it), against its float32 output."""
    torch.manual_seed(0)
    mixer = make_mixer(name, d_model=D_MODEL, n_heads=N_HEADS, state_dim=STATE).to(device)
    u = torch.randn(BATCH, LENGTH, D_MODEL, device=device).bfloat16()
    with torch.no_grad():
        exact = mixer(u.float())
    u.requires_grad_()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        y = mixer(u)
    y.float().square().mean().backward()
    error = relative(y.float(), exact)
    grad_ok = bool(torch.isfinite(u.grad).all() and u.grad.abs().max() > 0)
    passed = bool(torch.isfinite(y).all()) and grad_ok and error <= BF16_TOLERANCE
    return Check(f"bf16 {name}", f"error {error:.1e} of float32, gradient ok: {grad_ok}", passed)


def speed(profile: str = "paper", steps: int = 200, runs=tuple(SPEED_RUNS)) -> list[Check]:
    """ms per step, tokens/s, peak memory and share of the matmul peak of each run of ``runs``
    at ``profile`` on this machine's training device."""
    peak = throughput.matmul_peak()
    checks = []
    for task, model, variant in runs:
        config = C.resolve(task, model, variant, profile)
        row = throughput.measure(config, steps, warmup=10)
        checks.append(
            Check(
                "speed " + "/".join(part for part in (task, model, variant) if part),
                f"{row['step_seconds'] * 1e3:.1f} ms/step, {row['tokens_per_second']:.3g} "
                f"tokens/s, {row['peak_memory_gb']:.2f} GB, {row['gflops'] / peak:.0%} of the "
                f"matmul peak ({peak:.0f} GFLOP/s)",
            )
        )
    return checks


def chunk_check(row: dict) -> Check:
    """One row of :func:`companion.bench.bench_chunks` as a check: the chosen chunk's time
    within :data:`CHUNK_TOLERANCE` of the best chunk's."""
    shape = f"L={row['L']} H={row['H']} d_k={row['d_k']} d_v={row['d_v']}"
    best = f"the best ({row['best']}, {row['best_ms']:.2f} ms)"
    return Check(
        f"chunk {shape}{' shared' if row['shared'] else ''}",
        f"chosen {row['chosen']}: {row['chosen_over_best']:.2f}x {best}",
        row["chosen_over_best"] <= CHUNK_TOLERANCE,
    )


def chunk_rule(device: torch.device, profile: str = "paper", chunks=bench.CHUNKS) -> list[Check]:
    """The chunk sweep of ``profile``'s shapes on ``device``, one check per shape."""
    rows = bench.bench_chunks(bench.chunk_shapes((profile,)), chunks, device)
    return [chunk_check(row) for row in rows]


def host_syncs(config: C.RunConfig, steps: int = 5) -> Check:
    """Host synchronisations per training step of ``config`` (after one untimed step), as
    CUDA's sync debug mode reports them."""
    device, _ = train.device_and_autocast()
    if device.type != "cuda":
        return Check("syncs per step", "not counted: no CUDA device")
    step, batches, _ = throughput.stepper(config, steps + 1)
    step(batches[0])
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for batch in batches[1:]:
                step(batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in seen) / steps
    return Check("syncs per step", f"{syncs:g} in {config.run_id}", syncs == 0)


def end_to_end_config(steps: int) -> C.RunConfig:
    """The smoke MQAR Mamba-2 run lengthened to ``steps``, evaluated and saved six times."""
    every = max(1, steps // 6)  # 50 of 300
    tc = {"steps": steps, "eval_every": every, "checkpoint_every": every, "early_stop": None}
    return C.resolve("mqar", "mamba2", None, "smoke", overrides={"train": tc})


def trained_with_a_stop(config: C.RunConfig, out: Path, stop: int) -> int:
    """Train ``config`` to step ``stop`` and drop it there, as a killed run; then build
    everything anew, as a new process would, resume from the last checkpoint and finish.
    Returns the step it resumed from."""
    first = train.prepare(config, RunDir(out))
    train.start_or_resume(first)
    train.train_loop(first, progress=False, until=stop)
    again = train.prepare(config, RunDir(out))
    train.start_or_resume(again)
    resumed_at = again.step
    train.train_loop(again, progress=False)
    train.finish(again)
    return resumed_at


def outcome(out: Path) -> tuple[list[dict], dict, pd.DataFrame]:
    """A finished run's history (losses and metrics at each evaluation, times left out), its
    final metrics and its spectra."""
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    history = [{k: v for k, v in h.items() if k != "tokens_per_second"} for h in history]
    metrics = json.loads((out / "metrics.json").read_text())
    return history, metrics, pd.read_csv(out / "spectra.csv", keep_default_na=False)


def trained_on_cpu(config: C.RunConfig, out: Path) -> None:
    """The same run in a process that sees no GPU (float32 on the CPU)."""
    sets = [
        f"train.{k}={v}"
        for k in ("steps", "eval_every", "checkpoint_every")
        for v in [getattr(config.train, k)]
    ]
    command = [
        sys.executable,
        "-m",
        "companion",
        "train",
        "--task",
        config.task,
        "--model",
        config.model,
        "--profile",
        config.profile,
        "--seed",
        str(config.seed),
        "--out",
        str(out),
        "--quiet",
        "--set",
        "train.early_stop=null",
    ]
    command += [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)


def spectra_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """The largest difference of a pooled bin share between two runs' final spectra."""

    def final(table):
        pooled = table[(table["head"] == "all") & (table["stage"] == "final")]
        return pooled.set_index(["analysis", "layer", "kind", "bin"])["mean"]

    return float((final(a) - final(b)).abs().max())


def end_to_end(root: Path, steps: int = 300, stop: int = 160) -> list[Check]:
    """The run of :func:`end_to_end_config` trained whole and with a stop at ``stop`` (between
    two checkpoints, so that the resumed run repeats steps), and, on a GPU, on the CPU too."""
    config = end_to_end_config(steps)
    device, _ = train.device_and_autocast()
    train.run(config, out=root / "whole", progress=False)
    resumed_at = trained_with_a_stop(config, root / "stopped", stop)
    whole, stopped = outcome(root / "whole"), outcome(root / "stopped")
    same = whole[0] == stopped[0] and whole[1] == stopped[1] and whole[2].equals(stopped[2])
    accuracy = whole[1]["test_accuracy"]
    checks = [
        Check(
            "end to end",
            f"{steps} steps, test accuracy {accuracy:.1%}; stopped at {stop}, resumed from "
            f"{resumed_at}: "
            + ("the same losses, metrics and spectra" if same else "a different run"),
            same,
        )
    ]
    if device.type == "cuda":
        trained_on_cpu(config, root / "cpu")
        gap = spectra_gap(whole[2], outcome(root / "cpu")[2])
        cpu_accuracy = json.loads((root / "cpu" / "metrics.json").read_text())["test_accuracy"]
        checks.append(
            Check(
                "spectra against the CPU",
                f"largest difference of a bin share {gap:.3f}; test accuracy {cpu_accuracy:.1%}"
                " on the CPU",
                gap <= SPECTRA_TOLERANCE,
            )
        )
    return checks


def table(checks: list[Check]) -> str:
    """The checks as one Markdown table."""
    mark = {True: "pass", False: "FAIL", None: "—"}
    lines = ["| check | result | pass |", "| --- | --- | --- |"]
    lines += [f"| {c.name} | {c.result} | {mark[c.passed]} |" for c in checks]
    return "\n".join(lines)


def main() -> int:
    """Every check on this machine's GPU, as one table; 1 when a check failed."""
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; nothing to check")
        return 0
    device = torch.device("cuda")
    print(f"gpu-check on {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    checks = [mixer_parity(name, device) for name in MIXERS]
    checks += [mixer_bf16(name, device) for name in MIXERS]
    checks += speed()
    checks += chunk_rule(device)
    checks.append(host_syncs(C.resolve("mqar", "mamba2", None, "paper")))
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        checks += end_to_end(Path(tmp))
    print(table(checks))
    failed = [c.name for c in checks if c.passed is False]
    if failed:
        print(f"gpu-check: {len(failed)} failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

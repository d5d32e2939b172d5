"""The training loop: one resolved :class:`~companion.config.RunConfig` -> one run folder.

AdamW with the SSM parameter groups, linear warmup then cosine decay, gradient clipping,
periodic evaluation with early stopping, Λ recorded at initialisation, during training and at
the end, checkpoints that make a killed run resume to the same result, and a completion marker
written last. CUDA (with bfloat16 autocast) when available, CPU otherwise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from companion import spectra as spectra_mod
from companion.config import RunConfig, model_config, task_of
from companion.io import atomic_write_text
from companion.model import build_model, model_inputs, param_groups
from companion.runs import RunDir, RunFolderError, spectra_record
from companion.tasks.common import IGNORE_INDEX, Metric


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss is not finite); the message says what was kept."""


def count_steps(tc, examples: int) -> int:
    """Optimiser steps of a run with training settings ``tc`` on ``examples`` training
    examples: ``tc.steps``, or ``tc.epochs`` of full batches."""
    return tc.steps or math.ceil(tc.epochs * (examples // min(tc.batch_size, examples)))


def cuda_rng_states() -> list[torch.Tensor]:
    """The random state of every visible GPU (empty without one): a checkpoint keeps them with
    the CPU's, so that a resumed run draws the same dropout masks as one never stopped."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def restore_cuda_rng(states: list[torch.Tensor]) -> None:
    """Set the GPUs' random states saved by :func:`cuda_rng_states` (nothing to do without
    GPUs or saved states; a checkpoint from another number of GPUs restores those it can)."""
    if states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states[: torch.cuda.device_count()])


def device_and_autocast():
    """The device to train on and a factory of its autocast context: CUDA with bfloat16
    autocast when there is a GPU, else the CPU in float32. On the CPU, subnormal floats are
    flushed to zero for the whole process: norm attention with ``f = exp`` scales its output by
    down to ``e^{−80}``, and the subnormals that follow made its training steps ten times slower
    (464 s against 52 s for the softplus run of the same size); no normal float changes."""
    if torch.cuda.is_available():
        # the same kernels in the same order at every call, so that a resumed run repeats the
        # one never stopped (cuBLAS needs its workspace fixed before its first call)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        return torch.device("cuda"), lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    torch.set_flush_denormal(True)
    return torch.device("cpu"), lambda: torch.autocast("cpu", enabled=False)


class Batches:
    """Deterministic batches: the order of epoch ``e`` is a permutation seeded by (seed, e), so
    the batch of any step can be rebuilt after a restart without replaying the ones before."""

    def __init__(self, task, split: str, batch_size: int, seed: int):
        self.task, self.data = task, task.split(split)
        self.batch_size = min(batch_size, len(self.data))
        self.seed = seed
        self.per_epoch = len(self.data) // self.batch_size
        self._perm: tuple[int, torch.Tensor] | None = None

    def __call__(self, step: int) -> dict:
        epoch, i = divmod(step, self.per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm = (epoch, torch.randperm(len(self.data), generator=g))
        idx = self._perm[1][i * self.batch_size : (i + 1) * self.batch_size]
        return self.task.collate(self.data[idx.tolist()])


def ordered_batches(task, split: str, batch_size: int, limit: int | None = None):
    """The first ``limit`` examples of ``split`` in order, in batches (evaluation)."""
    data = task.split(split)
    n = len(data) if limit is None else min(limit, len(data))
    for start in range(0, n, batch_size):
        yield task.collate(data[start : min(start + batch_size, n)])


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """``t`` on ``device`` without the host waiting for the copy: a tensor of the host goes to
    a GPU through page-locked memory."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def loss_and_logits(model, batch: dict, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the scored targets, their logits ``(N, C)`` and the targets
    ``(N,)``: one per example for classification; for per-token heads, the positions whose
    label is not ``IGNORE_INDEX`` (the head runs on those alone). The scored positions are found
    on the host, where batches are built, so that nothing here waits for the device."""
    x, mask = (to_device(t, device) for t in model_inputs(batch))
    if "label" in batch:
        logits, target = model(x, mask), to_device(batch["label"], device)  # target: (B,)
    else:
        labels = batch["labels"].flatten().cpu()  # (B·L,)
        read = (labels != IGNORE_INDEX).nonzero().squeeze(1)  # (N,) flat positions
        logits = model(x, mask, read=to_device(read, device))
        target = to_device(labels[read], device)
    return F.cross_entropy(logits.float(), target), logits, target


def loss_and_counts(model, batch: dict, device) -> tuple[torch.Tensor, float, int]:
    """Mean cross-entropy, number of correct predictions, number of targets."""
    loss, logits, target = loss_and_logits(model, batch, device)
    return loss, (logits.argmax(-1) == target).sum().item(), target.numel()


def optimizer_for(model, tc) -> torch.optim.AdamW:
    """AdamW on the public code's parameter groups (:func:`companion.model.param_groups`) with
    the settings ``tc``, fused: one kernel updates every parameter (the same update as
    PyTorch's per-parameter loop to float rounding; faster on the CPU, README *Speed*)."""
    groups = param_groups(model, tc.lr, tc.weight_decay, tc.ssm_lr, tc.decay_transition)
    return torch.optim.AdamW(groups, lr=tc.lr, betas=tc.betas, fused=True)


def train_step(model, optimizer, scheduler, batch, device, grad_clip, autocast) -> torch.Tensor:
    """One optimiser update; returns the loss, a tensor on ``device`` that nothing here reads
    (reading it would make the host wait for the step). A loss that is not finite updates
    nothing: the fused optimiser reads ``found_inf`` on the device and leaves every parameter
    and its state as they were; the loop reports the loss when it next reads them."""
    if not optimizer.defaults.get("fused"):
        raise TypeError(
            "train_step needs a fused optimiser (optimizer_for's): it skips updates on the device"
        )
    model.train()
    with autocast():
        loss = loss_and_logits(model, batch, device)[0]  # no accuracy: it costs an argmax
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.found_inf = torch.isfinite(loss).logical_not().float()
    optimizer.step()
    scheduler.step()
    return loss.detach()


@torch.no_grad()
def evaluate(model, task, split, batch_size, limit, device, autocast) -> dict:
    """Metric of ``task`` on ``split``: accuracy, or perplexity = exp(mean token CE)."""
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for batch in ordered_batches(task, split, batch_size, limit):
        with autocast():
            loss, c, n = loss_and_counts(model, batch, device)
        total_loss += loss.item() * n
        correct, count = correct + c, count + n
    mean = total_loss / max(count, 1)
    if Metric(task.metric).lower_is_better:
        return {f"{split}_loss": mean, f"{split}_perplexity": math.exp(min(mean, 700.0))}
    return {f"{split}_loss": mean, f"{split}_accuracy": correct / max(count, 1)}


def schedule(total: int, warmup: int, min_ratio: float):
    """Learning-rate factor at step ``s``: linear warmup to 1, then cosine to ``min_ratio``."""

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def spectra_steps(total: int, points: int) -> list[int]:
    """Steps (besides 0 and the end) at which Λ is recorded: evenly spaced."""
    return sorted({round(k * total / (points + 1)) for k in range(1, points + 1)} - {0, total})


def record_spectra(run: RunDir, model, batch, step: int, stage: str, published: bool) -> None:
    """Save Λ of every layer at ``step`` and its binned summary (exact, and published)."""
    analyses = {"exact": spectra_mod.collect(model, batch)}
    if published:
        analyses["published"] = spectra_mod.collect(model, batch, as_published=True)
    run.save(
        f"spectra/step_{step:07d}.pt",
        {"step": step, "stage": stage, **{name: spectra_record(s) for name, s in analyses.items()}},
    )
    frames = [spectra_mod.summarize(s).assign(analysis=name) for name, s in analyses.items()]
    table = pd.concat(frames).assign(step=step, stage=stage)
    atomic_write_text(run.file(f"spectra/summary_{step:07d}.csv"), table.to_csv(index=False))


@dataclass
class Training:
    """One run while it trains: what :func:`prepare` builds and the loop advances.

    ``step``, ``history`` (one dict per evaluation) and ``seconds`` (training time, without
    evaluations) are what a checkpoint restores; ``record_at`` holds the steps at which Λ is
    recorded during training."""

    config: RunConfig
    run_dir: RunDir
    task: object
    batches: Batches
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    analysis: dict
    total: int
    record_at: set[int]
    device: torch.device
    autocast: object
    step: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False

    def checkpoint(self) -> None:
        """Save everything the loop needs to go on from ``step`` exactly as if never stopped."""
        self.run_dir.save(
            "checkpoint.pt",
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": cuda_rng_states(),
                "step": self.step,
                "history": self.history,
                "seconds": self.seconds,
            },
        )
        atomic_write_text(
            self.run_dir.file("history.jsonl"),
            "".join(json.dumps(h) + "\n" for h in self.history),
        )

    def recorded_steps(self) -> list[int]:
        """The steps whose Λ this run has recorded so far (its own ``spectra/`` files)."""
        return sorted({0, self.step} | {s for s in self.record_at if s <= self.step})


def unusable(run_dir: RunDir, config: RunConfig) -> str | None:
    """Why ``run_dir`` cannot hold the run of ``config`` as it is (a run of another
    configuration, a damaged or hand-edited configuration, a complete run whose metrics or
    spectra do not read, :meth:`RunDir.check_outputs`), or None."""
    try:
        saved = run_dir.saved_hash()
        if saved is not None and saved != config.hash():
            return f"{run_dir.path} holds a run of another configuration"
        if run_dir.complete:
            run_dir.check_outputs()
    except RunFolderError as err:
        return str(err)
    return None


def open_run_dir(config: RunConfig, run_dir: RunDir, replace_stale: bool = False) -> None:
    """Check that ``run_dir`` holds nothing but this configuration's run (:func:`run` checks
    before building, to refuse early, and again holding the folder's lock). Otherwise it is an
    error naming the way out, or, with ``replace_stale``
    (what ``companion reproduce`` does after a configuration file changed), the folder is moved
    aside (:meth:`RunDir.move_aside`: kept, never deleted) so that the run trains anew."""
    reason = unusable(run_dir, config)
    if reason is None:
        return
    if not replace_stale:
        raise RunFolderError(
            reason if "damaged" in reason else f"{reason}; choose another --out or delete it"
        )
    set_aside(run_dir, reason)


def set_aside(run_dir: RunDir, reason: str) -> None:
    """Move ``run_dir`` aside (kept) and say so in one line of the run's output."""
    moved = run_dir.move_aside()
    print(f"{reason}: moved to {moved}; training it anew", flush=True)


def prepare(config: RunConfig, run_dir: RunDir) -> Training:
    """Build the data, the model, the optimiser and the schedule of ``config``, seeded; nothing
    is written to ``run_dir``."""
    tc = config.train
    torch.manual_seed(config.seed)
    task = task_of(config)
    task.prepare(log=lambda msg: None)  # idempotent: builds the data once if it is missing
    batches = Batches(task, "train", tc.batch_size, config.seed)
    total = count_steps(tc, len(batches.data))
    warmup = tc.warmup_steps
    if tc.warmup_epochs is not None:
        warmup = math.ceil(tc.warmup_epochs * batches.per_epoch)
    device, autocast = device_and_autocast()
    model = build_model(model_config(config, task)).to(device)
    optimizer = optimizer_for(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, schedule(total, warmup, tc.min_lr / tc.lr)
    )
    analysis = next(ordered_batches(task, "test", tc.analysis_examples, tc.analysis_examples))
    return Training(
        config=config,
        run_dir=run_dir,
        task=task,
        batches=batches,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        analysis={k: v.to(device) for k, v in analysis.items()},
        total=total,
        record_at=set(spectra_steps(total, tc.spectra_points)),
        device=device,
        autocast=autocast,
    )


def start_or_resume(t: Training) -> None:
    """Restore the last checkpoint of ``t``'s folder, or start the run there: its
    configuration and Λ at initialisation (recorded in train mode, as the paper does)."""
    t.run_dir.remove_orphans()  # temporary files of a killed writer
    if t.run_dir.file("checkpoint.pt").exists():
        ckpt = t.run_dir.load("checkpoint.pt")
        try:
            t.model.load_state_dict(ckpt["model"])
            t.optimizer.load_state_dict(ckpt["optimizer"])
            t.scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["rng"])
            restore_cuda_rng(ckpt.get("cuda_rng", []))
            t.step, t.history, t.seconds = ckpt["step"], ckpt["history"], ckpt["seconds"]
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            why = f"it does not fit this run: {str(err).splitlines()[0][:100]}"
            raise t.run_dir.damaged("checkpoint.pt", why) from None
    else:
        t.run_dir.write_config(t.config)
        record_spectra(t.run_dir, t.model, t.analysis, 0, "init", published=True)


def diverged(t: Training, loss: float, step: int) -> TrainingError:
    """The error for a loss that is not finite at ``step``, naming what was kept of the run."""
    kept = "no checkpoint"
    if t.run_dir.file("checkpoint.pt").exists():
        kept = f"the checkpoint of step {t.run_dir.load('checkpoint.pt')['step']} is kept"
    return TrainingError(
        f"loss is {loss} at step {step} of {t.config.run_id}; {kept} "
        f"in {t.run_dir.path} (try a lower train.lr)"
    )


# steps between two reads of the losses at most (a read waits for the device to finish them)
READ_LOSSES_EVERY = 50


def read_losses(t: Training, pending: list[torch.Tensor]) -> float:
    """The losses of the steps up to ``t.step`` not read yet (``pending``, emptied), read in
    one wait; the first that is not finite ends the run (its update was skipped). Returns the
    last."""
    values = torch.stack(pending).tolist()
    pending.clear()
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise diverged(t, value, t.step - len(values) + i + 1)
    return values[-1]


def train_loop(t: Training, progress: bool = True, until: int | None = None) -> None:
    """Optimiser steps from ``t.step`` to the end (or early stop, or step ``until``, where a
    run stopped from outside would stop): evaluation every ``eval_every`` steps, Λ at the steps
    of ``t.record_at``, a checkpoint every ``checkpoint_every``. The losses are read (and
    checked) before each of these, at the last step and every :data:`READ_LOSSES_EVERY`."""
    tc = t.config.train
    with tqdm(
        total=t.total,
        initial=t.step,
        desc=t.config.run_id,
        disable=not progress,
        mininterval=1.0,
        dynamic_ncols=True,
    ) as bar:  # closed however the loop ends
        tokens, tick = 0, time.perf_counter()
        last = t.total if until is None else min(until, t.total)
        pending: list[torch.Tensor] = []  # losses of the steps not read yet, on the device
        while t.step < last and not t.stopped_early:
            batch = t.batches(t.step)
            pending.append(
                train_step(
                    t.model, t.optimizer, t.scheduler, batch, t.device, tc.grad_clip, t.autocast
                )
            )
            t.step += 1
            tokens += int(batch["mask"].sum())
            bar.update(1)
            evaluating = t.step % tc.eval_every == 0 or t.step == t.total
            saving = t.step in t.record_at or t.step % tc.checkpoint_every == 0
            if evaluating or saving or t.step == last or t.step % READ_LOSSES_EVERY == 0:
                loss = read_losses(t, pending)
            if evaluating:
                now = time.perf_counter()
                t.seconds += now - tick
                metrics = evaluate(
                    t.model, t.task, "val", tc.batch_size, tc.eval_examples, t.device, t.autocast
                )
                t.history.append(
                    {
                        "step": t.step,
                        "train_loss": loss,
                        "lr": t.scheduler.get_last_lr()[0],
                        "tokens_per_second": tokens / max(now - tick, 1e-9),
                        **metrics,
                    }
                )
                bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()})
                if tc.early_stop is not None and metrics.get("val_accuracy", 0.0) >= tc.early_stop:
                    t.stopped_early = True
                tokens, tick = 0, time.perf_counter()
            if t.step in t.record_at:
                record_spectra(t.run_dir, t.model, t.analysis, t.step, "train", published=False)
            if t.step % tc.checkpoint_every == 0:
                t.checkpoint()


def finish(t: Training) -> dict:
    """Final evaluation on the whole validation and test sets, Λ at the end, the last
    checkpoint, ``spectra.csv``, ``metrics.json``, ``timing.json`` and, last, the completion
    marker. Returns the final metrics."""
    tc, run_dir, device = t.config.train, t.run_dir, t.device
    t.model.eval()
    final = {
        **evaluate(t.model, t.task, "val", tc.batch_size, None, device, t.autocast),
        **evaluate(t.model, t.task, "test", tc.batch_size, None, device, t.autocast),
        "steps": t.step,
        "stopped_early": t.stopped_early,
        "n_params": sum(p.numel() for p in t.model.parameters()),
    }
    record_spectra(run_dir, t.model, t.analysis, t.step, "final", published=True)
    t.checkpoint()
    summaries = [run_dir.file(f"spectra/summary_{s:07d}.csv") for s in t.recorded_steps()]
    table = pd.concat(pd.read_csv(p, keep_default_na=False) for p in summaries)
    atomic_write_text(run_dir.file("spectra.csv"), table.to_csv(index=False))
    run_dir.write_json("metrics.json", final)
    throughput = [h["tokens_per_second"] for h in t.history]
    timing = {
        "train_seconds": t.seconds,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": "bfloat16 autocast" if device.type == "cuda" else "float32",
        "total_steps": t.total,
        "tokens_per_second": throughput,
        "tokens_per_second_median": statistics.median(throughput) if throughput else 0.0,
        "task_source": t.task.source,
        "train_config": asdict(tc),
    }
    run_dir.write_json("timing.json", timing)
    print(
        f"{t.config.run_id}: {t.step} steps in {t.seconds:.0f} s, "
        f"{timing['tokens_per_second_median']:.0f} tokens/s (median of the evaluation intervals) "
        f"on {timing['device_name']} in {timing['precision']}",
        flush=True,
    )
    run_dir.write_json("complete.json", {"run_id": t.config.run_id, "config_hash": t.config.hash()})
    return final


def run(
    config: RunConfig, out=None, root="runs", progress: bool = True, replace_stale: bool = False
) -> dict:
    """Train (or resume, or skip if complete) the run of ``config``; returns its metrics.

    The recipe: the folder (``out``, default ``<root>/<profile>/<run_id>``) is checked
    (:func:`open_run_dir`), the run is built (:func:`prepare`: nothing is written before the
    configuration, the data and the model exist), then, holding the folder's lock (a second
    process on the same folder is refused in one line), :func:`start_or_resume`,
    :func:`train_loop` and :func:`finish`. With ``replace_stale`` (``companion reproduce``), a
    folder of another configuration, or with a damaged file, is moved aside and trained anew.
    """
    run_dir = RunDir(out) if out is not None else RunDir.for_config(config, root)
    if not replace_stale:
        open_run_dir(config, run_dir)  # refuse before any compute
    if run_dir.complete and unusable(run_dir, config) is None:
        return run_dir.read_json("metrics.json")
    t = prepare(config, run_dir)
    with contextlib.ExitStack() as held:
        held.enter_context(run_dir.lock())
        fresh = unusable(run_dir, config) is not None  # checked again, holding the lock
        open_run_dir(config, run_dir, replace_stale)
        if fresh:  # moved aside: hold the new folder
            held.enter_context(run_dir.lock())
        if run_dir.complete:  # another process finished it meanwhile
            return run_dir.read_json("metrics.json")
        try:
            start_or_resume(t)
        except RunFolderError as err:  # a damaged checkpoint
            if not replace_stale:
                raise
            set_aside(run_dir, str(err))
            held.enter_context(run_dir.lock())
            t = prepare(config, run_dir)
            start_or_resume(t)
        train_loop(t, progress)
        return finish(t)

"""Training runs: determinism, resume, failure modes (every experiment: test_reproduce.py)."""

import json

import pytest
import torch
from builders import killed_at_step

from companion import config as C
from companion import train as T
from companion.runs import RunDir, RunFolderError


def smoke(task="mqar", model="softmax", variant=None, overrides=None):
    return C.resolve(task, model, variant, "smoke", overrides=overrides)


@pytest.mark.slow
def test_same_seed_same_metrics_and_spectra(tmp_path):
    cfg = smoke("image", "norm", None, {"model": {"dropout": 0.1}})
    a = T.run(cfg, out=tmp_path / "a", progress=False)
    b = T.run(cfg, out=tmp_path / "b", progress=False)
    assert a == b
    for step in ("0000000", "0000006"):
        sa = RunDir(tmp_path / "a").load(f"spectra/step_{step}.pt")
        sb = RunDir(tmp_path / "b").load(f"spectra/step_{step}.pt")
        layers_a, layers_b = sa["exact"] + sa["published"], sb["exact"] + sb["published"]
        for la, lb in zip(layers_a, layers_b, strict=True):
            assert torch.equal(la["values"], lb["values"])
    other = T.run(
        C.resolve("image", "norm", None, "smoke", seed=7), out=tmp_path / "c", progress=False
    )
    assert other != a


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    cfg = smoke("mqar", "mamba2", None, {"model": {"dropout": 0.1}})
    reference = T.run(cfg, out=tmp_path / "ref", progress=False)
    killed_at_step(cfg, tmp_path / "run", 5, monkeypatch)
    run = RunDir(tmp_path / "run")
    assert not run.complete and run.load("checkpoint.pt")["step"] == 3
    assert T.run(cfg, out=tmp_path / "run", progress=False) == reference
    final = "spectra/step_0000006.pt"
    for a, b in zip(
        run.load(final)["exact"], RunDir(tmp_path / "ref").load(final)["exact"], strict=True
    ):
        assert torch.equal(a["values"], b["values"])

    def metrics_only(history):
        return [{k: v for k, v in h.items() if k != "tokens_per_second"} for h in history]

    assert metrics_only(run.history()) == metrics_only(RunDir(tmp_path / "ref").history())


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """The loss of step 5 is NaN; the loop reads the losses only now and then (each read waits
    for the device), yet names step 5 and keeps the checkpoint before it."""
    real, calls = T.loss_and_logits, []

    def nan_at_step_5(model, batch, device):
        loss, logits, target = real(model, batch, device)
        if model.training:  # a training step, not an evaluation
            calls.append(1)
            loss = loss * float("nan") if len(calls) == 5 else loss
        return loss, logits, target

    monkeypatch.setattr(T, "loss_and_logits", nan_at_step_5)
    with pytest.raises(T.TrainingError, match=r"loss is nan at step 5 .* checkpoint of step 3"):
        T.run(smoke(), out=tmp_path, progress=False)
    run = RunDir(tmp_path)
    assert not run.complete and run.load("checkpoint.pt")["step"] == 3


@pytest.mark.slow
def test_the_recipe_in_its_steps_is_the_run_and_reads_back_only_its_own_spectra(tmp_path):
    cfg = smoke("lm", "lru")
    reference = T.run(cfg, out=tmp_path / "ref", progress=False)
    run_dir = RunDir(tmp_path / "run")
    T.open_run_dir(cfg, run_dir)
    t = T.prepare(cfg, run_dir)
    assert not run_dir.path.exists()  # building writes nothing
    T.start_or_resume(t)
    assert (run_dir.file("config.yaml")).exists() and t.step == 0
    (run_dir.file("spectra") / "summary_0000099.csv").write_text("stray,file\n1,2\n")
    T.train_loop(t, progress=False)
    assert t.step == t.total and len(t.history) >= 1
    assert T.finish(t) == reference
    table = run_dir.file("spectra.csv").read_text()
    assert table == (tmp_path / "ref" / "spectra.csv").read_text()
    assert "stray" not in table and t.recorded_steps()[0] == 0
    assert t.recorded_steps()[-1] == t.total


def test_a_folder_of_another_configuration_is_refused(tmp_path):
    T.run(smoke(), out=tmp_path, progress=False)
    with pytest.raises(RunFolderError, match="another configuration"):
        T.run(smoke(overrides={"train": {"lr": 1e-2}}), out=tmp_path, progress=False)


@pytest.mark.slow
def test_resolved_config_is_saved_with_its_hash(tmp_path):
    cfg = smoke("text", "softmax", "gate")
    T.run(cfg, out=tmp_path, progress=False)
    saved = RunDir(tmp_path)
    assert saved.saved_hash() == cfg.hash()
    text = (tmp_path / "config.yaml").read_text()
    assert "gate: true" in text and "commit:" in text
    assert json.loads((tmp_path / "complete.json").read_text())["config_hash"] == cfg.hash()


def _one_of_each_architecture() -> list[C.RunConfig]:
    """A smoke run of every (task, mixer, mixer options) of the book."""
    runs = {}
    for c in C.book_runs("smoke"):
        runs.setdefault((c.task, c.model["mixer"], str(c.model.get("mixer_options"))), c)
    return list(runs.values())


@pytest.mark.parametrize("cfg", _one_of_each_architecture(), ids=lambda c: c.run_id)
@pytest.mark.slow
def test_every_model_trains_under_bfloat16_autocast(cfg):
    """The GPU path's bfloat16 autocast, on the CPU: each op that has no bfloat16 kernel (complex
    numbers, FFTs) must run outside it."""
    from companion.throughput import random_batch

    batch, vocab = random_batch(cfg, torch.Generator().manual_seed(0))
    model = T.build_model(C.model_config(cfg, C.task_of(cfg), vocab_size=vocab))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = T.optimizer_for(model, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    loss = T.train_step(model, optimizer, scheduler, batch, torch.device("cpu"), 1.0, autocast)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_a_checkpoint_keeps_and_restores_the_random_state_of_every_gpu(monkeypatch):
    """Dropout on a GPU draws from the GPU's generator: a resumed CUDA run must restore it (the
    CPU's alone is not enough). The GPU calls are stood in for here; tests/test_cuda.py runs
    the real ones where there is a GPU."""
    states = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    assert T.cuda_rng_states() == states
    T.restore_cuda_rng(states)
    assert restored == [states[:1]]  # a checkpoint from two GPUs restored on one
    T.restore_cuda_rng([])  # a checkpoint written without a GPU
    assert len(restored) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert T.cuda_rng_states() == []


def test_a_step_whose_loss_is_not_finite_changes_no_parameter_and_no_optimiser_state(monkeypatch):
    """The update is skipped on the device (the fused optimiser's ``found_inf``), without the
    host reading the loss; a finite step after it updates as usual."""
    cfg = smoke()
    task = C.task_of(cfg)
    model = T.build_model(C.model_config(cfg, task))
    optimizer = T.optimizer_for(model, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    batch = T.Batches(task, "train", cfg.train.batch_size, cfg.seed)(0)
    no_autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731

    def step():
        return T.train_step(model, optimizer, scheduler, batch, "cpu", 1.0, no_autocast)

    def state():
        tensors = [p.detach().clone() for p in model.parameters()]
        for s in optimizer.state.values():
            tensors += [v.clone() for v in s.values()]
        return tensors

    assert torch.isfinite(step())  # the optimiser has its moments and step count now
    before = state()
    real = T.loss_and_logits
    monkeypatch.setattr(T, "loss_and_logits", lambda *a: (real(*a)[0] * float("inf"), None, None))
    assert not torch.isfinite(step())
    assert all(torch.equal(a, b) for a, b in zip(before, state(), strict=True))
    monkeypatch.setattr(T, "loss_and_logits", real)
    assert torch.isfinite(step())
    assert not all(torch.equal(a, b) for a, b in zip(before, state(), strict=True))

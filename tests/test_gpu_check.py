"""`make gpu-check` here: its one line without a GPU, and each of its checks run on the CPU at
small sizes, where each must pass, and fail when what it checks is broken."""

import subprocess
import sys

import pytest
import torch

from companion import gpu_check as G
from companion.layers import MIXERS, mixer_class

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)

CPU = torch.device("cpu")


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    proc = subprocess.run(
        [sys.executable, "-m", "companion", "gpu-check"],
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["gpu-check: no CUDA device here; nothing to check"]


@pytest.mark.parametrize("name", MIXERS)
def test_every_mixer_passes_parity_and_bf16_on_the_cpu(name):
    parity, bf16 = G.mixer_parity(name, CPU), G.mixer_bf16(name, CPU)
    assert parity.passed and bf16.passed, (parity, bf16)


def test_parity_fails_for_a_fast_path_that_departs_from_its_recurrence(monkeypatch):
    lru = mixer_class("lru")
    forward = lru.forward
    monkeypatch.setattr(lru, "forward", lambda self, u: forward(self, u) * (1 + 1e-6))
    check = G.mixer_parity("lru", CPU)
    assert check.passed is False and "(recurrence)" in check.result


def test_bf16_fails_for_a_mixer_that_loses_its_output_under_autocast(monkeypatch):
    softmax = mixer_class("softmax")
    forward = softmax.forward

    def damaged(self, u):
        y = forward(self, u)
        return y * 0.5 if torch.is_autocast_enabled(u.device.type) else y

    monkeypatch.setattr(softmax, "forward", damaged)
    assert G.mixer_bf16("softmax", CPU).passed is False


def test_eigenvalues_from_a_solver_compare_in_any_order():
    values = torch.tensor([0.9 + 0.1j, 0.5 - 0.2j, -0.3 + 0j], dtype=torch.complex128)
    assert G.set_distance(values.flip(0), values) == 0.0
    assert G.set_distance(values * 1.01, values) == pytest.approx(0.01, rel=1e-6)


def test_speed_times_each_run():
    runs = [("mqar", "mamba2", None), ("image", "s4", "s4d")]
    checks = G.speed("smoke", steps=1, runs=runs)
    assert [c.name for c in checks] == ["speed mqar/mamba2", "speed image/s4/s4d"]
    assert all("ms/step" in c.result and c.passed is None for c in checks)


def test_the_chunk_rule_is_checked_at_every_shape_and_fails_far_from_the_best():
    checks = G.chunk_rule(CPU, "smoke", chunks=(16, 32))
    assert checks and all(c.name.startswith("chunk L=") and "chosen" in c.result for c in checks)
    row = dict(L=1024, H=4, d_k=16, d_v=32, shared=True, chosen=64, best=128, best_ms=2.0)
    assert G.chunk_check({**row, "chosen_over_best": 1.05}).passed is True
    failed = G.chunk_check({**row, "chosen_over_best": 1.4})
    assert failed.passed is False and "1.40x the best (128, 2.00 ms)" in failed.result


def test_syncs_are_counted_on_cuda_only():
    from companion import config as C

    check = G.host_syncs(C.resolve("mqar", "mamba2", None, "smoke"))
    assert check.passed is None and "no CUDA" in check.result


def test_a_stopped_and_resumed_run_repeats_the_whole_one(tmp_path):
    (check,) = G.end_to_end(tmp_path, steps=12, stop=7)
    assert check.passed, check
    assert "stopped at 7, resumed from 6: the same losses" in check.result


def test_a_resume_that_loses_the_optimiser_state_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.optim.AdamW, "load_state_dict", lambda self, state: None)
    (check,) = G.end_to_end(tmp_path, steps=12, stop=7)
    assert check.passed is False and "a different run" in check.result


def test_the_table_marks_failures():
    checks = [G.Check("a", "ok", True), G.Check("b", "bad", False), G.Check("c", "1 ms")]
    assert G.table(checks).splitlines()[2:] == [
        "| a | ok | pass |",
        "| b | bad | FAIL |",
        "| c | 1 ms | — |",
    ]

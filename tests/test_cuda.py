"""The CUDA path, where there is a GPU (skipped here otherwise): bfloat16 autocast through the
FFT mixers as cuFFT takes it, and a resumed run that repeats the one never stopped."""

import pytest
import torch
from builders import killed_at_step

from companion import config as C
from companion import train as T
from companion.layers import MIXERS, make_mixer
from companion.runs import RunDir

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")


@pytest.mark.parametrize("name", MIXERS)
def test_every_mixer_runs_forward_and_backward_under_bfloat16_autocast(name):
    torch.manual_seed(0)
    m = make_mixer(name, d_model=32, n_heads=2, state_dim=8).cuda()
    u = torch.randn(2, 64, 32, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = m(u)
    y.float().square().mean().backward()
    assert torch.isfinite(u.grad).all()


def test_a_resumed_gpu_run_repeats_the_uninterrupted_one(tmp_path, monkeypatch):
    cfg = C.resolve("mqar", "mamba2", None, "smoke", 1919, {"model": {"dropout": 0.1}})
    reference = T.run(cfg, out=tmp_path / "ref", progress=False)
    killed_at_step(cfg, tmp_path / "run", 5, monkeypatch)
    resumed = T.run(cfg, out=tmp_path / "run", progress=False)
    drop = ("tokens_per_second", "seconds")
    assert {k: v for k, v in resumed.items() if k not in drop} == {
        k: v for k, v in reference.items() if k not in drop
    }
    a, b = (RunDir(tmp_path / n).load("checkpoint.pt")["model"] for n in ("ref", "run"))
    assert all(torch.equal(a[k], b[k]) for k in a)

"""How many runs train at once: the usable cores (affinity mask, control-group quota), one
thread per run, and each notebook kernel's share of the cores."""

import os

import pytest

from companion import executors as X
from companion import reproduce as R


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4.0),
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),
    ],
)
def test_the_control_group_quota_is_read_from_either_cgroup_version(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert X.cgroup_quota(tmp_path) == quota


def test_usable_cores_follow_the_affinity_mask_and_the_quota(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(X, "cgroup_quota", lambda: None)
    assert X.usable_cores() == 8 and X.default_workers() == 8  # Slurm gave this job 8 of 64
    monkeypatch.setattr(X, "cgroup_quota", lambda: 1.0)
    assert X.usable_cores() == 1 and X.default_workers() == 1  # Binder: one core
    monkeypatch.setattr(X, "cgroup_quota", lambda: 0.5)
    assert X.usable_cores() == 1  # never none


def test_notebook_kernels_get_their_share_of_the_threads_and_the_setting_is_restored(
    monkeypatch,
):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with R.kernel_threads("2"):
        assert os.environ["OMP_NUM_THREADS"] == "2"
    assert os.environ["OMP_NUM_THREADS"] == "7"
    monkeypatch.delenv("OMP_NUM_THREADS")
    with R.kernel_threads("3"):
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert "OMP_NUM_THREADS" not in os.environ


@pytest.mark.parametrize(
    ("named", "gpus"),
    [("0,2", ["0", "2"]), ("", []), ("-1", []), ("GPU-5f1c, GPU-77ab", ["GPU-5f1c", "GPU-77ab"])],
)
def test_the_visible_gpus_are_the_ones_cuda_visible_devices_names(monkeypatch, named, gpus):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", named)
    assert X.visible_gpus() == gpus


def test_one_run_per_gpu_where_there_are_gpus_else_one_per_core(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(X.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(X.torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(X, "usable_cores", lambda: 64)
    assert X.visible_gpus() == [str(i) for i in range(8)] and X.default_workers() == 8
    monkeypatch.setattr(X.torch.cuda, "is_available", lambda: False)
    assert X.visible_gpus() == [] and X.default_workers() == 64
    assert X.gpu_slots(3, ["0", "1"]) == ["0", "1", "0"]
    assert X.gpu_slots(2, ["4", "6"]) == ["4", "6"]


def test_each_worker_sees_only_the_gpu_it_takes(monkeypatch):
    import queue

    slots = queue.Queue()
    for gpu in X.gpu_slots(2, ["3", "5"]):
        slots.put(gpu)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5")
    seen = []
    for _ in range(2):  # two workers start
        X.take_gpu(slots)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["3", "5"]
    X.take_gpu(None)  # without GPUs a worker leaves the variable alone
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"

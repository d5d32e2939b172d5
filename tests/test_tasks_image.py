"""Image: grayscale against hand-computed values, downsampling, the MNIST pipeline on a fixture."""

import numpy as np
import pytest
from fixtures.sources import digits, install_fixture_sources

from companion.tasks import get_task
from companion.tasks.image import downsample, rgb_to_gray


def test_grayscale_hand_computed():
    rgb = np.array(
        [
            [255, 0, 0],  # 0.299 * 255 = 76.2 -> 76
            [0, 255, 0],  # 0.587 * 255 = 149.7 -> 150
            [0, 0, 255],  # 0.114 * 255 = 29.1 -> 29
            [255, 255, 255],
            [0, 0, 0],
            [100, 100, 100],
            [10, 200, 30],  # 2.99 + 117.4 + 3.42 = 123.8 -> 124
            [123, 45, 67],  # 36.78 + 26.42 + 7.64 = 70.8 -> 71
        ],
        dtype=np.uint8,
    )
    assert rgb_to_gray(rgb).tolist() == [76, 150, 29, 255, 0, 100, 124, 71]


def test_grayscale_matches_pil_when_available():
    Image = pytest.importorskip("PIL.Image")
    rgb = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    assert (rgb_to_gray(rgb) == expected).all()


def test_downsample_averages_blocks():
    img = np.array(
        [[[0, 1, 10, 10], [2, 2, 10, 11], [255, 255, 0, 0], [255, 254, 0, 1]]], dtype=np.uint8
    )
    # block means 1.25 -> 1, 10.25 -> 10, 254.75 -> 255, 0.25 -> 0
    assert downsample(img, 2).tolist() == [[[1, 10], [255, 0]]]
    assert downsample(np.full((1, 4, 4), 3, np.uint8), 1).shape == (1, 4, 4)
    with pytest.raises(ValueError, match="does not divide"):
        downsample(np.zeros((1, 28, 28), np.uint8), 3)


def test_mnist_pipeline_row_major(tmp_path, monkeypatch):
    install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    root = tmp_path / "data"
    task = get_task("image", "quick")  # 14x14
    task.prepare(root, log=lambda *a: None)
    assert (task.seq_len, task.vocab_size, task.input_dim) == (196, 256, None)
    sizes = [task.split(s, root=root).num_rows for s in ("train", "val", "test")]
    assert sizes == [96, 12, 12]
    test = task.split("test", root=root)
    x = np.asarray(test[0]["input_ids"]).reshape(14, 14)
    c = test[0]["label"]
    # the fixture lights rows 2c+2..2c+5, columns 10..13 of 28x28 -> rows c+1..c+2, cols 5..6
    assert (x[c + 1 : c + 3, 5:7] == 255).all()
    assert x.mean() < 60

    floats = get_task("image", "quick", encoding="floats")
    floats.prepare(root, log=lambda *a: None)
    ds = floats.split("test", root=root)
    assert (
        ds.column_names == ["inputs", "label"]
        and floats.input_dim == 1
        and floats.vocab_size is None
    )
    batch = floats.collate([ds[i] for i in range(3)])
    assert batch["inputs"].shape == (3, 196, 1) and batch["inputs"].dtype.is_floating_point
    expected = (np.asarray(test[0]["input_ids"], np.float32) - floats.mean) / floats.std
    assert np.allclose(batch["inputs"][0, :, 0].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="continuous"):
        floats.decode([1, 2])


def test_fixture_digits_roundtrip():
    images, labels = digits(n_per_class=2)
    assert images.shape == (20, 28, 28) and sorted(set(labels.tolist())) == list(range(10))


def test_paper_profile_facts():
    task = get_task("image", "paper")
    assert task.seq_len == 1024 and task.source.startswith("hub:uoft-cs/cifar10")
    assert (task.mean, task.std) == (122.6, 61.0)


def test_paper_conversion_with_a_stub_hub(tmp_path, monkeypatch):
    """The CIFAR-10 path (hub layout: img as PIL images, label) on a local stand-in."""
    datasets = pytest.importorskip("datasets")
    PIL = pytest.importorskip("PIL.Image")

    from companion.tasks import fetch

    rgb = np.zeros((20, 32, 32, 3), np.uint8)
    rgb[:, 0, 0] = [10, 200, 30]  # -> 124
    rgb[:, 0, 1] = [255, 0, 0]  # -> 76
    rgb[:, 31, 31] = [0, 0, 255]  # -> 29 at the last step
    feats = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)}
    )
    part = {"img": [PIL.fromarray(a) for a in rgb], "label": [i % 10 for i in range(20)]}
    stub = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict(part, features=feats) for s in ("train", "test")}
    )
    monkeypatch.setattr(fetch, "load_hub", lambda repo, *a, **k: stub)
    task = get_task("image", "paper", val_fraction=0.25)
    task.prepare(tmp_path, log=lambda *a: None)
    sizes = [task.split(s, root=tmp_path).num_rows for s in ("train", "val", "test")]
    assert sizes == [15, 5, 20]
    x = task.split("test", root=tmp_path)[0]["input_ids"]
    assert len(x) == 1024 and x[:3] == [124, 76, 0] and x[-1] == 29

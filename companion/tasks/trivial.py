"""The trivial predictors a task is scored against: each reads at most one token of an example.

Each task names its own in :meth:`companion.tasks.base.Task.trivial` from these pieces; a
predictor is fitted on the stored train columns and scored on the test columns, in the task's
metric (an accuracy in [0, 1], or a perplexity).
"""

from __future__ import annotations

import numpy as np

from companion.tasks.common import IGNORE_INDEX


def first_tokens(columns) -> np.ndarray:
    """The first token of every example of stored ``columns``: ``(n,)`` int64."""
    return np.array([int(x[0]) for x in columns["input_ids"]], dtype=np.int64)


def targets(columns) -> np.ndarray:
    """Every predicted position's target of stored ``columns`` (``labels`` other than
    ``IGNORE_INDEX``), flattened: ``(n,)`` int64."""
    y = np.concatenate([np.asarray(x, dtype=np.int64) for x in columns["labels"]])
    return y[y != IGNORE_INDEX]


def majority(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on ``y_test`` of always predicting the most frequent label of ``y_train``."""
    values, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == values[counts.argmax()]))


def majority_given(x_train, y_train, x_test, y_test) -> float:
    """Accuracy of predicting, for each value of ``x``, its most frequent label in training
    (the overall majority for values never seen)."""
    values, counts = np.unique(y_train, return_counts=True)
    fallback = values[counts.argmax()]
    pairs, n = np.unique(np.stack([x_train, y_train], 1), axis=0, return_counts=True)
    order = np.lexsort((-n, pairs[:, 0]))  # per x, the most frequent label first
    pairs = pairs[order]
    first = np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]
    best = dict(zip(pairs[first, 0].tolist(), pairs[first, 1].tolist(), strict=True))
    guess = np.array([best.get(int(x), fallback) for x in x_test])
    return float(np.mean(guess == y_test))


def unigram_perplexity(y_train: np.ndarray, y_test: np.ndarray, vocab_size: int) -> float:
    """Perplexity on ``y_test`` of the unigram of ``y_train`` with add-one smoothing."""
    counts = np.bincount(y_train, minlength=vocab_size) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(np.exp(-np.mean(log_p[y_test])))

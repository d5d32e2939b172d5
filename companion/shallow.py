"""Strong shallow predictors: how far a model gets on a task instance without a sequence
model's state.

Every predictor is fitted on the train split, its hyperparameter (if any) is chosen on the val
split, and it is scored on the test split: accuracy for classification and MQAR, perplexity for
the language model.

* **ListOps**: the root operator applied to its direct digits (the *flat* evaluator, nested
  lists ignored); logistic regression on token 1–2-gram counts and the flat value;
* **Text**: logistic regression on byte 1–5-gram tf-idf; multinomial naive Bayes on words;
* **Image**: logistic regression on the pixels; k-nearest neighbours on the pixels;
* **MQAR**: without matching keys, the value of the context pair most often queried at a
  query's rank, and the most frequent value at each rank; both stay near chance (1/K), a check
  that the task is not solved without recalling keys;
* **LM**: n-gram models of order 2 to 5 with interpolated Kneser–Ney smoothing.

>>> from companion.tasks import get_task
>>> name, accuracy, n = predictors(get_task("mqar", "smoke"))[1]
>>> name, n
('the most frequent value at each query rank', 256)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from companion.tasks import Task
from companion.tasks.common import IGNORE_INDEX
from companion.tasks.listops import MIN, STOI

LOGISTIC_C = (0.01, 0.1, 1.0, 10.0)  # inverse regularisation strengths tried on val
TFIDF_C = (1.0, 3.0, 10.0, 30.0, 100.0)  # ... on tf-idf features (unit-norm rows)
NEIGHBOURS = (1, 3, 5)
NB_ALPHA = (0.1, 0.3, 1.0, 3.0)
# Kneser–Ney discounts tried on val, per order (at most 1: every seen n-gram keeps some mass)
DISCOUNTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
KN_ORDERS = (2, 3, 4, 5)
# the language model's bigram reads one token: a trivial predictor (companion.baselines)
BIGRAM = "bigram (interpolated Kneser–Ney)"


# ---------------------------------------------------------------------------------------------
# reading the stored splits


def _rows(dataset, column: str = "input_ids") -> list[np.ndarray]:
    """Each example's ``column`` as an int64 array (Arrow buffers, no per-row Python)."""
    col = dataset.data.table.column(column).combine_chunks()
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    return np.split(values, np.cumsum(col.value_lengths().to_numpy())[:-1])


def _matrix(rows: list[np.ndarray], fill: int = 0) -> np.ndarray:
    """Rows of any lengths as ``(N, longest)``, padded on the right with ``fill``."""
    out = np.full((len(rows), max(map(len, rows))), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _labels(dataset) -> np.ndarray:
    return np.asarray(dataset["label"], dtype=np.int64)


def _choose(make, grid, x_train, y_train, x_val, y_val):
    """``make(h)`` fitted on train for the ``h`` of ``grid`` with the best val accuracy (the
    first on ties) and that ``h``; with a single class in train, a constant predictor."""
    if len(np.unique(y_train)) < 2:
        return DummyClassifier(strategy="most_frequent").fit(x_train, y_train), None
    fits = [make(h).fit(x_train, y_train) for h in grid]
    scores = [np.mean(f.predict(x_val) == y_val) for f in fits]
    best = int(np.argmax(scores))
    return fits[best], grid[best]


def _logistic(c: float):
    return LogisticRegression(C=c, solver="newton-cg", max_iter=1000)


# ---------------------------------------------------------------------------------------------
# ListOps

_DIGIT0, _OP0, _CLOSE = STOI["0"], STOI[MIN], STOI["X"]  # digits, then MIN MAX MED SM, then X


def listops_flat_values(ids: np.ndarray) -> np.ndarray:
    """The root operator applied to its direct digits only (nesting depth 1; nested lists are
    ignored), with listops.py's semantics: MED is the median truncated by ``int()``, SM the sum
    mod 10. ``ids`` ``(N, L)`` ListOps token ids (any padding) -> ``(N,)`` values 0..9, -1
    where the root has no direct digit or the first token is not an operator."""
    ids = np.asarray(ids, dtype=np.int64)
    is_op = (ids >= _OP0) & (ids < _OP0 + 4)
    depth = np.cumsum(is_op.astype(np.int64) - (ids == _CLOSE), axis=1)
    direct = (ids >= _DIGIT0) & (ids < _DIGIT0 + 10) & (depth == 1)
    n = direct.sum(1)
    digits = np.sort(np.where(direct, ids - _DIGIT0, 10), axis=1)  # direct digits first
    rows = np.arange(len(ids))
    low, high = digits[rows, np.maximum(n - 1, 0) // 2], digits[rows, n // 2]
    by_op = np.stack(
        [
            digits[:, 0],  # MIN
            np.where(direct, ids - _DIGIT0, -1).max(1),  # MAX
            (low + high) // 2,  # MED: int() of the median truncates, values are >= 0
            np.where(direct, ids - _DIGIT0, 0).sum(1) % 10,  # SM
        ]
    )
    value = by_op[np.clip(ids[:, 0] - _OP0, 0, 3), rows]
    return np.where(is_op[:, 0] & (n > 0), value, -1)


def listops_flat_evaluator(ids_train, y_train, ids_test) -> np.ndarray:
    """:func:`listops_flat_values` of ``ids_test`` ``(N, L)``, the majority class of
    ``y_train`` where there is no direct digit -> ``(N,)`` predicted classes. Fits nothing
    else."""
    values = listops_flat_values(ids_test)
    return np.where(values >= 0, values, np.bincount(y_train).argmax())


def _listops_features(ids: np.ndarray, vocab: int) -> sparse.csr_matrix:
    """Token counts ``V``, adjacent-pair counts ``V²`` and the flat value one-hot (11, the last
    for none): ``(N, V + V² + 11)``; ``ids`` ``(N, L)`` padded with 0 (``<pad>``, not
    counted)."""
    n, length = ids.shape
    rows = np.repeat(np.arange(n), length)
    pairs = ids[:, :-1] * vocab + ids[:, 1:]
    keep = ids.ravel() != 0
    keep_pairs = (ids[:, 1:] != 0).ravel()
    flat = listops_flat_values(ids)
    cols = np.concatenate(
        [ids.ravel()[keep], vocab + pairs.ravel()[keep_pairs], vocab + vocab**2 + flat % 11]
    )
    r = np.concatenate([rows[keep], np.repeat(np.arange(n), length - 1)[keep_pairs], np.arange(n)])
    return sparse.csr_matrix((np.ones(len(r)), (r, cols)), shape=(n, vocab + vocab**2 + 11))


def listops_logistic(ids_train, y_train, ids_val, y_val, ids_test, vocab: int):
    """Logistic regression on token 1–2-gram counts plus a one-hot of the flat value
    (:func:`_listops_features`); ``ids_*`` ``(N, L)`` padded with 0, ``y_*`` ``(N,)``. ``C``
    chosen on val from :data:`LOGISTIC_C`. Returns the test predictions ``(N,)`` and ``C``."""
    fit, c = _choose(
        _logistic,
        LOGISTIC_C,
        _listops_features(ids_train, vocab),
        y_train,
        _listops_features(ids_val, vocab),
        y_val,
    )
    return fit.predict(_listops_features(ids_test, vocab)), c


def _listops(task: Task, splits) -> list[tuple[str, float, int]]:
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = ((_matrix(_rows(d)), _labels(d)) for d in splits)
    flat = listops_flat_evaluator(x_tr, y_tr, x_te)
    lr, _ = listops_logistic(x_tr, y_tr, x_va, y_va, x_te, task.vocab_size)
    n = len(y_te)
    return [
        ("the root operator applied to its top-level digits", float(np.mean(flat == y_te)), n),
        (
            "logistic regression on token 1–2-gram counts and the flat value",
            float(np.mean(lr == y_te)),
            n,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Text


def _documents(task: Task, dataset) -> list[bytes]:
    """Each example as UTF-8 bytes: the byte tokens (``<eos>`` and padding dropped) or, at the
    character level, its characters encoded."""
    rows = _rows(dataset)
    if task.config.level == "byte":
        return [r[(r > 0) & (r < 256)].astype(np.uint8).tobytes() for r in rows]
    vocab = task.vocab()
    return ["".join(vocab.itos[i] for i in r if i > vocab.eos_id).encode() for r in rows]


def tfidf_logistic(docs_train, y_train, docs_val, y_val, docs_test):
    """Logistic regression on byte 1–5-gram tf-idf (sublinear tf; the bytes read as latin-1,
    one character per byte, lower-cased); ``docs_*`` lists of ``bytes``, ``y_*`` ``(N,)``. The
    vocabulary and idf are fitted on train, ``C`` chosen on val from :data:`TFIDF_C`. Returns
    the test predictions ``(N,)`` and ``C``."""
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 5), sublinear_tf=True)

    def text(docs):
        return [d.decode("latin-1") for d in docs]

    x_train = vec.fit_transform(text(docs_train))
    fit, c = _choose(_logistic, TFIDF_C, x_train, y_train, vec.transform(text(docs_val)), y_val)
    return fit.predict(vec.transform(text(docs_test))), c


def word_naive_bayes(docs_train, y_train, docs_val, y_val, docs_test):
    """Multinomial naive Bayes on the presence of word 1–2-grams (words and punctuation marks,
    lower-cased, the bytes decoded as UTF-8 with errors replaced); ``docs_*`` lists of
    ``bytes``, ``y_*`` ``(N,)``. The vocabulary is fitted on train, the smoothing ``alpha``
    chosen on val from :data:`NB_ALPHA`. Returns the test predictions ``(N,)`` and ``alpha``."""
    vec = CountVectorizer(token_pattern=r"(?u)\w+|[^\w\s]", ngram_range=(1, 2), binary=True)

    def text(docs):
        return [d.decode("utf-8", errors="replace") for d in docs]

    fit, alpha = _choose(
        lambda a: MultinomialNB(alpha=a),
        NB_ALPHA,
        vec.fit_transform(text(docs_train)),
        y_train,
        vec.transform(text(docs_val)),
        y_val,
    )
    return fit.predict(vec.transform(text(docs_test))), alpha


def _text(task: Task, splits) -> list[tuple[str, float, int]]:
    data = [x for d in splits for x in (_documents(task, d), _labels(d))]
    y_test = data[5]
    lr, _ = tfidf_logistic(*data[:5])
    nb, _ = word_naive_bayes(*data[:5])
    n = len(y_test)
    return [
        ("logistic regression on byte 1–5-gram tf-idf", float(np.mean(lr == y_test)), n),
        (
            "multinomial naive Bayes on word 1–2-gram presence",
            float(np.mean(nb == y_test)),
            n,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Image


def pixel_logistic(x_train, y_train, x_val, y_val, x_test):
    """Logistic regression (softmax) on the pixels / 255; ``x_*`` ``(N, side²)`` pixel tokens
    0..255, ``y_*`` ``(N,)``. ``C`` chosen on val from :data:`LOGISTIC_C`. Returns the test
    predictions ``(N,)`` and ``C``."""
    fit, c = _choose(_logistic, LOGISTIC_C, x_train / 255.0, y_train, x_val / 255.0, y_val)
    return fit.predict(x_test / 255.0), c


def pixel_neighbours(x_train, y_train, x_val, y_val, x_test):
    """k-nearest neighbours (Euclidean, majority vote) on the pixels; ``x_*`` ``(N, side²)``,
    ``y_*`` ``(N,)``. ``k`` chosen on val from :data:`NEIGHBOURS` (those not above the
    number of training images). Returns the test predictions ``(N,)`` and ``k``."""
    grid = [k for k in NEIGHBOURS if k <= len(y_train)]
    fit, k = _choose(KNeighborsClassifier, grid, x_train, y_train, x_val, y_val)
    return fit.predict(x_test), k


def _image(task: Task, splits) -> list[tuple[str, float, int]]:
    data = [x for d in splits for x in (np.stack(_rows(d)).astype(np.float64), _labels(d))]
    y_test = data[5]
    lr, _ = pixel_logistic(*data[:5])
    knn, _ = pixel_neighbours(*data[:5])
    n = len(y_test)
    return [
        ("logistic regression on pixels", float(np.mean(lr == y_test)), n),
        ("k-nearest neighbours on pixels", float(np.mean(knn == y_test)), n),
    ]


# ---------------------------------------------------------------------------------------------
# MQAR


def _queries(dataset, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """The context's values ``(N, K)`` in pair order and the scored targets ``(N, K)`` in
    position order (rank r = the r-th query of its sequence)."""
    x, y = np.stack(_rows(dataset)), np.stack(_rows(dataset, "labels"))
    return x[:, 1 : 2 * n_pairs : 2], y[y != IGNORE_INDEX].reshape(len(y), n_pairs)


def mqar_rank_to_pair(values_train, targets_train, values_test) -> np.ndarray:
    """For the r-th query of a sequence, the value of the context pair whose index held the
    answer most often at rank r in training; no key is matched. ``values_*`` ``(N, K)``
    context values in pair order, ``targets_train`` ``(N, K)`` answers in query order ->
    ``(N, K)`` predictions."""
    hits = (targets_train[:, :, None] == values_train[:, None, :]).sum(0)  # (rank, pair)
    return values_test[:, hits.argmax(1)]


def mqar_value_by_rank(targets_train, n_test: int) -> np.ndarray:
    """The most frequent answer at each query rank in training; ``targets_train`` ``(N, K)``
    -> ``(n_test, K)`` predictions."""
    modes = [np.bincount(col).argmax() for col in targets_train.T]
    return np.tile(modes, (n_test, 1))


def _mqar(task: Task, splits) -> list[tuple[str, float, int]]:
    (v_tr, y_tr), _, (v_te, y_te) = (_queries(d, task.config.n_pairs) for d in splits)
    n = y_te.size
    by_pair = mqar_rank_to_pair(v_tr, y_tr, v_te)
    by_value = mqar_value_by_rank(y_tr, len(y_te))
    return [
        (
            "the value of the context pair most often queried at the query's rank",
            float(np.mean(by_pair == y_te)),
            n,
        ),
        ("the most frequent value at each query rank", float(np.mean(by_value == y_te)), n),
    ]


# ---------------------------------------------------------------------------------------------
# LM: n-grams with interpolated Kneser–Ney smoothing


@dataclass(frozen=True)
class NGramCounts:
    """The n-grams of a training stream, up to ``order`` tokens, under dense integer ids.

    ``contexts[m]`` (m = 0..order-1): the sorted keys of the m-token contexts seen, a context's
    id being its index there; the key of ``t1 … tm`` is ``t1 * len(contexts[m-1]) + id(t2 …
    tm)`` (m = 0: the empty context, key 0). ``grams[k]`` (k = 1..order): the sorted keys
    ``id(context of k-1 tokens) * vocab + token`` of the k-grams seen, ``raw[k]`` their counts
    and ``continuation[k]`` (k < order) the number of distinct tokens seen before them.
    Index 0 of ``grams``, ``raw`` and ``continuation`` is unused."""

    vocab: int
    separator: int  # the token assumed before the stream (the document separator)
    contexts: list[np.ndarray]
    grams: list[np.ndarray]
    raw: list[np.ndarray]
    continuation: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.grams) - 1


def _context_ids(x: np.ndarray, order: int, separator: int, contexts=None):
    """The ids of the m tokens up to each position of ``x`` ``(T,)``, m = 0..order-1: a list
    of ``(T,)`` arrays, -1 for a context not in ``contexts``; with ``contexts`` None, the
    contexts are collected from ``x`` and returned too. The stream is taken to follow
    ``order - 1`` separators."""
    padded = np.concatenate([np.full(order - 1, separator, dtype=np.int64), x])
    ids, seen = [np.zeros(len(x), dtype=np.int64)], [np.zeros(1, dtype=np.int64)]
    for m in range(1, order):
        key = padded[order - m : order - m + len(x)] * len(seen[m - 1]) + ids[m - 1]
        if contexts is None:
            keys, inverse = np.unique(key, return_inverse=True)
            seen.append(keys)
            ids.append(inverse.reshape(-1))
            continue
        keys = contexts[m]
        pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        seen.append(keys)
        ids.append(np.where((ids[m - 1] >= 0) & (keys[pos] == key), pos, -1))
    return ids, seen


def ngram_counts(x, y, order: int, vocab: int, separator: int) -> NGramCounts:
    """Count the n-grams (n = 1..``order``) of a stream: ``x`` ``(T,)`` tokens, ``y`` ``(T,)``
    the token after each (:data:`IGNORE_INDEX` where not counted)."""
    x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
    ids, contexts = _context_ids(x, order, separator)
    keep = y != IGNORE_INDEX
    grams, raw = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for k in range(1, order + 1):
        keys, counts = np.unique(ids[k - 1][keep] * vocab + y[keep], return_counts=True)
        grams.append(keys)
        raw.append(counts)
    continuation = [np.zeros(0, dtype=np.int64)]
    for k in range(1, order):  # each (k+1)-gram adds one distinct left token to its suffix
        longer = grams[k + 1]
        suffix = contexts[k][longer // vocab] % len(contexts[k - 1])
        at = np.searchsorted(grams[k], suffix * vocab + longer % vocab)
        continuation.append(np.bincount(at, minlength=len(grams[k])))
    return NGramCounts(vocab, separator, contexts, grams, raw, continuation)


def _kn_terms(counts: NGramCounts, ids: list[np.ndarray], y: np.ndarray, order: int):
    """Per level k = 1..order, at each target ``y`` ``(M,)`` after contexts ``ids[k-1]``
    ``(M,)``: the count of (context, target), the context's total and its number of distinct
    next tokens (raw counts at level ``order``, continuation counts below; 0 if unseen)."""
    terms = []
    for k in range(1, order + 1):
        keys = counts.grams[k]
        c = counts.raw[k] if k == order else counts.continuation[k]
        n_contexts = len(counts.contexts[k - 1])
        seen = ids[k - 1] >= 0
        h = np.where(seen, ids[k - 1], 0)
        total = np.bincount(keys // counts.vocab, weights=c, minlength=n_contexts)[h] * seen
        types = np.bincount(keys // counts.vocab, minlength=n_contexts)[h] * seen
        key = h * counts.vocab + y
        pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        terms.append((np.where(seen & (keys[pos] == key), c[pos], 0), total, types))
    return terms


def _kn_interpolate(terms, discounts, vocab: int) -> np.ndarray:
    """Interpolated Kneser–Ney probabilities ``(M,)`` from :func:`_kn_terms`, with one
    discount per level; below level 1 the uniform distribution over the vocabulary."""
    p = np.full(len(terms[0][0]), 1.0 / vocab)
    for (c, total, types), d in zip(terms, discounts, strict=True):
        p = np.where(total > 0, (np.maximum(c - d, 0) + d * types * p) / np.maximum(total, 1), p)
    return p


def kneser_ney_log_prob(counts: NGramCounts, x, y, discounts) -> np.ndarray:
    """Log-probabilities ``(M,)`` of the scored targets of a stream (``x``, ``y`` ``(T,)`` as
    in :func:`ngram_counts`) under the model of order ``len(discounts)`` (at most
    ``counts.order``)."""
    x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
    order = len(discounts)
    ids, _ = _context_ids(x, order, counts.separator, counts.contexts)
    keep = y != IGNORE_INDEX
    terms = _kn_terms(counts, [i[keep] for i in ids], y[keep], order)
    return np.log(_kn_interpolate(terms, discounts, counts.vocab))


def kneser_ney_distribution(counts: NGramCounts, context, discounts) -> np.ndarray:
    """The next-token distribution ``(V,)`` after the tokens ``context`` ``(T,)``, possibly
    empty (the stream starts after separators), under the model of order ``len(discounts)``."""
    order = len(discounts)
    x = np.concatenate([[counts.separator], np.asarray(context, dtype=np.int64)])
    ids, _ = _context_ids(x, order, counts.separator, counts.contexts)
    last = [np.full(counts.vocab, i[-1]) for i in ids]
    terms = _kn_terms(counts, last, np.arange(counts.vocab), order)
    return _kn_interpolate(terms, discounts, counts.vocab)


def kneser_ney(counts: NGramCounts, val, test, order: int):
    """The n-gram model of ``order`` with interpolated Kneser–Ney smoothing on ``counts`` (of
    the train split): one discount per level, chosen on ``val`` = (x, y) ``(T,)`` from
    :data:`DISCOUNTS` by two sweeps of coordinate descent (level 1 to ``order``, the others
    held). Returns the test log-probabilities ``(M,)`` and the discounts."""
    x, y = (np.asarray(a, dtype=np.int64) for a in val)
    ids, _ = _context_ids(x, order, counts.separator, counts.contexts)
    keep = y != IGNORE_INDEX
    terms = _kn_terms(counts, [i[keep] for i in ids], y[keep], order)

    def loss(d):
        return -np.log(_kn_interpolate(terms, d, counts.vocab)).mean()

    discounts = [0.75] * order
    for _ in range(2):
        for k in range(order):
            discounts[k] = min(
                DISCOUNTS, key=lambda d: loss(discounts[:k] + [d] + discounts[k + 1 :])
            )
    return kneser_ney_log_prob(counts, *test, discounts), tuple(discounts)


def _stream(dataset) -> tuple[np.ndarray, np.ndarray]:
    """The blocks of a split end to end: inputs and next-token labels, both ``(T,)``."""
    return np.concatenate(_rows(dataset)), np.concatenate(_rows(dataset, "labels"))


def _lm(task: Task, splits) -> list[tuple[str, float, int]]:
    train, val, test = (_stream(d) for d in splits)
    # the document separator (<eos> of the bytes, <|endoftext|> of GPT-2) is the last id
    counts = ngram_counts(*train, max(KN_ORDERS), task.vocab_size, task.vocab_size - 1)
    out = []
    for order in KN_ORDERS:
        log_p, _ = kneser_ney(counts, val, test, order)
        name = BIGRAM if order == 2 else f"{order}-gram (interpolated Kneser–Ney)"
        out.append((name, float(np.exp(-log_p.mean())), len(log_p)))
    return out


# ---------------------------------------------------------------------------------------------


def predictors(task: Task) -> list[tuple[str, float, int]]:
    """Every shallow predictor of ``task`` (a :class:`companion.tasks.Task`): (name in words,
    test score, n scored test predictions). Score = accuracy in [0, 1] for classification and
    MQAR; perplexity for the LM task (``task.name == "lm"``)."""
    splits = [task.stored(s) for s in ("train", "val", "test")]
    by_task = {"listops": _listops, "text": _text, "image": _image, "mqar": _mqar, "lm": _lm}
    # one BLAS thread: these fits are small, and threads fighting over busy cores made them
    # many times slower
    with threadpool_limits(limits=1, user_api="blas"):
        return by_task[task.name](task, splits)

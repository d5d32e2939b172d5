"""The shallow predictors: the flat ListOps evaluator by hand and against a reference, Kneser–Ney
against a dictionary implementation, the fitted classifiers on separable toys, and every task's
predictors on the smoke data."""

import math
from collections import Counter

import numpy as np
import pytest

from companion import shallow as S
from companion.tasks import TASKS, get_task
from companion.tasks.base import silent
from companion.tasks.listops import OPERATORS, VOCAB, apply, encode, evaluate


def ids(*sources: str) -> np.ndarray:
    """ListOps sources as ``(N, L)`` token ids (``<eos>`` appended, padded with 0)."""
    return S._matrix([np.array(encode(s, 100)) for s in sources])


def test_the_flat_evaluator_on_hand_written_expressions():
    cases = {
        "[MIN 5 [MIN 1 2 ] 7 ]": 5,  # the nested list (value 1) is ignored
        "[MAX 2 9 [MIN 4 7 ] 0 ]": 9,
        "[MED 1 2 ]": 1,  # median 1.5 truncated
        "[MED 7 0 [SM 9 9 ] 4 9 ]": 5,  # median of 0 4 7 9 = 5.5, the 8 inside is ignored
        "[MED 3 [MAX 1 [MIN 0 8 ] ] 8 6 ]": 6,
        "[SM 9 8 7 ]": 4,  # 24 mod 10
        "[SM 5 [MAX 9 1 ] 6 ]": 1,  # 11 mod 10, the 9 inside is ignored
        "[MAX [MIN 1 2 ] [SM 3 4 ] ]": -1,  # no direct digit
    }
    x = ids(*cases)
    assert S.listops_flat_values(x).tolist() == list(cases.values())
    # with no nesting, the flat value is the value
    flat = ["[MED 1 2 ]", "[SM 9 8 7 ]", "[MIN 3 1 4 ]", "[MED 2 9 4 ]", "[MAX 0 0 ]"]
    assert S.listops_flat_values(ids(*flat)).tolist() == [evaluate(s) for s in flat]
    # no direct digit: the majority class of the training labels
    y_train = np.array([3, 7, 7, 1])
    assert S.listops_flat_evaluator(x, y_train, x).tolist() == [5, 9, 1, 5, 6, 4, 1, 7]


def test_the_flat_evaluator_matches_a_reference_on_the_smoke_trees():
    task = get_task("listops", "smoke")
    rows = S._rows(task.stored("train"))

    def reference(row):
        tokens = [VOCAB[i] for i in row]
        depth, digits = 0, []
        for tok in tokens:
            depth += (tok in OPERATORS) - (tok == "X")
            if tok.isdigit() and depth == 1:
                digits.append(int(tok))
        return apply(tokens[0], digits) if digits else -1

    expected = [reference(r) for r in rows]
    assert S.listops_flat_values(S._matrix(rows)).tolist() == expected
    assert len(set(expected)) > 5


def reference_kneser_ney(x, y, order, vocab, separator, discounts):
    """p(w | the tokens up to position j) by dictionaries: raw counts at the top level,
    continuation counts (distinct left tokens) below, uniform under level 1."""
    padded = [separator] * (order - 1) + list(x)
    grams = [Counter() for _ in range(order + 1)]  # grams[k][(context of k-1, w)]
    for j, w in enumerate(y):
        history = tuple(padded[j + 1 : j + order])  # the order - 1 tokens up to position j
        for k in range(1, order + 1):
            grams[k][(history[order - k :], w)] += 1
    continuation = [Counter() for _ in range(order)]
    for k in range(1, order):
        for (h, w), _ in grams[k + 1].items():
            continuation[k][(h[1:], w)] += 1

    def p(history, w):
        prob = 1.0 / vocab
        for k in range(1, order + 1):
            table = grams[k] if k == order else continuation[k]
            h = tuple(history[len(history) - (k - 1) :]) if k > 1 else ()
            total = sum(c for (hh, _), c in table.items() if hh == h)
            if total:
                types = sum(1 for (hh, _), c in table.items() if hh == h)
                d = discounts[k - 1]
                prob = (max(table[(h, w)] - d, 0) + d * types * prob) / total
        return prob

    return p


def test_kneser_ney_matches_a_dictionary_implementation_and_sums_to_one():
    rng = np.random.default_rng(0)
    stream = rng.choice(5, size=300, p=[0.4, 0.3, 0.15, 0.1, 0.05])  # tokens 0..4 of 7
    x, y = stream[:-1], stream[1:]
    counts = S.ngram_counts(x, y, 4, vocab=7, separator=6)
    for discounts in [(0.5, 0.8), (0.3, 0.9, 1.0), (0.1, 0.5, 0.7, 0.9)]:
        order = len(discounts)
        ref = reference_kneser_ney(x, y, order, 7, 6, discounts)
        for context in ([], [0], [4, 4], [1, 2, 3], [6, 5, 0]):  # unseen tokens 5 and 6 too
            dist = S.kneser_ney_distribution(counts, context, discounts)
            assert dist.sum() == pytest.approx(1.0) and (dist > 0).all()
            history = [6] * order + context
            assert dist == pytest.approx([ref(history, w) for w in range(7)])
        test = rng.choice(7, size=50)
        log_p = S.kneser_ney_log_prob(counts, test[:-1], test[1:], discounts)
        history = [6] * order + list(test[:-1])
        expected = [math.log(ref(history[: j + order + 1], w)) for j, w in enumerate(test[1:])]
        assert log_p == pytest.approx(expected)


def test_the_5_gram_learns_a_repeated_text_and_the_bigram_does_not():
    stream = np.frombuffer(
        b"a quick brown fox jumps over the lazy dog; " * 100, dtype=np.uint8
    ).astype(np.int64)
    data = (stream[:-1], stream[1:])
    counts = S.ngram_counts(*data, 5, vocab=257, separator=256)
    perplexity = {}
    for order in (2, 5):
        log_p, discounts = S.kneser_ney(counts, data, data, order)
        assert set(discounts) <= set(S.DISCOUNTS) and len(discounts) == order
        perplexity[order] = math.exp(-log_p.mean())
    assert perplexity[5] < 1.05 < 1.3 < perplexity[2]


def test_the_classifiers_pick_from_their_grids_and_separate_a_toy_set():
    rng = np.random.default_rng(0)

    def images(n):  # class c lights pixels 4c..4c+3 of 12
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 60, (n, 12))
        x[np.arange(n)[:, None], 4 * y[:, None] + np.arange(4)] += 180
        return x.astype(np.float64), y

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = images(60), images(30), images(30)
    pred, c = S.pixel_logistic(x_tr, y_tr, x_va, y_va, x_te)
    assert c in S.LOGISTIC_C and np.mean(pred == y_te) > 0.9
    pred, k = S.pixel_neighbours(x_tr, y_tr, x_va, y_va, x_te)
    assert k in S.NEIGHBOURS and np.mean(pred == y_te) > 0.9
    # two training images: k = 1 only; a single class in train: that class
    pred, k = S.pixel_neighbours(x_tr[:2], y_tr[:2], x_va, y_va, x_te)
    assert k == 1
    pred, c = S.pixel_logistic(x_tr[y_tr == 2], y_tr[y_tr == 2], x_va, y_va, x_te)
    assert c is None and (pred == 2).all()

    good, bad = ["a great, fun film", "great acting"], ["a dull film", "dull and awful"]
    docs = [d.encode() for d in good + bad] * 5
    y = np.array([1, 1, 0, 0] * 5)
    test = [b"great fun", b"awful, dull", "naïve but great".encode()]
    pred, c = S.tfidf_logistic(docs, y, docs[:4], y[:4], test)
    assert c in S.TFIDF_C and pred.tolist() == [1, 0, 1]
    pred, alpha = S.word_naive_bayes(docs, y, docs[:4], y[:4], test)
    assert alpha in S.NB_ALPHA and pred.tolist() == [1, 0, 1]


def test_mqar_rank_to_pair_reads_the_pair_order_only():
    rng = np.random.default_rng(0)
    values = rng.permutation(np.arange(50, 100))[:40].reshape(10, 4)
    targets = values[:, [1, 0, 3, 2]]  # rank r asks pair (1, 0, 3, 2)[r]
    targets[0] = values[0]  # one sequence out of order does not change the map
    test_values = values[::-1]
    assert (S.mqar_rank_to_pair(values, targets, test_values) == test_values[:, [1, 0, 3, 2]]).all()
    modes = S.mqar_value_by_rank(np.array([[5, 6], [5, 7], [8, 7]]), 2)
    assert modes.tolist() == [[5, 7], [5, 7]]


@pytest.fixture(scope="module", params=TASKS)
def smoke_task(request):
    task = get_task(request.param, "smoke")
    task.prepare(log=silent)  # "cached" once `make test` has prepared the smoke data
    return task


def test_every_task_has_finite_shallow_scores_on_the_smoke_data(smoke_task):
    found = S.predictors(smoke_task)
    assert len(found) >= 2 and len({name for name, _, _ in found}) == len(found)
    n_test = len(smoke_task.stored("test"))
    for name, score, n in found:
        assert math.isfinite(score) and n >= n_test, name
        if smoke_task.name == "lm":
            assert score > 1
        else:
            assert 0 <= score <= 1
    if smoke_task.name == "mqar":  # no key matching: near chance (1/K = 0.25, 64 sequences)
        assert all(score < 0.4 for _, score, _ in found)

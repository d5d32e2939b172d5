"""MQAR: the Zoology invariants, the gap law, seeds and impossible sizes."""

import numpy as np
import pytest

from companion.tasks import get_task, mqar

CFG = mqar.MQARConfig(vocab_size=128, seq_len=64, n_pairs=8, n_train=1, n_val=1, n_test=1)


@pytest.mark.parametrize("filler", [True, False])
def test_invariants(filler):
    cfg = mqar.MQARConfig(**{**CFG.__dict__, "filler": filler})
    x, y = mqar.generate(cfg, 500, seed=1, chunk=128)
    V, L, K = cfg.vocab_size, cfg.seq_len, cfg.n_pairs
    assert x.shape == y.shape == (500, L)
    keys, values = x[:, 0 : 2 * K : 2], x[:, 1 : 2 * K : 2]
    assert ((keys >= 1) & (keys <= V // 2 - 1)).all()
    assert ((values >= V // 2) & (values <= V - 1)).all()
    for row in range(500):
        assert len(set(keys[row])) == K and len(set(values[row])) == K  # distinct
        targets = np.flatnonzero(y[row] != -100)
        assert len(targets) == K  # exactly K labels
        assert (targets >= 2 * K).all() and ((targets - 2 * K) % 2 == 0).all()  # even offsets
        pairs = dict(zip(keys[row], values[row], strict=True))
        for pos in targets:
            assert y[row, pos] == pairs[x[row, pos]]  # the value paired with the queried key
        assert sorted(x[row, targets]) == sorted(keys[row])  # every key queried once
        rest = np.setdiff1d(np.arange(2 * K, L), targets)
        if filler:
            assert (x[row, rest] >= 0).all() and (x[row, rest] < V).all()
        else:
            assert (x[row, rest] == 0).all()
    assert (y[:, : 2 * K] == -100).all()
    if filler:
        assert len(np.unique(x[:, 2 * K :])) > V // 2  # filler spans the vocabulary


def test_gap_law_single_pair():
    """With one pair the query slot follows the weights (g + 1)^(alpha - 1) exactly."""
    cfg = mqar.MQARConfig(vocab_size=64, seq_len=34, n_pairs=1, filler=False)
    x, y = mqar.generate(cfg, 20_000, seed=0)
    gaps = (np.argmax(y != -100, axis=1) - 2) // 2
    n_slots = (34 - 2) // 2
    freq = np.bincount(gaps, minlength=n_slots) / len(gaps)
    p = mqar.gap_weights(n_slots, 0.01)
    assert np.abs(freq - p).sum() / 2 < 0.03  # total variation
    assert freq[0] > 3 * freq[4] > 0  # a power law, not uniform


def test_gap_law_many_pairs_prefers_short_gaps():
    x, y = mqar.generate(CFG, 2000, seed=5)
    gaps = ((np.flatnonzero((y != -100).reshape(-1)) % CFG.seq_len) - 2 * CFG.n_pairs) // 2
    n_slots = (CFG.seq_len - 2 * CFG.n_pairs) // 2
    counts = np.bincount(gaps, minlength=n_slots)
    slope = np.polyfit(np.log(np.arange(1, n_slots + 1)), np.log(counts), 1)[0]
    assert slope < -0.2  # decreasing in log-log
    assert counts[:4].sum() > counts[-4:].sum()


def test_delay_puts_every_recall_a_known_distance_back_in_a_random_order():
    from companion import shallow

    K, d = 4, 40
    cfg = mqar.MQARConfig(vocab_size=64, seq_len=4 * K + d - 1, n_pairs=K, delay=d)
    x, y = mqar.generate(cfg, 2000, seed=3)
    targets = np.argwhere(y != -100)  # (2000 K, 2) rows and positions
    assert set(targets[:, 1]) == {2 * K + d + 2 * g for g in range(K)}
    keys = x[:, 0 : 2 * K : 2]
    spans = []
    for row, pos in targets:
        i = int(np.flatnonzero(keys[row] == x[row, pos])[0])  # the pair queried there
        assert y[row, pos] == x[row, 2 * i + 1]
        spans.append(pos - (2 * i + 1))
    assert min(spans) == d + 1 and max(spans) == d + 4 * K - 3
    # the queries' order says nothing: the value at the query's rank is right 1 time in K
    values, answers = x[:, 1 : 2 * K : 2], y[y != -100].reshape(-1, K)
    guess = shallow.mqar_rank_to_pair(values, answers, values)
    assert abs((guess == answers).mean() - 1 / K) < 0.03
    with pytest.raises(ValueError, match="need seq_len >= 4K \\+ delay - 1 = 55 \\(got 54\\)"):
        mqar.check(mqar.MQARConfig(vocab_size=64, seq_len=54, n_pairs=K, delay=d))


def test_seeds_and_determinism():
    a, c = mqar.generate(CFG, 50, seed=0), mqar.generate(CFG, 50, seed=0)
    assert (a[0] == c[0]).all() and (a[1] == c[1]).all()  # same seed, same data
    assert (a[0] != mqar.generate(CFG, 50, seed=1)[0]).any()
    task = get_task("mqar", "smoke")
    train, test = task.split("train"), task.split("test")
    assert train["input_ids"][:5] != test["input_ids"][:5]  # train and test seeds differ
    seeds = task.build(None, print)[1]["seeds"]
    assert len(set(seeds.values())) == 3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"seq_len": 64, "n_pairs": 17}, "seq_len >= 4K"),
        ({"vocab_size": 16, "n_pairs": 8, "seq_len": 64}, "distinct keys"),
        ({"n_pairs": 0}, "data.n_pairs = 0: expected a whole number ≥ 1"),
    ],
)
def test_impossible_sizes(options, match):
    with pytest.raises(ValueError, match=match) as err:
        get_task("mqar", "smoke", **options)
    assert "\n" not in str(err.value)


def test_presets_and_grid():
    paper = get_task("mqar", "paper")
    assert (paper.vocab_size, paper.seq_len, paper.config.n_pairs) == (8192, 512, 64)
    assert (paper.config.n_train, paper.config.n_test) == (100_000, 3_000)
    assert mqar.ZOOLOGY_GRID == ((64, 4), (128, 8), (256, 16), (512, 64))
    for L, K in mqar.ZOOLOGY_GRID:
        mqar.check(mqar.zoology_config(L, K))
    quick = get_task("mqar", "quick")
    assert quick.kind == "per_token" and quick.metric == "accuracy" and quick.n_classes is None


def test_collate_per_token():
    task = get_task("mqar", "smoke")
    ds = task.split("val")
    batch = task.collate([ds[i] for i in range(3)])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["mask"].shape == (3, 32)
    assert batch["mask"].all()
    assert int((batch["labels"] != -100).sum()) == 3 * 4

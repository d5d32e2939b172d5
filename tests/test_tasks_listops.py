"""ListOps: evaluator, generator properties, LRA TSV reader and tokenisation."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from companion.schema import ConfigError
from companion.tasks import DataError, get_task, listops

FIXTURES = Path(__file__).parent / "fixtures" / "listops_release"


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("[MED 1 2 ]", 1),  # median 1.5 truncated
        ("[MED 2 3 4 9 ]", 3),  # even count: (3 + 4) / 2 = 3.5 -> 3
        ("[MED 9 0 ]", 4),  # 4.5 -> 4
        ("[MED 5 1 7 ]", 5),  # odd count
        ("[SM 9 9 5 ]", 3),  # 23 mod 10
        ("[SM 5 5 ]", 0),  # wraps to exactly 0
        ("[SM 9 1 9 1 9 1 9 1 9 1 ]", 0),
        ("[MIN 4 7 2 ]", 2),
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MAX 2 [MIN 4 7 X 0 X", 4),  # tokenised form, X for ]
        ("7", 7),
    ],
)
def test_evaluator_hand_written(expression, value):
    assert listops.evaluate(expression) == value


def test_evaluator_deep_nesting():
    expr = "9"
    for op in ["[MIN", "[MAX", "[SM", "[MED"] * 3:  # 12 levels
        expr = f"{op} {expr} 1 ]"
    # innermost-out: MIN(9,1)=1, MAX(1,1)=1, SM(1,1)=2, MED(2,1)=1, repeat
    assert listops.evaluate(expr) == 1
    deep = "[SM " * 10 + "1 " + "1 ] " * 10  # SM(SM(...(1,1)...),1): 11 ones summed
    assert listops.evaluate(deep) == 1


def test_evaluator_lra_parenthesised_text():
    tree = ("[MAX", [2, 9, ("[MIN", [4, 7]), 0])
    source = listops.to_source(tree)
    assert source == "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"
    assert listops.evaluate(source) == listops.tree_value(tree) == 9


@pytest.mark.parametrize("bad", ["[MAX 1 2", "]", "[MAX ]", "1 2", "[FOO 1 ]"])
def test_evaluator_rejects_malformed(bad):
    with pytest.raises(ValueError):
        listops.evaluate(bad)


def test_generator_window_labels_and_determinism():
    cfg = listops.ListOpsConfig(min_length=20, max_length=60, n_train=1, n_val=1, n_test=1)
    rows = listops.generate(150, cfg, seed=3)
    assert rows == listops.generate(150, cfg, seed=3)  # same seed, same data
    assert rows != listops.generate(150, cfg, seed=4)
    lengths = [len(listops.tokenize(s)) for s, _ in rows]
    assert min(lengths) > 20 and max(lengths) < 60  # strict window, as LRA
    assert all(listops.evaluate(s) == v for s, v in rows)  # label = evaluation
    assert len({s for s, _ in rows}) == len(rows)  # distinct
    depth = max(
        max(np.cumsum([1 if "(" in t else -1 if ")" in t else 0 for t in s.split()]))
        for s, _ in rows
    )
    assert depth > 2  # nested, not flat


def test_generator_rejects_a_window_no_tree_reaches_before_drawing():
    # depth 2 with at most 5 arguments: the longest tree is "[OP d d d d d ]", 7 tokens
    assert listops.longest(2, 5) == 7 and listops.longest(3, 2) == 10
    cfg = listops.ListOpsConfig(min_length=7, max_length=60, max_depth=2, max_args=5)
    with pytest.raises(ValueError, match="longest has 7 tokens"):
        listops.generate(10, cfg, seed=0)
    # one token shorter, only the longest trees are kept, and they are exactly that long
    rows = listops.generate(20, replace(cfg, min_length=6), seed=0)
    assert {len(listops.tokenize(s)) for s, _ in rows} == {7}


def test_generator_respects_max_depth_and_args():
    cfg = listops.ListOpsConfig(min_length=5, max_length=400, max_depth=3, max_args=3)
    for source, _ in listops.generate(100, cfg, seed=0):
        depth, max_depth, counts = 0, 0, []
        for tok in listops.tokenize(source):
            if tok.startswith("["):
                depth += 1
                max_depth = max(max_depth, depth)
                counts.append(0)
            elif tok == "X":
                depth -= 1
                assert 2 <= counts.pop() <= 3
                if counts:
                    counts[-1] += 1
            elif counts:
                counts[-1] += 1
        assert max_depth <= 2  # operators only at depths 1..max_depth-1


def test_levels_fixes_every_trees_operator_levels_and_keeps_the_window():
    cfg = listops.ListOpsConfig(min_length=10, max_length=60, max_depth=5, max_args=5, levels=4)
    rows = listops.generate(200, cfg, seed=3)
    encoded = [listops.encode(s, 60) for s, _ in rows]
    assert set(listops.nesting_depths(encoded)) == {4}
    lengths = [len(listops.tokenize(s)) for s, _ in rows]
    assert 10 < min(lengths) and max(lengths) < 60
    assert all(listops.evaluate(s) == v for s, v in rows)
    # without levels the same grammar gives shallower trees too
    free = listops.generate(200, replace(cfg, levels=0), seed=3)
    depths = listops.nesting_depths([listops.encode(s, 60) for s, _ in free])
    assert set(depths) > {4}


def test_levels_beyond_the_depth_or_the_window_is_refused():
    with pytest.raises(ConfigError, match="data.levels = 3: expected at most max_depth - 1 = 2"):
        listops.ListOpsConfig(max_depth=3, levels=3)
    # four levels need at least 13 tokens; two levels at most 5 arguments at most 37
    short = listops.ListOpsConfig(min_length=0, max_length=13, max_depth=5, max_args=5, levels=4)
    with pytest.raises(ValueError, match="has a length in \\(0, 13\\): they have 13-"):
        listops.generate(1, short, seed=0)
    long = listops.ListOpsConfig(min_length=37, max_length=90, max_depth=5, max_args=5, levels=2)
    with pytest.raises(ValueError, match="they have 7-37 tokens"):
        listops.generate(1, long, seed=0)
    assert len(listops.generate(3, replace(short, max_length=14), seed=0)) == 3


def test_splits_are_disjoint_and_seeded():
    task = get_task("listops", "smoke")
    train, test = task.split("train"), task.split("test")
    a = {tuple(x) for x in train["input_ids"]}
    b = {tuple(x) for x in test["input_ids"]}
    assert not a & b
    again = get_task("listops", "smoke").split("train")
    assert again["input_ids"] == train["input_ids"] and again["label"] == train["label"]


def test_vocabulary_and_encoding():
    assert len(listops.VOCAB) == 18
    assert listops.VOCAB[:3] == ("<pad>", "<unk>", "<eos>")
    ids = listops.encode("( ( ( [MAX 2 ) 9 ) ] )", seq_len=100)
    assert listops.VOCAB[ids[0]] == "[MAX"
    assert [listops.VOCAB[i] for i in ids] == ["[MAX", "2", "9", "X", "<eos>"]
    assert listops.encode("[MAX 2 9 ]", seq_len=3) == [listops.STOI["[MAX"], listops.STOI["2"], 2]


def test_lra_tsv_release_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_LRA_RELEASE", str(FIXTURES))
    task = get_task("listops", "paper")
    assert task.source.startswith("LRA release") and task.seq_len == 2048
    assert task.vocab_size == 18
    assert task.prepare(tmp_path, log=lambda *a: None) == "built"
    train = task.split("train", root=tmp_path)
    assert train.num_rows == 4 and train["label"] == [9, 3, 1, 0]
    tokens = task.decode(train[0]["input_ids"])
    assert tokens == ["[MAX", "2", "9", "[MIN", "4", "7", "X", "0", "X", "<eos>"]
    assert all(0 <= i < 18 for row in train["input_ids"] for i in row)
    for source, target in listops.read_tsv(FIXTURES / "basic_val.tsv"):
        assert listops.evaluate(source) == target


def test_lra_release_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_LRA_RELEASE", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as err:
        get_task("listops", "paper").prepare(tmp_path / "cache", log=lambda *a: None)
    assert "\n" not in str(err.value) and "basic_train" in str(err.value)
    assert not (tmp_path / "cache").exists()


def test_tsv_without_columns(tmp_path):
    bad = tmp_path / "basic_train.tsv"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(DataError, match="Source, Target"):
        listops.read_tsv(bad)
    bad.write_text("Source\tTarget\n[MAX 1 2 ]\t2\n[MIN 3 4 ]\n")
    with pytest.raises(DataError, match=r"basic_train.tsv line 3 is not a tree and its value"):
        listops.read_tsv(bad)


def test_data_prepare_reads_the_release_it_is_given_before_the_environment(tmp_path, monkeypatch):
    from companion.tasks.prepare import prepare

    monkeypatch.setenv("COMPANION_LRA_RELEASE", str(tmp_path / "nowhere"))
    tasks = [("listops", get_task("listops", "paper"))]
    lines = []
    done = prepare(tasks, tmp_path / "data", release=FIXTURES, log=lines.append)
    assert (done.built, done.failed) == (["listops"], [])
    assert "built train/val/test = 4/" in lines[-1]
    assert prepare(tasks, tmp_path / "data", log=lines.append).cached == ["listops"]
    elsewhere = prepare(tasks, tmp_path / "other", log=lines.append)  # the environment's: empty
    assert elsewhere.failed[0].startswith("listops: ListOps (paper) reads the LRA release")


def test_nesting_depth_counts_operator_levels():
    trees = ["[MIN 1 2 ]", "[MAX 2 [MIN 3 4 ] 5 ]", "[SM [MED [MAX 1 ] 2 ] [MIN 3 ] ]", "7"]
    rows = [listops.encode(t, 60) for t in trees]
    assert listops.nesting_depths(rows).tolist() == [1, 2, 3, 0]


def test_a_cache_is_rebuilt_from_other_release_files_and_kept_without_any(tmp_path, monkeypatch):
    """A cache records the files it was built from: the same files keep it, other files (a
    corrected release) rebuild it, and a call with no release at hand keeps what is there."""
    monkeypatch.setenv("COMPANION_LRA_RELEASE", str(tmp_path / "nowhere"))
    changed = tmp_path / "changed"
    changed.mkdir()
    for f in FIXTURES.iterdir():
        (changed / f.name).write_text(f.read_text())
    with open(changed / "basic_train.tsv", "a") as f:
        f.write("[MAX 1 8 ]\t8\n")
    task, lines = get_task("listops", "paper"), []
    assert task.prepare(tmp_path, release=FIXTURES, log=lines.append) == "built"
    assert task.prepare(tmp_path, release=FIXTURES, log=lines.append) == "cached"
    assert task.prepare(tmp_path, log=lines.append) == "cached"  # no release at hand
    assert lines == []
    assert task.prepare(tmp_path, release=changed, log=lines.append) == "built"
    folder = task.cache_dir(tmp_path)
    assert lines == [f"  the cache at {folder} was built from other files; rebuilding"]
    assert task.split("train", root=tmp_path).num_rows == 5
    assert task.prepare(tmp_path, release=changed, log=lines.append) == "cached"


def test_an_empty_split_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    task = get_task("listops", "paper")
    assert task.prepare(tmp_path, release=FIXTURES, log=lambda *a: None) == "built"
    before = {p.name: p.read_bytes() for p in task.cache_dir(tmp_path).iterdir()}
    empty = tmp_path / "empty"
    empty.mkdir()
    for f in FIXTURES.iterdir():
        lines = f.read_text().splitlines(keepends=True)
        (empty / f.name).write_text("".join(lines[:1] if f.name == "basic_val.tsv" else lines))
    with pytest.raises(DataError, match="the val split of .* would be empty; nothing written"):
        task.prepare(tmp_path, release=empty, log=lambda *a: None)
    after = {p.name: p.read_bytes() for p in task.cache_dir(tmp_path).iterdir()}
    assert after == before

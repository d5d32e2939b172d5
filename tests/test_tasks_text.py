"""Text: byte and character tokenisation (non-ASCII too), the Rotten-Tomatoes reader and the
whole offline pipeline on fixture archives."""

import pytest
from fixtures.sources import install_fixture_sources, snippets_text

from companion.tasks import get_task
from companion.tasks.text import read_rt_snippets
from companion.tasks.tokenization import ByteTokenizer, CharVocab


def test_bytes_non_ascii():
    tok = ByteTokenizer()
    ids = tok.encode("café 日")
    assert ids == [99, 97, 102, 0xC3, 0xA9, 32, 0xE6, 0x97, 0xA5]  # UTF-8, one id per byte
    assert tok.token_strings(ids) == [
        "c",
        "a",
        "f",
        "<0xC3>",
        "<0xA9>",
        " ",
        "<0xE6>",
        "<0x97>",
        "<0xA5>",
    ]
    assert tok.decode_text(ids) == "café 日"
    assert tok.encode("a\x00b") == [97, 98]  # NUL is the pad id, never a token
    assert tok.token_strings([0, 256]) == ["<pad>", "<eos>"]


def test_chars_min_freq_and_order():
    vocab = CharVocab.build(["ééa", "éab", "zz"], min_freq=2)
    # specials first, then by decreasing count (é 3, a 2, z 2 -> a before z), b (1) dropped
    assert vocab.itos == ["<pad>", "<unk>", "<eos>", "é", "a", "z"]
    assert vocab.encode("éb日") == [3, 1, 1]  # unknown -> <unk>
    assert vocab.token_strings([3, 4, 2]) == ["é", "a", "<eos>"]


def test_rt_reader(tmp_path):
    path = tmp_path / "movieReviewSnippets_GroundTruth.txt"
    path.write_text(snippets_text(n_repeat=1), encoding="utf-8")
    texts, labels = read_rt_snippets(path)
    assert len(texts) == 7  # the 0.0 score is dropped
    assert labels == [1, 0, 1, 0, 1, 0, 1]
    assert texts[2].startswith("Münch's")
    assert not any(t.endswith("\r") for t in texts)


def test_offline_pipeline_on_fixtures(tmp_path, monkeypatch):
    archives = install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    root = tmp_path / "data"
    task = get_task("text", "smoke")
    assert task.prepare(root, log=lambda *a: None) == "built"
    assert archives["downloads"] == ["vaderSentiment==3.3.2"]
    assert task.prepare(root, log=lambda *a: None) == "cached"  # idempotent, no new download
    assert archives["downloads"] == ["vaderSentiment==3.3.2"]
    sizes = [task.split(s, root=root).num_rows for s in ("train", "val", "test")]
    assert sum(sizes) == 35 and min(sizes) > 0  # 40 snippets, 5 scored 0
    train = task.split("train", root=root)
    assert set(train["label"]) == {0, 1}
    texts = ["".join(task.decode(ids)) for ids in train["input_ids"]]
    assert any("<0xC3>" in t for t in texts)  # non-ASCII bytes survive
    batch = task.collate([train[i] for i in range(4)])
    lengths = [len(train[i]["input_ids"]) for i in range(4)]
    assert batch["input_ids"].shape == (4, max(lengths)) and batch["label"].shape == (4,)
    assert batch["mask"].sum(1).tolist() == lengths
    assert (batch["input_ids"][~batch["mask"]] == 0).all()


def test_char_level_pipeline(tmp_path, monkeypatch):
    install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    root = tmp_path / "data"
    task = get_task("text", "smoke", level="char", min_freq=2, append_eos=True)
    task.prepare(root, log=lambda *a: None)
    fresh = get_task("text", "smoke", level="char", min_freq=2, append_eos=True)
    train = fresh.split("train", root=root)
    assert fresh.vocab(root).itos[:3] == ["<pad>", "<unk>", "<eos>"]
    assert fresh.vocab_size == len(fresh.vocab(root).itos) < 60
    assert all(row[-1] == 2 for row in train["input_ids"])  # <eos> appended
    assert "ü" in fresh.vocab(root).itos


def test_paper_profile_facts():
    task = get_task("text", "paper")
    assert task.source.startswith("hub:stanfordnlp/imdb") and task.seq_len == 4096
    assert task.config.min_freq == 15 and task.n_classes == 2
    with pytest.raises(ValueError, match="data.level = 'word': expected one of: char, byte"):
        get_task("text", "quick", level="word")


def test_paper_conversion_with_a_stub_hub(tmp_path, monkeypatch):
    """The IMDb path (hub layout: train/test with text, label) on a local stand-in."""
    import datasets

    from companion.tasks import fetch

    rows = {
        "text": ["great film " * 3 + "zz", "awful <br />film", "éé bad"] * 6,
        "label": [1, 0, 0] * 6,
    }
    stub = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "test": datasets.Dataset.from_dict(rows)}
    )
    calls = []
    monkeypatch.setattr(fetch, "load_hub", lambda repo, *a, **k: calls.append(repo) or stub)
    task = get_task("text", "paper", min_freq=5, seq_len=16)
    task.prepare(tmp_path, log=lambda *a: None)
    assert calls == ["stanfordnlp/imdb"]
    train = task.split("train", root=tmp_path)
    assert train.num_rows == 18 and max(len(r) for r in train["input_ids"]) == 16
    assert all(r[-1] == 2 for r in train["input_ids"])  # <eos> kept after the cut
    assert task.split("val", root=tmp_path)["label"] == task.split("test", root=tmp_path)["label"]
    itos = task.vocab(tmp_path).itos
    assert "é" in itos and "<" in itos and "z" not in itos  # built on the cut texts, as the paper

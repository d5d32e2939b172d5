"""The book machinery: a tiny book built like the real one, then read by a headless Chromium.

The tiny book uses the real ``book/_config.yml`` and landing page, a markdown page with display
math and an executed notebook (written with nbformat, never run) whose output is a PNG. It is
built with ``-W -n --keep-going``. Chromium (Debian's package, installed here when missing) is
driven over the DevTools protocol through ``--remote-debugging-pipe`` (standard library only):
it loads each page from a local http.server with every other host unresolvable, and the test
checks that figures decode, that MathJax typeset every formula without an error, and that no
request left localhost.
"""

from __future__ import annotations

import base64
import errno
import io
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from browser import bad_responses, browse, outside_requests, serve
from PIL import Image

from companion import book, report
from companion import io as cio
from companion.reproduce import section_notebooks

pytestmark = pytest.mark.slow  # end-to-end: the full suite only (make test)

ROOT = Path(__file__).resolve().parents[1]
MATH = r"$$\Lambda_i = \eta_{i-1}/\eta_i$$"
REPO = "https://github.com/example-owner/companion"


# --------------------------------------------------------------------------------------------
# The tiny book


def png_bytes(width=48, height=32) -> bytes:
    image = Image.new("RGB", (width, height), (31, 119, 180))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def executed_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "pygments_lexer": "ipython3"},
    }
    code = nbformat.v4.new_code_cell("plot_spectrum()", execution_count=1)
    code.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "image/png": base64.b64encode(png_bytes()).decode(),
                "text/plain": "<Figure size 480x320 with 1 Axes>",
            },
        )
    ]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A figure\n\nThe eigenvalue $|\\lambda| \\le 1$ below."),
        code,
    ]
    nbformat.validate(nb)
    return nb


@pytest.fixture(scope="module")
def mathjax() -> Path:
    return book.fetch_mathjax(ROOT / "book" / "_mathjax")


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory, mathjax) -> Path:
    src = tmp_path_factory.mktemp("book")
    shutil.copy(ROOT / "book" / "_config.yml", src / "_config.yml")
    shutil.copy(ROOT / "book" / "intro.md", src / "intro.md")
    (src / "_mathjax").symlink_to(mathjax.parent, target_is_directory=True)
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {"caption": "The framework", "chapters": [{"file": "math"}]},
            {"caption": "Tasks", "chapters": [{"file": "notebooks/figure"}]},
        ],
    }
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (src / "math.md").write_text(f"# Eigenvalues\n\nThe telescoping ratio\n\n{MATH}\n")
    (src / "notebooks").mkdir()
    nbformat.write(executed_notebook(), src / "notebooks" / "figure.ipynb")
    book.write_profile_page("smoke", {"commit": "abc1234", "runs": 3}, src)
    return src


@pytest.fixture(scope="module")
def built(tiny_book) -> Path:
    start = time.perf_counter()
    html = book.build(tiny_book, strict=True, repository=REPO, quiet=True)
    print(f"tiny book built in {time.perf_counter() - start:.1f} s")
    return html


def test_toc_names_the_chapters_and_reference_pages():
    files = book.toc_files(ROOT / "book")
    assert files[0] == "intro"
    chapters = [f for f in files if f.startswith("notebooks/")]
    assert chapters[:3] == [
        "notebooks/01_eigenvalues_and_memory",
        "notebooks/02_models_as_dynamical_systems",
        "notebooks/03_long_memory_tasks",
    ]
    # the book shows exactly the notebooks that reproduce executes
    assert chapters == [f"notebooks/{nb.stem}" for nb in section_notebooks()]
    assert files[-3:] == ["limitations", "appendix_configs", "appendix_environment"]


def test_config_never_executes_and_serves_mathjax_locally():
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    sphinx = config["sphinx"]["config"]
    assert "://" not in sphinx["mathjax_path"]
    assert sphinx["html_extra_path"] == ["_mathjax"]


def test_repository_address_or_no_buttons(monkeypatch):
    assert book.repository_url("git@github.com:someone/companion.git") == (
        "https://github.com/someone/companion"
    )
    assert book.repository_url("https://github.com/someone/companion.git/") == (
        "https://github.com/someone/companion"
    )
    monkeypatch.setenv("BOOK_REPOSITORY_URL", "")
    assert book.repository_url() is None
    config = book.resolved_config(ROOT / "book", None)
    assert config["launch_buttons"]["binderhub_url"] == ""
    assert config["repository"]["url"] == ""
    config = book.resolved_config(ROOT / "book", REPO)
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["repository"]["url"] == REPO


def test_missing_notebooks_are_named_before_building(tmp_path):
    shutil.copy(ROOT / "book" / "_toc.yml", tmp_path / "_toc.yml")
    (tmp_path / "intro.md").write_text("# Intro\n")
    with pytest.raises(book.BookError, match="notebooks/01_eigenvalues_and_memory"):
        book.build(tmp_path)


def test_profile_page_is_written_where_the_landing_page_includes_it(tmp_path):
    dest = book.write_profile_page("quick", {"commit": "abc1234"}, tmp_path)
    assert dest == book.generated(tmp_path, "profile") and "`abc1234`" in dest.read_text()


def test_strict_build_renders_pages_math_figure_and_binder(built):
    for page in ("index.html", "intro.html", "math.html", "notebooks/figure.html"):
        assert (built / page).is_file(), page
    assert (built / "es5" / book.MATHJAX_ENTRY).is_file()
    intro = (built / "intro.html").read_text()
    assert "smoke" in intro and "abc1234" in intro  # the generated profile page is included
    assert r"\Lambda_i = \eta_{i-1}/\eta_i" in (built / "math.html").read_text()
    nb = (built / "notebooks" / "figure.html").read_text()
    assert "https://mybinder.org/v2/gh/example-owner/companion/main" in nb
    assert "notebooks/figure.ipynb" in nb
    assert list((built / "_images").glob("*.png"))


# --------------------------------------------------------------------------------------------
# The browser (tests/browser.py)


@pytest.fixture(scope="module")
def served(built):
    with serve(built) as base:
        yield base


@pytest.fixture(scope="module")
def browsed(chromium, served, tmp_path_factory) -> dict:
    """Each page's inspection result and every request the browser made."""
    start = time.perf_counter()
    pages = ["intro.html", "math.html", "notebooks/figure.html"]
    result = browse(chromium, served, pages, tmp_path_factory.mktemp("chromium"))
    print(f"chromium: {len(pages)} pages in {time.perf_counter() - start:.1f} s")
    return result


def test_browser_renders_math_with_local_mathjax(browsed):
    for name, page in browsed["pages"].items():
        assert page["mathjax"] and page["mathjax"].startswith("3."), name
        assert page["scripts"], f"{name}: no MathJax script"
        assert all(s.startswith(browsed["base"]) for s in page["scripts"]), page["scripts"]
        assert page["math"] > 0, f"{name}: MathJax typeset nothing"
        assert page["errors"] == 0, f"{name}: MathJax errors"
        assert page["raw"] == 0, f"{name}: formulas left as TeX"
    math = browsed["pages"]["math.html"]
    assert math["display"] == 1
    assert any("Λ" in s and "η" in s for s in math["speech"]), math["speech"]


def test_browser_decodes_the_notebook_figure(browsed):
    images = browsed["pages"]["notebooks/figure.html"]["images"]
    figures = [i for i in images if "/_images/" in i["src"]]
    assert figures, images
    assert (figures[0]["width"], figures[0]["height"]) == (48, 32)
    for image in images:
        assert image["width"] > 0 and image["height"] > 0, image


def test_browser_needed_no_network(browsed):
    base = browsed["base"]
    assert not outside_requests(browsed), outside_requests(browsed)
    assert any(u.startswith(base + "es5/" + book.MATHJAX_ENTRY) for u in browsed["requests"])
    assert any(u.startswith(base + "es5/output/chtml/fonts/") for u in browsed["requests"])
    assert not browsed["failed"], browsed["failed"]
    assert not bad_responses(browsed), bad_responses(browsed)
    assert not browsed["exceptions"], browsed["exceptions"]


def test_installed_notebooks_hide_the_cell_papermill_injects(tmp_path):
    """The injected cell holds the builder's absolute paths; readers get the defaults."""
    import json

    from companion.book import install_notebooks

    cells = [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "profile = 'quick'"},
        {
            "cell_type": "code",
            "metadata": {"tags": ["injected-parameters"]},
            "source": f"runs_root = '{tmp_path}/runs'",
        },
    ]
    src = tmp_path / "01_x.ipynb"
    src.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (dest,) = install_notebooks([src], tmp_path / "book")
    tags = [c["metadata"]["tags"] for c in json.loads(dest.read_text())["cells"]]
    assert tags == [["parameters"], ["injected-parameters", "remove-cell"]]


def test_findings_page_without_runs_says_how_to_get_them(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/07_claims\n"
    )
    page = book.write_findings_page("quick", tmp_path / "no-runs", tmp_path)
    text = page.read_text()
    assert "`make reproduce`" in text and "(notebooks/07_claims)" in text
    assert "notebooks/01_" not in text  # only the chapters the book has


def test_claim_anchors_name_the_claim_never_its_verdict():
    anchor = report.claim_anchor("C1", "Depth changes both the spectra and the accuracy.")
    assert anchor == "c1-depth-changes-both-the-spectra-and-the-accuracy"
    assert report.claim_anchor("C4 (Λ without weight decay)", "x") == "c4-without-weight-decay-x"


def test_only_a_successful_build_counts_as_built(built, tiny_book, monkeypatch):
    """A failed (or killed) build leaves pages behind; `make reproduce` must still build again,
    so only a build that succeeded leaves the mark it reads."""
    assert book.is_built(tiny_book) and (built / "index.html").is_file()
    failed = subprocess.CompletedProcess([], 2, stdout="a warning", stderr="")
    monkeypatch.setattr(book.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(book.BookError, match="failed"):
        book.build(tiny_book, strict=True, repository=REPO, quiet=True)
    assert (built / "index.html").is_file() and not book.is_built(tiny_book)


def test_a_build_that_fails_on_a_full_disk_says_so(tiny_book, monkeypatch):
    """The builder reports a full disk in words of its own: the build names the disk; with
    space left (the test above) the builder's failure stands."""
    failed = subprocess.CompletedProcess([], 2, stdout="OSError: [Errno 28]", stderr="")
    monkeypatch.setattr(book.subprocess, "run", lambda *a, **k: failed)
    monkeypatch.setattr(cio.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(9, 9, 0))
    with pytest.raises(OSError) as err:
        book.build(tiny_book, strict=True, repository=REPO, quiet=True)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tiny_book / "_build")
    assert not book.is_built(tiny_book)

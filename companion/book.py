"""The Jupyter Book in ``book/``: offline MathJax, the profile page, the strict build.

How the pieces meet (``make reproduce`` runs them in this order)::

    companion reproduce --profile quick
        1. the runs of the book                     runs/<profile>/<run_id>/
        2. the section notebooks through papermill  executed copies copied into
                                                    book/notebooks/NN_name.ipynb
                                                    (install_notebooks)
        3. the profile page                         book/_generated/profile.md
                                                    (write_profile_page)
    make book                                       fetch_mathjax, then build

``book/_toc.yml`` names the pages; :func:`toc_files` reads it and :func:`missing_pages` says
which are not there yet (before reproduce, the section notebooks are missing and the build
stops with that list instead of Sphinx's warnings).

The book never executes a notebook (``execute_notebooks: "off"``): it renders the outputs
papermill left. It is built with ``-W -n --keep-going --all``: every warning, including a
broken cross-reference, fails the build, and every warning is listed before it does.

MathJax 3 is served by the book itself: :func:`fetch_mathjax` takes the ``mathjax`` package
from the npm registry (``npm pack``, version and sha256 pinned below) and puts its ``es5/``
in ``book/_mathjax/`` (git-ignored), which ``html_extra_path`` copies to the site's root;
``mathjax_path`` points there. The built pages load nothing from the network.

Binder launch buttons need the repository's public address. ``book/_config.yml`` leaves
``repository.url`` empty; :func:`build` fills it from its argument, the ``BOOK_REPOSITORY_URL``
environment variable or the git remote ``origin`` (:func:`repository_url`), and without one
builds the book with no repository or launch buttons rather than links to a placeholder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

from companion import environment, evidence, plots, report, style
from companion.chapter import Chapter
from companion.io import atomic_path, atomic_write_text, git, writing

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

MATHJAX_VERSION = "3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
MATHJAX_ENTRY = "tex-mml-chtml.js"  # the component Sphinx loads by default, here served locally

GENERATED = "_generated"  # the pages and files reproduce writes, beside the book's sources
GENERATED_FILES = {
    "profile": "profile.md",  # which profile produced the numbers (intro.md includes it)
    "findings": "findings.md",  # the claims scoreboard, summary figure, chapter map
    "summary": "summary.png",  # the findings' figure
    "configs": "configs.md",  # the appendix of configurations
    "environment": "environment.md",  # the appendix of exact versions
    "runs": "runs_index.csv",  # download: one row per run
    "measures": "measures.csv",  # download: what the claims read
}


def generated(book_dir: str | os.PathLike, role: str) -> Path:
    """The path of the generated file with ``role`` (a key of :data:`GENERATED_FILES`)."""
    return Path(book_dir) / GENERATED / GENERATED_FILES[role]


class BookError(RuntimeError):
    """The book cannot be fetched, assembled or built; the message says what to do."""


# --------------------------------------------------------------------------------------------
# MathJax


def fetch_mathjax(dest: str | os.PathLike = BOOK / "_mathjax", npm: str = "npm") -> Path:
    """Put MathJax's ``es5/`` folder into ``dest/es5`` (pinned version, verified sha256).

    Does nothing when ``dest/es5`` already holds MathJax. The folder appears in one step
    (extracted beside it, then renamed), so concurrent callers never see half of it.
    Returns ``dest/es5``."""
    dest = Path(dest)
    es5 = dest / "es5"
    if (es5 / MATHJAX_ENTRY).is_file():
        return es5
    if shutil.which(npm) is None:
        raise BookError(f"`{npm}` not found: install Node.js/npm to fetch MathJax for the book")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        proc = subprocess.run(
            [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--json", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise BookError(f"npm pack mathjax@{MATHJAX_VERSION} failed:\n{proc.stderr[-2000:]}")
        tarball = tmp / json.loads(proc.stdout)[0]["filename"]
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != MATHJAX_SHA256:
            raise BookError(f"{tarball.name}: sha256 {digest}, expected {MATHJAX_SHA256}")
        with tarfile.open(tarball) as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith("package/es5/") or m.name == "package/LICENSE"
            ]
            tar.extractall(tmp / "x", members=members, filter="data")
        shutil.copy2(tmp / "x/package/LICENSE", tmp / "x/package/es5/LICENSE")
        try:
            os.rename(tmp / "x/package/es5", es5)
        except OSError:
            if not (es5 / MATHJAX_ENTRY).is_file():  # not another process that won the race
                raise
    return es5


# --------------------------------------------------------------------------------------------
# Pages


def toc_files(book_dir: str | os.PathLike = BOOK) -> list[str]:
    """The documents ``_toc.yml`` names (root first), without extensions."""

    def walk(node) -> Iterable[str]:
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []):
                    yield from walk(child)

    toc = yaml.safe_load((Path(book_dir) / "_toc.yml").read_text())
    return [toc["root"], *walk(toc)]


def missing_pages(book_dir: str | os.PathLike = BOOK) -> list[str]:
    """The documents of ``_toc.yml`` for which no ``.md`` or ``.ipynb`` exists."""
    book_dir = Path(book_dir)
    return [
        name
        for name in toc_files(book_dir)
        if not any((book_dir / f"{name}{ext}").is_file() for ext in (".md", ".ipynb"))
    ]


def install_notebooks(
    executed: Iterable[str | os.PathLike], book_dir: str | os.PathLike = BOOK
) -> list[Path]:
    """Copy executed section notebooks into ``book_dir/notebooks/`` (same file names), each
    atomically. The reproduce step calls this after papermill; the book renders the copies.
    The cell papermill injects (the builder's own paths and parameters) is tagged
    ``remove-cell``, so readers see the notebook's documented defaults, not the builder's disk."""
    out = []
    for src in map(Path, executed):
        nb = json.loads(src.read_text())
        for cell in nb["cells"]:
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "injected-parameters" in tags and "remove-cell" not in tags:
                tags.append("remove-cell")
        dest = Path(book_dir) / "notebooks" / src.name
        atomic_write_text(dest, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        out.append(dest)
    return out


def write_profile_page(profile: str, record: dict, book_dir: str | os.PathLike = BOOK) -> Path:
    """Write the landing page's record of the run that made the numbers (atomically; see
    :func:`companion.report.profile_page`)."""
    dest = generated(book_dir, "profile")
    atomic_write_text(dest, report.profile_page(profile, record))
    return dest


NO_PROFILE = """\
This build of the book was made without `companion reproduce`, so no record says which runs
produced its numbers. Run `make reproduce` to produce them and this note.
"""


NO_FINDINGS = """\
No runs have been analysed for this build yet: `make reproduce` trains them, and this part of
the page then shows what they found.
"""
CHAPTERS = (
    ("notebooks/01_eigenvalues_and_memory", "what an eigenvalue of Λ says about memory"),
    ("notebooks/02_models_as_dynamical_systems", "every model as one linear time-varying system"),
    ("notebooks/03_long_memory_tasks", "ListOps, Text and Image: spectra and accuracies"),
    ("notebooks/04_selective_tasks", "MQAR and language modelling"),
    ("notebooks/05_architectural_modifications", "gate, convolution, normalisation, depth"),
    ("notebooks/06_exact_vs_published", "what the published analysis changes"),
    ("notebooks/07_claims", "every claim, part by part, with intervals"),
    ("notebooks/08_beyond_the_paper", "training dynamics, correlations, every head"),
    ("notebooks/09_scale_ladder", "how accuracy and verdicts move as MQAR and ListOps get harder"),
    ("notebooks/10_pretrained_models", "the same analysis on pretrained transformers and Mamba-2"),
    ("notebooks/11_spectra_against_demand", "the spectra as MQAR's memory pressure and delay grow"),
)


def chapter_map(book_dir: str | os.PathLike) -> str:
    """The landing page's map of the chapters that the book's ``_toc.yml`` names."""
    names = set(toc_files(book_dir)) if (Path(book_dir) / "_toc.yml").is_file() else set()
    rows = [f"- [{what}]({page})" for page, what in CHAPTERS if page in names]
    return "**Chapters.**\n\n" + "\n".join(rows) if rows else ""


def write_findings_page(
    profile: str, runs_root: str | os.PathLike, book_dir: str | os.PathLike = BOOK
) -> Path:
    """Write the landing page's findings (:func:`companion.report.findings_page`) with its
    summary figure and its downloads, the runs index and the measures the claims read.
    Without a runs index, a note."""
    index_path = Path(runs_root) / profile / "index.csv"
    chapters = chapter_map(book_dir)
    dest = generated(book_dir, "findings")
    if not index_path.is_file():
        atomic_write_text(dest, NO_FINDINGS + "\n" + chapters)
        return dest
    index = evidence.without_ladder(evidence.read_index(index_path))
    chapter = Chapter(index, profile, Path(runs_root) / profile)  # the chapters' numbers
    measures, verdicts, summary = chapter.measures, chapter.verdicts, chapter.summary
    style.use_style()
    figure = plots.summary_heatmap(summary, f"profile {profile}, {len(index)} runs, exact analysis")
    with atomic_path(generated(book_dir, "summary")) as tmp:
        figure.savefig(tmp, dpi=200, format="png")
    tables = {
        "runs": index.drop(columns="path", errors="ignore"),  # no local paths
        "measures": evidence.export(measures),  # claims.evaluate(pd.read_csv(...)) reruns it
    }
    for role, table in tables.items():
        atomic_write_text(generated(book_dir, role), table.to_csv(index=False))
    files = {role: f"{GENERATED}/{GENERATED_FILES[role]}" for role in ("summary", *tables)}
    text = report.findings_page(profile, measures, verdicts, summary, files, chapters)
    atomic_write_text(dest, text)
    return dest


def write_config_appendix(book_dir: str | os.PathLike = BOOK) -> Path:
    """Write the appendix of configurations (:func:`companion.report.appendix`)."""
    dest = generated(book_dir, "configs")
    atomic_write_text(dest, report.appendix())
    return dest


def write_environment_appendix(book_dir: str | os.PathLike = BOOK) -> Path:
    """Write the appendix of exact versions (:func:`companion.environment.appendix`)."""
    dest = generated(book_dir, "environment")
    atomic_write_text(dest, environment.appendix())
    return dest


def assemble(
    profile: str,
    runs_root: str | os.PathLike,
    record: dict,
    book_dir: str | os.PathLike = BOOK,
    findings_profile: str | None = None,
) -> Path:
    """The book's generated pages, then the strict build: the profile page from the reproduce
    step's ``record``, the appendices of configurations and of versions, and the findings of
    the runs of ``findings_profile`` (default ``profile``) under ``runs_root``. Returns the
    HTML folder."""
    write_profile_page(profile, record, book_dir)
    write_config_appendix(book_dir)
    write_environment_appendix(book_dir)
    write_findings_page(findings_profile or profile, runs_root, book_dir)
    return build(book_dir, strict=True, quiet=True)


# --------------------------------------------------------------------------------------------
# Build


def _https(url: str) -> str | None:
    url = url.strip()
    if m := re.fullmatch(r"(?:ssh://)?git@([^:/]+)[:/](.+?)(?:\.git)?/?", url):
        return f"https://{m[1]}/{m[2]}"
    if m := re.fullmatch(r"(https?://)(?:[^@/]+@)?(.+?)(?:\.git)?/?", url):
        return m[1] + m[2]
    return None


def repository_url(explicit: str | None = None, root: str | os.PathLike = ROOT) -> str | None:
    """The repository's public address for Binder: ``explicit``, else ``$BOOK_REPOSITORY_URL``,
    else the git remote ``origin`` (ssh form turned to https); None when none is known. An
    empty string (argument or variable) means "none": the book gets no launch buttons."""
    if explicit is None:
        explicit = os.environ.get("BOOK_REPOSITORY_URL")
    if explicit is not None:
        return _https(explicit) if explicit.strip() else None
    origin = git("remote", "get-url", "origin", cwd=root)
    return _https(origin) if origin else None


def resolved_config(book_dir: str | os.PathLike, url: str | None) -> dict:
    """``_config.yml`` with the repository address filled in (or the buttons switched off)."""
    config = yaml.safe_load((Path(book_dir) / "_config.yml").read_text())
    repo = config.setdefault("repository", {})
    html = config.setdefault("html", {})
    if url:
        repo["url"] = url
        html["use_repository_button"] = True
    else:
        repo["url"] = ""
        html["use_repository_button"] = html["use_issues_button"] = False
        html["use_edit_page_button"] = False
        config.setdefault("launch_buttons", {})["binderhub_url"] = ""
    return config


def built_mark(book_dir: str | os.PathLike) -> Path:
    """The file a successful build writes last (and every build removes first)."""
    return Path(book_dir) / "_build" / ".built"


def is_built(book_dir: str | os.PathLike = BOOK) -> bool:
    """Whether the last build of the book in ``book_dir`` succeeded."""
    return built_mark(book_dir).is_file()


def build(
    book_dir: str | os.PathLike = BOOK,
    strict: bool = True,
    repository: str | None = None,
    quiet: bool = False,
) -> Path:
    """Build the HTML book and return ``book_dir/_build/html``.

    ``strict`` adds ``-W -n --keep-going --all`` (fresh environment: a warning of an earlier
    build cannot hide behind Sphinx's cache). Fetches MathJax when ``_mathjax/es5`` is missing
    and writes the no-profile note when ``_generated/profile.md`` is (and the appendix of
    versions when it is missing). ``quiet`` captures the builder's output and puts it into the
    error instead of the terminal. The HTML counts as built (:func:`is_built`) only once a
    build succeeded: a failed or killed one leaves pages but no mark."""
    book_dir = Path(book_dir).resolve()
    if missing := missing_pages(book_dir):
        raise BookError(
            f"{book_dir}: pages named in _toc.yml are missing: {', '.join(missing)}. "
            "The section notebooks come from `companion reproduce` (or `make reproduce`)."
        )
    fetch_mathjax(book_dir / "_mathjax")
    profile_page = generated(book_dir, "profile")
    if not profile_page.is_file():
        atomic_write_text(profile_page, NO_PROFILE)
    findings = generated(book_dir, "findings")
    if not findings.is_file():
        atomic_write_text(findings, NO_FINDINGS + "\n" + chapter_map(book_dir))
    if not generated(book_dir, "environment").is_file():
        write_environment_appendix(book_dir)

    url = repository_url(repository)
    out = book_dir / "_build"
    built_mark(book_dir).unlink(missing_ok=True)
    config_path = out / "_config.resolved.yml"
    atomic_write_text(config_path, yaml.safe_dump(resolved_config(book_dir, url), sort_keys=False))

    cmd = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(book_dir),
        "--builder",
        "html",
        "--config",
        str(config_path),
    ]
    if strict:
        cmd += ["-W", "-n", "--keep-going", "--all"]
    proc = subprocess.run(cmd, cwd=book_dir, capture_output=quiet, text=True)
    with writing(out):
        if proc.returncode != 0:
            tail = (proc.stdout or "")[-6000:] + (proc.stderr or "")[-6000:]
            raise BookError(f"jupyter-book build {book_dir} failed ({proc.returncode})\n{tail}")
    html = out / "html"
    atomic_write_text(built_mark(book_dir), "")
    if not url:
        print(
            "companion.book: no repository address (BOOK_REPOSITORY_URL or git remote origin); "
            "built without Binder launch buttons",
            file=sys.stderr,
        )
    return html


# --------------------------------------------------------------------------------------------
# Sphinx extension (``_config.yml``: ``sphinx.extra_extensions: [companion.book]``)


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated ``<script>`` tags. Sphinx 7.4 adds an inline script registered after the
    builder started (sphinx-thebe's ``const THEBE_JS_URL = ...``) twice, once with filename
    None and once with ``''``; the second copy throws a SyntaxError in every page."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {})
        key = (getattr(js, "filename", js) or "", getattr(js, "priority", 0), str(attributes))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app) -> dict:
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

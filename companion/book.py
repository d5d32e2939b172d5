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

import argparse
import datetime as dt
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

import pandas as pd
import yaml
from docutils.nodes import make_id

from companion import claims, evidence, plots
from companion import config as C
from companion.io import atomic_path, atomic_write_text, git
from companion.model import describe
from companion.train import model_config, task_of

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

MATHJAX_VERSION = "3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
MATHJAX_ENTRY = "tex-mml-chtml.js"  # the component Sphinx loads by default, here served locally

# What each profile is, against the paper's scale (the landing page quotes it).
PROFILE_NOTES = {
    "smoke": (
        "the **smoke** profile: a few hundred examples per task, short sequences, models of two "
        "layers and width 16 trained for a handful of steps. It checks that every part of the "
        "pipeline runs; its numbers say nothing about the paper's claims."
    ),
    "quick": (
        "the **quick** profile, which runs on two CPU cores: real offline data (Rotten-Tomatoes "
        "sentences as bytes instead of IMDb, 5,000 MNIST digits at 14×14 instead of CIFAR-10, "
        "Wikipedia articles as bytes instead of WikiText-103 with GPT-2 BPE), generated ListOps "
        "with lengths 10–60 and nesting depth 3 instead of up to 2,000 and 10, MQAR with "
        "vocabulary 256, length 64 and 8 pairs instead of 8,192, 512 and 64, and models of two "
        "layers and width 64 instead of the public configurations. Spectral shapes can be "
        "compared with the paper's; accuracies cannot."
    ),
    "ladder": (
        "the **quick** profile's runs and the **scale ladder**'s: the main models, three seeds "
        "each, also on MQAR at length 128 with 16 pairs and at 256 with 32, and on ListOps at "
        "nesting depth 2 and 4 (see the scale ladder chapter). Every chapter but that one reads "
        "the quick runs alone."
    ),
    "paper": (
        "the **paper** profile: the public configurations' hyperparameters and the paper's "
        "data (LRA ListOps, IMDb, CIFAR-10, MQAR with vocabulary 8,192, WikiText-103), trained "
        "on a GPU."
    ),
}


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


def write_profile_page(
    profile: str,
    summary: dict,
    dest: str | os.PathLike = BOOK / "_generated" / "profile.md",
) -> Path:
    """Write the landing page's "which profile produced these numbers" part (atomically).

    ``summary`` is the reproduce step's record; the keys used when present are ``commit``,
    ``finished`` (ISO time; now when absent), ``runs`` (how many), ``wall_seconds``, ``executor``
    and ``host``; any other scalar entries are listed as they are. The text has no headings:
    ``book/intro.md`` includes it under its own."""
    note = PROFILE_NOTES.get(
        profile, f"the **{profile}** profile, a custom one: compare its configuration files."
    )
    summary = dict(summary)
    finished = summary.pop("finished", None) or dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"
    )
    rows = [("profile", f"`{profile}`"), ("finished", str(finished))]
    labels = {
        "commit": "commit",
        "runs": "runs",
        "wall_seconds": "wall time",
        "executor": "runs trained by",
        "host": "machine",
    }
    for key, label in labels.items():
        if key in summary:
            value = summary.pop(key)
            if key == "wall_seconds":
                value = f"{float(value) / 60:.1f} min"
            elif key == "commit":
                value = f"`{value}`"
            rows.append((label, str(value)))
    for key, value in summary.items():
        if isinstance(value, str | int | float | bool):
            rows.append((str(key).replace("_", " "), str(value)))

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"The numbers in this book were produced by {note}",
        "",
        "Rerun them with `make reproduce PROFILE=" + profile + "`; `PROFILE=paper` runs the "
        "paper's scale (see the limitations page).",
        "",
        "| record | value |",
        "| --- | --- |",
        *(f"| {cell(k)} | {cell(v)} |" for k, v in rows),
        "",
    ]
    dest = Path(dest)
    atomic_write_text(dest, "\n".join(lines))
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
)


def chapter_map(book_dir: str | os.PathLike) -> str:
    """The landing page's map of the chapters that the book's ``_toc.yml`` names."""
    names = set(toc_files(book_dir)) if (Path(book_dir) / "_toc.yml").is_file() else set()
    rows = [f"- [{what}]({page})" for page, what in CHAPTERS if page in names]
    return "**Chapters.**\n\n" + "\n".join(rows) if rows else ""


def claim_anchor(claim: str, statement: str) -> str:
    """The id Sphinx gives chapter 7's heading of a claim (it names the claim and its
    statement, never the verdict, so links survive a changed verdict)."""
    return make_id(f"{claim}: {statement}")


def write_findings_page(
    profile: str, runs_root: str | os.PathLike, dest_dir: str | os.PathLike = BOOK / "_generated"
) -> Path:
    """Write the landing page's findings (``findings.md``, with ``summary.png``): the claims
    scoreboard under both analyses with a link to each claim, the summary figure, the most
    accurate model of each task, and the chapter map. Without a runs index, a note."""
    dest_dir = Path(dest_dir)
    index_path = Path(runs_root) / profile / "index.csv"
    chapters = [chapter_map(dest_dir.parent)]
    dest = dest_dir / "findings.md"
    if not index_path.is_file():
        atomic_write_text(dest, NO_FINDINGS + "\n" + "\n".join(chapters))
        return dest
    index = evidence.without_ladder(pd.read_csv(index_path).fillna({"variant": ""}))
    measures = evidence.measures(index)
    verdicts, _ = claims.evaluate(measures)
    summary = claims.summary(measures)
    plots.use_style()
    figure = plots.summary_heatmap(summary, f"profile {profile}, {len(index)} runs, exact analysis")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest_dir / "summary.png") as tmp:
        figure.savefig(tmp, dpi=200, format="png")
    board = verdicts.pivot_table(
        index=["claim", "statement"], columns="analysis", values="verdict", aggfunc="first"
    ).reset_index()
    order = {c: i for i, c in enumerate(verdicts["claim"].unique())}
    board = board.sort_values("claim", key=lambda c: c.map(order))
    counts = verdicts[verdicts["analysis"] == "exact"]["verdict"].value_counts()
    flips = board[board["exact"] != board["published"]]["claim"].tolist()
    best = [
        f"{plots.TASK_NAMES[task]}: " + ", ".join(plots.MODEL_NAMES.get(m, m) for m in top)
        for task in plots.TASK_ORDER
        if (top := claims.most_accurate(measures, task))
    ]
    untestable = claims.untestable_tasks(summary)
    if untestable:
        untested = (
            "- Untestable at this profile: "
            + "; ".join(f"{plots.TASK_NAMES[t]} ({why})" for t, why in untestable.items())
            + ": every claim that reads these tasks says so."
        )
    else:
        untested = (
            "- On every task at least one model learned beyond its strongest trivial predictor."
        )
    lines = [
        f"**At a glance** ({claims.EVIDENCE.get(profile, profile)}):",
        "",
        "- Of the paper's claims, under our exact analysis: "
        + ", ".join(f"{v}: {n}" for v, n in counts.items())
        + ".",
        "- The published analysis changes the verdict of "
        + (", ".join(flips) if flips else "no claim")
        + " (chapter 6 shows why).",
        untested,
        "- The most accurate models of each task (those that learned it and that no other "
        "is clearly more accurate than, by 95 % intervals of the test accuracy over seeds): "
        + ("; ".join(best) if best else "none")
        + ".",
        "",
        "![Shares of the eigenvalues near 0 and near 1 after training, per task and model]"
        "(summary.png)",
        "",
        "| claim | statement | exact analysis | published analysis |",
        "| --- | --- | --- | --- |",
    ]
    for _, row in board.iterrows():
        link = f"notebooks/07_claims.html#{claim_anchor(row['claim'], row['statement'])}"
        lines.append(
            f'| <a href="{link}">{row["claim"]}</a> | {row["statement"]} | {row["exact"]} '
            f"| {row['published']} |"
        )
    tables = {
        "runs_index.csv": index.drop(columns="path", errors="ignore"),  # no local paths
        "measures.csv": evidence.export(measures),  # claims.evaluate(pd.read_csv(...)) reruns it
    }
    for name, table in tables.items():
        atomic_write_text(dest_dir / name, table.to_csv(index=False))
    lines += [
        "",
        "**The data behind the numbers**: the {download}`runs index <_generated/runs_index.csv>`"
        " (one row per run, with its metrics) and the {download}`measures "
        "<_generated/measures.csv>` the claims read (bin shares per run, analysis and stage).",
        "",
        *chapters,
        "",
    ]
    atomic_write_text(dest, "\n".join(lines))
    return dest


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


def build(
    book_dir: str | os.PathLike = BOOK,
    strict: bool = True,
    repository: str | None = None,
    quiet: bool = False,
) -> Path:
    """Build the HTML book and return ``book_dir/_build/html``.

    ``strict`` adds ``-W -n --keep-going --all`` (fresh environment: a warning of an earlier
    build cannot hide behind Sphinx's cache). Fetches MathJax when ``_mathjax/es5`` is missing
    and writes the no-profile note when ``_generated/profile.md`` is. ``quiet`` captures the
    builder's output and puts it into the error instead of the terminal."""
    book_dir = Path(book_dir).resolve()
    if missing := missing_pages(book_dir):
        raise BookError(
            f"{book_dir}: pages named in _toc.yml are missing: {', '.join(missing)}. "
            "The section notebooks come from `companion reproduce` (or `make reproduce`)."
        )
    fetch_mathjax(book_dir / "_mathjax")
    profile_page = book_dir / "_generated" / "profile.md"
    if not profile_page.is_file():
        atomic_write_text(profile_page, NO_PROFILE)
    findings = book_dir / "_generated" / "findings.md"
    if not findings.is_file():
        atomic_write_text(findings, NO_FINDINGS + "\n" + chapter_map(book_dir))

    url = repository_url(repository)
    out = book_dir / "_build"
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
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-6000:] + (proc.stderr or "")[-6000:]
        raise BookError(f"jupyter-book build {book_dir} failed ({proc.returncode})\n{tail}")
    html = out / "html"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m companion.book", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("mathjax", help="fetch MathJax into book/_mathjax/es5")
    p.add_argument("dest", nargs="?", default=str(BOOK / "_mathjax"))
    p = sub.add_parser("build", help="build the HTML book strictly")
    p.add_argument("book_dir", nargs="?", default=str(BOOK))
    p.add_argument("--repository-url", default=None, help="public address for Binder buttons")
    p.add_argument("--no-strict", action="store_true", help="let warnings pass")
    args = parser.parse_args(argv)
    try:
        if args.command == "mathjax":
            print(fetch_mathjax(args.dest))
        else:
            html = build(args.book_dir, strict=not args.no_strict, repository=args.repository_url)
            print(f"book: {html / 'index.html'}")
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


def write_config_appendix(dest: str | os.PathLike = BOOK / "_generated" / "configs.md") -> Path:
    """The appendix of configurations, generated from ``companion/configs``: per task, every
    model at the paper and quick profiles, and every ablation with what it changes."""

    def arch(cfg) -> str:
        m = cfg.model
        opts = ", ".join(f"{k}={v}" for k, v in m.get("mixer_options", {}).items())
        extra = "".join(f", {k}" for k in ("gate", "positional") if m.get(k))
        return (
            f"{m['n_layers']}×{m['d_model']}, state {m['state_dim']}, mlp {m.get('mlp', '—')}"
            f"{extra}{', ' + opts if opts else ''}"
        )

    def length(cfg) -> str:
        t = cfg.train
        return f"{t.steps} steps" if t.steps else f"{t.epochs:g} epochs"

    lines = ["Generated from the YAML files in `companion/configs/` by `make reproduce`.", ""]
    for task in C.tasks():
        lines += [
            f"## {task}",
            "",
            "| model | profile | architecture | lr | weight decay | batch | length |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for model in C.models(task):
            for profile in ("paper", "quick"):
                cfg = C.resolve(task, model, None, profile)
                t = cfg.train
                lines.append(
                    f"| {model} | {profile} | {arch(cfg)} | {t.lr:g} | "
                    f"{t.weight_decay:g} | {t.batch_size} | {length(cfg)} |"
                )
        lines += [
            "",
            "Structure, read from the modules each configuration builds (the same at every "
            "profile; `LN`/`BN` layer or batch norm, `drop` dropout, `+` the residual sum):",
            "",
            "| model | encoder → blocks → head |",
            "| --- | --- |",
        ]
        for model in C.models(task):
            cfg = C.resolve(task, model, None, "quick")
            lines.append(f"| {model} | {describe(model_config(cfg, task_of(cfg)))} |")
        lines += ["", "Where each file departs from the public configuration it follows:", ""]
        for model in C.models(task):
            lines += [
                f"- `{model}` ({d['part']}): {d['what']}. *Why:* {d['why']}."
                for d in C.departures(task, model)
            ]
        variants = [(m, v) for m in C.models(task) for v in C.variants(task, m)]
        if variants:
            lines += ["", "Ablations (paper profile):", ""]
            lines += [
                f"- `{m}/{v}`: {arch(C.resolve(task, m, v, 'paper'))}, lr "
                f"{C.resolve(task, m, v, 'paper').train.lr:g}"
                for m, v in variants
            ]
        lines.append("")
    dest = Path(dest)
    atomic_write_text(dest, "\n".join(lines))
    return dest

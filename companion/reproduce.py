"""``companion reproduce``: every run of the book, the section notebooks, the book.

1. The runs listed by ``configs/book.yaml`` (``companion.config.book_runs``: every experiment
   of the configs, more seeds for some, a few left out at some profiles; at ``ladder``, the
   quick runs and the scale ladder's, all kept with the quick runs), in a pool of worker
   processes (``companion.executors``), or as one Slurm job array (``companion.slurm``), both
   through the same worker function ``companion.executors.run_logged``. A complete run is
   skipped, an interrupted one resumes. Each run's output goes to
   ``<root>/<profile>/logs/<run_id>.log``; failures are listed with those paths at the end (and
   in ``<root>/<profile>/failed.json``, so that they can be trained alone again) and do not
   stop the other runs.
2. The runs index ``<root>/<profile>/index.csv``.
3. The section notebooks ``notebooks/NN_*.ipynb`` through papermill, copied executed into
   ``book/notebooks/``; a notebook whose source, runs index and plotting code are unchanged
   since its last execution is not executed again.
4. The profile page and the configuration appendix, then the book (``companion.book.build``).

Whichever executor trained the runs, steps 2-4 happen where the command was started. So a second
call with nothing changed trains nothing, executes nothing and does not rebuild the book.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from companion import book as book_mod
from companion.chapter import PACKAGE, code_digest, digest, precompute
from companion.config import book_runs
from companion.executors import default_workers, is_current, run_local, skipped, usable_cores
from companion.grid import runs_profile
from companion.io import atomic_write_text, writing
from companion.runs import git_commit, write_index
from companion.slurm import SlurmOptions, run_slurm

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TASK_CHAPTER = NOTEBOOKS / "task_chapter.ipynb"  # run once per entry of TASK_CHAPTERS
TASK_CHAPTERS = NOTEBOOKS / "task_chapters.yaml"


def failed_file(profile: str, root: str | Path) -> Path:
    """``<root>/<profile>/failed.json``: the runs that failed in the last call, with logs."""
    return Path(root) / profile / "failed.json"


def last_failed(profile: str, root: str | Path) -> set[str]:
    path = failed_file(profile, root)
    failed = json.loads(path.read_text()) if path.exists() else {}
    if not failed:
        raise ValueError(f"no failed runs recorded in {path}; drop --failed to run what is missing")
    return set(failed)


def selected_runs(profile: str, only: str | None, broken: list[str] | None = None) -> list:
    """:func:`~companion.config.book_runs` of ``profile`` matching ``only``; refused in one line
    (ValueError) when none matches and no configuration file is unreadable (``broken``)."""
    broken = [] if broken is None else broken
    configs = book_runs(profile, only, broken)
    if not configs and not broken:
        raise ValueError(f"no run of the book matches {only!r}; patterns look like mqar/*/*")
    return configs


def reproduce_runs(
    profile: str,
    workers: int = 2,
    root: str | Path = "runs",
    only: str | None = None,
    report=print,
    slurm: SlurmOptions | None = None,
    failed: bool = False,
):
    """Every run of the book at ``profile`` (or those matching ``only``; with ``failed``, those
    that failed in the last call), then ``<root>/<profile>/index.csv``; returns the outcomes.

    Complete runs are skipped; the others train in a local pool of ``workers`` processes, or as
    one Slurm job array when ``slurm`` is given. Raises ``RuntimeError`` listing the failed
    runs and their logs, if any (they are also kept in ``failed.json``)."""
    broken: list[str] = []
    configs = selected_runs(profile, only, broken)
    for line in broken:
        report(f"not run (its configuration file cannot be read): {line}")
    if failed:
        retry = last_failed(runs_profile(profile), root)
        configs = [c for c in configs if c.run_id in retry]
    todo = [c for c in configs if not is_current(c, root)]
    where = f"Slurm ({slurm.cpus_per_run} CPU(s) per run)" if slurm else f"{workers} worker(s)"
    report(
        f"{len(configs)} runs at profile {profile}: {len(todo)} to train, "
        f"{len(configs) - len(todo)} complete; {where}"
    )
    start = time.perf_counter()
    outcomes = [skipped(c, root) for c in configs if c not in todo]
    if todo and slurm is not None:
        outcomes += run_slurm(todo, root, slurm, report)
    elif todo:
        outcomes += run_local(todo, root, workers, report)
    index = write_index(Path(root) / runs_profile(profile))
    failures = [o for o in outcomes if o.status == "failed"]
    atomic_write_text(
        failed_file(runs_profile(profile), root),
        json.dumps({o.run_id: o.log for o in failures}, indent=1),
    )
    ran = sum(o.status == "ran" for o in outcomes)
    report(
        f"runs: {ran} trained, {len(outcomes) - ran - len(failures)} already complete, "
        f"{len(failures)} failed in {time.perf_counter() - start:.0f} s; index: {index}"
    )
    if failures:
        lines = "; ".join(f"{o.run_id} ({o.log})" for o in failures)
        raise RuntimeError(
            f"{len(failures)} run(s) failed: {lines}; `--failed` trains them alone again"
        )
    if broken:
        raise RuntimeError(
            f"{len(broken)} configuration file(s) cannot be read, their runs were not trained: "
            + "; ".join(broken)
        )
    return outcomes


# the single-run notebook appears in the book for one run of the book's list
EXAMPLE_RUN = {"task": "mqar", "model": "mamba2"}


@dataclass(frozen=True)
class Section:
    """One chapter of the book: the notebook ``source`` executed with ``parameters`` (besides
    the profile and the runs) into ``name``; ``intro``, when given, replaces its first cell (a
    task chapter's title and introduction)."""

    name: str
    source: Path
    parameters: dict = field(default_factory=dict)
    intro: str = ""

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def text(self) -> bytes:
        """Everything of the section that its executed copy depends on, besides the runs."""
        extra = json.dumps({"parameters": self.parameters, "intro": self.intro}, sort_keys=True)
        return self.source.read_bytes() + extra.encode()

    def notebook(self, folder: Path) -> Path:
        """The notebook to execute: ``source``, or a copy in ``folder`` that opens with
        ``intro``."""
        if not self.intro:
            return self.source
        nb = json.loads(self.source.read_text())
        nb["cells"][0]["source"] = self.intro.splitlines(keepends=True)
        path = folder / f"source-{self.name}"
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        return path


def section_notebooks() -> list[Section]:
    """The chapters of the book, in its order: the numbered notebooks and the task chapters
    (:data:`TASK_CHAPTER` once per entry of :data:`TASK_CHAPTERS`), then the single-run
    example."""
    numbered = [Section(nb.name, nb) for nb in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")]
    tasks = [
        Section(
            f"{name}.ipynb",
            TASK_CHAPTER,
            {k: spec[k] for k in ("tasks", "claim_ids")},
            spec["intro"],
        )
        for name, spec in yaml.safe_load(TASK_CHAPTERS.read_text()).items()
    ]
    run = Section("run.ipynb", NOTEBOOKS / "run.ipynb", EXAMPLE_RUN)
    return [*sorted(numbered + tasks, key=lambda section: section.name), run]


def notebook_inputs_digest(index: Path, profile: str, package: Path = PACKAGE) -> str:
    """What every section notebook's output depends on besides its own source: the runs index,
    the profile, and every module and configuration file of ``package``. A notebook is executed
    again when this or its source changes."""
    return digest(index.read_bytes(), profile.encode(), code_digest(package).encode())


@contextlib.contextmanager
def kernel_threads(threads: str):
    """``OMP_NUM_THREADS`` set to ``threads`` for the kernels started within (then restored)."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads
    try:
        yield
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before


def local_kernels() -> type:
    """A kernel manager whose kernels talk over local IPC sockets instead of TCP: no port is
    opened, and the kernel has no reason to warn, once per notebook, that its TCP traffic is not
    encrypted. Each kernel's sockets get their own name in Jupyter's runtime folder: the default
    name, ``kernel-ipc`` in the working folder, is shared by kernels started side by side, and
    their messages then cross (they fail their signature checks)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            Path(jupyter_runtime_dir()).mkdir(parents=True, exist_ok=True)
            return str(Path(jupyter_runtime_dir()) / f"companion-{uuid.uuid4().hex}")

    return LocalKernelManager


def execute_notebook(source: Path, out: Path, parameters: dict, cwd: Path = NOTEBOOKS) -> None:
    """Execute ``source`` with ``parameters`` into ``out`` through papermill, in a kernel of
    :func:`local_kernels` started in ``cwd``. The kernel is told its folder (nbclient's
    ``resources``): papermill's own ``cwd`` changes the folder of this whole process, and two
    notebooks run side by side in threads would leave it in the wrong one."""
    import papermill

    papermill.execute_notebook(
        source,
        out,
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        kernel_manager_class=local_kernels(),
        resources={"metadata": {"path": str(cwd)}},
    )


def execute_sections(
    profile: str, root: str | Path, book_dir: str | Path, workers: int = 2, report=print
) -> list[str]:
    """Execute the section notebooks against ``<root>/<profile>`` with papermill and install
    them in ``book_dir/notebooks``; returns the names executed (the others were up to date)."""
    import papermill  # the book extra: ``--no-book`` runs without it

    runs = (Path(root) / profile).resolve()
    base = notebook_inputs_digest(runs / "index.csv", profile)
    cache_file = Path(book_dir) / "notebooks" / ".executed.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    todo = {}
    for nb in section_notebooks():
        key = digest(base.encode(), nb.text())
        if cache.get(nb.name) != key or not (Path(book_dir) / "notebooks" / nb.name).exists():
            todo[nb.name] = (nb, key)

    def execute(nb: Section) -> Path:
        folder = Path(tempfile.mkdtemp())
        out = folder / nb.name
        parameters = {"profile": profile, "runs_root": str(runs.parent), **nb.parameters}
        with writing(out, book_dir):  # the executed copy, then the book's
            try:
                execute_notebook(nb.notebook(folder), out, parameters)
            except papermill.PapermillExecutionError as e:
                raise RuntimeError(
                    f"notebook {nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}; "
                    f"the executed copy is {out}"
                ) from None
        return out

    if todo:  # the measures and verdicts every chapter reads, computed once for all of them
        start = time.perf_counter()
        precompute(runs.parent, profile)
        report(
            f"measures and verdicts: ready for the chapters in {time.perf_counter() - start:.0f} s"
        )
    at_once = max(1, min(workers, len(todo)))
    # each kernel's torch takes its share of the cores (OMP_NUM_THREADS, read at its start)
    threads = str(max(1, usable_cores() // at_once))
    with kernel_threads(threads), ThreadPoolExecutor(at_once) as pool:
        futures = {pool.submit(execute, nb): name for name, (nb, _) in todo.items()}
        for future in as_completed(futures):
            name = futures[future]
            book_mod.install_notebooks([future.result()], book_dir)
            cache[name] = todo[name][1]
            atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
            report(f"notebook {name}: executed")
    report(f"notebooks: {len(todo)} executed, {len(section_notebooks()) - len(todo)} up to date")
    return list(todo)


def reproduce(
    profile: str,
    workers: int | None = None,
    root: str | Path = "runs",
    only: str | None = None,
    book: bool = True,
    book_dir: str | Path | None = None,
    report=print,
    slurm: SlurmOptions | None = None,
    failed: bool = False,
) -> dict:
    """Everything ``make reproduce`` does after the data: runs (locally, or on Slurm with
    ``slurm``), then notebooks and book here. Returns the summary it prints (seconds per
    stage). The book is rebuilt only when a run was trained or a notebook executed, or when it
    has never been built."""
    workers = workers or default_workers()  # one run per usable core
    book_dir = Path(book_dir) if book_dir is not None else book_mod.BOOK
    timings, start = {}, time.perf_counter()
    outcomes = reproduce_runs(profile, workers, root, only, report, slurm, failed)
    timings["runs"] = time.perf_counter() - start
    summary = {"runs": len(outcomes), "trained": sum(o.status == "ran" for o in outcomes)}
    if book:
        t = time.perf_counter()
        executed = execute_sections(runs_profile(profile), root, book_dir, workers, report)
        timings["notebooks"] = time.perf_counter() - t
        html = book_dir / "_build" / "html"
        t = time.perf_counter()
        if summary["trained"] or executed or not book_mod.is_built(book_dir):
            record = {
                "commit": git_commit(),
                "runs": len(outcomes),
                "executor": (
                    f"Slurm, {slurm.cpus_per_run} CPU(s) and {slurm.gpus_per_run} GPU(s) per run"
                    if slurm
                    else f"{workers} local worker process(es)"
                ),
                "wall_seconds": time.perf_counter() - start,
            }
            html = book_mod.assemble(profile, root, record, book_dir, runs_profile(profile))
            timings["book"] = time.perf_counter() - t
        else:
            report("book: nothing changed, not rebuilt")
        summary["book"] = str(html / "index.html")
    summary["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    report(
        "summary: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; {summary['trained']} of {summary['runs']} runs trained"
        + (f"; book: {summary['book']}" if "book" in summary else "")
    )
    return summary

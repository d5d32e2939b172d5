"""``make bench``: how fast each mixer's fast path is against its literal recurrence, what it
costs at the paper profile's shapes, what the exact spectral analysis costs against a plain
forward pass, and how the chunked op's time depends on its chunk length at the shapes of the
book's runs.

Times are medians of a few repetitions of forward + backward, float32, on however many threads
torch uses here: the mixers at ``B=8, d_model=128`` (4 heads, state 64) against their
recurrence, then at ``B=8`` as each main run of the paper profile builds its mixer (width,
heads, state, options) at its task's length. The chunk sweep times
:func:`~companion.ops.chunked_linear_attention` forward + backward at the sequence length and
head sizes of every linear-attention, norm-attention and Mamba-2 run of the quick and paper
profiles (quick: at the run's batch on one thread, as ``make reproduce`` trains it; paper:
``B=8``), at each chunk length of :data:`CHUNKS` and at the one
:func:`~companion.ops.chunked.default_chunk` chooses. Results print as tables and are written
to ``bench/results/mixers.csv``, ``mixers_paper.csv``, ``spectra.csv`` and ``chunks.csv``
(``companion bench --out``).
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from companion import config as C
from companion import grid
from companion.executors import THREADS_PER_RUN
from companion.io import atomic_write_text
from companion.layers import MIXERS, make_mixer, mixer_class
from companion.model import build_model
from companion.ops import chunked_linear_attention
from companion.ops.chunked import default_chunk
from companion.spectra import collect

B, D_MODEL, N_HEADS, STATE = 8, 128, 4, 64
CHUNKS = (16, 32, 64, 128, 256)
CPU = torch.device("cpu")
MAX_LENGTH = 16_384  # the longest sequence timed: the paper's longest task input


def timed(fn, budget_s: float = 3.0, max_reps: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds: one warm-up, then repeats within ``budget_s``."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    while len(times) < max_reps and (not times or sum(times) + first < budget_s):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fwd_bwd(path):
    def run(x):
        x.grad = None
        path(x).sum().backward()

    return run


def bench_mixers(lengths: list[int], recurrent_max_len: int) -> list[dict]:
    rows = []
    for name in MIXERS:
        torch.manual_seed(0)
        m = make_mixer(name, d_model=D_MODEL, n_heads=N_HEADS, state_dim=STATE)
        for L in lengths:
            x = torch.randn(B, L, D_MODEL, requires_grad=True)
            fast = timed(lambda: fwd_bwd(m)(x))  # noqa: B023 - evaluated immediately
            slow = None
            if L <= recurrent_max_len:
                slow = timed(lambda: fwd_bwd(m.recurrent)(x), budget_s=0, max_reps=1)  # noqa: B023
            rows.append(
                {
                    "mixer": name,
                    "L": L,
                    "fast_ms": 1e3 * fast,
                    "recurrent_ms": None if slow is None else 1e3 * slow,
                    "speedup": None if slow is None else slow / fast,
                }
            )
            print(_fmt(rows[-1]), flush=True)
    return rows


def bench_spectra(L: int) -> list[dict]:
    """One forward pass of a 2-layer model against ``spectra.collect`` on the same batch."""
    rows = []
    for name in MIXERS:
        torch.manual_seed(0)
        model = build_model(
            dict(
                mixer=name,
                d_model=D_MODEL,
                n_layers=2,
                n_heads=N_HEADS,
                state_dim=STATE,
                vocab_size=256,
                n_classes=10,
            )
        ).eval()
        tokens = torch.randint(0, 256, (B, L))
        with torch.no_grad():
            forward = timed(lambda: model(tokens))  # noqa: B023
        spectra = timed(lambda: collect(model, {"input_ids": tokens}))  # noqa: B023
        rows.append(
            {
                "mixer": name,
                "L": L,
                "forward_ms": 1e3 * forward,
                "collect_ms": 1e3 * spectra,
                "ratio": spectra / forward,
            }
        )
        print(_fmt(rows[-1]), flush=True)
    return rows


def chunk_shapes(profiles=("quick", "paper")) -> list[dict]:
    """The distinct shapes the chunked op sees in the main runs of ``profiles``: batch ``B``,
    ``L``, heads ``H``, ``d_k``, ``d_v``, whether ``q`` and ``k`` are shared by the heads
    (Mamba-2), and the CPU ``threads`` to time it on, with the runs that have them. A quick
    shape is timed as ``make reproduce`` trains it: at the run's batch size, on
    :data:`~companion.executors.THREADS_PER_RUN` threads; a paper shape (trained on a GPU) at
    ``B = 8`` on every thread torch uses (``threads`` 0)."""
    shapes: dict[tuple, list[str]] = {}
    for profile in profiles:
        for task in grid.tasks():
            for model in grid.models(task):
                config = C.resolve(task, model, None, profile)
                m, H = config.model, config.model.get("n_heads", 1)
                if not mixer_class(m["mixer"]).chunked:
                    continue
                mamba = m["mixer"] == "mamba2"
                d_k = m["state_dim"] if mamba else m["state_dim"] // H
                quick = profile == "quick"
                batch, threads = (config.train.batch_size, THREADS_PER_RUN) if quick else (B, 0)
                key = (C.task_of(config).seq_len, H, d_k, m["d_model"] // H, mamba, batch, threads)
                shapes.setdefault(key, []).append(f"{profile}/{task}/{model}")
    return [
        dict(B=b, L=L, H=H, d_k=d_k, d_v=d_v, shared=shared, threads=threads, runs=" ".join(runs))
        for (L, H, d_k, d_v, shared, b, threads), runs in sorted(shapes.items())
    ]


@contextmanager
def cpu_threads(count: int):
    """Run the block on ``count`` CPU threads (0: as many as torch uses now)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bench_chunks(shapes: list[dict], chunks=CHUNKS, device=CPU) -> list[dict]:
    """Forward + backward of the chunked op on ``device`` at each shape and chunk length (a
    chunk at least ``L`` long is one chunk: timed once, as ``L``); one row per shape with the
    times, the best chunk and the one :func:`default_chunk` chooses."""
    rows = []
    for shape in shapes:
        L, H, d_k, d_v = shape["L"], shape["H"], shape["d_k"], shape["d_v"]
        g = torch.Generator().manual_seed(0)
        heads_qk = 1 if shape["shared"] else H
        size = (shape["B"], heads_qk, L, d_k)
        q, k = (torch.randn(size, generator=g) / d_k**0.5 for _ in range(2))
        v = torch.randn(shape["B"], H, L, d_v, generator=g)
        a = -torch.rand(shape["B"], H, L, generator=g) if shape["shared"] else None
        leaves = [t.to(device).requires_grad_() for t in (q, k, v)]
        a = None if a is None else a.to(device)

        def step(chunk, leaves=leaves, a=a):
            for t in leaves:
                t.grad = None
            chunked_linear_attention(*leaves, log_decay=a, chunk=chunk).sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def time_chunk(chunk, step=step):
            return 1e3 * timed(lambda: step(chunk), budget_s=2.0, max_reps=50)

        with cpu_threads(shape["threads"]):
            times = {chunk: time_chunk(chunk) for chunk in sorted({min(c, L) for c in chunks})}
            chosen = min(default_chunk(d_k, d_v, L), L)
            if chosen not in times:
                times[chosen] = time_chunk(chosen)
        best = min(times, key=times.get)
        row = {k: shape[k] for k in ("B", "L", "H", "d_k", "d_v", "shared", "threads")}
        row.update({f"T{c}_ms": times.get(min(c, L)) for c in chunks})
        row.update(chosen=chosen, best=best, best_ms=times[best])
        row.update(chosen_over_best=times[chosen] / times[best])
        rows.append({**row, "runs": shape["runs"]})
        print(_fmt(rows[-1]), flush=True)
    return rows


def mixer_shapes(profile: str = "paper") -> list[dict]:
    """The distinct mixers of the main runs of ``profile``: name, the task's sequence length
    ``L``, ``d_model``, heads ``H``, state ``N`` and options, with one run's config (to build
    it as the run does) and the runs that have it."""
    shapes: dict[tuple, dict] = {}
    for task in grid.tasks():
        for model in grid.models(task):
            config = C.resolve(task, model, None, profile)
            m = config.model
            options = ", ".join(f"{k}={v}" for k, v in sorted(m.get("mixer_options", {}).items()))
            shape = dict(
                mixer=m["mixer"],
                L=C.task_of(config).seq_len,
                d_model=m["d_model"],
                H=m.get("n_heads", 1),
                N=m["state_dim"],
                options=options,
            )
            entry = shapes.setdefault(tuple(shape.values()), dict(shape, config=config, runs=[]))
            entry["runs"].append(f"{profile}/{task}/{model}")
    return list(shapes.values())


def bench_mixers_at(shapes: list[dict]) -> list[dict]:
    """Forward + backward of each shape's mixer (its fast path, float32, ``B = 8``, in
    training mode) at the shape's sequence length: ms per call and tokens per second."""
    rows = []
    for shape in shapes:
        config = shape["config"]
        torch.manual_seed(0)
        task = C.task_of(config)  # any vocabulary will do for one block (Text's is read from data)
        mc = C.model_config(config, task, vocab_size=None if task.input_dim else 256)
        mixer = build_model(replace(mc, n_layers=1)).blocks[0].mixer
        x = torch.randn(B, shape["L"], shape["d_model"], requires_grad=True)
        ms = 1e3 * timed(lambda: fwd_bwd(mixer)(x))  # noqa: B023 - evaluated immediately
        row = {k: shape[k] for k in ("mixer", "L", "d_model", "H", "N", "options")}
        row.update(fast_ms=ms, tokens_per_s=B * shape["L"] / ms * 1e3, runs=" ".join(shape["runs"]))
        rows.append(row)
        print(_fmt(row), flush=True)
    return rows


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def run(lengths: list[int], recurrent_max_len: int, spectra_len: int, out: Path) -> None:
    """Time the mixers at ``lengths`` (the literal recurrence up to ``recurrent_max_len``) and
    the spectra at ``spectra_len``; print both tables and write them to ``out`` as CSV."""
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={B}, d={D_MODEL}")
    mixers = pd.DataFrame(bench_mixers(lengths, recurrent_max_len))
    paper = pd.DataFrame(bench_mixers_at(mixer_shapes("paper")))
    spectra = pd.DataFrame(bench_spectra(spectra_len))
    chunks = pd.DataFrame(bench_chunks(chunk_shapes()))
    print("\nfwd+bwd, fast path against the literal recurrence (ms)")
    print(mixers.to_string(index=False, float_format="%.1f"))
    print(f"\nfwd+bwd of the fast path at the paper profile's mixers, B={B} (ms)")
    print(paper.drop(columns="runs").to_string(index=False, float_format="%.1f"))
    print("\nspectra.collect against one forward pass (ms)")
    print(spectra.to_string(index=False, float_format="%.2f"))
    print("\nthe chunked op, fwd+bwd by chunk length T (ms), and the chosen T (threads 0: all)")
    print(chunks.drop(columns="runs").to_string(index=False, float_format="%.1f"))
    written = []
    tables = (("mixers", mixers), ("mixers_paper", paper), ("spectra", spectra), ("chunks", chunks))
    for name, table in tables:
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
        written.append(str(out / f"{name}.csv"))
    print(f"\nwritten: {', '.join(written)}")

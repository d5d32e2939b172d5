"""``make bench``: how fast each mixer's fast path is against its literal recurrence, what the
exact spectral analysis costs against a plain forward pass, and how the chunked op's time
depends on its chunk length at the shapes of the book's runs.

Times are medians of a few repetitions of forward + backward at ``B=8, d_model=128`` (4 heads,
state 64), float32, on however many threads torch uses here. The chunk sweep times
:func:`~companion.ops.chunked_linear_attention` forward + backward at ``B=8`` and the sequence
length and head sizes of every linear-attention, norm-attention and Mamba-2 run of the quick
and paper profiles, at each chunk length of :data:`CHUNKS` and at the one
:func:`~companion.ops.chunked.default_chunk` chooses. Results print as tables and are written
to ``bench/results/mixers.csv``, ``spectra.csv`` and ``chunks.csv`` (``companion bench --out``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from companion import config as C
from companion.io import atomic_write_text
from companion.layers import MIXERS, make_mixer
from companion.model import build_model
from companion.ops import chunked_linear_attention
from companion.ops.chunked import default_chunk
from companion.spectra import collect

B, D_MODEL, N_HEADS, STATE = 8, 128, 4, 64
CHUNKS = (16, 32, 64, 128, 256)
CHUNKED_MODELS = ("linear", "norm", "mamba2")  # the models whose mixer runs the chunked op


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
    """The distinct shapes the chunked op sees in the main runs of ``profiles``: ``L``, heads
    ``H``, ``d_k``, ``d_v`` and whether ``q`` and ``k`` are shared by the heads (Mamba-2),
    with the runs that have them."""
    shapes: dict[tuple, list[str]] = {}
    for profile in profiles:
        for task in C.tasks():
            for model in CHUNKED_MODELS:
                config = C.resolve(task, model, None, profile)
                m, H = config.model, config.model.get("n_heads", 1)
                mamba = m["mixer"] == "mamba2"
                d_k = m["state_dim"] if mamba else m["state_dim"] // H
                key = (C.task_of(config).seq_len, H, d_k, m["d_model"] // H, mamba)
                shapes.setdefault(key, []).append(f"{profile}/{task}/{model}")
    return [
        dict(L=L, H=H, d_k=d_k, d_v=d_v, shared=shared, runs=" ".join(runs))
        for (L, H, d_k, d_v, shared), runs in sorted(shapes.items())
    ]


def bench_chunks(shapes: list[dict], chunks=CHUNKS) -> list[dict]:
    """Forward + backward of the chunked op at each shape and chunk length (a chunk at least
    ``L`` long is one chunk: timed once, as ``L``); one row per shape with the times, the best
    chunk and the one :func:`default_chunk` chooses."""
    rows = []
    for shape in shapes:
        L, H, d_k, d_v = shape["L"], shape["H"], shape["d_k"], shape["d_v"]
        g = torch.Generator().manual_seed(0)
        heads_qk = 1 if shape["shared"] else H
        q, k = (torch.randn(B, heads_qk, L, d_k, generator=g) / d_k**0.5 for _ in range(2))
        v = torch.randn(B, H, L, d_v, generator=g)
        a = -torch.rand(B, H, L, generator=g) if shape["shared"] else None
        leaves = [t.requires_grad_() for t in (q, k, v)]

        def step(chunk, leaves=leaves, a=a):
            for t in leaves:
                t.grad = None
            chunked_linear_attention(*leaves, log_decay=a, chunk=chunk).sum().backward()

        times = {}
        for chunk in sorted({min(c, L) for c in chunks}):
            times[chunk] = 1e3 * timed(lambda chunk=chunk: step(chunk), budget_s=2.0, max_reps=50)
        chosen = min(default_chunk(d_k, d_v, L), L)
        if chosen not in times:
            times[chosen] = 1e3 * timed(lambda: step(chosen), budget_s=2.0, max_reps=50)  # noqa: B023
        best = min(times, key=times.get)
        row = {k: shape[k] for k in ("L", "H", "d_k", "d_v", "shared")}
        row.update({f"T{c}_ms": times.get(min(c, L)) for c in chunks})
        row.update(chosen=chosen, best=best, chosen_over_best=times[chosen] / times[best])
        rows.append({**row, "runs": shape["runs"]})
        print(_fmt(rows[-1]), flush=True)
    return rows


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def run(lengths: list[int], recurrent_max_len: int, spectra_len: int, out: Path) -> None:
    """Time the mixers at ``lengths`` (the literal recurrence up to ``recurrent_max_len``) and
    the spectra at ``spectra_len``; print both tables and write them to ``out`` as CSV."""
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={B}, d={D_MODEL}")
    mixers = pd.DataFrame(bench_mixers(lengths, recurrent_max_len))
    spectra = pd.DataFrame(bench_spectra(spectra_len))
    chunks = pd.DataFrame(bench_chunks(chunk_shapes()))
    print("\nfwd+bwd, fast path against the literal recurrence (ms)")
    print(mixers.to_string(index=False, float_format="%.1f"))
    print("\nspectra.collect against one forward pass (ms)")
    print(spectra.to_string(index=False, float_format="%.2f"))
    print("\nthe chunked op, fwd+bwd at B=8, by chunk length T (ms), and the chosen T")
    print(chunks.drop(columns="runs").to_string(index=False, float_format="%.1f"))
    written = []
    for name, table in (("mixers", mixers), ("spectra", spectra), ("chunks", chunks)):
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
        written.append(str(out / f"{name}.csv"))
    print(f"\nwritten: {', '.join(written)}")

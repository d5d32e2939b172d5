"""``make bench``: how fast each mixer's fast path is against its literal recurrence, and what
the exact spectral analysis costs against a plain forward pass.

Times are medians of a few repetitions of forward + backward at ``B=8, d_model=128`` (4 heads,
state 64), float32, on however many threads torch uses here. Results print as a table and are
written to ``bench/results/mixers.csv`` and ``spectra.csv`` (``companion bench --out``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from companion.io import atomic_write_text
from companion.layers import MIXERS, make_mixer
from companion.model import build_model
from companion.spectra import collect

B, D_MODEL, N_HEADS, STATE = 8, 128, 4, 64


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


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def run(lengths: list[int], recurrent_max_len: int, spectra_len: int, out: Path) -> None:
    """Time the mixers at ``lengths`` (the literal recurrence up to ``recurrent_max_len``) and
    the spectra at ``spectra_len``; print both tables and write them to ``out`` as CSV."""
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={B}, d={D_MODEL}")
    mixers = pd.DataFrame(bench_mixers(lengths, recurrent_max_len))
    spectra = pd.DataFrame(bench_spectra(spectra_len))
    print("\nfwd+bwd, fast path against the literal recurrence (ms)")
    print(mixers.to_string(index=False, float_format="%.1f"))
    print("\nspectra.collect against one forward pass (ms)")
    print(spectra.to_string(index=False, float_format="%.2f"))
    atomic_write_text(out / "mixers.csv", mixers.to_csv(index=False))
    atomic_write_text(out / "spectra.csv", spectra.to_csv(index=False))
    print(f"\nwritten: {out / 'mixers.csv'}, {out / 'spectra.csv'}")

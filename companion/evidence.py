"""What the claims read from the runs: one table of measures per run (the statistics of it are
:mod:`companion.statistics`).

:func:`measures` reads the eigenvalues each run recorded at initialisation and at the end
(``spectra/step_*.pt``, both analyses) and reduces them to one row per (run, analysis, stage):

=====================  =====================================================================
bin columns            the share of ``|λ|`` in each of the paper's seven bins (``[0, 0.1]`` …
                       ``(10, ∞)``), per example, equal weight per head, averaged over layers
``band``               the share in the symmetric band ``|log |λ|| ≤ 0.105`` around 1
                       (``0.90 ≤ |λ| ≤ 1.11``): attention's Λ straddles 1, SSMs' stays below
``<column>_se``        the standard error of that share over the analysis batch
``<column>@±0.02``     the same share with every bin edge (and the band's half-width) moved
                       by ±0.02: the edge sensitivity (:data:`SHIFTS`)
``dead_heads``         heads whose Λ is exactly 1 at every step (no gradient reaches them)
``near0_live``,        near-0 share and near-1 band without the dead heads
``band_live``
``quantiles``          101 quantiles of ``log |λ|`` (all layers, heads, examples), from which
                       :func:`w1` gives the Wasserstein-1 distance between two spectra
``test_accuracy``,     the run's test metric; what sets its gate's line (``baseline``,
``test_perplexity``,   ``baseline_value``: the strongest trivial predictor or the same network
``baseline``, ...      without its mixer, whose mean is ``control_value``), the line
                       (``gate_line``) and whether the run passed it (``learned``: it used its
                       state); the strongest shallow predictor (``shallow``,
                       ``shallow_value``), its line and whether the run went beyond it
                       (``beyond_shallow``): see :mod:`companion.baselines`
=====================  =====================================================================
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from companion import baselines
from companion.grid import control_of, split_rung
from companion.runs import RunDir, layer_spectra
from companion.spectra import (
    MAGNITUDE_BINS,
    MAGNITUDE_EDGES,
    LayerSpectrum,
    fractions,
    membership,
)
from companion.statistics import LEVELS
from companion.tasks import PROFILES, Metric, metric

KEYS = ["task", "model", "variant", "seed"]
CONDITION = ["task", "model", "variant"]
BAND = 0.105  # |log|λ|| ≤ BAND: the symmetric near-1 band
BAND_LIMITS = (math.exp(-BAND), math.exp(BAND))  # in |λ|: 0.90 and 1.11
BAND_TEXT = f"{BAND_LIMITS[0]:.2f} ≤ |λ| ≤ {BAND_LIMITS[1]:.2f}"


def _step_records(run_path: Path) -> dict[str, dict]:
    """The records of the initialisation and of the final step of a complete run."""
    return {
        stage: torch.load(step_file(run_path, stage), weights_only=True, map_location="cpu")
        for stage in ("init", "final")
    }


def _shares(spectrum: LayerSpectrum, heads: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
    """Per-example shares ``(B, 8)`` of one layer: the seven bins (counted as
    ``spectra.summarize`` counts them for its analysis), then the band; heads weighted equally,
    only the ``heads`` selected (bool ``(G,)``; a time-invariant layer pools its modes).
    ``shift``: every bin edge and the band's half-width moved by it (the edge sensitivity)."""
    values, mask = spectrum.samples()
    magnitude = values.abs().double()
    edges = tuple(e + shift for e in MAGNITUDE_EDGES)
    member = membership(magnitude, edges, spectrum.published)
    band = (magnitude.clamp_min(1e-300).log().abs() <= BAND + shift).unsqueeze(-1)
    frac = fractions(torch.cat([member, band.double()], -1), mask)  # (B, G, 8) or (1, 1, 8)
    return frac.mean(1) if spectrum.transition.time_invariant else frac[:, heads].mean(1)


SHIFTS = (-0.02, 0.02)  # the bin edges moved by these for the edge sensitivity


def shifted(column: str, shift: float) -> str:
    """The name of a bin (or band) column counted with its edges moved by ``shift``."""
    return f"{column}@{shift:+g}"


def run_measures(run_path: str | Path) -> list[dict]:
    """The rows of :func:`measures` for one run folder (without its identity columns)."""
    rows = []
    names = [*MAGNITUDE_BINS, "band"]
    for stage, record in _step_records(Path(run_path)).items():
        for analysis in ("exact", "published"):
            if analysis not in record:
                continue
            per_layer, per_layer_live, logs, dead = [], [], [], 0
            moved = {shift: [] for shift in SHIFTS}
            for spectrum in layer_spectra(record[analysis]):
                counted = defined_values(spectrum)[0].abs().double()  # (M, G)
                is_dead = (counted == 1.0).all(0)
                if spectrum.transition.time_invariant:
                    is_dead[:] = False  # a time-invariant layer has modes, not heads
                dead += int(is_dead.sum())
                every = torch.ones_like(is_dead)
                per_layer.append(_shares(spectrum, every))
                for shift in SHIFTS:
                    moved[shift].append(_shares(spectrum, every, shift).mean(0))
                live = ~is_dead if bool((~is_dead).any()) else every
                per_layer_live.append(_shares(spectrum, live))
                logs.append(counted.reshape(-1).clamp_min(1e-300).log())
            batch = max(s.shape[0] for s in per_layer)
            shares = torch.stack([s.expand(batch, -1) for s in per_layer]).mean(0)  # (B, 8)
            live = torch.stack([s.expand(batch, -1) for s in per_layer_live]).mean(0)
            mean = shares.mean(0)
            se = shares.std(0) / math.sqrt(batch) if batch > 1 else torch.zeros_like(mean)
            row = {"analysis": analysis, "stage": stage, "dead_heads": dead}
            row.update({n: float(mean[i]) for i, n in enumerate(names)})
            row.update({f"{n}_se": float(se[i]) for i, n in enumerate(names)})
            for shift, layers in moved.items():
                m = torch.stack(layers).mean(0)
                row.update({shifted(n, shift): float(m[i]) for i, n in enumerate(names)})
            row["near0_live"] = float(live[:, 0].mean())
            row["band_live"] = float(live[:, -1].mean())
            row["quantiles"] = np.quantile(torch.cat(logs).numpy(), LEVELS)
            rows.append(row)
    return rows


def measures(index: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, analysis, stage) of the runs ``index`` (the runs index table), with the
    run's ``task, model, variant, seed``, its test metric and its gate (:func:`run_gates`); see
    the module docstring."""
    runs = index.reset_index(drop=True)
    rows = []
    for (_, run), gate in zip(runs.iterrows(), run_gates(runs), strict=True):
        identity = {k: run[k] for k in KEYS} | learned_columns(run, gate)
        rows += [{**identity, **row} for row in run_measures(run["path"])]
    return pd.DataFrame(rows)


def run_gates(index: pd.DataFrame) -> list[baselines.Gate]:
    """The gate of each run of ``index``, in its order: the baselines of the data the run
    trained on (its task, profile and ``data`` options), and the mean test metric of the
    seeds of its no-mixing control in ``index`` (the same task, model and profile, variant
    :func:`companion.grid.control_of`; NaN when it has none)."""
    runs = index
    tables: dict[tuple[str, str, str], list[baselines.Baseline]] = {}
    out = []
    for _, run in runs.iterrows():
        data = run.get("data")
        key = (run["task"], run.get("profile", "quick"), data if isinstance(data, str) else "{}")
        if key not in tables:  # the baselines of the data the run trained on
            tables[key] = baselines.for_task(*key[:2], **json.loads(key[2]))[0]
        column = metric(run["task"]).column()
        control = runs[
            (runs["task"] == run["task"])
            & (runs["model"] == run["model"])
            & (runs["variant"] == control_of(run["variant"] or None))
        ]
        if "profile" in runs:
            control = control[control["profile"] == run["profile"]]
        scores = control.get(column, pd.Series(dtype=float)).dropna()
        out.append(baselines.gate(tables[key], float(scores.mean()) if len(scores) else math.nan))
    return out


def learned_columns(run: pd.Series, gate: baselines.Gate) -> dict:
    """A run's test metric and where it stands against its ``gate``: ``learned`` (it used its
    state) and ``beyond_shallow``."""
    accuracy = float(run.get("test_accuracy", np.nan))
    perplexity = float(run.get("test_perplexity", np.nan))
    score = float(run.get(Metric(gate.metric).column(), np.nan))
    return {
        "test_accuracy": accuracy,
        "test_perplexity": perplexity,
        "baseline": gate.baseline,
        "baseline_value": gate.value,
        "control_value": gate.control,
        "trivial": gate.trivial,
        "trivial_value": gate.trivial_value,
        "gate_line": gate.line,
        "learned": gate.passes(score),
        "shallow": gate.shallow,
        "shallow_value": gate.shallow_value,
        "shallow_line": gate.shallow_line,
        "beyond_shallow": gate.beyond_shallow(score),
    }


def export(measures: pd.DataFrame) -> pd.DataFrame:
    """``measures`` ready for a CSV file: the quantiles as one JSON list per row, so that
    ``pd.read_csv`` of the file gives back what :func:`normalise` turns into the same table."""
    out = measures.copy()
    if "quantiles" in out:
        out["quantiles"] = [json.dumps([float(v) for v in q]) for q in out["quantiles"]]
    return out


def normalise(measures: pd.DataFrame) -> pd.DataFrame:
    """``measures`` as :func:`measures` makes it, also when read back from a CSV file
    (:func:`export`): the main grid's variant as ``""`` (not NaN), the quantiles as arrays,
    ``learned`` as booleans (never empty: a run without a metric has not learned)."""
    out = measures.copy()
    if "variant" in out:
        out["variant"] = out["variant"].fillna("").astype(str)
    if "quantiles" in out:
        out["quantiles"] = [
            np.asarray(json.loads(q) if isinstance(q, str) else q, float) for q in out["quantiles"]
        ]
    for column in ("learned", "beyond_shallow"):
        if column in out:
            if out[column].isna().any():
                raise ValueError(f"measures: the {column!r} column has empty cells")
            out[column] = out[column].astype(bool)  # read_csv already parses True/False
    for column in ("shallow", "trivial"):
        if column in out:
            out[column] = out[column].fillna("").astype(str)
    return out


# ---------------------------------------------------------------------------------------------
# run folders

RUN_COLUMNS = ("run_id", "task", "model", "variant", "seed", "profile", "config_hash", "commit")


def without_ladder(index: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``index`` outside the scale ladder's harder rungs (whose data differ from
    their profile's, so that no chapter but the ladder's compares them with the others)."""
    keep = [split_rung(v)[1] is None for v in index["variant"]]
    return index[keep].reset_index(drop=True)


def open_index(
    runs_root: str | Path, profile: str, ladder: bool = False
) -> tuple[pd.DataFrame, str]:
    """The runs index of ``profile`` under ``runs_root`` (without the scale ladder's harder
    rungs unless ``ladder``), and the profile it belongs to. Where
    that profile has no runs (a fresh Binder session has only the smoke runs its build
    trained), the index of another profile that has some, with one line saying so and how to
    get the asked one; where none has, a ``FileNotFoundError`` that says how to get runs."""
    if profile not in PROFILES:
        raise ValueError(f"profile = {profile!r}: choose one of {', '.join(PROFILES)}")
    root = Path(runs_root)
    for candidate in (profile, *(p for p in PROFILES if p != profile)):
        path = root / candidate / "index.csv"
        if path.is_file():
            if candidate != profile:
                print(
                    f"No {profile} runs in {root}: showing the {candidate} runs instead "
                    f"(`companion reproduce --profile {profile}` trains the {profile} runs)."
                )
            index = read_index(path)
            return (index if ladder else without_ladder(index)), candidate
    raise FileNotFoundError(
        f"no runs in {root}: `companion reproduce --profile smoke --no-book` trains the smoke "
        f"runs in about a minute, `--profile {profile}` the {profile} runs"
    )


INDEX_COLUMNS = ("run_id", "task", "model", "variant", "seed", "profile", "path")


def read_index(path: str | Path) -> pd.DataFrame:
    """The runs index ``index.csv`` at ``path`` as :func:`companion.runs.index` made it (the
    main grid's variant ``""``, not NaN): the one reader of that file. One line naming it when
    it cannot be read as a runs index (not a CSV table, or without the columns of one);
    ``companion runs index`` rewrites it."""
    path = Path(path)
    fix = f"`companion runs index --root {path.parent}` writes it anew"
    try:
        index = pd.read_csv(path, dtype={"variant": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(
            f"{path} is not a runs index ({str(err).splitlines()[0]}); {fix}"
        ) from None
    absent = [c for c in INDEX_COLUMNS if c not in index]
    if absent:
        raise ValueError(f"{path} is not a runs index (no column {absent[0]}); {fix}")
    return index.fillna({"variant": ""})


def load_spectra(index: pd.DataFrame) -> pd.DataFrame:
    """Every run's ``spectra.csv`` in one long table, with the run's ``RUN_COLUMNS`` joined.

    ``index``: the runs index (:func:`companion.runs.index` or :func:`read_index`)."""
    frames = [
        pd.read_csv(
            Path(run["path"]) / "spectra.csv", keep_default_na=False, dtype={"head": str}
        ).assign(**{c: run[c] for c in RUN_COLUMNS})
        for _, run in index.iterrows()
    ]
    return pd.concat(frames, ignore_index=True)


def load_histories(index: pd.DataFrame) -> pd.DataFrame:
    """Every run's ``history.jsonl`` (one row per evaluation) with ``RUN_COLUMNS`` and ``mixer``."""
    frames = [
        pd.read_json(Path(run["path"]) / "history.jsonl", lines=True).assign(
            mixer=run["mixer"], **{c: run[c] for c in RUN_COLUMNS}
        )
        for _, run in index.iterrows()
    ]
    return pd.concat(frames, ignore_index=True)


def step_file(run_path: str | Path, step: int | str) -> Path:
    """``spectra/step_<N>.pt`` of a run for ``step`` N, ``"init"`` (step 0) or ``"final"`` (the
    step its completion recorded: ``metrics.json``'s ``steps``)."""
    run = RunDir(run_path)
    if step == "init":
        step = 0
    elif step == "final":
        step = run.read_json("metrics.json")["steps"]
    return run.file(f"spectra/step_{int(step):07d}.pt")


def defined_values(spectrum: LayerSpectrum) -> tuple[torch.Tensor, torch.Tensor]:
    """The values of one layer that the summaries count, ``(M, G)``, and the head (group) index
    of each, ``(M, G)``: the defined, non-pad steps (``LayerSpectrum.samples``), all examples
    stacked; a time-invariant layer gives ``(1, G)``."""
    values, mask = spectrum.samples()
    if values.dim() == 1:
        kept = values[None]
    else:
        kept = values[mask] if mask is not None else values.reshape(-1, values.shape[-1])
    return kept, torch.arange(kept.shape[-1]).expand_as(kept)


def load_values(
    run_path: str | Path, step: int | str = "final", analysis: str = "exact"
) -> pd.DataFrame:
    """The eigenvalues one step of a run recorded, one row each: ``layer``, ``mixer``, ``head``
    (the group index: head, channel × mode or mode), ``magnitude`` ``|λ|`` and signed ``phase``
    in degrees. Only the values its summaries count: steps before ``start`` and pad steps
    (``mask`` false) are dropped. ``step``: N, ``"init"`` or ``"final"``."""
    record = torch.load(step_file(run_path, step), weights_only=True)
    frames = []
    for spectrum in layer_spectra(record[analysis]):
        kept, heads = defined_values(spectrum)
        frames.append(
            pd.DataFrame(
                {
                    "layer": spectrum.layer,
                    "mixer": spectrum.mixer,
                    "head": heads.reshape(-1).numpy(),
                    "magnitude": kept.abs().double().reshape(-1).numpy(),
                    "phase": torch.rad2deg(kept.angle().double()).reshape(-1).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)

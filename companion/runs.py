"""Run folders: what one run leaves on disk, how it resumes, and the index the book reads.

A run folder ``<root>/<profile>/<run_id>/`` holds

=====================  ===================================================================
``config.yaml``        the resolved :class:`~companion.config.RunConfig`, its hash, the commit
``history.jsonl``      one JSON line per evaluation (step, losses, metrics, lr, tokens/s)
``checkpoint.pt``      model, optimiser, scheduler, RNG state and history at the last
                       checkpoint; loads with ``torch.load(weights_only=True)``
``spectra/step_<N>.pt``  Λ of every layer at step N (schema: ``train.record_spectra``)
``spectra.csv``        the binned summaries of every recorded step (``spectra.summarize``
                       columns plus ``step``, ``stage``, ``analysis``)
``metrics.json``       the final metrics, e.g. ``{"test_accuracy": 0.93, ...}``
``timing.json``        training seconds, device and precision, tokens/s per evaluation
                       interval and their median, the training settings
``complete.json``      written last, atomically: the run is complete iff it exists
=====================  ===================================================================
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
import yaml

from companion.config import RunConfig
from companion.io import atomic_path, atomic_write_text, git
from companion.spectra import LayerSpectrum


def git_commit() -> str:
    """The commit of the working tree (``+dirty`` when the package has changes), or
    ``unknown``."""
    sha = git("rev-parse", "--short", "HEAD")
    if sha is None:
        return "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--", "companion") else "")


class RunDir:
    """Paths and atomic reads and writes of one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, config: RunConfig, root: str | Path = "runs") -> RunDir:
        return cls(Path(root) / config.profile / config.run_id)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def complete(self) -> bool:
        return self.file("complete.json").exists()

    def write_config(self, config: RunConfig) -> None:
        meta = {"run_id": config.run_id, "config_hash": config.hash(), "commit": git_commit()}
        text = yaml.safe_dump({**meta, **config.to_dict()}, sort_keys=False)
        atomic_write_text(self.file("config.yaml"), text)

    def saved_hash(self) -> str | None:
        path = self.file("config.yaml")
        return yaml.safe_load(path.read_text())["config_hash"] if path.exists() else None

    def write_json(self, name: str, data: dict) -> None:
        atomic_write_text(self.file(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def read_json(self, name: str) -> dict:
        return json.loads(self.file(name).read_text())

    def save(self, name: str, obj) -> None:
        with atomic_path(self.file(name)) as tmp:
            torch.save(obj, tmp)

    def load(self, name: str):
        return torch.load(self.file(name), weights_only=True, map_location="cpu")

    def history(self) -> list[dict]:
        path = self.file("history.jsonl")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def spectra_record(spectra: list[LayerSpectrum]) -> list[dict]:
    """Λ of each layer as plain tensors and strings (loads with ``weights_only=True``).

    Each entry: ``layer``, ``mixer``, ``group``, ``start``, ``multiplicity``, ``published``,
    ``values`` (``(B, L, G)`` or ``(G,)``, float32 or complex64) and ``mask`` (``(B, L)`` bool,
    or absent when every step counts)."""
    out = []
    for s in spectra:
        t = s.transition
        values = t.values.detach().cpu()
        entry = {
            "layer": s.layer,
            "mixer": s.mixer,
            "group": t.group,
            "start": t.start,
            "multiplicity": t.multiplicity,
            "published": s.published,
            "values": values.to(torch.complex64 if values.is_complex() else torch.float32),
        }
        if s.mask is not None:
            entry["mask"] = s.mask.detach().cpu()
        out.append(entry)
    return out


def index_row(run: RunDir) -> dict:
    """The runs-index row of one complete run: identity, final metrics, folder."""
    cfg = yaml.safe_load(run.file("config.yaml").read_text())
    return {
        "run_id": cfg["run_id"],
        "task": cfg["task"],
        "model": cfg["model_name"],
        "variant": cfg["variant"] or "",
        "seed": cfg["seed"],
        "profile": cfg["profile"],
        "mixer": cfg["model"]["mixer"],
        "config_hash": cfg["config_hash"],
        "commit": cfg["commit"],
        **run.read_json("metrics.json"),
        "path": str(run.path.resolve()),
    }


def index(root: str | Path = "runs") -> pd.DataFrame:
    """One row per complete run anywhere under ``root``."""
    return pd.DataFrame(
        [index_row(RunDir(done.parent)) for done in sorted(Path(root).rglob("complete.json"))]
    )


def write_index(root: str | Path = "runs") -> Path:
    """Write ``<root>/index.csv`` atomically and return its path."""
    path = Path(root) / "index.csv"
    atomic_write_text(path, index(root).to_csv(index=False))
    return path

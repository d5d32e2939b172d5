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
``.lock``              held (``flock``) by the process training the run; names that process
=====================  ===================================================================

A damaged file (a truncated checkpoint, a ``config.yaml`` that is not YAML, a completion
marker without metrics) is a one-line :class:`RunFolderError` that names it and what to do; a
folder of another configuration that ``companion reproduce`` must replace is moved aside into
``<root>/<profile>/.stale/`` (:meth:`RunDir.move_aside`), never deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
import yaml

from companion.config import RunConfig, digest
from companion.io import TEMP_SUFFIX, atomic_path, atomic_write_text, git
from companion.layers.base import Transition
from companion.spectra import LayerSpectrum


def git_commit() -> str:
    """The commit of the working tree (``+dirty`` when the package has changes), or
    ``unknown``."""
    sha = git("rev-parse", "--short", "HEAD")
    if sha is None:
        return "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--", "companion") else "")


META = ("run_id", "config_hash", "commit")  # config.yaml's lines above the settings it hashes
TEST_METRICS = ("test_accuracy", "test_perplexity")
SPECTRA_COLUMNS = ("layer", "mixer", "head", "kind", "bin", "mean", "std", "analysis", "step")


class RunFolderError(ValueError):
    """A run folder that cannot be used as it is (a damaged file, another process at work in
    it); the message is one line that names the file and what to do."""


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

    def damaged(self, name: str, why: str, fix: str = "") -> RunFolderError:
        """The error for file ``name`` of this folder that cannot be used."""
        fix = fix or f"delete {self.file(name)} to train this run again from its start"
        return RunFolderError(f"{self.file(name)} is damaged ({why}); {fix}")

    def saved_config(self) -> dict | None:
        """The saved ``config.yaml`` (None before the run started)."""
        path = self.file("config.yaml")
        if not path.exists():
            return None
        try:
            saved = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            saved = None
        fix = f"delete the folder {self.path} or choose another --out"
        if not isinstance(saved, dict) or not isinstance(saved.get("config_hash"), str):
            raise self.damaged("config.yaml", "not the YAML of a run configuration", fix)
        settings = {k: v for k, v in saved.items() if k not in META}
        if digest(settings)[:12] != saved["config_hash"]:
            why = "its settings do not match its own config_hash: edited after the run began"
            raise self.damaged("config.yaml", why, fix)
        return saved

    def saved_hash(self) -> str | None:
        saved = self.saved_config()
        return None if saved is None else saved["config_hash"]

    def write_json(self, name: str, data: dict) -> None:
        atomic_write_text(self.file(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def read_json(self, name: str) -> dict:
        try:
            data = json.loads(self.file(name).read_text())
        except FileNotFoundError:
            data = "missing"
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = "not JSON"
        if not isinstance(data, dict):
            why = data if isinstance(data, str) else "not a JSON object"
            fix = ""
            if name == "metrics.json":
                fix = f"delete {self.file('complete.json')} to finish the run again"
            raise self.damaged(name, why, fix)
        return data

    def check_outputs(self) -> None:
        """A complete run's outputs read as they must: ``metrics.json`` holds numbers and a
        test metric, ``spectra.csv`` is a table with :data:`SPECTRA_COLUMNS`, numeric where
        numbers belong, and rows. Raises the damaged file's :class:`RunFolderError`."""
        fix = f"delete {self.file('complete.json')} to finish the run again"
        metrics = self.read_json("metrics.json")
        for key, value in metrics.items():
            if isinstance(value, str) or not isinstance(value, int | float):
                raise self.damaged("metrics.json", f"{key} is {value!r}, not a number", fix)
        if not any(key in metrics for key in TEST_METRICS):
            raise self.damaged("metrics.json", f"none of {', '.join(TEST_METRICS)}", fix)
        try:
            table = pd.read_csv(self.file("spectra.csv"), keep_default_na=False, dtype=str)
        except FileNotFoundError:
            why = "missing"
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            why = "not a CSV table"
        else:
            absent = [c for c in SPECTRA_COLUMNS if c not in table]
            numeric = [c for c in ("layer", "mean", "step") if c in table]
            wrong = [c for c in numeric if pd.to_numeric(table[c], errors="coerce").isna().any()]
            why = (
                f"no column {absent[0]}"
                if absent
                else f"column {wrong[0]} holds a value that is not a number"
                if wrong
                else "no rows"
                if table.empty
                else ""
            )
        if why:
            raise self.damaged("spectra.csv", why, fix)

    def save(self, name: str, obj) -> None:
        with atomic_path(self.file(name)) as tmp:
            torch.save(obj, tmp)

    def load(self, name: str):
        """A ``.pt`` file of the run, loaded with ``weights_only=True``."""
        try:
            return torch.load(self.file(name), weights_only=True, map_location="cpu")
        except FileNotFoundError:
            raise
        except Exception as err:  # truncated, empty, random bytes: torch raises many kinds
            why = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
            raise self.damaged(name, f"unreadable: {why}") from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this folder for the calling process (an exclusive ``flock`` on ``.lock``,
        released when the process ends, however it ends); a folder held by another process is a
        :class:`RunFolderError` naming that process. Creates the folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file(".lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                raise RunFolderError(
                    f"{self.path} is in use by {holder}; wait for it to finish, "
                    "or choose another --out"
                ) from None
            os.ftruncate(fd, 0)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            os.pwrite(
                fd, f"process {os.getpid()} on {socket.gethostname()} since {stamp}".encode(), 0
            )
            yield
        finally:
            os.close(fd)  # releases the lock

    def remove_orphans(self) -> list[Path]:
        """Delete the temporary files that a killed writer left (only while holding the
        lock: no other writer can be at work); returns them."""
        orphans = [p for p in self.path.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
        for p in orphans:
            p.unlink()
        return orphans

    def move_aside(self) -> Path:
        """Move this folder to ``<parent>/.stale/<name>-<its config hash>-<time>`` (kept, never
        deleted: the runs index does not read hidden folders); returns the new path."""
        try:
            tag = self.saved_hash() or "unknown"
        except RunFolderError:
            tag = "damaged"
        target = (
            self.path.parent / ".stale" / f"{self.path.name}-{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        return target

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


def layer_spectra(record: list[dict]) -> list[LayerSpectrum]:
    """The inverse of :func:`spectra_record`: one analysis of a ``spectra/step_<N>.pt``."""
    return [
        LayerSpectrum(
            layer=e["layer"],
            mixer=e["mixer"],
            transition=Transition(e["values"], e["start"], e["multiplicity"], e["group"]),
            mask=e.get("mask"),
            published=e["published"],
        )
        for e in record
    ]


def index_row(run: RunDir) -> dict:
    """The runs-index row of one complete run: identity, final metrics, folder."""
    cfg = run.saved_config()
    if cfg is None:
        raise run.damaged("config.yaml", "missing", f"delete the folder {run.path}")
    run.check_outputs()
    return {
        "run_id": cfg["run_id"],
        "task": cfg["task"],
        "model": cfg["model_name"],
        "variant": cfg["variant"] or "",
        "seed": cfg["seed"],
        "profile": cfg["profile"],
        "mixer": cfg["model"]["mixer"],
        "data": json.dumps(cfg["data"], sort_keys=True),  # settings that replace the preset's
        "config_hash": cfg["config_hash"],
        "commit": cfg["commit"],
        **run.read_json("metrics.json"),
        "path": str(run.path.resolve()),
    }


def index(root: str | Path = "runs", broken: list[str] | None = None) -> pd.DataFrame:
    """One row per complete run anywhere under ``root`` (hidden folders, such as the runs
    moved aside into ``.stale/``, excluded). A folder whose files are damaged is left out and,
    when ``broken`` is a list, its one-line reason appended to it."""
    root = Path(root)
    rows = []
    for done in sorted(root.rglob("complete.json")):
        if any(part.startswith(".") for part in done.relative_to(root).parts):
            continue
        try:
            rows.append(index_row(RunDir(done.parent)))
        except (RunFolderError, OSError, yaml.YAMLError, KeyError, TypeError) as err:
            if broken is not None:
                broken.append(f"{done.parent}: {str(err).splitlines()[0]}")
    return pd.DataFrame(rows)


def write_index(root: str | Path = "runs", broken: list[str] | None = None) -> Path:
    """Write ``<root>/index.csv`` atomically and return its path (``broken``: see
    :func:`index`)."""
    path = Path(root) / "index.csv"
    atomic_write_text(path, index(root, broken).to_csv(index=False))
    return path

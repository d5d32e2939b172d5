"""The prepared-data cache: parquet files plus a manifest, written atomically, verified on load.

Layout under the data root (``$COMPANION_DATA``, else ``data/`` in the repository)::

    raw/<package>/<file>                  files taken out of registry packages (sha256 pinned)
    <task>/<profile>/{train,val,test}.parquet
    <task>/<profile>/manifest.json        sha256 and rows of each file, config, stats, timing

A cache folder is complete only when its manifest exists and every file matches the sha256
recorded there; the manifest is written last. Every file is written to a temporary name in the
same folder and moved into place with ``os.replace``, so an interrupted build never leaves a
file that looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from companion.io import atomic_path
from companion.tasks.common import IGNORE_INDEX, SPLITS, CacheError, DataError, import_hf

MANIFEST = "manifest.json"
FORMAT = 1


def data_root() -> Path:
    """``$COMPANION_DATA`` if set, else ``data/`` next to the package (a source checkout),
    else ``./data``."""
    env = os.environ.get("COMPANION_DATA")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    return Path.cwd() / "data"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_table(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


# ---------------------------------------------------------------------------------------------
# statistics recorded in the manifest (``companion data info`` and the book print them)


def length_stats(table: pa.Table, column: str) -> dict[str, float]:
    lengths = pc.list_value_length(table.column(column)).to_numpy(zero_copy_only=False)
    if len(lengths) == 0:
        return {"min": 0, "median": 0, "max": 0}
    return {
        "min": int(lengths.min()),
        "median": float(np.median(lengths)),
        "max": int(lengths.max()),
    }


def split_stats(table: pa.Table) -> dict[str, Any]:
    """Rows, sequence lengths and (for classification) the label counts of one split."""
    column = "input_ids" if "input_ids" in table.column_names else "inputs"
    stats: dict[str, Any] = {"rows": table.num_rows, "length": length_stats(table, column)}
    if "label" in table.column_names:
        values, counts = np.unique(table.column("label").to_numpy(), return_counts=True)
        stats["label_counts"] = {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}
    if "labels" in table.column_names:
        flat = pc.list_flatten(table.column("labels")).to_numpy(zero_copy_only=False)
        stats["targets"] = int((flat != IGNORE_INDEX).sum())
    return stats


# ---------------------------------------------------------------------------------------------
# a cache folder: written, verified, read


def _config_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def write(target: Path, tables: dict[str, pa.Table], facts: dict[str, Any]) -> dict[str, Any]:
    """Write the splits and then the manifest (the commit point)."""
    missing = set(SPLITS) - set(tables)
    if missing:
        raise ValueError(f"build produced no {', '.join(sorted(missing))} split")
    empty = [split for split in SPLITS if tables[split].num_rows == 0]
    if empty:
        raise DataError(f"the {', '.join(empty)} split of {target} would be empty; nothing written")
    (target / MANIFEST).unlink(missing_ok=True)  # the old cache is void from here on
    for derived in target.glob("*.json"):  # files computed from the old cache (baselines)
        derived.unlink()
    files, stats = {}, {}
    for split in SPLITS:
        path = target / f"{split}.parquet"
        atomic_write_table(path, tables[split])
        files[split] = {
            "file": path.name,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "rows": tables[split].num_rows,
        }
        stats[split] = split_stats(tables[split])
    manifest = {
        "format": FORMAT,
        **facts,
        "config": json.loads(json.dumps(facts.get("config", {}), default=str)),
        "files": files,
        "stats": stats,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_bytes(target / MANIFEST, json.dumps(manifest, indent=2).encode())
    return manifest


def built_from(target: Path) -> dict[str, Any] | None:
    """The inputs recorded in the manifest of the cache at ``target`` (``Task.inputs``)."""
    return json.loads((target / MANIFEST).read_text()).get("inputs")


def exists(target: Path) -> bool:
    return target.exists()


def _load_manifest(target: Path, hint: str) -> dict[str, Any]:
    path = target / MANIFEST
    if not path.is_file():
        raise CacheError(f"no prepared data at {target} (manifest missing); {hint}")
    try:
        manifest = json.loads(path.read_text())
        assert isinstance(manifest, dict) and manifest.get("format") == FORMAT
        assert set(manifest["files"]) >= set(SPLITS)
    except Exception:
        raise CacheError(f"the manifest {path} is corrupted; {hint}") from None
    return manifest


def verify(target: Path, config: Any, hint: str) -> dict[str, Any]:
    """Check the manifest, the config it was built with and every file's sha256."""
    manifest = _load_manifest(target, hint)
    if config is not None and manifest.get("config") != _config_dict(config):
        raise CacheError(f"the data at {target} were prepared with other settings; {hint}")
    for split in SPLITS:
        entry = manifest["files"][split]
        path = target / entry["file"]
        if not path.is_file():
            raise CacheError(f"cache file {path} is missing; {hint}")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise CacheError(f"cache file {path} is corrupted (sha256 mismatch); {hint}")
    return manifest


def is_valid(target: Path, config: Any) -> bool:
    try:
        verify(target, config, "")
    except CacheError:
        return False
    return True


def read_split(target: Path, split: str, hint: str) -> pa.Table:
    path = target / f"{split}.parquet"
    try:
        return pq.read_table(path)
    except Exception:
        raise CacheError(f"cache file {path} cannot be read; {hint}") from None


def to_dataset(table: pa.Table, split: str | None = None):
    """An in-memory ``datasets.Dataset`` over an Arrow table (no files written anywhere)."""
    datasets = import_hf("datasets")
    return datasets.Dataset(datasets.table.InMemoryTable(table), split=split)

"""What every chapter of the book opens with, and the numbers it shares with the others.

>>> chapter = open_chapter("../runs", "quick")       # doctest: +SKIP
>>> chapter.main, chapter.measures, chapter.parts     # doctest: +SKIP

:func:`open_chapter` sets the figures' style, reads the runs index of a profile and gives a
:class:`Chapter`: its runs (``index``), their eigenvalues (``spectra``, ``main`` for the main
grid), the measures of every run (:func:`companion.evidence.measures`), the claims' verdicts
and parts (:func:`companion.claims.evaluate`, both analyses) and the per-condition summary
(:func:`companion.robustness.summary`), each read or computed when first asked for.

The measures, verdicts and parts are computed once per book build: ``companion reproduce``
stores them before the chapters run (:func:`precompute`), in ``<runs>/<profile>/_generated/``,
under a key made from what they were made from (the rows of the runs index and every module and
configuration file of the package). A chapter reads a stored table only under its own key and
only when its bytes match the sha256 recorded with it; otherwise it computes the table and
stores it for the next chapter. A chapter opened alone (in Binder, say) gives the numbers the
book gives.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from companion import claims, evidence, robustness, style
from companion.io import atomic_path, atomic_write_text

PACKAGE = Path(__file__).resolve().parent
CODE = ("**/*.py", "configs/**/*.yaml")  # what a chapter's numbers depend on besides the runs
GENERATED = "_generated"
TABLES = ("measures", "verdicts", "parts")


def digest(*parts: bytes) -> str:
    """A short sha256 of several byte strings, each hashed first (so that their boundaries
    count)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def code_digest(package: Path = PACKAGE) -> str:
    """The digest of every module and configuration file of ``package``."""
    return digest(*(f.read_bytes() for pattern in CODE for f in sorted(package.glob(pattern))))


@dataclass
class Chapter:
    """The runs a chapter reads: ``index`` (one row per run, :func:`evidence.open_index`) of
    ``profile``, stored under ``folder`` (``<runs_root>/<profile>``)."""

    index: pd.DataFrame
    profile: str
    folder: Path
    _tables: dict = field(default_factory=dict, repr=False)

    @cached_property
    def spectra(self) -> pd.DataFrame:
        """Every run's binned eigenvalues (:func:`evidence.load_spectra`)."""
        return evidence.load_spectra(self.index)

    @cached_property
    def main(self) -> pd.DataFrame:
        """:attr:`spectra` of the main grid (variant ``""``)."""
        return self.spectra[self.spectra["variant"] == ""]

    @cached_property
    def key(self) -> str:
        """What the shared tables are made from: the index's rows and the package's code."""
        return digest(self.index.to_csv(index=False).encode(), code_digest().encode())

    @property
    def measures(self) -> pd.DataFrame:
        return self._table("measures")

    @property
    def verdicts(self) -> pd.DataFrame:
        return self._table("verdicts")

    @property
    def parts(self) -> pd.DataFrame:
        return self._table("parts")

    @cached_property
    def summary(self) -> pd.DataFrame:
        return robustness.summary(self.measures)

    def _table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables.update(self._read() or self._compute())
        return self._tables[name]

    def _manifest(self) -> Path:
        return self.folder / GENERATED / f"{self.key}.json"

    def _read(self) -> dict[str, pd.DataFrame] | None:
        """The stored tables of :attr:`key`, or None when one is missing or not what its
        manifest says it is."""
        try:
            files = json.loads(self._manifest().read_text())["files"]
            blobs = {
                name: (self.folder / GENERATED / files[name]["file"]).read_bytes()
                for name in TABLES
            }
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if any(hashlib.sha256(blobs[n]).hexdigest() != files[n]["sha256"] for n in TABLES):
            return None
        return {name: pd.read_parquet(io.BytesIO(blob)) for name, blob in blobs.items()}

    def _compute(self) -> dict[str, pd.DataFrame]:
        """The tables computed from the runs, stored under :attr:`key` when the folder takes
        them (a read-only runs folder is read, never required to be written)."""
        measures = evidence.measures(self.index)
        verdicts, parts = claims.evaluate(measures)
        tables = {"measures": measures, "verdicts": verdicts, "parts": parts}
        try:
            files = {}
            for name, table in tables.items():
                blob = table.to_parquet(index=False)
                path = self.folder / GENERATED / f"{name}-{self.key}.parquet"
                with atomic_path(path) as tmp:
                    tmp.write_bytes(blob)
                files[name] = {"file": path.name, "sha256": hashlib.sha256(blob).hexdigest()}
            atomic_write_text(self._manifest(), json.dumps({"files": files}, indent=1) + "\n")
        except OSError:
            pass
        return tables


def open_chapter(
    runs_root: str | Path, profile: str, ladder: bool = False, announce: bool = True
) -> Chapter:
    """The book's figure style set, and the runs of ``profile`` under ``runs_root``
    (``ladder``: with the scale ladder's runs; see :func:`evidence.open_index`); ``announce``
    prints how many runs of which profile the chapter reads."""
    style.use_style()
    index, profile = evidence.open_index(runs_root, profile, ladder=ladder)
    if announce:
        print(f"{len(index)} runs of the {profile} profile")
    return Chapter(index, profile, Path(runs_root) / profile)


def precompute(runs_root: str | Path, profile: str) -> None:
    """Compute and store the shared tables of every view of the runs the chapters open (with
    and without the scale ladder's runs), so that no chapter computes them; the tables of
    other keys (older runs or code) are removed, before any chapter reads."""
    keys = set()
    for ladder in (False, True):
        index, found = evidence.open_index(runs_root, profile, ladder=ladder)
        chapter = Chapter(index, found, Path(runs_root) / found)
        chapter.measures  # noqa: B018 - read or computed, and stored
        keys.add(chapter.key)
        folder = chapter.folder / GENERATED
    for path in folder.glob("*"):
        if path.is_file() and not any(key in path.name for key in keys):
            path.unlink()

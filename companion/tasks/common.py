"""The names every module of ``companion.tasks`` shares: the data errors, the splits, the
target that is not predicted, how a task is scored and how the Hugging Face libraries are
imported. A leaf: it imports nothing of the package, so that :mod:`companion.tasks.base` (the
:class:`~companion.tasks.base.Task`) and :mod:`companion.tasks.cache` (the prepared data it
reads) can both import it at the top.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from types import ModuleType

from tqdm import TqdmExperimentalWarning, TqdmWarning

SPLITS: tuple[str, ...] = ("train", "val", "test")
IGNORE_INDEX = -100  # a position of ``labels`` with nothing to predict


class DataError(RuntimeError):
    """A data problem the user can fix; the message is one line that says how."""


class CacheError(DataError):
    """The prepared cache is missing, incomplete or corrupted."""


class HubUnavailableError(DataError):
    """A Hugging Face hub data set was requested but cannot be reached."""


@dataclass(frozen=True)
class Metric:
    """How a task's runs are scored: ``name`` "accuracy" (higher is better, shown in percent)
    or "perplexity" (lower is better, shown as it is). A run's metrics file holds it as
    ``<split>_<name>``, e.g. ``test_accuracy``."""

    name: str

    @property
    def lower_is_better(self) -> bool:
        return self.name == "perplexity"

    def reaches(self, score: float, line: float) -> bool:
        """Whether ``score`` is at ``line`` or beyond it on the better side."""
        return score <= line if self.lower_is_better else score >= line

    def column(self, split: str = "test") -> str:
        return f"{split}_{self.name}"

    @property
    def unit(self) -> str:
        """The short unit of a table's row label: ``acc. %`` or ``ppl``."""
        return "ppl" if self.lower_is_better else "acc. %"

    def shown(self, value: float, digits: int = 1) -> str:
        """``value`` as a table shows it: an accuracy in percent, a perplexity as it is."""
        return f"{(1.0 if self.lower_is_better else 100.0) * value:.{digits}f}"

    def words(self, value: float) -> str:
        """``value`` in a sentence: ``52.6 %`` or ``perplexity 8.17``."""
        return f"perplexity {value:.2f}" if self.lower_is_better else f"{100 * value:.1f} %"


def import_hf(module: str) -> ModuleType:
    """``import <module>`` (``datasets``, ``huggingface_hub``, ``transformers``) without tqdm's
    note, printed once per kernel that imports ``tqdm.auto`` without notebook widgets, that
    would otherwise stand with the absolute path of the environment on a book page (their
    progress bars are off in the book, so the note says nothing).

    Called where a split is served or the hub is used, never at the top of a module: ``import
    datasets`` takes most of a second, and both libraries read the ``HF_*`` environment
    variables once, when first imported (a caller may set them after importing
    :mod:`companion.tasks`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        warnings.simplefilter("ignore", TqdmExperimentalWarning)
        return importlib.import_module(module)

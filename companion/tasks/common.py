"""The names every module of ``companion.tasks`` shares: the data errors, the splits and the
target that is not predicted. A leaf: it imports nothing, so that :mod:`companion.tasks.base`
(the :class:`~companion.tasks.base.Task`) and :mod:`companion.tasks.cache` (the prepared data
it reads) can both import it at the top.
"""

from __future__ import annotations

SPLITS: tuple[str, ...] = ("train", "val", "test")
IGNORE_INDEX = -100  # a position of ``labels`` with nothing to predict


class DataError(RuntimeError):
    """A data problem the user can fix; the message is one line that says how."""


class CacheError(DataError):
    """The prepared cache is missing, incomplete or corrupted."""


class HubUnavailableError(DataError):
    """A Hugging Face hub data set was requested but cannot be reached."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from browser import chromium  # noqa: E402, F401  (the session fixture, for every test module)


@pytest.fixture
def one_dial(monkeypatch):
    """The ladder's dials replaced by one: "pressure", MQAR pairs 4, 8 (the quick run) and 16
    for Mamba-2 and S4."""
    from companion import grid

    dial = {
        "task": "mqar",
        "demand": "n_pairs",
        "models": ["mamba2", "s4"],
        "steps": {"K4": {"data": {"n_pairs": 4}}, "K8": {}, "K16": {"data": {"n_pairs": 16}}},
    }
    spec = {**grid._ladder(), "dials": {"pressure": dial}}
    monkeypatch.setattr(grid, "_ladder", lambda: spec)

"""The measures the claims read, checked against the summaries training wrote and against
records built by hand."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from companion import config as C
from companion import evidence as E
from companion import train as T
from companion.layers.base import Transition
from companion.runs import RunDir, index_row, spectra_record
from companion.spectra import MAGNITUDE_BINS, LayerSpectrum


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rows = []
    for task, model in (("mqar", "linear"), ("image", "s4")):
        cfg = C.resolve(task, model, None, "smoke")
        T.run(cfg, root=root, progress=False)
        rows.append(index_row(RunDir.for_config(cfg, root)))
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_the_bin_shares_are_those_training_summarised(runs):
    measures = E.measures(runs)
    assert set(measures["stage"]) == {"init", "final"}
    assert set(measures["analysis"]) == {"exact", "published"}
    spectra = E.load_spectra(runs)
    pooled = spectra.query("head == 'all' and kind == 'magnitude'")
    pooled = pooled[pooled["stage"].isin(["init", "final"])]
    expected = pooled.groupby(["task", "analysis", "stage", "bin"])["mean"].mean()
    for _, row in measures.iterrows():
        for b in MAGNITUDE_BINS:
            assert row[b] == pytest.approx(expected[(row.task, row.analysis, row.stage, b)])
        assert row["(0.9,1]"] <= row["band"] + 1e-12 or row["model"] != "s4"
        assert np.all(np.diff(row["quantiles"]) >= 0)
        assert all(row[f"{b}_se"] >= 0 for b in MAGNITUDE_BINS)


def _record(tmp_path, values: torch.Tensor, mask=None) -> str:
    run = RunDir(tmp_path)
    spectrum = LayerSpectrum(0, "norm", Transition(values, start=1), mask)
    for step in (0, 3):
        run.save(f"spectra/step_{step:07d}.pt", {"exact": spectra_record([spectrum])})
    run.write_json("metrics.json", {"steps": 3})
    return str(tmp_path)


def test_dead_heads_are_counted_and_left_out_of_the_live_shares(tmp_path):
    values = torch.full((2, 6, 3), 0.05)  # (B, L, heads): heads 0 and 1 near 0
    values[:, :, 2] = 1.0  # head 2 is exactly 1 everywhere: dead
    rows = E.run_measures(_record(tmp_path, values))
    final = next(r for r in rows if r["stage"] == "final")
    assert final["dead_heads"] == 1
    assert final["[0,0.1]"] == pytest.approx(2 / 3) and final["band"] == pytest.approx(1 / 3)
    assert final["near0_live"] == pytest.approx(1.0) and final["band_live"] == 0.0


def test_pad_steps_and_the_undefined_first_step_are_not_counted(tmp_path):
    values = torch.full((2, 5, 1), 0.95)
    values[:, 0] = 50.0  # before start
    values[1, 3:] = 0.01  # pad steps
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    rows = E.run_measures(_record(tmp_path, values, mask))
    assert rows[0]["(0.9,1]"] == pytest.approx(1.0) and rows[0]["band"] == pytest.approx(1.0)
    assert rows[0]["(0.9,1]_se"] == 0.0


def test_each_run_is_gated_by_its_own_no_mixing_control(monkeypatch):
    from companion import baselines

    table = [baselines.Baseline("majority class", "trivial", "accuracy", 0.2, 10_000)]
    monkeypatch.setattr(baselines, "for_task", lambda *a, **k: (table, baselines.gate(table)))
    rows = [
        ("image", "softmax", "", 0.70),
        ("image", "softmax", "gate", 0.80),
        ("image", "softmax", "nomix", 0.60),
        ("image", "softmax", "nomix", 0.62),
        ("image", "lru", "", 0.50),  # its control never ran
        ("mqar", "lru", "ladder-L128x16", 0.5),
        ("mqar", "lru", "nomix-ladder-L128x16", 0.01),
        ("mqar", "lru", "nomix", 0.3),  # the quick rung's control: not this rung's
    ]
    index = pd.DataFrame(
        [dict(task=t, model=m, variant=v, profile="quick", test_accuracy=a) for t, m, v, a in rows]
    )
    gates = E.run_gates(index)
    assert gates[0].control == pytest.approx(0.61) and gates[0].line == pytest.approx(0.64)
    assert gates[0].passes(0.70) and gates[1].control == pytest.approx(0.61)
    assert math.isnan(gates[4].control) and not gates[4].passes(0.99)
    assert gates[5].control == pytest.approx(0.01) and gates[5].baseline == "majority class"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("run_id,task\na,b\n", "no column model"),
        ('\x00\x01garbage,\n"unclosed\n', "is not a runs index"),
        ("", "is not a runs index"),
    ],
)
def test_a_runs_index_that_does_not_read_is_one_line_naming_it(tmp_path, text, why):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "index.csv").write_text(text)
    with pytest.raises(ValueError, match=why) as err:
        E.open_index(tmp_path, "quick")
    assert str(tmp_path / "quick" / "index.csv") in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_an_unknown_profile_is_refused_before_any_index_is_read(tmp_path):
    with pytest.raises(ValueError, match="profile = 'quik': choose one of smoke, quick, paper"):
        E.open_index(tmp_path, "quik")

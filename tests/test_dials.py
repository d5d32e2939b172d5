"""The dials: their runs read per step against the demand, time constants, and the trend."""

import numpy as np
import pandas as pd
import pytest
from builders import cond, table

from companion import dials


def measures(near0_by_step: dict[str, float]) -> pd.DataFrame:
    rows = []
    for step, near0 in near0_by_step.items():
        variant = "" if step == "K8" else f"ladder-pressure-{step}"
        for model in ("mamba2", "s4"):
            rows.append(cond("mqar", model, variant, final={"near0": near0, "near1": 1 - near0}))
        rows.append(cond("mqar", "mamba2", f"nomix-{variant}".rstrip("-"), acc=0.01))
    rows.append(cond("mqar", "softmax", "", final={"near0": 0.9}))  # not a model of the dial
    return table(*rows)


def test_each_run_stands_at_its_step_with_the_demand_there(one_dial):
    rows = dials.table(measures({"K4": 0.1, "K8": 0.2, "K16": 0.4}))
    assert set(rows["model"]) == {"mamba2", "s4"}  # no control, no other model
    assert len(rows) == 3 * 2 * 3  # steps, models, seeds
    by_step = rows.groupby("step")[["demand", "near0"]].first()
    assert by_step.loc["K8"].tolist() == [8.0, 0.2]  # the quick run, at the quick preset's pairs
    assert by_step.loc["K16"].tolist() == [16.0, 0.4]
    summary = dials.summary(rows)
    assert list(summary.loc[summary["model"] == "s4", "demand"]) == [4.0, 8.0, 16.0]
    assert (summary["seeds"] == 3).all() and (summary["learned"] == 3).all()


def test_a_share_that_grows_with_the_demand_has_a_slope_above_zero(one_dial):
    rows = dials.table(measures({"K4": 0.1, "K8": 0.2, "K16": 0.3}))
    rows["near0"] += np.tile([0.01, -0.01, 0.0], len(rows) // 3)  # seed noise
    up = dials.trend(rows, "pressure", "near0")
    assert (up["low"] > 0).all() and np.allclose(up["slope"], 0.1, atol=0.01)
    rows = dials.table(measures({"K4": 0.2, "K8": 0.2, "K16": 0.2}))
    rows["near0"] += np.tile([0.01, -0.01, 0.0], len(rows) // 3)
    flat = dials.trend(rows, "pressure", "near0")
    assert ((flat["low"] < 0) & (flat["high"] > 0)).all()  # noise only: no trend


def test_time_constants_read_the_quantiles_of_log_magnitude():
    q = np.linspace(-2.0, 0.5, 101)  # median log|λ| = -0.75, 90th percentile = 0.25
    taus = dials.time_constants(q)
    assert taus["tau_median"] == pytest.approx(1 / 0.75) and taus["tau_90"] == np.inf
    assert dials.time_constants(np.full(101, -0.01))["tau_90"] == pytest.approx(100.0)


def test_the_dial_figure_draws_every_model_and_seed(one_dial):
    from companion import plots

    rows = dials.table(measures({"K4": 0.1, "K8": 0.2, "K16": 0.4}))
    fig = plots.dial_figure(rows, "pressure", ["test_accuracy", "near0"], "pairs", caption=False)
    accuracy, share = fig.axes[:2]
    assert len(accuracy.lines) == 2 * 2  # a mean line and a control line per model
    assert [len(c.get_offsets()) for c in share.collections] == [9, 9]  # 3 steps x 3 seeds
    assert list(share.lines[0].get_ydata()) == pytest.approx([10.0, 20.0, 40.0])


def test_the_dials_read_their_models_and_controls_at_every_step(one_dial):
    rows = [
        ("mqar", "s4", ""),  # the quick run: the step K8
        ("mqar", "s4", "nomix"),  # its control
        ("mqar", "s4", "ladder-pressure-K4"),
        ("mqar", "s4", "nomix-ladder-pressure-K16"),
        ("mqar", "softmax", "ladder-pressure-K4"),  # not a model of the dial
        ("mqar", "s4", "ladder-L256x32"),  # the scale ladder's
        ("mqar", "s4", "layers1-conv"),  # another variant
    ]
    index = pd.DataFrame(rows, columns=["task", "model", "variant"])
    assert [tuple(r) for r in dials.runs(index).itertuples(index=False)] == rows[:4]
    assert dials.has_runs(index) and not dials.has_runs(index.iloc[[0, 1, 5]])
    assert dials.read(index.iloc[[0, 1, 5]]) is None  # no dial step ran: nothing to read


def test_the_book_states_each_models_trend_and_every_seed(one_dial):
    rows = dials.table(measures({"K4": 0.1, "K8": 0.2, "K16": 0.3}))
    rows["near0"] += np.tile([0.01, -0.01, 0.0], len(rows) // 3)
    rows.loc[rows["seed"] == 1000, "learned"] = False
    text = dials.describe(rows, "pressure", "near0")
    assert "**Mamba-2**: the share of |λ| in [0, 0.1] grows with the demand: +10.0 [" in text
    assert text.count("6 of 9 runs used their state") == 2
    table_ = dials.summary_table(rows, "pressure")
    assert len(table_) == 6 and table_["test accuracy (%)"].str.contains("†").all()
    assert list(table_.loc[table_["model"] == "S4", "[0, 0.1] (%)"]) == ["10.0", "20.0", "30.0"]


def test_the_claims_chapter_cites_each_dial_with_what_its_runs_say(one_dial):
    rows = dials.table(measures({"K4": 0.1, "K8": 0.2, "K16": 0.3}))
    rows["near0"] += np.tile([0.01, -0.01, 0.0], len(rows) // 3)
    said = dials.cite(rows)
    assert said.startswith("- **C4**") and "C1" not in said  # the fixture has no delay dial
    assert said.count("grows with the demand") == 2  # one line per model, under the claim
    assert "Not run here: `make reproduce PROFILE=ladder`" in dials.cite(None)
    assert "Not run here" in dials.cite(rows.iloc[:0])


def test_a_share_that_never_moves_is_said_to_stay_where_it_is(one_dial):
    rows = dials.table(measures({"K4": 0.0, "K8": 0.0, "K16": 0.0}))
    flat = dials.trend(rows, "pressure", "near0")
    assert (flat[["slope", "low", "high", "constant"]] == 0).all().all()
    said = dials.describe(rows, "pressure", "near0")
    assert said.count("is 0.0 % in every run, at every step") == 2 and "nan" not in said

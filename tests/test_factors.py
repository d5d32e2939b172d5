"""The two factors of attention's Λ read from trained runs: the model rebuilt from its folder
gives back the run's own final spectra, and the factors bin like Λ."""

import pandas as pd
import pytest

from companion import config as C
from companion import factors, grid
from companion import train as T

ABOVE_1 = ["(1,10]", "(10,100]", ">100"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for model in ("softmax", "s4"):
        config = C.resolve("mqar", model, None, "smoke")
        T.run(config, out=root / model, progress=False)
        out[model] = root / model
    return out


@pytest.mark.slow
def test_the_rebuilt_model_gives_back_the_runs_own_final_spectra(trained):
    model, batch = factors.trained_model(trained["softmax"])
    rows = factors.factor_spectra(model, batch)
    mine = rows[rows["factor"] == "Λ"].drop(columns="factor").reset_index(drop=True)
    saved = pd.read_csv(trained["softmax"] / "spectra.csv", keep_default_na=False)
    final = saved[(saved["stage"] == "final") & (saved["analysis"] == "exact")]
    final = final[mine.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        mine.astype({"head": str}),
        final.astype({"head": str}),
        check_exact=False,
        rtol=1e-5,
        atol=1e-7,
    )


def test_the_factors_bin_like_lambda_and_the_retention_never_exceeds_1(trained):
    rows = factors.factor_spectra(*factors.trained_model(trained["softmax"]))
    assert set(rows["factor"]) == {"Λ", *factors.FACTORS}
    sums = rows[rows["kind"] == "magnitude"].groupby(["factor", "layer", "head"])["mean"].sum()
    assert sums.to_numpy() == pytest.approx(1.0)
    retention = rows[rows["factor"] == "retention"]
    assert retention[retention["bin"].isin(ABOVE_1)]["mean"].sum() == 0


def test_a_run_without_attention_has_no_factors(trained):
    index = pd.DataFrame(
        {"path": [str(trained["s4"])], "task": "mqar", "model": "s4", "variant": "", "seed": 1}
    )
    assert factors.table(index).empty
    index.loc[0, ["path", "model"]] = [str(trained["softmax"]), "softmax"]
    assert set(factors.table(index)["model"]) == {"softmax"}


def test_the_factor_figure_has_a_bar_per_model_and_factor(trained):
    from companion import plots

    index = pd.DataFrame(
        {
            "path": [str(trained["softmax"])],
            "task": "mqar",
            "model": "softmax",
            "variant": "",
            "seed": 1,
        }
    )
    fig = plots.factor_figure(factors.table(index), caption="test")
    (ax,) = [a for a in fig.axes if a.get_title()]
    assert len(ax.patches) == 7 * 3  # the bins of Λ, the query change and the retention
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True)]
    assert labels == ["Λ", *factors.FACTORS]


def _rows(task, shares: dict[str, dict[str, float]]) -> pd.DataFrame:
    """factor rows of one condition: factor -> {bin: share} (one layer, the pooled head)."""
    return pd.DataFrame(
        [
            dict(task=task, model="softmax", variant="", seed=1, layer=0, head="all",
                 kind="magnitude", factor=f, bin=b, mean=v)
            for f, bins in shares.items()
            for b, v in bins.items()
        ]
    )  # fmt: skip


def test_the_carrier_of_mass_near_0_is_the_factor_with_more_of_it_there():
    retained = _rows(
        "mqar",
        {
            "Λ": {"[0,0.1]": 0.3, "(0.9,1]": 0.2, "(1,10]": 0.5},
            "query change": {"[0,0.1]": 0.05, "(0.9,1]": 0.35, "(1,10]": 0.6},
            "retention": {"[0,0.1]": 0.25, "(0.9,1]": 0.75},
        },
    )
    quiet = _rows(
        "text",
        {
            "Λ": {"[0,0.1]": 0.005, "(0.9,1]": 0.995},
            "query change": {"[0,0.1]": 0.005, "(0.9,1]": 0.995},
            "retention": {"(0.9,1]": 1.0},
        },
    )
    out = factors.carriers(pd.concat([retained, quiet])).set_index("task")
    assert out.loc["mqar", "near 0 from"] == "retention"
    assert out.loc["mqar", "Λ above 1"] == pytest.approx(0.5)
    assert out.loc["mqar", "query change above 1"] == pytest.approx(0.6)
    assert out.loc["text", "near 0 from"] == "—"  # below 1 % near 0: nothing to carry


def test_every_condition_a_factor_claim_reads_is_an_experiment_with_two_factors():
    from companion import claims

    experiments = {(t, m, v or "") for t, m, v in grid.experiments()}
    for conditions in claims.FACTOR_CLAIMS.values():
        assert set(conditions) <= experiments
        assert {m for _, m, _ in conditions} <= {"softmax", "linear"}  # the mixers with a split

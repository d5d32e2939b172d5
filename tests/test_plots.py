"""Figures of the book: shapes, fixed colours, canonical bin order, provenance, data loaders and
the rank statistics (synthetic tables and tiny run folders; no training)."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from builders import identity, tiny
from matplotlib.colors import to_hex, to_rgb
from matplotlib.container import BarContainer

from companion import evidence as E
from companion import plots as P
from companion import statistics as st
from companion import style as S
from companion.layers.base import Transition
from companion.runs import RunDir, spectra_record
from companion.spectra import MAGNITUDE_BINS, MAGNITUDE_EDGES, LayerSpectrum
from companion.train import record_spectra

RUNS = [  # (mixer, model, variant)
    ("softmax", "softmax", ""),
    ("s4d", "s4d", ""),
    ("mamba2", "mamba2", ""),
    ("mamba2_lti", "mamba2", "lti"),
]


@pytest.fixture(autouse=True)
def _close_figures():
    S.use_style()
    yield
    plt.close("all")


def synthetic(runs=RUNS, layers=2, heads=2, steps=(0, 3, 6), seed=0):
    """A long table in the ``spectra.csv`` schema plus the run identity, random shares."""
    rng = np.random.default_rng(seed)
    rows = []
    for mixer, model, variant in runs:
        for step in steps:
            stage = "init" if step == steps[0] else "final" if step == steps[-1] else "train"
            analyses = ["exact", "published"] if stage != "train" else ["exact"]
            for analysis in analyses:
                for layer in range(layers):
                    for head in ["all", *map(str, range(heads))]:
                        shares = rng.dirichlet(np.ones(len(MAGNITUDE_BINS)))
                        for b, share in zip(MAGNITUDE_BINS, shares, strict=True):
                            rows.append(
                                dict(
                                    layer=layer,
                                    mixer=mixer,
                                    head=head,
                                    kind="magnitude",
                                    bin=b,
                                    mean=share,
                                    std=0.01,
                                    analysis=analysis,
                                    step=step,
                                    stage=stage,
                                    **identity(mixer, model, variant),
                                )
                            )
    return pd.DataFrame(rows)


def share(table, mixer, layer, b, stage="final", analysis="exact"):
    row = table[
        (table.mixer == mixer)
        & (table.layer == layer)
        & (table["head"] == "all")
        & (table.bin == b)
        & (table.stage == stage)
        & (table.analysis == analysis)
    ]
    return float(row["mean"].mean())


# ----------------------------------------------------------------------------- spectra figures


def test_bin_bars_panels_bars_colours_and_order():
    table = synthetic()
    fig = P.bin_bars(table.sample(frac=1, random_state=1))  # row order must not matter
    assert len(fig.axes) == 2  # one panel per layer
    ax = fig.axes[0]
    assert len(ax.patches) == len(RUNS) * len(MAGNITUDE_BINS)
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == ["Softmax attn.", "S4D", "Mamba-2", "Mamba-2 (pseudo-LTI)"]
    assert [to_hex(t.get_color()) for t in ax.get_xticklabels()] == [
        S.MODEL_COLORS[m].lower() for m, _, _ in RUNS
    ]
    # bars are drawn bin by bin (canonical order), model by model inside a bin
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    for name, container in zip(MAGNITUDE_BINS, bars, strict=True):
        assert {to_hex(p.get_facecolor()) for p in container} == {S.BIN_COLORS["magnitude"][name]}
        heights = [p.get_height() for p in container]
        assert heights == pytest.approx([share(table, m, 0, name) for m, _, _ in RUNS])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["|λ| bin:", *MAGNITUDE_BINS]  # what is binned, then the bins in order


def test_bin_grid_stacks_the_bins_in_order_and_compares_init():
    table = synthetic()
    fig = P.bin_grid(table, compare_init=True)
    assert [ax.get_title() for ax in fig.axes] == ["at initialisation", "after training"]
    ax = fig.axes[1]
    assert len(ax.patches) == len(RUNS) * 2 * len(MAGNITUDE_BINS)
    left = np.zeros(len(RUNS) * 2)
    for b, name in enumerate(MAGNITUDE_BINS):
        bars = ax.containers[b]
        assert to_hex(bars[0].get_facecolor()) == S.BIN_COLORS["magnitude"][name]
        assert [p.get_x() for p in bars] == pytest.approx(left)  # stacked on the bins before
        left += [p.get_width() for p in bars]
    first = ax.containers[0][0].get_width()  # softmax, layer 1, [0,0.1]
    assert first == pytest.approx(share(table, "softmax", 0, MAGNITUDE_BINS[0]))


def test_magnitude_palette_is_ordered_and_marks_remembers():
    colours = list(S.BIN_COLORS["magnitude"].values())
    assert len(set(colours)) == len(MAGNITUDE_BINS) == len(colours)
    lightness = [np.mean(to_rgb(c)) for c in colours]
    assert lightness[:4] == sorted(lightness[:4], reverse=True)  # darker towards |λ| = 1
    assert np.argmin(lightness) == MAGNITUDE_BINS.index("(0.9,1]")  # remembers stands out
    assert list(S.BIN_COLORS["magnitude"]) == list(MAGNITUDE_BINS)


def heatmap_values(ax) -> np.ndarray:
    mesh = ax.collections[0]
    rows, cols = np.asarray(mesh.get_coordinates()).shape[:2]
    return np.asarray(mesh.get_array()).reshape(rows - 1, cols - 1)


def test_init_vs_final_shows_the_shift_in_points():
    table = synthetic()
    fig = P.init_vs_final(table)
    (ax,) = fig.axes
    values = heatmap_values(ax)
    assert values.shape == (len(RUNS), len(MAGNITUDE_BINS))
    layers = (0, 1)
    expected = [
        100
        * np.mean([share(table, "s4d", i, b) - share(table, "s4d", i, b, "init") for i in layers])
        for b in MAGNITUDE_BINS
    ]
    assert values[1] == pytest.approx(expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(MAGNITUDE_BINS)


def test_exact_vs_published_difference_panel():
    table = synthetic()
    fig = P.exact_vs_published(table, by_layer=True)
    assert len(fig.axes) == 3
    exact, published, difference = (heatmap_values(ax) for ax in fig.axes)
    assert exact.shape == (len(RUNS) * 2, len(MAGNITUDE_BINS))
    assert difference == pytest.approx(published - exact)
    assert published[0, 0] == pytest.approx(
        100 * share(table, "softmax", 0, MAGNITUDE_BINS[0], analysis="published")
    )


def test_spectra_over_training_stacks_the_steps_of_one_run():
    table = synthetic()
    with pytest.raises(ValueError, match="choose one"):
        P.spectra_over_training(table)
    run = table.run_id.iloc[0]  # softmax
    fig = P.spectra_over_training(table, run=run)
    assert len(fig.axes) == 2
    areas = fig.axes[0].collections[: len(MAGNITUDE_BINS)]
    assert [to_hex(a.get_facecolor()[0]) for a in areas] == list(S.BIN_COLORS["magnitude"].values())
    rows = table[(table.run_id == run) & (table.layer == 0) & (table["head"] == "all")]
    lowest = rows[(rows.bin == MAGNITUDE_BINS[0]) & (rows.analysis == "exact")]
    outline = areas[0].get_paths()[0].vertices
    for step, value in zip(lowest.step, lowest["mean"], strict=True):
        assert value == pytest.approx(outline[outline[:, 0] == step, 1].max())
    # short panel titles (long ones overlapped their neighbours); the headline says whose run
    assert [ax.get_title() for ax in fig.axes] == ["layer 1", "layer 2"]
    assert fig.legends[0].get_title().get_text() == "Image: bins of Softmax attn. while it trains"


def test_all_heads_draws_every_head_and_the_pooled_spectrum():
    table = synthetic(runs=RUNS[:2], heads=3)
    fig = P.all_heads(table)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * (3 + 1) * len(MAGNITUDE_BINS)  # layers × (heads + all)
    minor = [t.get_text() for t in ax.get_yticklabels(minor=True)]
    assert minor == ["all", "h1", "h2", "h3"] * 2
    assert to_hex(ax.title.get_color()) == S.MODEL_COLORS["softmax"].lower()


# ----------------------------------------------------------------------------- provenance


def test_provenance_names_profile_commit_runs_and_hashes():
    table = synthetic()
    text = P.provenance(table)
    assert "profile smoke" in text and "abc1234" in text
    assert "4 runs" in text and "image, seed 1919:" in text
    for run_id, config_hash in table[["run_id", "config_hash"]].drop_duplicates().values:
        short = run_id.removeprefix("image-").removesuffix("-s1919")
        assert f"{short} [{config_hash[:8]}]" in text
    fig = P.bin_bars(table)
    assert any(text.split(" · ")[0] in t.get_text() for t in fig.texts)
    headline = "Image: share of |λ| per bin and model, after training"  # task, what, stage
    bare = P.bin_bars(table, caption=False)
    assert not bare.texts and bare.legends[0].get_title().get_text() == headline
    assert P.bin_bars(table, caption="hello").texts[-1].get_text() == "hello"


def test_a_long_caption_grows_the_figure_and_leaves_the_panels_their_height():
    """A caption naming many runs (every seed of a grid) takes many lines: the figure grows by
    them instead of squeezing its panels."""

    def panel_height(caption: str | None) -> tuple[float, float]:
        fig, (ax,) = P.common._panels(1, height=2.2)
        ax.plot([0, 1], [0, 1])
        if caption is not None:
            P.add_provenance(fig, caption)
        fig.canvas.draw()
        height = ax.get_position().height * fig.get_figheight()  # inches
        plt.close(fig)
        return height, fig.get_figheight()

    bare, bare_figure = panel_height(None)
    long, long_figure = panel_height(" ".join(f"run-{i} [0123abcd]" for i in range(200)))
    assert long_figure > bare_figure + 0.5  # several lines of caption
    assert long == pytest.approx(bare, rel=0.05)


# ----------------------------------------------------------------------------- data loaders


def test_load_values_keeps_only_defined_unpadded_steps(tmp_path):
    values = torch.arange(1, 2 * 5 * 2 + 1, dtype=torch.float32).reshape(2, 5, 2) / 100
    values[:, 0] = 999.0  # placeholder before start
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False  # two pad steps in the second example
    values[1, 3:] = 555.0
    modes = torch.polar(torch.tensor([0.5, 0.95, 2.0]), torch.deg2rad(torch.tensor([0, 30, -90.0])))
    spectra = [
        LayerSpectrum(0, "softmax", Transition(values, start=1), mask),
        LayerSpectrum(1, "s4d", Transition(modes, group="channel_mode"), mask),
    ]
    run = RunDir(tmp_path)
    run.save(
        "spectra/step_0000004.pt", {"step": 4, "stage": "final", "exact": spectra_record(spectra)}
    )
    run.write_json("metrics.json", {"steps": 4})
    got = E.load_values(tmp_path, step="final")
    first = got[got.layer == 0]
    assert len(first) == (4 + 2) * 2
    assert not first.magnitude.isin([999.0, 555.0]).any()
    kept = torch.cat([values[0, 1:], values[1, 1:3]]).reshape(-1)
    assert sorted(first.magnitude) == pytest.approx(sorted(kept.double().tolist()))
    assert sorted(first["head"].unique()) == [0, 1]
    second = got[got.layer == 1]
    assert second.magnitude.tolist() == pytest.approx([0.5, 0.95, 2.0], rel=1e-6)
    assert second.phase.tolist() == pytest.approx([0.0, 30.0, -90.0], abs=1e-4)
    assert E.load_values(tmp_path, step=4).equals(got)


@pytest.fixture(scope="module")
def run_index(tmp_path_factory):
    """Two tiny run folders written by the real recording code, and their index."""
    root = tmp_path_factory.mktemp("runs")
    x = torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[2, 6:] = False
    rows = []
    for mixer in ("softmax", "s4d"):
        ident = identity(mixer, mixer, "", task="mqar")
        run = RunDir(root / "smoke" / ident["run_id"])
        for step, stage in ((0, "init"), (5, "final")):
            record_spectra(run, tiny(mixer), {"input_ids": x, "mask": mask}, step, stage, True)
        summaries = sorted(run.file("spectra").glob("summary_*.csv"))
        tables = [pd.read_csv(p, keep_default_na=False) for p in summaries]
        pd.concat(tables).to_csv(run.file("spectra.csv"), index=False)
        history = [{"step": s, "val_accuracy": s / 10, "train_loss": 1.0} for s in (1, 5)]
        run.file("history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
        run.write_json("metrics.json", {"steps": 5, "test_accuracy": 0.5})
        rows.append({**ident, "mixer": mixer, "test_accuracy": 0.5, "path": str(run.path)})
    path = root / "smoke" / "index.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return E.read_index(path)  # as the chapters read it back: the main grid's variant ""


def test_load_spectra_joins_the_run_identity(run_index):
    spectra = E.load_spectra(run_index)
    assert set(E.RUN_COLUMNS) <= set(spectra.columns)
    assert set(spectra.run_id) == set(run_index.run_id)
    assert (spectra.variant == "").all()
    assert {"all", "0", "1"} <= set(spectra["head"])  # heads stay strings
    assert set(spectra.stage) == {"init", "final"}
    fig = P.bin_bars(spectra[spectra.task == "mqar"])
    assert len(fig.axes) == 2
    assert "mqar, seed 1919: s4d" in fig.texts[-1].get_text().replace("\n", " ")


def test_load_histories_and_learning_curves_in_model_colours(run_index):
    histories = E.load_histories(run_index)
    assert len(histories) == 4 and set(E.RUN_COLUMNS) <= set(histories.columns)
    fig = P.learning_curves(histories)
    (ax,) = fig.axes
    assert ax.get_title() == "MQAR"
    colours = {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()}
    assert colours == {
        "Softmax attn.": S.MODEL_COLORS["softmax"].lower(),
        "S4D": S.MODEL_COLORS["s4d"].lower(),
        # the task's strongest trivial predictor (a guess among the 4 values) and strongest
        # shallow predictor in grey
        P.results.REFERENCE_LABELS["trivial"]: to_hex("0.45"),
        P.results.REFERENCE_LABELS["shallow"]: to_hex("0.45"),
    }
    (guess,) = [
        line for line in ax.get_lines() if line.get_label() == P.results.REFERENCE_LABELS["trivial"]
    ]
    assert guess.get_ydata()[0] == pytest.approx(0.25)


def test_magnitude_distribution_from_a_run_folder(run_index):
    path = run_index.path.iloc[0]
    values = E.load_values(path)
    fig = P.magnitude_distribution(values)
    assert len(fig.axes) == 2  # one panel per layer
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if line.get_label() == "Softmax attn."]
    assert len(curves) == 1 and to_hex(curves[0].get_color()) == S.MODEL_COLORS["softmax"].lower()
    edges = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert edges == list(MAGNITUDE_EDGES)
    assert ax.get_xscale() == "log"


def test_correlation_plot(run_index):
    spectra = E.load_spectra(run_index)
    near1 = spectra[
        (spectra.stage == "final")
        & (spectra.analysis == "exact")
        & (spectra["head"] == "all")
        & (spectra.bin == "(0.9,1]")
    ]
    mass = near1.groupby(["run_id", "mixer", "task"], as_index=False)["mean"].mean()
    df = mass.rename(columns={"mean": "mass"}).merge(
        run_index[["run_id", "test_accuracy"]], on="run_id"
    )
    df = pd.concat([df, df.assign(mass=df.mass + 0.1, test_accuracy=df.test_accuracy + 0.1)])
    fig = P.correlation_plot(df, "mass", "test_accuracy", n_boot=200)
    (ax,) = fig.axes
    rho = st.spearman(df["mass"], df["test_accuracy"])[0]
    assert f"ρ = {rho:.2f}" in ax.get_title()
    points = {to_hex(c.get_facecolor()[0]) for c in ax.collections}
    assert points == {S.MODEL_COLORS["softmax"].lower(), S.MODEL_COLORS["s4d"].lower()}


# ----------------------------------------------------------------------------- statistics


def test_spearman_matches_a_hand_computed_example():
    # ranks of y: 1, 2, 3.5, 5, 3.5; centred: x -2 -1 0 1 2, y -2 -1 .5 2 .5
    # ρ = Σ dx·dy / √(Σdx² Σdy²) = 8 / √(10 · 9.5)
    assert st.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])[0] == pytest.approx(8 / np.sqrt(95))
    assert st.spearman([1, 2, 3], [3, 2, 1])[0] == pytest.approx(-1.0)
    assert st.spearman([1, 2, 3], [4, 4, 4]) is None


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(scale=1.0, size=40)
    rho, lo, hi = st.rho_interval(x, y, n_resamples=500, seed=1)
    assert lo < rho < hi and 0 < lo and hi < 1
    assert st.rho_interval(x, y, n_resamples=500, seed=1) == (rho, lo, hi)  # seeded
    assert st.rho_interval(x, np.exp(x), n_resamples=50)[1:] == pytest.approx((1.0, 1.0))
    seeds = np.repeat(np.arange(8), 5)  # 8 clusters of 5 runs: a wider interval
    _, c_lo, c_hi = st.rho_interval(x, y, seeds, n_resamples=500, seed=1)
    assert c_lo < rho < c_hi and (c_lo, c_hi) != (lo, hi)


# ----------------------------------------------------------------------------- didactic


def test_impulse_response_colours_each_eigenvalue_by_its_bin():
    fig = P.impulse_response(lams=(0.05, 1.0, 1.5), steps=10)
    left, right = fig.axes
    lines = left.get_lines()
    assert lines[1].get_ydata() == pytest.approx(np.ones(11))
    assert lines[2].get_ydata() == pytest.approx(1.5 ** np.arange(11))
    colours = [to_hex(line.get_color()) for line in lines]
    bins = ["[0,0.1]", "(0.9,1]", "(1,10]"]  # |λ| = 1 remembers (right-closed bins)
    assert colours == [S.BIN_COLORS["magnitude"][b] for b in bins]
    assert len(right.get_lines()) == 3 + 1  # three phases and the envelope


def test_telescoping_products_equal_the_normaliser_ratio():
    eta = np.array([1.0, 3.0, 2.0, 8.0])
    fig = P.telescoping(eta)
    image = np.ma.filled(fig.axes[1].images[0].get_array().astype(float), np.nan)
    expected = np.log10(eta[None, :] / eta[:, None])  # [i, j] = log10 η_j/η_i
    lower = np.tril_indices(4)
    assert image[lower] == pytest.approx(expected[lower])
    assert np.isnan(image[np.triu_indices(4, 1)]).all()  # j > i: no product
    steps = fig.axes[0].collections[0].get_offsets()
    assert np.asarray(steps)[:, 1] == pytest.approx(eta[:-1] / eta[1:])

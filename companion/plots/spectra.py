"""The figures of spectra: stacked and grouped bins per model and layer, before against after
training, exact against published, during training, every head, the whole distribution."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from companion import style as S
from companion.plots.common import (
    PLAIN,
    _close_bins,
    _finish,
    _headline,
    _line_legend,
    _matrix,
    _paint,
    _panels,
    _pooled,
    _select,
    _stacked,
)
from companion.spectra import (
    MAGNITUDE_BINS,
    MAGNITUDE_EDGES,
)


def bin_bars(
    table: pd.DataFrame,
    stage: str = "final",
    analysis: str = "exact",
    kind: str = "magnitude",
    caption: bool | str = True,
) -> Figure:
    """The paper's plot form: one panel per layer, one group of bars per model, one bar per bin
    (share of ``|λ|``, mean ± std over the analysis batch; seeds of one model pooled)."""
    table = S.labelled(_select(table, stage, analysis, kind))
    stats = _pooled(table, ["layer", "label"])
    labels = S.labels(table)
    bins = S.BINS[kind]
    layers = sorted(table["layer"].unique())
    fig, axes = _panels(len(layers), height=2.4, sharey=True)
    width = 0.85 / len(bins)
    for ax, layer in zip(axes, layers, strict=True):
        for b, name in enumerate(bins):
            s = stats.loc[layer].reindex([(lab, name) for lab in labels])
            x = np.arange(len(labels)) - 0.425 + (b + 0.5) * width
            ax.bar(
                x,
                s["mean"],
                width,
                yerr=s["std"],
                color=S.BIN_COLORS[kind][name],
                error_kw=dict(lw=0.6, ecolor="0.45", capsize=0),
            )
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
        ax.tick_params(axis="x", labelsize=7)
        _paint(ax.get_xticklabels(), S.label_colors(table))
        ax.set_title(f"layer {layer + 1}")
        ax.grid(False, axis="x")
    axes[0].set_ylabel(S.SHARE[kind])
    return _close_bins(
        fig,
        table,
        f"{S.SHARE[kind]} per bin and model, {S.STAGE_WORDS.get(stage, stage)}",
        kind,
        caption,
    )


def bin_grid(
    table: pd.DataFrame,
    stage: str = "final",
    analysis: str = "exact",
    kind: str = "magnitude",
    compare_init: bool = False,
    caption: bool | str = True,
) -> Figure:
    """Spectra of a task at a glance: one stacked bar of the bins per model × layer (mean share
    over the batch); with ``compare_init`` the initial spectra in a panel on the left."""
    stages = ["init", stage] if compare_init else [stage]
    frames = [S.labelled(_select(table, s, analysis, kind)) for s in stages]
    n_rows = len(frames[-1][["label", "layer"]].drop_duplicates())
    # 0.16 in per bar, and 1 in for the panel's title and axis (with less, a one-layer model's
    # labels overlapped its neighbour's)
    fig, axes = _panels(len(stages), ncols=2, height=0.16 * n_rows + 1.0, sharey=True)
    for ax, s, frame in zip(axes, stages, frames, strict=True):
        shares = _pooled(frame, ["label", "layer"])["mean"].unstack("bin")
        shares.index = shares.index.set_levels(
            [f"L{layer + 1}" for layer in shares.index.levels[1]], level=1
        )
        _stacked(ax, shares, kind, S.label_colors(frame))
        ax.set_title(S.STAGE_WORDS.get(s, s))
        ax.set_xlabel(S.SHARE[kind])
    return _close_bins(
        fig, frames[-1], "bins of every model and layer", kind, caption, pd.concat(frames)
    )


def _heatmap(ax, matrix: pd.DataFrame, diverging: bool) -> None:
    """Heat map of a label × bin matrix of shares, annotated in percent (``·``: below 0.5 %).
    Diverging ones (changes) are centred on 0 and saturate no earlier than ±20 points."""
    percent = 100 * matrix
    rounded = percent.round().fillna(0).astype(int)
    text = rounded.map(lambda v: "·" if v == 0 else f"{v:+d}" if diverging else f"{v:d}")
    limit = float(np.nanmax(np.abs(percent.to_numpy())))
    style = (
        dict(cmap="BrBG", center=0.0, vmin=-max(limit, 20.0), vmax=max(limit, 20.0))
        if diverging
        else dict(cmap="Greys", vmin=0.0, vmax=max(limit, 100.0))
    )
    with warnings.catch_warnings():  # seaborn 0.13 calls Colormap.set_bad, deprecated upstream
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(
            percent,
            ax=ax,
            annot=text,
            fmt="",
            annot_kws={"fontsize": 7.5},
            cbar=False,
            linewidths=0.5,
            **style,
        )
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", labelrotation=40, labelsize=7)
    ax.tick_params(axis="y", labelsize=7)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")


def init_vs_final(
    table: pd.DataFrame,
    analysis: str = "exact",
    kind: str = "magnitude",
    by_layer: bool = False,
    caption: bool | str = True,
) -> Figure:
    """Where training moved the spectrum: per model (and layer), the final share of each bin
    minus the share at initialisation, in percentage points (green: gained, brown: lost)."""
    init, final = (
        _matrix(_select(table, s, analysis, kind), kind, by_layer) for s in ("init", "final")
    )
    delta = final - init
    fig, (ax,) = _panels(1, height=0.28 * len(delta) + 0.9)
    fig.set_figwidth(0.75 * S.PAGE_WIDTH)
    _heatmap(ax, delta, diverging=True)
    ax.set_title(f"{S.SHARE[kind]} per bin (points): after training − at initialisation")
    _headline(fig, table, "where training moved the eigenvalues")
    return _finish(fig, _select(table, None, analysis, kind), caption)


def exact_vs_published(
    table: pd.DataFrame,
    stage: str = "final",
    kind: str = "magnitude",
    by_layer: bool = False,
    caption: bool | str = True,
) -> Figure:
    """The same runs through the exact and the published analysis: share per bin (percent) for
    each, and their difference in points (published − exact). Published shares can sum above
    100 % (values on an edge count twice)."""
    exact, published = (
        _matrix(_select(table, stage, a, kind), kind, by_layer) for a in ("exact", "published")
    )
    fig, axes = _panels(3, height=0.28 * len(exact) + 1.0, sharey=True)
    panels = [
        (exact, "exact (%)", False),
        (published, "published (%)", False),
        (published - exact, "published − exact", True),
    ]
    for ax, (matrix, title, diverging) in zip(axes, panels, strict=True):
        _heatmap(ax, matrix, diverging)
        ax.set_title(title)
    _headline(fig, table, f"exact and published analysis, {S.STAGE_WORDS.get(stage, stage)}")
    return _finish(fig, _select(table, stage, None, kind), caption)


def spectra_over_training(
    table: pd.DataFrame, run: str | None = None, kind: str = "magnitude", caption: bool | str = True
) -> Figure:
    """How the spectrum of one run moves while it trains: share of each bin (stacked, canonical
    order from the bottom) against the training step, one panel per layer (exact analysis)."""
    rows = _select(table, None, "exact", kind)
    if run is not None:
        rows = rows[rows["run_id"] == run]
    elif "run_id" in rows and rows["run_id"].nunique() > 1:
        raise ValueError(f"the table holds {rows['run_id'].nunique()} runs; choose one with run=")
    rows = S.labelled(rows)
    layers = sorted(rows["layer"].unique())
    fig, axes = _panels(len(layers), height=2.0, sharey=True)
    for ax, layer in zip(axes, layers, strict=True):
        shares = rows[rows["layer"] == layer].pivot_table("mean", "step", "bin")
        shares = shares.reindex(columns=list(S.BINS[kind])).fillna(0.0)
        ax.stackplot(
            shares.index, shares.T.to_numpy(), colors=list(S.BIN_COLORS[kind].values()), linewidth=0
        )
        ax.plot(shares.index, np.zeros(len(shares)), "|", color="0.2", ms=6, clip_on=False)
        ax.set_title(f"layer {layer + 1}")  # the headline names the task and the model
        ax.set_xlabel("training step")
        ax.margins(x=0, y=0)
    axes[0].set_ylabel(S.SHARE[kind])
    return _close_bins(fig, rows, f"bins of {rows['label'].iloc[0]} while it trains", kind, caption)


def all_heads(
    table: pd.DataFrame,
    stage: str = "final",
    analysis: str = "exact",
    kind: str = "magnitude",
    caption: bool | str = True,
) -> Figure:
    """Every head (group) of every layer, not only the pooled spectrum: one stacked bar of the
    bins per (layer, head), one panel per model. Time-invariant layers have one spectrum."""
    rows = S.labelled(_select(table, stage, analysis, kind, head=None))
    labels = S.labels(rows)
    n_rows = rows.drop_duplicates(["label", "layer", "head"]).groupby("label", observed=True).size()
    fig, axes = _panels(len(labels), ncols=2, height=0.16 * n_rows.max() + 0.5)
    for ax, label in zip(axes, labels, strict=True):
        frame = rows[rows.label == label]
        shares = _pooled(frame, ["layer", "head"])["mean"].unstack("bin")
        order = sorted(shares.index, key=lambda lh: (lh[0], -1 if lh[1] == "all" else int(lh[1])))
        shares = shares.loc[order]
        shares.index = pd.MultiIndex.from_tuples(
            [(f"L{layer + 1}", h if h == "all" else f"h{int(h) + 1}") for layer, h in order]
        )
        _stacked(ax, shares, kind)
        ax.set_title(label, color=S.label_colors(frame)[label])
    return _close_bins(
        fig, rows, f"every head of every layer, {S.STAGE_WORDS.get(stage, stage)}", kind, caption
    )


def magnitude_distribution(
    values: pd.DataFrame,
    hue: str = "mixer",
    panel: str = "layer",
    floor: float = 1e-12,
    caption: bool | str = True,
) -> Figure:
    """The whole distribution of ``|λ|`` behind the bins: empirical CDF on a log axis, one panel
    per ``panel`` value, one line per ``hue`` value (models in their colours), the 7 bins shaded
    in their colours with their edges. ``values``: :func:`load_values` rows, possibly of several
    runs with extra columns; values below ``floor`` are drawn at ``floor``. The axis spans
    the middle 99 % of all values (and every bin edge), so that a few extreme eigenvalues of
    one model do not squeeze the others into a line; the tails leave the frame."""
    keys = sorted(values[panel].unique())
    fig, axes = _panels(len(keys), height=2.2, sharey=True)
    hues = sorted(values[hue].unique(), key=S.model_key)
    palette = dict(zip(hues, sns.color_palette("colorblind", len(hues)), strict=True))
    x = np.clip(values["magnitude"].to_numpy(), floor, None)
    low, high = np.quantile(x, [0.005, 0.995])
    lo, hi = min(low / 2, 0.05), max(high * 2, 200.0)  # every bin edge in view
    edges = [lo, *MAGNITUDE_EDGES, hi]
    for ax, key in zip(axes, keys, strict=True):
        for b, name in enumerate(MAGNITUDE_BINS):
            ax.axvspan(
                edges[b], edges[b + 1], color=S.BIN_COLORS["magnitude"][name], alpha=0.18, lw=0
            )
        for edge in MAGNITUDE_EDGES:
            ax.axvline(edge, color="0.5", lw=0.5, ls="--")
        for h in hues:
            sel = (values[panel] == key).to_numpy() & (values[hue] == h).to_numpy()
            if sel.any():
                q = np.linspace(0, 1, 1001)
                ax.step(
                    np.quantile(x[sel], q),
                    q,
                    where="post",
                    lw=1.4,
                    color=S.MODEL_COLORS.get(h, palette[h]),
                    label=S.name(h),
                )
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_formatter(PLAIN)
        ax.set_title(f"{panel} {key + 1}" if panel == "layer" else str(key))
        ax.set_xlabel("|λ|")
    axes[0].set_ylabel("fraction ≤ |λ|")
    _headline(fig, values, "distribution of |λ| after training, every model")
    _line_legend(fig, axes, [S.name(h) for h in hues])
    return _finish(fig, values, caption)

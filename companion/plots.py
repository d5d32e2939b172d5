"""The figures of the book. Their names, colours and marks come from :mod:`companion.style`
(call ``style.use_style()`` once per notebook); their tables from :mod:`companion.evidence`:
``load_spectra`` (every run's ``spectra.csv`` with the run's identity, the long table most
figures take), ``load_histories`` (the learning curves) and ``load_values`` (the raw
eigenvalues of one step). Conventions every figure keeps:

* bars, areas and legends list the bins in canonical order, in their colours;
* a model keeps its colour in every figure, and a run is named by ``style.run_label``;
* figures are ``style.PAGE_WIDTH`` inches wide and carry their provenance (profile, commit, run
  ids and config hashes) in small print at the bottom (:func:`provenance`,
  :func:`add_provenance`).
"""

from __future__ import annotations

import math
import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from companion import baselines
from companion import style as S
from companion.evidence import BAND_LIMITS, RUN_COLUMNS
from companion.report import profile_of, task_baselines
from companion.spectra import (
    FACTORS,
    MAGNITUDE_BINS,
    MAGNITUDE_EDGES,
    PHASE_BINS,
    PHASE_EDGES,
    bin_index,
)
from companion.statistics import rho_interval
from companion.tasks import metric as task_metric

# ----------------------------------------------------------------------------- labels, provenance

PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # log axes read 0.1, 1, 10 instead of 10^k


def _paint(texts, colors: dict) -> None:
    """Colour tick labels that name a run with its model's colour."""
    for text in texts:
        text.set_color(colors.get(text.get_text(), "0.15"))


def provenance(runs: pd.DataFrame, regenerate: str | None = None) -> str:
    """One compact line naming where the numbers come from: profile(s), commit(s) and every run
    with the first 8 digits of its config hash, grouped by task and seed: the run
    ``image-linear-gate-s1919`` appears as ``linear-gate`` under ``image, seed 1919``; last,
    the command that regenerates the figure (``regenerate``; default ``make reproduce`` at the
    runs' profile). ``runs``: any table with the ``RUN_COLUMNS`` of the index."""
    runs = runs.drop_duplicates("run_id").sort_values(["task", "seed", "run_id"])
    profiles = ", ".join(sorted(map(str, runs["profile"].unique())))
    commits = ", ".join(sorted(map(str, runs["commit"].unique())))
    groups = "; ".join(
        f"{task}, seed {seed}: "
        + ", ".join(
            f"{r.removeprefix(f'{task}-').removesuffix(f'-s{seed}')} [{str(h)[:8]}]"
            for r, h in zip(group["run_id"], group["config_hash"], strict=True)
        )
        for (task, seed), group in runs.groupby(["task", "seed"], sort=False)
    )
    n = len(runs)
    regenerate = regenerate or f"make reproduce PROFILE={profiles.split(', ')[0]}"
    return (
        f"profile {profiles} · commit {commits} · {n} run{'s' * (n != 1)} [config]: {groups}"
        f" · regenerate: {regenerate}"
    )


def show(fig: Figure) -> None:
    """Display ``fig`` here and close it. A notebook's inline figures are otherwise shown only
    when its cell ends, so in a loop that displays a heading and draws a figure per task every
    heading would come first and every figure after them."""
    display(fig)
    plt.close(fig)


def per_task(table: pd.DataFrame, tasks, figure) -> None:
    """For each of ``tasks`` with rows in ``table``, in that order: the task's name as a
    heading, then ``figure(rows)`` (a chapter's one figure per task)."""
    for task in tasks:
        rows = table[table["task"] == task]
        if not rows.empty:
            display(Markdown(f"### {S.TASK_NAMES[task]}"))
            show(figure(rows))


def add_provenance(fig: Figure, text: str, fontsize: float = 6.5) -> Figure:
    """Write ``text`` in small grey print at the bottom of ``fig``, wrapped to its width. The
    figure grows by the caption's height, so the panels keep theirs (a caption naming many runs
    takes several lines, more than a short figure could give up)."""
    width = int(fig.get_figwidth() * 72 / (0.5 * fontsize))  # characters per line, roughly
    lines = textwrap.wrap(text, width)
    caption = (len(lines) * 1.3 * fontsize + 4) / 72  # inches
    fig.set_figheight(fig.get_figheight() + caption)
    height = caption / fig.get_figheight()  # figure fraction
    fig.text(0.005, 0.003, "\n".join(lines), fontsize=fontsize, color="0.35", va="bottom")
    fig.get_layout_engine().set(rect=(0, height, 1, 1 - height))
    return fig


def _headline(fig: Figure, table: pd.DataFrame, what: str) -> None:
    """The figure's title: the task(s) it shows and ``what`` (models, measure, stage), so that
    a figure says what it is wherever it lands."""
    tasks = sorted(table["task"].unique(), key=S.task_key) if "task" in table else []
    where = ", ".join(S.name(t) for t in tasks)
    fig.suptitle(f"{where}: {what}" if where else what, fontsize=10, fontweight="bold")


def _finish(fig: Figure, table: pd.DataFrame | None, caption: bool | str) -> Figure:
    """Add the caption: ``True`` derives it from the runs in ``table``; a string is used as is."""
    if caption is True and table is not None and set(RUN_COLUMNS) <= set(table.columns):
        add_provenance(fig, provenance(table))
    elif isinstance(caption, str):
        add_provenance(fig, caption)
    return fig


# ----------------------------------------------------------------------------- data


def _select(table, stage="final", analysis="exact", kind="magnitude", head="all") -> pd.DataFrame:
    """Rows of one stage, analysis, kind and head (``None`` keeps all; absent columns are kept)."""
    keep = pd.Series(True, table.index)
    for col, value in (("stage", stage), ("analysis", analysis), ("kind", kind), ("head", head)):
        if value is not None and col in table:
            keep &= table[col].astype(str) == str(value)
    if not keep.any():
        raise ValueError(
            f"no rows with stage={stage}, analysis={analysis}, kind={kind}, head={head}"
        )
    return table[keep]


def _pooled(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and std of each bin's share per ``by``, pooling runs of one group (seeds) by the law
    of total variance: std² = mean of the runs' variances + variance of their means."""
    stats = (
        table.assign(var=table["std"] ** 2)
        .groupby([*by, "bin"], observed=True)
        .agg(
            mean=("mean", "mean"),
            within=("var", "mean"),
            between=("mean", lambda m: m.var(ddof=0)),
        )
    )
    return stats.assign(std=np.sqrt(stats.within + stats.between))[["mean", "std"]]


def _matrix(table: pd.DataFrame, kind: str, by_layer: bool) -> pd.DataFrame:
    """Share per bin (columns, canonical order) per label (rows; ``label · L<layer>`` when
    ``by_layer``), layers weighted equally."""
    shares = _pooled(S.labelled(table), ["label", "layer"])["mean"].unstack("bin")
    if by_layer:
        shares.index = [f"{label} · L{layer + 1}" for label, layer in shares.index]
    else:
        shares = shares.groupby(level="label", observed=True).mean()
    return shares.reindex(columns=list(S.BINS[kind]))


# ----------------------------------------------------------------------------- layout helpers


def _panels(n: int, ncols: int = 3, height: float = 2.2, **kw) -> tuple[Figure, list]:
    """A page-wide figure with ``n`` panels in rows of ``ncols`` (unused cells removed)."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(S.PAGE_WIDTH, height * nrows + 0.5),
        squeeze=False,
        layout="constrained",
        **kw,
    )
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, list(axes.flat[:n])


def _top_legend(fig: Figure, handles, labels=None, **kw) -> None:
    """A legend above the panels. The figure's title (:func:`_headline`) becomes the legend's
    title: placed separately, constrained layout would draw the two on top of each other."""
    title = fig._suptitle.get_text() if fig._suptitle is not None else None
    if fig._suptitle is not None:
        fig._suptitle.remove()
        fig._suptitle = None
    if labels is not None:
        kw["labels"] = labels
    legend = fig.legend(handles=handles, loc="outside upper center", fontsize=8, title=title, **kw)
    if title:
        legend.get_title().set(fontsize=10, fontweight="bold")


def _bin_legend(fig: Figure, kind: str) -> None:
    """The bins of ``kind``, in order, as one legend row above the panels, led by what they
    bin."""
    handles = [Patch(visible=False, label=f"{S.BIN_TITLE[kind]}:")]
    handles += [Patch(color=c, label=b) for b, c in S.BIN_COLORS[kind].items()]
    _top_legend(fig, handles, ncol=len(handles), handlelength=1.2, columnspacing=1.0)


def _close_bins(
    fig: Figure,
    table: pd.DataFrame,
    what: str,
    kind: str,
    caption: bool | str,
    runs: pd.DataFrame | None = None,
) -> Figure:
    """Finish a figure of bin shares: its headline (``what``), the legend of the bins of
    ``kind`` above the panels, and the caption of ``runs`` (default: ``table``'s runs)."""
    _headline(fig, table, what)
    _bin_legend(fig, kind)
    return _finish(fig, table if runs is None else runs, caption)


def _line_legend(fig: Figure, axes: list, order: list[str]) -> None:
    """One legend above the panels with one entry per line label of any panel, in ``order``."""
    handles = {line.get_label(): line for ax in axes for line in ax.get_lines()}
    labels = [lab for lab in order if lab in handles]
    _top_legend(fig, [handles[lab] for lab in labels], labels, ncol=min(4, len(labels)))


def _stacked(ax, shares: pd.DataFrame, kind: str, colors: dict | None = None) -> None:
    """Stacked horizontal bars, one per row of ``shares`` (index ``(group, row)``, columns the
    bins in order); groups are separated by a gap and named on the left (in ``colors``), rows
    beside them."""
    groups = shares.index.get_level_values(0)
    new_group = np.r_[False, groups[1:] != groups[:-1]]
    y = np.arange(len(shares)) + 0.6 * np.cumsum(new_group)
    left = np.zeros(len(shares))
    for b in S.BINS[kind]:
        width = shares[b].fillna(0.0).to_numpy()
        ax.barh(y, width, left=left, height=0.85, color=S.BIN_COLORS[kind][b], linewidth=0)
        left += width
    ax.yaxis.remove_overlapping_locs = False  # a row may sit at its group's centre
    ax.set_yticks(y, shares.index.get_level_values(1), minor=True)
    centres = pd.Series(y).groupby(np.cumsum(new_group)).mean()
    ax.set_yticks(centres, list(dict.fromkeys(groups)))
    ax.tick_params(axis="y", which="minor", labelsize=6)
    ax.tick_params(axis="y", which="major", pad=22, length=0)
    _paint(ax.get_yticklabels(), colors or {})
    ax.set_ylim(y.max() + 0.6, -0.6)
    ax.set_xlim(0, max(1.0, left.max()))
    ax.grid(False, axis="y")


# ----------------------------------------------------------------------------- spectra figures


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


# ----------------------------------------------------------------------------- memory, didactic


def impulse_response(
    lams: tuple[float, ...] = (0.05, 0.3, 0.7, 0.97, 1.0, 1.1, 1.25),
    phases: tuple[float, ...] = (5.0, 30.0, 90.0),
    radius: float = 0.95,
    steps: int = 40,
) -> Figure:
    """What one eigenvalue does to a state: ``h_t = λ^t`` after a unit input at ``t = 0``.
    Left: ``|h_t|`` for real ``λ`` in its magnitude bin's colour (dashed when a bin repeats):
    below 1 it decays, at 1 it stays, above 1 it grows. Right: ``Re h_t`` for
    ``λ = radius·e^{iθ}``: the phase makes the memory oscillate (phase bin colours)."""
    t = np.arange(steps + 1)
    fig, (left, right) = _panels(2, ncols=2, height=2.6)
    mag_bins = bin_index(torch.tensor(lams, dtype=torch.float64), MAGNITUDE_EDGES).tolist()
    for i, (lam, b) in enumerate(zip(lams, mag_bins, strict=True)):
        name = MAGNITUDE_BINS[b]
        left.plot(
            t,
            np.abs(lam) ** t,
            color=S.BIN_COLORS["magnitude"][name],
            ls="--" if b in mag_bins[:i] else "-",
            lw=1.5,
            label=f"λ = {lam:g}  {name}",
        )
    left.set_yscale("log")
    left.set_ylim(1e-4, 1e5)
    left.set(
        xlabel="steps after the input", ylabel=r"$|h_t|$", title="magnitude: forget, keep, grow"
    )
    left.legend(fontsize=7.5, loc="upper left", ncol=2)
    phase_bins = bin_index(torch.tensor(phases, dtype=torch.float64), PHASE_EDGES).tolist()
    for theta, b in zip(phases, phase_bins, strict=True):
        lam = radius * np.exp(1j * np.deg2rad(theta))
        right.plot(
            t,
            (lam**t).real,
            color=S.BIN_COLORS["phase"][PHASE_BINS[b]],
            lw=1.5,
            label=rf"$\lambda = {radius:g}\,e^{{i\,{theta:g}°}}$  {PHASE_BINS[b]}",
        )
    right.plot(t, radius**t, color="0.4", lw=0.8, ls="--", label=rf"envelope ${radius:g}^t$")
    right.set(
        xlabel="steps after the input",
        ylabel=r"$\mathrm{Re}\,h_t$",
        title="phase: memory oscillates",
    )
    right.set_ylim(-1.05, 1.6)
    right.legend(fontsize=7.5, loc="upper right", ncol=2)
    return fig


def softmax_normalizer(steps: int = 24, d: int = 8, seed: int = 0) -> np.ndarray:
    """``η_i = Σ_{j≤i} exp(q_i·k_j/√d)`` of one softmax head on random queries and keys."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, steps, d))
    scores = np.where(np.tri(steps, dtype=bool), q @ k.T / np.sqrt(d), -np.inf)
    return np.exp(scores).sum(1)


def telescoping(eta: np.ndarray | None = None) -> Figure:
    """Attention as a recurrence: ``Λ_i = η_{i-1}/η_i`` (left, coloured by magnitude bin) and the
    products ``Π_{k=j+1..i} Λ_k`` built from them (right, log10), which equal ``η_j/η_i``: the
    weight that the state at step ``i`` still gives to step ``j``. ``eta``: normalisers
    ``η_1..η_L`` (default: :func:`softmax_normalizer`)."""
    eta = softmax_normalizer() if eta is None else np.asarray(eta, dtype=np.float64)
    lam = eta[:-1] / eta[1:]  # Λ_2..Λ_L
    log_c = np.r_[0.0, np.cumsum(np.log(lam))]  # log Π_{k=2..i} Λ_k
    products = np.exp(log_c[:, None] - log_c[None, :])  # [i, j] = Π_{k=j+1..i} Λ_k
    products[np.triu_indices(len(eta), 1)] = np.nan
    exact = eta[None, :] / eta[:, None]
    error = np.nanmax(np.abs(products / exact - 1))
    fig, (left, right) = _panels(2, ncols=2, height=2.6)
    i = np.arange(2, len(eta) + 1)
    colors = [
        S.BIN_COLORS["magnitude"][MAGNITUDE_BINS[b]]
        for b in bin_index(torch.from_numpy(lam), MAGNITUDE_EDGES).tolist()
    ]
    left.axhline(1.0, color="0.5", lw=0.6, ls="--")
    left.scatter(i, lam, c=colors, s=18, edgecolors="0.2", linewidths=0.3, zorder=3)
    left.set(
        xlabel="step i", ylabel=r"$\Lambda_i = \eta_{i-1}/\eta_i$", title="one eigenvalue per step"
    )
    image = right.imshow(
        np.log10(products),
        cmap="mako",
        origin="upper",
        extent=(0.5, len(eta) + 0.5, len(eta) + 0.5, 0.5),
    )
    fig.colorbar(image, ax=right, label=r"$\log_{10}\, \Pi_{k=j+1}^{i} \Lambda_k$")
    right.set(
        xlabel="input step j",
        ylabel="state step i",
        title=rf"$\Pi_{{k=j+1}}^{{i}} \Lambda_k = \eta_j/\eta_i$ (max. rel. error {error:.0e})",
    )
    right.grid(False)
    return fig


def complex_spectra(values: dict[str, np.ndarray], title: str) -> Figure:
    """Eigenvalues in the complex plane, one marker per series (``values``: name -> complex
    array), with the unit circle and the magnitude-bin circles 0.5 and 0.9; right, their
    magnitudes sorted, against the same bin edges."""
    fig, (plane, sorted_ax) = _panels(2, ncols=2, height=2.8)
    arc = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    for r in (0.5, 0.9, 1.0):
        plane.plot((r * arc).real, (r * arc).imag, color="0.6", lw=0.6, ls="-" if r == 1 else ":")
        sorted_ax.axhline(r, color="0.6", lw=0.6, ls="-" if r == 1 else ":")
    markers = ("o", "x", "+", "s")
    for (name, z), marker in zip(values.items(), markers, strict=False):
        z = np.asarray(z)
        plane.scatter(z.real, z.imag, s=12, marker=marker, lw=0.8, label=name)
        sorted_ax.plot(np.sort(np.abs(z)), marker=marker, ms=3, lw=0.6, label=name)
    plane.set(xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$", aspect="equal", title="complex plane")
    sorted_ax.set(xlabel="mode (sorted)", ylabel=r"$|\lambda|$", title="magnitudes, sorted")
    plane.legend(fontsize=7.5, loc="lower left")
    fig.suptitle(title, fontsize=9)
    return fig


# ----------------------------------------------------------------------------- accuracy


def learning_curves(
    histories: pd.DataFrame, metric: str | None = None, caption: bool | str = True
) -> Figure:
    """Validation metric against training step, one panel per task, one line per run (model
    colours; ablations dashed). ``metric``: a history column (default: the task's validation
    accuracy, or perplexity for the language model, on a log axis)."""
    runs = S.labelled(histories)
    tasks = sorted(set(runs.task), key=S.task_key)
    fig, axes = _panels(len(tasks), height=2.2)
    colors = S.label_colors(runs)
    for ax, task in zip(axes, tasks, strict=True):
        column = metric or task_metric(task).column("val")
        for (label, _), run in runs[runs.task == task].groupby(["label", "run_id"], observed=True):
            ax.plot(
                run["step"],
                run[column],
                color=colors[label],
                lw=1.2,
                marker=".",
                ms=3,
                ls="--" if run["variant"].iloc[0] else "-",
                label=label,
            )
        _reference_lines(ax, task, profile_of(runs), column)
        ylabel = column.replace("val_", "validation ").replace("_", " ")
        ax.set(title=S.name(task), xlabel="training step", ylabel=ylabel)
        if column.endswith("perplexity"):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PLAIN)
            ax.yaxis.set_minor_formatter(PLAIN)
    _headline(fig, runs, "learning curves of every model")
    _line_legend(fig, axes, [*S.labels(runs), *REFERENCE_LABELS.values()])
    return _finish(fig, runs, caption)


REFERENCE_LABELS = {
    "trivial": "strongest trivial predictor (test)",
    "shallow": "strongest shallow predictor (test)",
}


def _reference_lines(ax, task: str, profile: str, column: str) -> None:
    """The task's strongest trivial predictor (dotted) and shallow predictor (dash-dotted), in
    grey, on a learning-curve panel of the task's own metric."""
    refs = task_baselines(task, profile)
    if refs is None or not column.endswith(("accuracy", "perplexity")):
        return
    for kind, style in (("trivial", ":"), ("shallow", "-.")):
        best = baselines.strongest(refs[0], kind)
        if best is not None:
            ax.axhline(
                best.value, color="0.45", ls=style, lw=1.0, zorder=0, label=REFERENCE_LABELS[kind]
            )


def correlation_plot(
    df: pd.DataFrame,
    x: str,
    y: str,
    clusters: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    caption: bool | str = True,
) -> Figure:
    """Scatter of ``y`` against ``x`` across runs (models in their colours, tasks as markers) with
    Spearman's ρ and its 95 % bootstrap interval over runs (or over ``clusters``) in the title."""
    df = S.labelled(df.dropna(subset=[x, y]))
    rho, lo, hi = rho_interval(
        df[x], df[y], None if clusters is None else df[clusters], n_boot, seed=seed
    )
    fig, (ax,) = _panels(1, height=3.0)
    fig.set_figwidth(S.PAGE_WIDTH * 0.75)
    mixers = df["mixer"] if "mixer" in df else pd.Series("", df.index)
    tasks = df["task"] if "task" in df else pd.Series("", df.index)
    for (mixer, task), group in df.groupby([mixers, tasks]):
        ax.scatter(
            group[x],
            group[y],
            color=S.MODEL_COLORS.get(mixer, "0.3"),
            marker=S.TASK_MARKERS.get(task, "o"),
            s=28,
            edgecolors="0.2",
            linewidths=0.4,
        )
    over = "runs" if clusters is None else clusters
    ax.set(xlabel=x, ylabel=y)
    ax.set_title(
        f"Spearman ρ = {rho:.2f}, 95% CI [{lo:.2f}, {hi:.2f}]\n"
        f"bootstrap over {over}, n = {len(df)} runs",
        fontsize=8,
    )
    handles = [
        Line2D([], [], ls="", marker="o", color=S.MODEL_COLORS.get(m, "0.3"), label=S.name(m))
        for m in sorted(set(mixers) - {""}, key=S.model_key)
    ]
    handles += [
        Line2D([], [], ls="", marker=S.TASK_MARKERS.get(t, "o"), color="0.4", label=S.name(t))
        for t in sorted(set(tasks) - {""}, key=S.task_key)
    ]
    ax.legend(handles=handles, fontsize=7.5, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _finish(fig, df, caption)


def summary_heatmap(summary: pd.DataFrame, caption: bool | str = True) -> Figure:
    """The book at a glance: for every task (rows) and model (columns) of the main grid, the
    share of ``|λ|`` near 0 (``[0, 0.1]``) and in the near-1 band, in percent, averaged over
    seeds; ``summary``: :func:`companion.robustness.summary` rows."""
    rows = summary[summary["variant"] == ""]
    tasks = sorted(rows["task"].unique(), key=S.task_key)
    models = sorted(rows["model"].unique(), key=S.model_key)
    fig, axes = _panels(2, ncols=2, height=0.45 * len(tasks) + 1.0)
    low, high = BAND_LIMITS
    for ax, column, title, cmap in (
        (axes[0], "near0", "share near 0, [0, 0.1] (%)", "Blues"),
        (axes[1], "near1", f"share near 1, {low:.2f}–{high:.2f} (%)", "Blues"),
    ):
        grid = rows.pivot_table(index="task", columns="model", values=column).reindex(
            index=tasks, columns=models
        )
        sns.heatmap(
            100 * grid,
            ax=ax,
            vmin=0,
            vmax=100,
            cmap=cmap,
            annot=True,
            fmt=".0f",
            cbar=False,
            annot_kws={"fontsize": 8},
            linewidths=0.5,
            linecolor="white",
        )
        ax.set_xticklabels([S.name(m) for m in models], rotation=30, ha="right")
        ax.set_yticklabels([S.name(t) for t in tasks], rotation=0)
        ax.set(title=title, xlabel="", ylabel="")
    fig.suptitle("Where the eigenvalues sit after training, every task and model", fontsize=10)
    return _finish(fig, None, caption)


# ----------------------------------------------------------------------------- the scale ladder


def ladder_figure(
    competence: pd.DataFrame, verdicts: pd.DataFrame, caption: bool | str = True
) -> Figure:
    """The scale ladder at a glance. Top, one panel per task: the test accuracy of every main
    model at each rung (the mean over seeds, a dot per seed), the strongest trivial predictor
    (dotted) and the line of the strongest shallow predictor (solid grey) of each rung's data,
    and under each rung how many experiments are competent (used their state and went beyond
    that line). Bottom: the verdict of each claim at each rung of the
    tasks it has parts on. ``competence``, ``verdicts``: :func:`companion.ladder.competence`
    and :func:`companion.ladder.verdicts`."""
    tasks = sorted(set(competence["task"]) | set(verdicts["task"]), key=S.task_key)
    fig = plt.figure(figsize=(S.PAGE_WIDTH, 6.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.25, 1.0])
    axes = top.subplots(1, max(1, len(tasks)), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=False):
        rows = competence[competence["task"] == task]
        if rows.empty:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
            ax.set(title=S.name(task), xticks=[], yticks=[])
            continue
        steps = rows.drop_duplicates("step").sort_values("step")
        for model, group in rows[rows["variant"] == ""].groupby("model", sort=False):
            group = group.sort_values("step")
            color = S.MODEL_COLORS.get(model, "0.3")
            ax.plot(
                group["step"],
                100 * group["accuracy"],
                "-o",
                color=color,
                ms=3.5,
                lw=1.3,
                label=S.name(model),
            )
            for step, accs in zip(group["step"], group["accuracies"], strict=True):
                ax.scatter(
                    [step] * len(accs), [100 * a for a in accs], s=7, color=color, alpha=0.45, lw=0
                )
        for _, r in steps.iterrows():
            span = [r["step"] - 0.35, r["step"] + 0.35]
            ax.plot(span, [100 * r["trivial_value"]] * 2, ":", color="0.25", lw=1.2)
            ax.plot(span, [100 * r["shallow_line"]] * 2, "-", color="0.55", lw=1.2)
        share = rows.groupby("step")["competent"].agg(["sum", "size"])
        ax.set_xticks(
            steps["step"],
            [
                f"{r}\n{share.loc[s, 'sum']}/{share.loc[s, 'size']} competent"
                for s, r in zip(steps["step"], steps["rung"], strict=True)
            ],
            fontsize=7,
        )
        ax.set(
            title=S.name(task),
            ylim=(0, 102),
            xlim=(-0.5, len(steps) - 0.5),
            ylabel="test accuracy (%)" if ax is axes[0] else "",
        )
    handles = [
        Line2D([], [], color=S.MODEL_COLORS.get(m, "0.3"), marker="o", ms=3.5, label=S.name(m))
        for m in S.MODEL_ORDER
        if m in set(competence["model"])
    ]
    handles += [
        Line2D([], [], ls=":", color="0.25", label="strongest trivial predictor"),
        Line2D([], [], color="0.55", label="strongest shallow predictor + margin"),
    ]
    # the title heads the legend: a subfigure's title and an "outside" legend would overlap
    legend = top.legend(
        handles=handles,
        loc="outside upper center",
        ncols=4,
        fontsize=7,
        frameon=False,
        title="The scale ladder: harder rungs of MQAR and ListOps, three seeds each",
    )
    legend.get_title().set(fontsize=10, fontweight="bold")
    ax = bottom.subplots()
    columns = [
        (t, r)
        for t in tasks
        for r in verdicts[verdicts["task"] == t].sort_values("step")["rung"].unique()
    ]
    claims_ = sorted(verdicts["claim"].unique(), key=lambda c: int(c[1:]))
    words = list(S.VERDICT_COLORS)
    grid = np.full((len(claims_), len(columns)), np.nan)
    for r in verdicts.itertuples():
        grid[claims_.index(r.claim), columns.index((r.task, r.rung))] = words.index(r.verdict)
    cmap = ListedColormap(list(S.VERDICT_COLORS.values())).with_extremes(bad="#f4f4f4")
    ax.imshow(
        np.ma.masked_invalid(grid), cmap=cmap, vmin=-0.5, vmax=len(words) - 0.5, aspect="auto"
    )
    for (i, j), code in np.ndenumerate(grid):
        text = "not read" if np.isnan(code) else words[int(code)].replace(" at this scale", "")
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=6.5,
            color="0.6" if np.isnan(code) else "black",
        )
    ax.set_xticks(range(len(columns)), [f"{S.name(t)}\n{r}" for t, r in columns], fontsize=7)
    ax.set_yticks(range(len(claims_)), claims_, fontsize=7)
    ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(claims_) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.grid(which="major", visible=False)
    ax.tick_params(which="both", length=0)
    ax.set_title(
        "verdict of each claim with the rung in place of the quick runs (exact analysis)",
        fontsize=8,
    )
    return _finish(fig, None, caption)


DIAL_PANELS = {
    "test_accuracy": ("test accuracy (%)", 100.0),
    "near0": ("share of |λ| in [0, 0.1] (%)", 100.0),
    "near1": ("share of |λ| in (0.9, 1] (%)", 100.0),
    "tau_90": ("slowest tenth: τ = −1/log|λ| (steps)", 1.0),
}


def dial_figure(
    rows: pd.DataFrame, dial: str, columns: list[str], demand: str, caption: bool | str = True
) -> Figure:
    """One dial against its demand: a panel per column of :data:`DIAL_PANELS` (accuracy, a
    share, a time constant), a line per model through the means over seeds and a dot per seed;
    on the accuracy panel, each model's no-mixing control (dashed). ``rows``:
    :func:`companion.dials.table`; ``demand``: the x-axis label."""
    rows = rows[rows["dial"] == dial]
    fig, axes = _panels(len(columns), ncols=len(columns), height=2.4)
    for ax, column in zip(axes, columns, strict=True):
        label, scale = DIAL_PANELS[column]
        for model, group in rows.groupby("model", sort=False):
            color = S.MODEL_COLORS.get(model, "0.3")
            values = group[column].replace(np.inf, np.nan) * scale
            means = values.groupby(group["demand"]).mean()
            ax.plot(means.index, means, "-o", color=color, ms=3.5, lw=1.3, label=S.name(model))
            ax.scatter(group["demand"], values, s=7, color=color, alpha=0.45, lw=0)
            if column == "test_accuracy":
                control = group.groupby("demand")["control_value"].mean() * scale
                ax.plot(control.index, control, "--", color=color, lw=0.9, alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(PLAIN)
        ax.set_title(label, fontsize=8)  # above the panel: a long label beside it overlaps
        if column == "tau_90":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PLAIN)
    handles = axes[0].get_legend_handles_labels()[0]
    handles.append(Line2D([], [], ls="--", color="0.4", label="the same network without mixing"))
    axes[len(axes) // 2].set_xlabel(demand)  # once, under the middle panel
    fig.suptitle(f"The {dial} dial: {demand}", fontsize=10, fontweight="bold")
    _top_legend(fig, handles, ncols=len(handles))
    return _finish(fig, None, caption)


def factor_figure(rows: pd.DataFrame, caption: bool | str = True) -> Figure:
    """Λ of every attention layer beside its two factors (:mod:`companion.factors`): one panel
    per task, one stacked bar of the magnitude bins per model and factor (layers weighted
    equally, seeds averaged). ``rows``: :func:`companion.factors.table`."""
    table = rows[(rows["kind"] == "magnitude") & (rows["head"].astype(str) == "all")]
    tasks = sorted(table["task"].unique(), key=S.task_key)
    order = ["Λ", *FACTORS]
    fig, axes = _panels(len(tasks), ncols=2, height=0.16 * 7 + 1.0, sharex=True)
    for ax, task in zip(axes, tasks, strict=True):
        mine = table[table["task"] == task]
        models = sorted(mine["model"].unique(), key=S.model_key)
        shares = (
            mine.groupby(["model", "factor", "bin"])["mean"]
            .mean()
            .unstack("bin")
            .reindex(pd.MultiIndex.from_product([models, order]))
        )
        shares.index = pd.MultiIndex.from_tuples([(S.name(m), f) for m, f in shares.index])
        _stacked(ax, shares, "magnitude", {S.name(m): S.MODEL_COLORS[m] for m in models})
        ax.set_title(S.name(task))
        ax.set_xlabel(S.SHARE["magnitude"])
    return _close_bins(
        fig, table, "Λ and its two factors in every attention model", "magnitude", caption
    )

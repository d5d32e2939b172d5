"""The figures and tables of the book, in one visual language.

Call :func:`use_style` once per notebook. Conventions every figure keeps:

* the 7 magnitude bins of ``spectra.MAGNITUDE_BINS`` in two ColorBrewer sequential ramps that
  meet at ``|λ| = 1``: blues that darken as memory lengthens, from pale ``[0,0.1]`` (forgets) to
  the darkest ``(0.9,1]`` (remembers), then orange to dark red for the bins that amplify; phase
  bins in viridis (purple to green). Bars, areas and legends list bins in canonical order;
* every model has a fixed colour (:data:`MODEL_COLORS`) and display name (:data:`MODEL_NAMES`),
  keyed by mixer; a run of an ablation is labelled ``"<model> · <variant>"`` (:func:`run_label`);
* figures are :data:`PAGE_WIDTH` inches wide and carry their provenance (profile, commit, run ids
  and config hashes) in small print at the bottom (:func:`provenance`, :func:`add_provenance`).

The tables come from :mod:`companion.evidence`: ``load_spectra`` (every run's ``spectra.csv``
with the run's identity, the long table most figures take), ``load_histories`` (the learning
curves) and ``load_values`` (the raw eigenvalues of one step).
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
from IPython.display import display
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from matplotlib_inline.backend_inline import set_matplotlib_formats

from companion import baselines
from companion.evidence import RUN_COLUMNS, read_index, rho_interval
from companion.spectra import MAGNITUDE_BINS, MAGNITUDE_EDGES, PHASE_BINS, PHASE_EDGES, bin_index
from companion.tasks import DataError

PAGE_WIDTH = 7.0  # inches: the text width of a book page
MODEL_ORDER = (
    "softmax",
    "linear",
    "linear_unnormalized",
    "norm",
    "s4",
    "s4d",
    "lru",
    "mamba2",
    "mamba2_lti",
)
MODEL_NAMES = {
    "softmax": "Softmax attn.",
    "linear": "Linear attn.",
    "linear_unnormalized": "Linear attn. (unnorm.)",
    "norm": "Norm attn.",
    "s4": "S4",
    "s4d": "S4D",
    "lru": "LRU",
    "mamba2": "Mamba-2",
    "mamba2_lti": "Mamba-2 (pseudo-LTI)",
}
# Colour-blind-safe hues (Okabe–Ito and Paul Tol's muted set): attention warm (wine, orange,
# purple), SSMs cool (indigo, light blue, cyan, green, teal) with distinct lightness within
# each pair that is often compared; the unnormalised integrator is the grey reference
MODEL_COLORS = {
    "softmax": "#882255",
    "linear": "#E69F00",
    "linear_unnormalized": "#7F7F7F",
    "norm": "#AA4499",
    "s4": "#332288",
    "s4d": "#6699CC",
    "lru": "#88CCEE",
    "mamba2": "#117733",
    "mamba2_lti": "#44AA99",
}
TASK_ORDER = ("listops", "text", "image", "mqar", "lm")
TASK_NAMES = {
    "listops": "ListOps",
    "text": "Text",
    "image": "Image",
    "mqar": "MQAR",
    "lm": "Language model",
}
TASK_MARKERS = {"listops": "o", "text": "s", "image": "D", "mqar": "^", "lm": "v"}
BINS = {"magnitude": MAGNITUDE_BINS, "phase": PHASE_BINS}
MAGNITUDE_COLORS = (
    "#c6dbef",  # forgets: pale, mid and deep blue of ColorBrewer's Blues, evenly spaced in
    "#6baed6",  # lightness so that the near-0 bins stay apart
    "#2171b5",
    "#08306b",  # remembers: the darkest blue of the same ramp
    *sns.color_palette("YlOrRd", 9).as_hex()[3:9:2],  # amplifies: orange to dark red
)
PHASE_COLORS = tuple(sns.color_palette("viridis", 6).as_hex()[:5])  # purple to green, no yellow
BIN_COLORS = {
    "magnitude": dict(zip(MAGNITUDE_BINS, MAGNITUDE_COLORS, strict=True)),
    "phase": dict(zip(PHASE_BINS, PHASE_COLORS, strict=True)),
}
PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # log axes read 0.1, 1, 10 instead of 10^k
BIN_TITLE = {"magnitude": "|λ| bin", "phase": "phase bin (degrees)"}
SHARE = {"magnitude": "share of |λ|", "phase": "share of phases"}


def use_style() -> None:
    """Set the book's seaborn theme: white grid, paper context, readable fonts, an opaque white
    background (legible in a dark page theme), and inline figures at twice their pixel size
    (sharp on high-density screens)."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        font_scale=1.15,
        rc={
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "legend.fontsize": 8,
            "grid.linewidth": 0.5,
        },
    )
    set_matplotlib_formats("retina")


# ----------------------------------------------------------------------------- labels, provenance


def _model_key(mixer: str) -> tuple:
    """Sort key of the book's model order; unknown mixers last, alphabetically."""
    return (MODEL_ORDER.index(mixer) if mixer in MODEL_ORDER else len(MODEL_ORDER), str(mixer))


def _task_key(task: str) -> tuple:
    """Sort key of the book's task order; unknown tasks last, alphabetically."""
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), str(task))


def _name(key) -> str:
    """Display name of a model (mixer) or task key; other values as they are."""
    return MODEL_NAMES.get(key) or TASK_NAMES.get(key) or str(key)


def run_label(mixer: str, variant: str = "", model: str | None = None) -> str:
    """Display name of a run: the mixer's name, with the variant unless the variant is what
    swapped the mixer (``model="mamba2", variant="lti"`` runs mixer ``mamba2_lti``)."""
    name = _name(mixer)
    return f"{name} · {variant}" if variant and model in (None, mixer) else name


def _labels(table: pd.DataFrame) -> list[str]:
    """The labels of a labelled table that have rows, in the book's order."""
    present = set(table["label"])
    return [lab for lab in table["label"].cat.categories if lab in present]


def _paint(texts, colors: dict) -> None:
    """Colour tick labels that name a run with its model's colour."""
    for text in texts:
        text.set_color(colors.get(text.get_text(), "0.15"))


def _labelled(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``label`` column (from mixer, variant and model) and labels sorted in the
    book's model order (mixer order, then variant; main-grid runs first)."""
    variants = table["variant"].fillna("") if "variant" in table else pd.Series("", table.index)
    models = table["model"] if "model" in table else pd.Series(None, table.index)
    labels = [run_label(m, v, o) for m, v, o in zip(table["mixer"], variants, models, strict=True)]
    keys = [(_model_key(m), v) for m, v in zip(table["mixer"], variants, strict=True)]
    order = [lab for _, lab in sorted(set(zip(keys, labels, strict=True)))]
    out = table.assign(label=labels)
    out["label"] = pd.Categorical(out["label"], categories=list(dict.fromkeys(order)), ordered=True)
    return out


def _label_colors(table: pd.DataFrame) -> dict[str, str]:
    """Colour of each label of a labelled table: its mixer's fixed colour."""
    pairs = table[["label", "mixer"]].drop_duplicates()
    return {
        lab: MODEL_COLORS.get(m, "0.3") for lab, m in zip(pairs.label, pairs.mixer, strict=True)
    }


def provenance(runs: pd.DataFrame) -> str:
    """One compact line naming where the numbers come from: profile(s), commit(s) and every run
    with the first 8 digits of its config hash, grouped by task and seed: the run
    ``image-linear-gate-s1919`` appears as ``linear-gate`` under ``image, seed 1919``; last,
    the command that regenerates the figure. ``runs``: any table with the ``RUN_COLUMNS`` of
    the index."""
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
    return (
        f"profile {profiles} · commit {commits} · {n} run{'s' * (n != 1)} [config]: {groups}"
        f" · regenerate: make reproduce PROFILE={profiles.split(', ')[0]}"
    )


def show(fig: Figure) -> None:
    """Display ``fig`` here and close it. A notebook's inline figures are otherwise shown only
    when its cell ends, so in a loop that displays a heading and draws a figure per task every
    heading would come first and every figure after them."""
    display(fig)
    plt.close(fig)


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


STAGE_WORDS = {"init": "at initialisation", "final": "after training"}


def _headline(fig: Figure, table: pd.DataFrame, what: str) -> None:
    """The figure's title: the task(s) it shows and ``what`` (models, measure, stage), so that
    a figure says what it is wherever it lands."""
    tasks = sorted(table["task"].unique(), key=_task_key) if "task" in table else []
    where = ", ".join(_name(t) for t in tasks)
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
    shares = _pooled(_labelled(table), ["label", "layer"])["mean"].unstack("bin")
    if by_layer:
        shares.index = [f"{label} · L{layer + 1}" for label, layer in shares.index]
    else:
        shares = shares.groupby(level="label", observed=True).mean()
    return shares.reindex(columns=list(BINS[kind]))


def spectral_mass(
    spectra: pd.DataFrame,
    bins: tuple[str, ...] = ("(0.9,1]",),
    stage: str = "final",
    analysis: str = "exact",
) -> pd.DataFrame:
    """Per run: the share of ``|λ|`` in ``bins`` (pooled over heads, mean over layers), with the
    run's identity; merge with the index to set it against accuracy."""
    rows = _select(spectra, stage, analysis)
    rows = rows[rows["bin"].isin(bins)]
    per_layer = rows.groupby(["run_id", "layer"])["mean"].sum()
    mass = per_layer.groupby("run_id").mean().rename("mass")
    ids = rows.drop_duplicates("run_id").set_index("run_id")
    columns = [c for c in (*RUN_COLUMNS, "mixer") if c in ids and c != "run_id"]
    return ids[columns].join(mass).reset_index()


# ----------------------------------------------------------------------------- layout helpers


def _panels(n: int, ncols: int = 3, height: float = 2.2, **kw) -> tuple[Figure, list]:
    """A page-wide figure with ``n`` panels in rows of ``ncols`` (unused cells removed)."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(PAGE_WIDTH, height * nrows + 0.5),
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
    handles = [Patch(visible=False, label=f"{BIN_TITLE[kind]}:")]
    handles += [Patch(color=c, label=b) for b, c in BIN_COLORS[kind].items()]
    _top_legend(fig, handles, ncol=len(handles), handlelength=1.2, columnspacing=1.0)


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
    for b in BINS[kind]:
        width = shares[b].fillna(0.0).to_numpy()
        ax.barh(y, width, left=left, height=0.85, color=BIN_COLORS[kind][b], linewidth=0)
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
    table = _labelled(_select(table, stage, analysis, kind))
    stats = _pooled(table, ["layer", "label"])
    labels = _labels(table)
    bins = BINS[kind]
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
                color=BIN_COLORS[kind][name],
                error_kw=dict(lw=0.6, ecolor="0.45", capsize=0),
            )
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
        ax.tick_params(axis="x", labelsize=7)
        _paint(ax.get_xticklabels(), _label_colors(table))
        ax.set_title(f"layer {layer + 1}")
        ax.grid(False, axis="x")
    axes[0].set_ylabel(SHARE[kind])
    _headline(fig, table, f"{SHARE[kind]} per bin and model, {STAGE_WORDS.get(stage, stage)}")
    _bin_legend(fig, kind)
    return _finish(fig, table, caption)


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
    frames = [_labelled(_select(table, s, analysis, kind)) for s in stages]
    n_rows = len(frames[-1][["label", "layer"]].drop_duplicates())
    # 0.16 in per bar, and 1 in for the panel's title and axis (with less, a one-layer model's
    # labels overlapped its neighbour's)
    fig, axes = _panels(len(stages), ncols=2, height=0.16 * n_rows + 1.0, sharey=True)
    for ax, s, frame in zip(axes, stages, frames, strict=True):
        shares = _pooled(frame, ["label", "layer"])["mean"].unstack("bin")
        shares.index = shares.index.set_levels(
            [f"L{layer + 1}" for layer in shares.index.levels[1]], level=1
        )
        _stacked(ax, shares, kind, _label_colors(frame))
        ax.set_title(STAGE_WORDS.get(s, s))
        ax.set_xlabel(SHARE[kind])
    _headline(fig, frames[-1], "bins of every model and layer")
    _bin_legend(fig, kind)
    return _finish(fig, pd.concat(frames), caption)


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
    fig.set_figwidth(0.75 * PAGE_WIDTH)
    _heatmap(ax, delta, diverging=True)
    ax.set_title(f"{SHARE[kind]} per bin (points): after training − at initialisation")
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
    _headline(fig, table, f"exact and published analysis, {STAGE_WORDS.get(stage, stage)}")
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
    rows = _labelled(rows)
    layers = sorted(rows["layer"].unique())
    fig, axes = _panels(len(layers), height=2.0, sharey=True)
    for ax, layer in zip(axes, layers, strict=True):
        shares = rows[rows["layer"] == layer].pivot_table("mean", "step", "bin")
        shares = shares.reindex(columns=list(BINS[kind])).fillna(0.0)
        ax.stackplot(
            shares.index, shares.T.to_numpy(), colors=list(BIN_COLORS[kind].values()), linewidth=0
        )
        ax.plot(shares.index, np.zeros(len(shares)), "|", color="0.2", ms=6, clip_on=False)
        ax.set_title(f"layer {layer + 1}")  # the headline names the task and the model
        ax.set_xlabel("training step")
        ax.margins(x=0, y=0)
    axes[0].set_ylabel(SHARE[kind])
    _headline(fig, rows, f"bins of {rows['label'].iloc[0]} while it trains")
    _bin_legend(fig, kind)
    return _finish(fig, rows, caption)


def all_heads(
    table: pd.DataFrame,
    stage: str = "final",
    analysis: str = "exact",
    kind: str = "magnitude",
    caption: bool | str = True,
) -> Figure:
    """Every head (group) of every layer, not only the pooled spectrum: one stacked bar of the
    bins per (layer, head), one panel per model. Time-invariant layers have one spectrum."""
    rows = _labelled(_select(table, stage, analysis, kind, head=None))
    labels = _labels(rows)
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
        ax.set_title(label, color=_label_colors(frame)[label])
    _headline(fig, rows, f"every head of every layer, {STAGE_WORDS.get(stage, stage)}")
    _bin_legend(fig, kind)
    return _finish(fig, rows, caption)


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
    hues = sorted(values[hue].unique(), key=_model_key)
    palette = dict(zip(hues, sns.color_palette("colorblind", len(hues)), strict=True))
    x = np.clip(values["magnitude"].to_numpy(), floor, None)
    low, high = np.quantile(x, [0.005, 0.995])
    lo, hi = min(low / 2, 0.05), max(high * 2, 200.0)  # every bin edge in view
    edges = [lo, *MAGNITUDE_EDGES, hi]
    for ax, key in zip(axes, keys, strict=True):
        for b, name in enumerate(MAGNITUDE_BINS):
            ax.axvspan(
                edges[b], edges[b + 1], color=BIN_COLORS["magnitude"][name], alpha=0.18, lw=0
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
                    color=MODEL_COLORS.get(h, palette[h]),
                    label=_name(h),
                )
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_formatter(PLAIN)
        ax.set_title(f"{panel} {key + 1}" if panel == "layer" else str(key))
        ax.set_xlabel("|λ|")
    axes[0].set_ylabel("fraction ≤ |λ|")
    _headline(fig, values, "distribution of |λ| after training, every model")
    _line_legend(fig, axes, [_name(h) for h in hues])
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
            color=BIN_COLORS["magnitude"][name],
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
            color=BIN_COLORS["phase"][PHASE_BINS[b]],
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
        BIN_COLORS["magnitude"][MAGNITUDE_BINS[b]]
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


def _metric(task: str) -> tuple[str, str, float]:
    """Column, unit and scale of a task's test metric."""
    return ("test_perplexity", "ppl", 1.0) if task == "lm" else ("test_accuracy", "acc. %", 100.0)


def accuracy_table(index: pd.DataFrame, variants: bool = False, digits: int = 1) -> pd.DataFrame:
    """Test metric per task (rows) and model (columns) for display: accuracy in percent or
    perplexity; with several seeds, their mean followed by every seed's value (outcomes can be
    bimodal, so a standard deviation would mislead), a seed marked † when it did not pass the
    task's competence line; ``—`` where no run exists. The last columns give the task's
    strongest trivial predictor, the competence line and the strongest shallow reference
    (:mod:`companion.baselines`). ``variants``: include the ablation runs as their own
    columns."""
    runs = _labelled(read_index(index))
    if not variants:
        runs = runs[runs["variant"] == ""]
    profile = _profile(runs)
    refs = {t: task_baselines(t, profile) for t in runs["task"].unique()}
    cells = {}
    for (task, label), group in runs.groupby(["task", "label"], observed=True):
        column, _, scale = _metric(task)
        gate = refs[task][1] if refs[task] else None

        def shown(x, scale=scale, gate=gate):
            return f"{scale * x:.{digits}f}" + ("†" if gate and not gate.passes(x) else "")

        v = group.sort_values("seed")[column].astype(float)
        mean = f"{scale * v.mean():.{digits}f}"
        cells[task, label] = (
            shown(v.iloc[0]) if len(v) == 1 else f"{mean} ({', '.join(map(shown, v))})"
        )
    table = pd.Series(cells).unstack()
    labels = [lab for lab in _labels(runs) if lab in table.columns]
    table = table.reindex(index=sorted(table.index, key=_task_key), columns=labels).fillna("—")
    table["trivial baseline"] = [_reference(t, refs[t], "trivial", digits) for t in table.index]
    table["competence line"] = [
        _value(t, refs[t][1].line, digits) if refs[t] else "—" for t in table.index
    ]
    table["shallow reference"] = [_reference(t, refs[t], "shallow", digits) for t in table.index]
    table.index = [f"{_name(t)} ({_metric(t)[1]})" for t in table.index]
    table.columns.name = None
    return table


def _profile(runs: pd.DataFrame) -> str:
    """The profile of ``runs`` (their first row's; ``quick`` for a table without one)."""
    return runs["profile"].iloc[0] if "profile" in runs and len(runs) else "quick"


def task_baselines(task: str, profile: str):
    """``(baselines, gate)`` of a task at a profile, or None when its data are not prepared
    (the baselines are read beside the data cache)."""
    try:
        return baselines.for_task(task, profile)
    except DataError:
        return None


def _value(task: str, value: float, digits: int) -> str:
    _, _, scale = _metric(task)
    return f"{scale * value:.{digits}f}"


def _reference(task: str, refs, kind: str, digits: int) -> str:
    """The strongest baseline of ``kind`` with its name, e.g. ``32.7 (majority label ...)``."""
    best = None if refs is None else baselines.strongest(refs[0], kind)
    return "—" if best is None else f"{_value(task, best.value, digits)} ({best.name})"


def learning_curves(
    histories: pd.DataFrame, metric: str | None = None, caption: bool | str = True
) -> Figure:
    """Validation metric against training step, one panel per task, one line per run (model
    colours; ablations dashed). ``metric``: a history column (default: the task's validation
    accuracy, or perplexity for the language model, on a log axis)."""
    runs = _labelled(histories.assign(variant=histories["variant"].fillna("")))
    tasks = sorted(set(runs.task), key=_task_key)
    fig, axes = _panels(len(tasks), height=2.2)
    colors = _label_colors(runs)
    for ax, task in zip(axes, tasks, strict=True):
        column = metric or ("val_perplexity" if task == "lm" else "val_accuracy")
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
        _reference_lines(ax, task, _profile(runs), column)
        ylabel = column.replace("val_", "validation ").replace("_", " ")
        ax.set(title=_name(task), xlabel="training step", ylabel=ylabel)
        if column.endswith("perplexity"):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PLAIN)
            ax.yaxis.set_minor_formatter(PLAIN)
    _headline(fig, runs, "learning curves of every model")
    _line_legend(fig, axes, [*_labels(runs), *REFERENCE_LABELS.values()])
    return _finish(fig, runs, caption)


REFERENCE_LABELS = {"trivial": "trivial baseline (test)", "shallow": "shallow reference (test)"}


def _reference_lines(ax, task: str, profile: str, column: str) -> None:
    """The task's strongest trivial predictor (dotted) and shallow reference (dash-dotted), in
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
    df = _labelled(df.dropna(subset=[x, y]))
    rho, lo, hi = rho_interval(
        df[x], df[y], None if clusters is None else df[clusters], n_boot, seed=seed
    )
    fig, (ax,) = _panels(1, height=3.0)
    fig.set_figwidth(PAGE_WIDTH * 0.75)
    mixers = df["mixer"] if "mixer" in df else pd.Series("", df.index)
    tasks = df["task"] if "task" in df else pd.Series("", df.index)
    for (mixer, task), group in df.groupby([mixers, tasks]):
        ax.scatter(
            group[x],
            group[y],
            color=MODEL_COLORS.get(mixer, "0.3"),
            marker=TASK_MARKERS.get(task, "o"),
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
        Line2D([], [], ls="", marker="o", color=MODEL_COLORS.get(m, "0.3"), label=_name(m))
        for m in sorted(set(mixers) - {""}, key=_model_key)
    ]
    handles += [
        Line2D([], [], ls="", marker=TASK_MARKERS.get(t, "o"), color="0.4", label=_name(t))
        for t in sorted(set(tasks) - {""}, key=_task_key)
    ]
    ax.legend(handles=handles, fontsize=7.5, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _finish(fig, df, caption)


def summary_heatmap(summary: pd.DataFrame, caption: bool | str = True) -> Figure:
    """The book at a glance: for every task (rows) and model (columns) of the main grid, the
    share of ``|λ|`` near 0 (``[0, 0.1]``) and in the near-1 band, in percent, averaged over
    seeds; ``summary``: :func:`companion.claims.summary` rows."""
    rows = summary[summary["variant"] == ""]
    tasks = sorted(rows["task"].unique(), key=_task_key)
    models = sorted(rows["model"].unique(), key=_model_key)
    fig, axes = _panels(2, ncols=2, height=0.45 * len(tasks) + 1.0)
    for ax, column, title, cmap in (
        (axes[0], "near0", "share near 0, [0, 0.1] (%)", "Blues"),
        (axes[1], "near1", "share near 1, 0.90–1.11 (%)", "Blues"),
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
        ax.set_xticklabels([_name(m) for m in models], rotation=30, ha="right")
        ax.set_yticklabels([_name(t) for t in tasks], rotation=0)
        ax.set(title=title, xlabel="", ylabel="")
    fig.suptitle("Where the eigenvalues sit after training, every task and model", fontsize=10)
    return _finish(fig, None, caption)


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table without its index (the notebooks display tables this
    way: they render as the book's own tables, and their text is stable for nbval)."""

    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in frame.columns) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def best_models(summary: pd.DataFrame, tasks, profile: str) -> str:
    """The main grid of ``tasks`` in words, one Markdown item per task: how many models learned
    the task (passed its competence line in at least two seeds) against its strongest trivial
    predictor and shallow reference, the highest mean with its 95 % interval (a description:
    the claims pick "the most accurate" by rank intervals, :func:`companion.claims.most_accurate`),
    where its |λ| sit, and which models put most of their mass near 1. ``summary``:
    :func:`companion.claims.summary` rows."""
    main = summary[summary["variant"] == ""]
    lines = []
    for task in tasks:
        rows = main[main["task"] == task].set_index("model")
        column = "perplexity" if task == "lm" else "accuracy"
        if rows.empty or rows[column].isna().all():
            continue
        refs = task_baselines(task, profile)
        against = ""
        if refs:
            against = (
                f" (strongest trivial predictor {_reference(task, refs, 'trivial', 1)}; "
                f"shallow reference {_reference(task, refs, 'shallow', 1)})"
            )
        learned = [m for m in rows.index if rows.loc[m, "learned"] >= 2]
        if not learned:
            lines.append(
                f"- **{_name(task)}**: no model learned the task at this profile{against}: "
                "its claims are untestable here."
            )
            continue
        metric = rows.loc[learned, column]
        best = metric.idxmin() if task == "lm" else metric.idxmax()
        b = rows.loc[best]
        if task == "lm":
            value = f"perplexity {b.perplexity:.2f}"
        else:
            value = f"{100 * b.accuracy:.1f} %, 95 % interval {100 * b.low:.1f}–{100 * b.high:.1f}"
        near1 = [_name(m) for m in learned if rows.loc[m, "near1"] > 0.5]
        lines.append(
            f"- **{_name(task)}**: {len(learned)} of {len(rows)} models learned the task"
            f"{against}. The highest mean is {_name(best)}'s ({value} over {b.seeds} "
            f"seed(s)), with {100 * b.near1:.0f} % of its |λ| in the near-1 band and "
            f"{100 * b.near0:.0f} % near 0. {len(near1)} of the {len(learned)} models that "
            "learned put most of their mass in the near-1 band"
            + (f" ({', '.join(near1)})." if near1 else ".")
        )
    return "\n".join(lines) or "No runs of these tasks at this profile."


# ----------------------------------------------------------------------------- the scale ladder

VERDICT_COLORS = {
    "holds": "#4daf4a",
    "does not hold": "#e41a1c",
    "inconclusive": "#bdbdbd",
    "untestable at this scale": "#fee8a0",
    "incomplete": "#ffffff",
}


def ladder_figure(
    competence: pd.DataFrame, verdicts: pd.DataFrame, caption: bool | str = True
) -> Figure:
    """The scale ladder at a glance. Top, one panel per task: the test accuracy of every main
    model at each rung (the mean over seeds, a dot per seed), the strongest trivial predictor
    (dotted) and the competence line (solid grey) of each rung's data, and under each rung how
    many experiments are competent. Bottom: the verdict of each claim at each rung of the
    tasks it has parts on. ``competence``, ``verdicts``: :func:`companion.ladder.competence`
    and :func:`companion.ladder.verdicts`."""
    tasks = sorted(set(competence["task"]) | set(verdicts["task"]), key=_task_key)
    fig = plt.figure(figsize=(PAGE_WIDTH, 6.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.25, 1.0])
    axes = top.subplots(1, max(1, len(tasks)), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=False):
        rows = competence[competence["task"] == task]
        if rows.empty:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
            ax.set(title=_name(task), xticks=[], yticks=[])
            continue
        steps = rows.drop_duplicates("step").sort_values("step")
        for model, group in rows[rows["variant"] == ""].groupby("model", sort=False):
            group = group.sort_values("step")
            color = MODEL_COLORS.get(model, "0.3")
            ax.plot(
                group["step"],
                100 * group["accuracy"],
                "-o",
                color=color,
                ms=3.5,
                lw=1.3,
                label=_name(model),
            )
            for step, accs in zip(group["step"], group["accuracies"], strict=True):
                ax.scatter(
                    [step] * len(accs), [100 * a for a in accs], s=7, color=color, alpha=0.45, lw=0
                )
        for _, r in steps.iterrows():
            span = [r["step"] - 0.35, r["step"] + 0.35]
            ax.plot(span, [100 * r["baseline_value"]] * 2, ":", color="0.25", lw=1.2)
            ax.plot(span, [100 * r["gate_line"]] * 2, "-", color="0.55", lw=1.2)
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
            title=_name(task),
            ylim=(0, 102),
            xlim=(-0.5, len(steps) - 0.5),
            ylabel="test accuracy (%)" if ax is axes[0] else "",
        )
    handles = [
        Line2D([], [], color=MODEL_COLORS.get(m, "0.3"), marker="o", ms=3.5, label=_name(m))
        for m in MODEL_ORDER
        if m in set(competence["model"])
    ]
    handles += [
        Line2D([], [], ls=":", color="0.25", label="strongest trivial predictor"),
        Line2D([], [], color="0.55", label="competence line"),
    ]
    top.legend(handles=handles, loc="outside upper center", ncols=4, fontsize=7, frameon=False)
    top.suptitle(
        "The scale ladder: harder rungs of MQAR and ListOps, three seeds each", fontsize=10
    )
    ax = bottom.subplots()
    columns = [
        (t, r)
        for t in tasks
        for r in verdicts[verdicts["task"] == t].sort_values("step")["rung"].unique()
    ]
    claims_ = sorted(verdicts["claim"].unique(), key=lambda c: int(c[1:]))
    words = list(VERDICT_COLORS)
    grid = np.full((len(claims_), len(columns)), np.nan)
    for r in verdicts.itertuples():
        grid[claims_.index(r.claim), columns.index((r.task, r.rung))] = words.index(r.verdict)
    cmap = ListedColormap(list(VERDICT_COLORS.values())).with_extremes(bad="#f4f4f4")
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
    ax.set_xticks(range(len(columns)), [f"{_name(t)}\n{r}" for t, r in columns], fontsize=7)
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

"""What every figure of the book shares: its provenance in small print, its panels and legends, and
the long spectra table cut to what a figure shows."""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from companion import style as S
from companion.evidence import RUN_COLUMNS

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

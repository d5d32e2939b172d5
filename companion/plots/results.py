"""The figures of results: learning curves, spectral mass against accuracy, the book at a glance,
the scale ladder, the dials, and the factors of attention's Λ."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from companion import baselines
from companion import style as S
from companion.evidence import BAND_LIMITS
from companion.plots.common import (
    PLAIN,
    _close_bins,
    _finish,
    _headline,
    _line_legend,
    _panels,
    _stacked,
    _top_legend,
)
from companion.report import profile_of, task_baselines
from companion.spectra import (
    FACTORS,
)
from companion.statistics import rho_interval
from companion.tasks import metric as task_metric


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

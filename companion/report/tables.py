"""The book's tables: Markdown as the pages print it, the accuracy of every model against its task's
baselines and lines, the best models in sentences, and who used their state.
"""

from __future__ import annotations

import math

import pandas as pd

from companion import baselines
from companion import evidence as ev
from companion import style as S
from companion.decision import MIN_LEARNED, metric_words
from companion.evidence import run_gates
from companion.grid import CONTROL
from companion.tasks import DataError, metric


def cell(value) -> str:
    """``value`` as the text of one Markdown table cell (pipes escaped, one line)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table without its index (the notebooks display tables this
    way: they render as the book's own tables, and their text is stable for nbval)."""
    lines = [
        "| " + " | ".join(cell(c) for c in frame.columns) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def profile_of(runs: pd.DataFrame) -> str:
    """The profile of ``runs`` (their first row's; ``quick`` for a table without one)."""
    return runs["profile"].iloc[0] if "profile" in runs and len(runs) else "quick"


def task_baselines(task: str, profile: str):
    """``(baselines, gate)`` of a task at a profile, or None when its data are not prepared
    (the baselines are read beside the data cache)."""
    try:
        return baselines.for_task(task, profile)
    except DataError:
        return None


def reference(task: str, refs, kind: str, digits: int) -> str:
    """The strongest baseline of ``kind`` with its name, e.g. ``32.7 (majority label ...)``."""
    best = None if refs is None else baselines.strongest(refs[0], kind)
    return "—" if best is None else f"{metric(task).shown(best.value, digits)} ({best.name})"


def accuracy_table(index: pd.DataFrame, variants: bool = False, digits: int = 1) -> pd.DataFrame:
    """Test metric per task (rows) and model (columns) for display: accuracy in percent or
    perplexity; with several seeds, their mean followed by every seed's value (outcomes can be
    bimodal, so a standard deviation would mislead), a seed marked † when it did not use its
    state (it did not pass its gate: :func:`companion.evidence.run_gates`) and ‡ when it used
    it but did not go beyond the strongest shallow predictor; ``—`` where no run exists.
    Under each task, the row "without mixing" gives each model's no-mixing control: the same
    network with its mixer removed. The last columns give the task's strongest trivial and
    shallow predictors (:mod:`companion.baselines`). ``variants``: include the ablation runs
    as their own columns."""
    runs = index.reset_index(drop=True)
    runs = runs.assign(gate=run_gates(runs))
    control = runs["variant"] == CONTROL
    shown_runs = runs[~control] if variants else runs[runs["variant"] == ""]
    rows = pd.concat([shown_runs.assign(row=shown_runs["task"]), _controls(runs[control])])
    rows = S.labelled(rows)
    refs = {t: task_baselines(t, profile_of(runs)) for t in rows["task"].unique()}
    cells = {}
    for (row, label), group in rows.groupby(["row", "label"], observed=True):
        m = metric(group["task"].iloc[0])
        group = group.sort_values("seed")
        v = group[m.column()].astype(float)
        each = [
            m.shown(x, digits) + ("" if row.endswith(NO_MIXING) else _mark(x, gate))
            for x, gate in zip(v, group["gate"], strict=True)
        ]
        cells[row, label] = (
            each[0] if len(v) == 1 else f"{m.shown(v.mean(), digits)} ({', '.join(each)})"
        )
    table = pd.Series(cells).unstack()
    labels = [lab for lab in S.labels(rows) if lab in table.columns]
    order = sorted(table.index, key=lambda r: (S.task_key(r.split(",")[0]), r))
    table = table.reindex(index=order, columns=labels).fillna("—")
    task_of = {r: r.split(",")[0] for r in table.index}
    table["strongest trivial predictor"] = [
        "" if r.endswith(NO_MIXING) else reference(t, refs[t], "trivial", digits)
        for r, t in task_of.items()
    ]
    table["strongest shallow predictor"] = [
        "" if r.endswith(NO_MIXING) else reference(t, refs[t], "shallow", digits)
        for r, t in task_of.items()
    ]
    table.index = [
        f"{S.name(t)}{r[len(t) :]}" + ("" if r.endswith(NO_MIXING) else f" ({metric(t).unit})")
        for r, t in task_of.items()
    ]
    table.columns.name = None
    return table


NO_MIXING = ", without mixing"


def _mark(score: float, gate) -> str:
    """† a seed that did not use its state, ‡ one that did but not beyond the shallow line."""
    return "†" if not gate.passes(score) else "‡" if not gate.beyond_shallow(score) else ""


def _controls(runs: pd.DataFrame) -> pd.DataFrame:
    """The no-mixing control runs as rows of :func:`accuracy_table`: under their task, in
    the column of the model they control."""
    return runs.assign(row=runs["task"] + NO_MIXING, variant="")


def best_models(summary: pd.DataFrame, tasks, profile: str) -> str:
    """The main grid of ``tasks`` in words, one Markdown item per task: how many models used
    their state (passed their gate in at least two seeds: beyond the same network without its
    mixer and the strongest trivial predictor) and how many also went beyond the strongest
    shallow predictor, the highest mean with its 95 % interval (a description: the claims pick
    "the most accurate" by rank intervals, :func:`companion.decision.most_accurate`), where its
    |λ| sit, and which models put most of their mass near 1. ``summary``:
    :func:`companion.robustness.summary` rows."""
    main = summary[summary["variant"] == ""]
    lines = []
    for task in tasks:
        rows = main[main["task"] == task].set_index("model")
        m = metric(task)
        if rows.empty or rows[m.name].isna().all():
            continue
        refs = task_baselines(task, profile)
        against = ""
        if refs:
            against = (
                f" (strongest trivial predictor {reference(task, refs, 'trivial', 1)}; "
                f"strongest shallow predictor {reference(task, refs, 'shallow', 1)})"
            )
        learned = [x for x in rows.index if rows.loc[x, "learned"] >= 2]
        beyond = [x for x in learned if rows.loc[x, "beyond"] >= 2]
        if not learned:
            lines.append(
                f"- **{S.name(task)}**: no model used its state at this profile{against}: "
                "its claims are untestable here."
            )
            continue
        scores = rows.loc[learned, m.name]
        best = scores.idxmin() if m.lower_is_better else scores.idxmax()
        b = rows.loc[best]
        if m.lower_is_better:
            value = m.words(b[m.name])
        else:
            value = f"{100 * b.accuracy:.1f} %, 95 % interval {100 * b.low:.1f}–{100 * b.high:.1f}"
        near1 = [S.name(x) for x in learned if rows.loc[x, "near1"] > 0.5]
        lines.append(
            f"- **{S.name(task)}**: {len(learned)} of {len(rows)} models used their state"
            f"{against}, and {len(beyond)} went beyond the shallow predictor"
            + (
                " (the task instance makes no demand on the state at this scale)"
                if not beyond
                else ""
            )
            + f". The highest mean is {S.name(best)}'s ({value} over {b.seeds} "
            f"seed(s); {m.words(b.control)} without its mixer), with {100 * b.near1:.0f} % of "
            f"its |λ| in the near-1 band and {100 * b.near0:.0f} % near 0. {len(near1)} of the "
            f"{len(learned)} models that used their state put most of their mass in the near-1 "
            "band" + (f" ({', '.join(near1)})." if near1 else ".")
        )
    return "\n".join(lines) or "No runs of these tasks at this profile."


def gates(measures: pd.DataFrame, factors=(0.5, 1.0, 2.0)) -> pd.DataFrame:
    """Per task, in words for the claims chapter: its strongest trivial predictor, the range of
    its no-mixing controls (one per model), its strongest shallow predictor, the conditions
    (task, model, variant; controls aside) and how many of them have at least
    ``MIN_LEARNED`` seeds that used their state, with each seed's margin scaled by each of
    ``factors`` (1: the gate the claims use), and how many also went beyond the shallow
    predictor (at 1×)."""
    m = ev.normalise(measures)
    m = m[(m["analysis"] == m["analysis"].iloc[0]) & (m["stage"] == "final")] if len(m) else m
    if len(m):
        m = m[~m["variant"].str.startswith(CONTROL)]
    rows = []
    for task, group in m.groupby("task", sort=False):
        first = group.iloc[0]
        lower = metric(task).lower_is_better
        score = group[metric(task).column()]
        by = [group[c] for c in ev.CONDITION]
        controls = group["control_value"].dropna() if "control_value" in group else []
        row = {
            "task": task,
            "strongest trivial predictor": f"{first.get('trivial', '')} "
            f"({metric_words(task, first.get('trivial_value', math.nan))})",
            "without mixing": "—"
            if not len(controls)
            else f"{metric_words(task, controls.min())} to {metric_words(task, controls.max())}",
            "strongest shallow predictor": f"{first.get('shallow', '')} "
            f"({metric_words(task, first.get('shallow_value', math.nan))})",
            "conditions": group.groupby(ev.CONDITION).ngroups,
        }
        for k in factors:
            line = group["baseline_value"] + k * (group["gate_line"] - group["baseline_value"])
            passed = (score <= line) if lower else (score >= line)
            per = passed.groupby(by).sum()
            row[f"used their state at {k:g}× margin"] = int((per >= MIN_LEARNED).sum())
        both = group["learned"].astype(bool) & group.get("beyond_shallow", group["learned"])
        row["beyond the shallow predictor"] = int((both.groupby(by).sum() >= MIN_LEARNED).sum())
        rows.append(row)
    return pd.DataFrame(rows)

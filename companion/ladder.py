"""The scale ladder: accuracy, competence and the claims' verdicts as MQAR and ListOps get
harder (``make reproduce PROFILE=ladder``).

The rungs are the settings of ``configs/book.yaml`` (:func:`companion.grid.ladder_rungs`),
easiest first; a task's rung without settings is its quick run. A run of experiment variant
``v`` at rung ``r`` has the variant name ``[v-]ladder-r`` and lives with the quick runs, and
its competence gate is that of its own data (:func:`companion.evidence.measures`).

To read the claims at a rung, :func:`at_rung` puts the rung's runs of a task in the place of
the task's quick runs (the same experiments, each seed gated against the rung's baselines);
the other tasks keep their quick runs, and :func:`verdicts` evaluates the claims on that table.
So a claim's verdict at a rung moves only through its parts on the rung's task.
"""

from __future__ import annotations

import pandas as pd

from companion import claims, decision, grid
from companion import evidence as ev

# the claims with parts on MQAR or ListOps, the tasks of the ladder
CLAIMS = ("C1", "C2", "C4", "C5", "C6", "C8", "C10")


def tasks() -> list[str]:
    """The tasks with a ladder, in the order of the configs."""
    return [t for t in grid.tasks() if grid.ladder_rungs(t)]


def rungs(task: str) -> list[str]:
    """The rungs of ``task``, easiest first."""
    return list(grid.ladder_rungs(task))


def quick_rung(task: str) -> str:
    """The rung of ``task`` that is its quick run (the one without settings)."""
    return next(r for r, settings in grid.ladder_rungs(task).items() if not settings)


def label(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (runs index or measures) without the dials' runs (:mod:`companion.dials`
    reads them), with ``rung`` (``None`` outside the ladder's tasks), ``experiment`` (the
    variant without its rung: ``""`` for the main grid) and ``quick`` (whether the rung is its
    task's quick run)."""
    out = table.copy()
    split = [grid.split_rung(v) for v in out["variant"]]
    scale = [
        r is None or r in grid.ladder_rungs(t) for t, (_, r) in zip(out["task"], split, strict=True)
    ]
    out = out[scale]
    split = [s for s, keep in zip(split, scale, strict=True) if keep]
    quick = {task: quick_rung(task) for task in tasks()}
    out["experiment"] = [variant or "" for variant, _ in split]
    out["rung"] = [
        (rung or quick[task]) if task in quick else None
        for task, (_, rung) in zip(out["task"], split, strict=True)
    ]
    out["quick"] = [
        r is not None and r == quick.get(t) for t, r in zip(out["task"], out["rung"], strict=True)
    ]
    return out


def runs(index: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``index`` that the ladder reads: its experiments
    (:func:`companion.config.ladder_experiments`) at every rung of its tasks, the quick runs of
    those experiments included; the other quick runs of its tasks are left out."""
    t = label(index)
    chosen = {task: set(grid.ladder_experiments(task)) for task in tasks()}
    keep = [
        task in chosen and (model, experiment or None) in chosen[task]
        for task, model, experiment in zip(t["task"], t["model"], t["experiment"], strict=True)
    ]
    return index.loc[t.index[keep]]


def has_runs(index: pd.DataFrame) -> bool:
    """Whether ``index`` holds any run of a harder rung (the dials' runs aside)."""
    t = label(index)
    return bool((t["rung"].notna() & ~t["quick"]).any())


def at_rung(measures: pd.DataFrame, task: str, rung: str) -> pd.DataFrame:
    """``measures`` with the runs of ``task`` at ``rung`` in the place of its quick runs, under
    their experiments' own variant names; at the quick rung, ``measures`` without the harder
    rungs."""
    m = label(ev.normalise(measures))
    keep = (m["task"] != task) & (m["rung"].isna() | m["quick"])
    mine = m[(m["task"] == task) & (m["rung"] == rung)]
    out = pd.concat([m[keep], mine.assign(variant=mine["experiment"])], ignore_index=True)
    return out.drop(columns=["rung", "experiment", "quick"])


def competence(measures: pd.DataFrame) -> pd.DataFrame:
    """One row per task, rung and ladder experiment with runs (the no-mixing controls aside):
    ``seeds``, ``learned`` (seeds that used their state: past their gate at the rung),
    ``beyond`` (of those, the seeds past the rung's strongest shallow predictor),
    ``competent`` (at least ``decision.MIN_LEARNED`` of both, so that a claim may read it), the
    mean test accuracy and every seed's, the mean of its no-mixing control, and the strongest
    trivial and shallow predictors of the rung's data."""
    m = label(ev.normalise(measures))
    m = m[(m["analysis"] == "exact") & (m["stage"] == "final") & m["rung"].notna()]
    rows = []
    for task in tasks():
        order = {r: i for i, r in enumerate(rungs(task))}
        for model, variant in grid.ladder_experiments(task):
            if variant == grid.CONTROL:
                continue
            for rung, group in m[
                (m["task"] == task) & (m["model"] == model) & (m["experiment"] == (variant or ""))
            ].groupby("rung"):
                group = group.sort_values("seed")
                used = group["learned"].astype(bool)
                learned = int(used.sum())
                beyond = int((used & group["beyond_shallow"].astype(bool)).sum())
                rows.append(
                    dict(
                        task=task,
                        rung=rung,
                        step=order[rung],
                        model=model,
                        variant=variant or "",
                        seeds=len(group),
                        learned=learned,
                        beyond=beyond,
                        competent=min(learned, beyond) >= decision.MIN_LEARNED,
                        accuracy=group["test_accuracy"].mean(),
                        accuracies=tuple(group["test_accuracy"]),
                        passed=tuple(used),
                        control_value=group["control_value"].iloc[0],
                        **group.iloc[0][list(REFERENCES)].to_dict(),
                    )
                )
    out = pd.DataFrame(rows, columns=COMPETENCE)
    return out.sort_values(["task", "step"], kind="stable", ignore_index=True)


REFERENCES = ("trivial", "trivial_value", "shallow", "shallow_value", "shallow_line")
COMPETENCE = [
    *("task", "rung", "step", "model", "variant", "seeds", "learned", "beyond", "competent"),
    *("accuracy", "accuracies", "passed", "control_value", *REFERENCES),
]


def verdicts(measures: pd.DataFrame, analysis: str = "exact") -> pd.DataFrame:
    """The verdict of every claim of :data:`CLAIMS` at every rung of the tasks it has parts
    on: one row per task, rung and claim with ``verdict``, the ``deciding`` part (see
    :func:`companion.claims.evaluate`) and ``parts``, the states of its parts on the task
    (e.g. ``"holds 2, untestable 1"``)."""
    rows = []
    for task in tasks():
        for step, rung in enumerate(rungs(task)):
            table, parts = claims.evaluate(at_rung(measures, task, rung), (analysis,))
            parts = parts[parts["task"] == task]
            for r in table[table["claim"].isin(CLAIMS)].itertuples():
                states = parts.loc[parts["claim"] == r.claim, "state"]
                if states.empty:
                    continue
                counts = states.value_counts()
                rows.append(
                    dict(
                        task=task,
                        rung=rung,
                        step=step,
                        claim=r.claim,
                        verdict=r.verdict,
                        deciding=r.deciding,
                        parts=", ".join(f"{s} {counts[s]}" for s in decision.STATES if s in counts),
                    )
                )
    return pd.DataFrame(
        rows, columns=["task", "rung", "step", "claim", "verdict", "deciding", "parts"]
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _settings(task: str, rung: str) -> str:
    s = grid.ladder_rungs(task)[rung]
    parts = [f"{k} {v}" for section in ("data", "train") for k, v in (s.get(section) or {}).items()]
    return ", ".join(parts) or "the quick run"


def rung_table(competence: pd.DataFrame) -> pd.DataFrame:
    """Per task and rung: its settings, the strongest trivial and shallow predictors of its
    data, and how many experiments are competent (have at least ``decision.MIN_LEARNED`` seeds
    that used their state and went beyond the shallow predictor) of how many with runs."""
    rows = []
    for task in tasks():
        for rung in rungs(task):
            group = competence[(competence["task"] == task) & (competence["rung"] == rung)]
            first = group.iloc[0] if len(group) else None
            rows.append(
                {
                    "task": task,
                    "rung": rung,
                    "settings": _settings(task, rung),
                    "strongest trivial predictor": "—"
                    if first is None
                    else f"{_pct(first['trivial_value'])} % ({first['trivial']})",
                    "strongest shallow predictor": "—"
                    if first is None
                    else f"{_pct(first['shallow_value'])} % ({first['shallow']})",
                    "competent": f"{int(group['competent'].sum())} of {len(group)}"
                    if len(group)
                    else "no runs",
                }
            )
    return pd.DataFrame(rows)


def accuracy_table(competence: pd.DataFrame, task: str) -> pd.DataFrame:
    """Test accuracy (%) of each ladder experiment of ``task`` (rows) at each rung (columns):
    the mean over seeds, then every seed, a seed marked † when it did not use its state (it
    did not pass its gate at the rung), and the mean of its no-mixing control; ``—`` without
    runs."""
    rows = competence[competence["task"] == task]
    table = {}
    for r in rows.itertuples():
        marks = zip(r.accuracies, r.passed, strict=True)
        seeds = ", ".join(_pct(a) + ("" if ok else "†") for a, ok in marks)
        name = r.model + (f" / {r.variant}" if r.variant else "")
        control = "" if pd.isna(r.control_value) else f"; {_pct(r.control_value)} without mixing"
        table.setdefault(name, {})[r.rung] = f"{_pct(r.accuracy)} ({seeds}{control})"
    out = pd.DataFrame.from_dict(table, orient="index").reindex(columns=rungs(task))
    return out.fillna("—").rename_axis("experiment").reset_index()


def verdict_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdicts as a table: one row per claim, one column per task and rung, each cell the
    verdict and the states of the claim's parts on that task."""
    cells = {}
    for r in verdicts.itertuples():
        cells.setdefault(r.claim, {})[f"{r.task} {r.rung}"] = f"{r.verdict} ({r.parts})"
    columns = [f"{t} {r}" for t in tasks() for r in rungs(t)]
    out = pd.DataFrame.from_dict(cells, orient="index")
    out = out.reindex(index=[c for c in CLAIMS if c in cells], columns=columns)
    return out.fillna("not read").rename_axis("claim").reset_index()


def describe(competence: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """What the ladder shows, one Markdown item per task: the competent experiments at each
    rung, and the claims whose verdict moves along the rungs (or that none does)."""
    lines = []
    for task in tasks():
        rows = competence[competence["task"] == task]
        steps = [
            f"{r} {int(g['competent'].sum())} of {len(g)}"
            for r in rungs(task)
            if len(g := rows[rows["rung"] == r])
        ]
        v = verdicts[verdicts["task"] == task]
        moved = [
            f"{claim} ({' → '.join(g.sort_values('step')['verdict'])})"
            for claim, g in v.groupby("claim", sort=False)
            if g["verdict"].nunique() > 1
        ]
        kept = sorted(set(v["claim"]) - {m.split(" ")[0] for m in moved}, key=lambda c: int(c[1:]))
        lines.append(
            f"* **{task}**: competent experiments per rung: {'; '.join(steps) or 'no runs'}. "
            + (
                f"Verdicts that move along the rungs: {'; '.join(moved)}. "
                if moved
                else "No verdict moves along the rungs. "
            )
            + (f"The same at every rung: {', '.join(kept)}." if kept else "")
        )
    return "\n".join(lines)

"""Runs and measures in words and tables: what the book's pages say, without a figure.

* :data:`PROFILES`: what each profile is against the paper's scale, and what its numbers can
  support (the landing page and the claims chapter quote it);
* :func:`markdown_table` (with the one Markdown escape, :func:`cell`): how the notebooks and
  pages print a table, stable text for nbval;
* :func:`accuracy_table`: test metric per task and model, every seed, against the task's
  baselines and competence line; :func:`best_models`: the same in sentences;
* :func:`profile_page` and :func:`findings_page`: the landing page's record of the run that
  made the numbers, and its findings (the claims scoreboard, the most accurate models).

Names, orders and labels come from :mod:`companion.style`; the baselines from
:mod:`companion.baselines`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from companion import baselines, claims, decision, grid
from companion import config as C
from companion import evidence as ev
from companion import statistics as st
from companion import style as S
from companion.decision import MIN_LEARNED, metric_words
from companion.evidence import run_gates
from companion.grid import CONTROL, runs_profile
from companion.model import describe as describe_model
from companion.tasks import DataError, get_task, metric
from companion.tasks.listops import nesting_depths


@dataclass(frozen=True)
class Profile:
    """How the book describes a profile: ``what`` it runs against the paper's scale (the
    landing page), and the ``evidence`` its numbers are, in a phrase (the claims)."""

    what: str
    evidence: str


PROFILES = {
    "smoke": Profile(
        "the **smoke** profile: a few hundred examples per task, short sequences, models of two "
        "layers and width 16 trained for a handful of steps. It checks that every part of the "
        "pipeline runs; its numbers say nothing about the paper's claims.",
        "machinery only: smoke runs are too short for any model to learn its task",
    ),
    "quick": Profile(
        "the **quick** profile, which runs on two CPU cores: real offline data (Rotten-Tomatoes "
        "sentences as bytes instead of IMDb, 5,000 MNIST digits at 14×14 instead of CIFAR-10, "
        "Wikipedia articles as bytes instead of WikiText-103 with GPT-2 BPE), generated ListOps "
        "({listops}) instead of up to 2,000 tokens and 10 levels, MQAR ({mqar}) instead of "
        "vocabulary 8,192, length 512 and 64 pairs, and models of two layers and width 64 "
        "instead of the public configurations. Spectral shapes can be compared with the "
        "paper's; accuracies cannot.",
        "small-scale evidence: short runs of small models, two seeds each",
    ),
    "ladder": Profile(
        "the **quick** profile's runs at three seeds each and the **scale ladder**'s: the "
        "main models, three seeds each, also on MQAR at length 128 with 16 pairs and at 256 "
        "with 32, and on ListOps at nesting depth 2 and 4 and with every tree nested exactly 4 "
        "operators deep (see the scale ladder chapter). Every chapter but that one reads the "
        "quick experiments, at their three seeds.",
        "the quick models on harder MQAR and ListOps rungs, three seeds each",
    ),
    "paper": Profile(
        "the **paper** profile: the public configurations' hyperparameters and the paper's "
        "data (LRA ListOps, IMDb, CIFAR-10, MQAR with vocabulary 8,192, WikiText-103), trained "
        "on a GPU.",
        "the paper's scale",
    ),
}


def profile(name: str) -> Profile:
    """The description of profile ``name``, its generated tasks described from their test
    splits (:func:`stand_in`); a custom profile is described as one."""
    found = PROFILES.get(
        name,
        Profile(f"the **{name}** profile, a custom one: compare its configuration files.", name),
    )
    if "{" not in found.what:
        return found
    facts = {task: stand_in(task, runs_profile(name)) for task in ("listops", "mqar")}
    return Profile(found.what.format(**facts), found.evidence)


def stand_in(task: str, profile: str) -> str:
    """A generated task's test split in words, counted from the data themselves (not from
    the generator's settings): ListOps' token lengths and operator levels, MQAR's vocabulary,
    length and pairs; "data not prepared" without a cache."""
    try:
        t = get_task(task, profile)
        rows = t.stored("test")["input_ids"]
    except DataError:
        return "data not prepared"
    if task == "mqar":  # no padding: every position is a token
        c = t.config
        return f"vocabulary {c.vocab_size}, length {len(rows[0])}, {c.n_pairs} pairs"
    lengths = np.array([int((np.asarray(r) != t.pad_id).sum()) for r in rows])
    levels = pd.Series(nesting_depths(rows)).value_counts(normalize=True).sort_index()
    shares = ", ".join(f"{100 * v:.0f} % of the trees with {k}" for k, v in levels.items())
    return (
        f"{lengths.min()}–{lengths.max()} tokens, median {np.median(lengths):g}; operator "
        f"levels: {shares}"
    )


# ---------------------------------------------------------------------------------- Markdown


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


# ---------------------------------------------------------------------------------- accuracy


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


# ---------------------------------------------------------------------------- the landing page


def profile_page(name: str, record: dict) -> str:
    """The landing page's "which profile produced these numbers" part. ``record`` is the
    reproduce step's: the keys used when present are ``commit``, ``finished`` (ISO time; now
    when absent), ``runs`` (how many), ``wall_seconds``, ``executor`` and ``host``; any other
    scalar entries are listed as they are. The text has no headings: ``book/intro.md``
    includes it under its own."""
    record = dict(record)
    finished = record.pop("finished", None) or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    rows = [("profile", f"`{name}`"), ("finished", str(finished))]
    labels = {
        "commit": "commit",
        "runs": "runs",
        "wall_seconds": "wall time",
        "executor": "runs trained by",
        "host": "machine",
    }
    for key, label in labels.items():
        if key in record:
            value = record.pop(key)
            if key == "wall_seconds":
                value = f"{float(value) / 60:.1f} min"
            elif key == "commit":
                value = f"`{value}`"
            rows.append((label, str(value)))
    for key, value in record.items():
        if isinstance(value, str | int | float | bool):
            rows.append((str(key).replace("_", " "), str(value)))
    lines = [
        f"The numbers in this book were produced by {profile(name).what}",
        "",
        "Rerun them with `make reproduce PROFILE=" + name + "`; `PROFILE=paper` runs the "
        "paper's scale (see the limitations page).",
        "",
        "| record | value |",
        "| --- | --- |",
        *(f"| {cell(k)} | {cell(v)} |" for k, v in rows),
        "",
    ]
    return "\n".join(lines)


def claim_anchor(claim: str, statement: str) -> str:
    """The id Sphinx gives chapter 7's heading of a claim (it names the claim and its
    statement, never the verdict, so links survive a changed verdict)."""
    from docutils.nodes import make_id  # the book extra

    return make_id(f"{claim}: {statement}")


def findings_page(
    name: str,
    measures: pd.DataFrame,
    verdicts: pd.DataFrame,
    summary: pd.DataFrame,
    files: dict[str, str],
    chapters: str,
) -> str:
    """The landing page's findings: the claims scoreboard under both analyses with a link to
    each claim, the summary figure, the most accurate models of each task, the downloads and
    the chapter map. ``verdicts``: :func:`companion.claims.evaluate`'s first table;
    ``summary``: :func:`companion.robustness.summary`; ``files``: the page's figure and downloads
    by role (``summary``, ``runs``, ``measures``: paths from the book's root)."""
    board = verdicts.pivot_table(
        index=["claim", "statement"], columns="analysis", values="verdict", aggfunc="first"
    ).reset_index()
    order = {c: i for i, c in enumerate(verdicts["claim"].unique())}
    board = board.sort_values("claim", key=lambda c: c.map(order))
    counts = verdicts[verdicts["analysis"] == "exact"]["verdict"].value_counts()
    flips = board[board["exact"] != board["published"]]["claim"].tolist()
    best = [
        f"{S.name(task)}: " + ", ".join(S.name(x) for x in top)
        for task in S.TASK_ORDER
        if (top := decision.most_accurate(measures, task))
    ]
    untestable = untestable_tasks(summary)
    if untestable:
        untested = (
            "- Untestable at this profile: "
            + "; ".join(f"{S.name(t)} ({why})" for t, why in untestable.items())
            + ": every claim that reads these tasks says so."
        )
    else:
        untested = (
            "- On every task at least one model used its state and went beyond the strongest "
            "shallow predictor."
        )
    figure = files["summary"].rpartition("/")[2]  # the page sits beside its figure
    lines = [
        f"**At a glance** ({profile(name).evidence}):",
        "",
        "- Of the paper's claims, under our exact analysis: "
        + ", ".join(f"{v}: {n}" for v, n in counts.items())
        + ".",
        "- The published analysis changes the verdict of "
        + (", ".join(flips) if flips else "no claim")
        + " (chapter 6 shows why).",
        untested,
        "- The most accurate models of each task (those that no other is clearly more "
        "accurate than, by 95 % intervals of the test accuracy over all seeds): "
        + ("; ".join(best) if best else "none")
        + ".",
        "",
        "![Shares of the eigenvalues near 0 and near 1 after training, per task and model]"
        f"({figure})",
        "",
        f"Each verdict was decided at the `{name}` profile; the last column names the part "
        "that decided it under the exact analysis (its name starts with the task, whose "
        "stand-in at this profile chapters 3 and 4 describe) or, for a claim that holds, says "
        "so.",
        "",
        "| claim | statement | exact analysis | published analysis | decided by (exact) |",
        "| --- | --- | --- | --- | --- |",
    ]
    deciding = verdicts[verdicts["analysis"] == "exact"].set_index("claim")["deciding"]
    for _, row in board.iterrows():
        link = f"notebooks/07_claims.html#{claim_anchor(row['claim'], row['statement'])}"
        by = deciding.get(row["claim"], "") or "every part holds"
        lines.append(
            f'| <a href="{link}">{row["claim"]}</a> | {row["statement"]} | {row["exact"]} '
            f"| {row['published']} | {cell(by)} |"
        )
    lines += [
        "",
        f"**The data behind the numbers**: the {{download}}`runs index <{files['runs']}>`"
        " (one row per run, with its metrics) and the {download}`measures "
        f"<{files['measures']}>` the claims read (bin shares per run, analysis and stage).",
        "",
        chapters,
        "",
    ]
    return "\n".join(lines)


def appendix() -> str:
    """The book's appendix of configurations, in Markdown: per task, every model at the paper
    and quick profiles, the structure each builds, where each departs from the public
    configuration it follows, and every ablation with what it changes."""

    def arch(cfg) -> str:
        m = cfg.model
        opts = ", ".join(f"{k}={v}" for k, v in m.get("mixer_options", {}).items())
        extra = "".join(f", {k}" for k in ("gate", "positional") if m.get(k))
        return (
            f"{m['n_layers']}×{m['d_model']}, state {m['state_dim']}, mlp {m.get('mlp', '—')}"
            f"{extra}{', ' + opts if opts else ''}"
        )

    def length(cfg) -> str:
        t = cfg.train
        return f"{t.steps} steps" if t.steps else f"{t.epochs:g} epochs"

    lines = [
        "Generated from the YAML files in `companion/configs/` by `make reproduce`.",
        "",
        f"Every experiment below also runs as `{CONTROL}`: the same configuration with each "
        "sequence mixer replaced by the identity (`model.mixing: false`), the control a model "
        "must beat to count as having used its state.",
        "",
    ]
    for task in grid.tasks():
        lines += [
            f"## {task}",
            "",
            "| model | profile | architecture | lr | weight decay | batch | length |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for model in grid.models(task):
            for profile in ("paper", "quick"):
                cfg = C.resolve(task, model, None, profile)
                t = cfg.train
                lines.append(
                    f"| {model} | {profile} | {arch(cfg)} | {t.lr:g} | "
                    f"{t.weight_decay:g} | {t.batch_size} | {length(cfg)} |"
                )
        lines += [
            "",
            "Structure, read from the modules each configuration builds (the same at every "
            "profile; `LN`/`BN` layer or batch norm, `drop` dropout, `+` the residual sum):",
            "",
            "| model | encoder → blocks → head |",
            "| --- | --- |",
        ]
        for model in grid.models(task):
            cfg = C.resolve(task, model, None, "quick")
            lines.append(f"| {model} | {describe_model(C.model_config(cfg, C.task_of(cfg)))} |")
        lines += ["", "Where each file departs from the public configuration it follows:", ""]
        for model in grid.models(task):
            lines += [
                f"- `{model}` ({d['part']}): {d['what']}. *Why:* {d['why']}."
                for d in grid.departures(task, model)
            ]
        ablations = [
            (m, v) for m in grid.models(task) for v in grid.variants(task, m) if v != CONTROL
        ]
        if ablations:
            lines += ["", "Ablations (paper profile):", ""]
            lines += [
                f"- `{m}/{v}`: {arch(C.resolve(task, m, v, 'paper'))}, lr "
                f"{C.resolve(task, m, v, 'paper').train.lr:g}"
                for m, v in ablations
            ]
        lines.append("")
    return "\n".join(lines)


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


def untestable_tasks(summary_rows: pd.DataFrame) -> dict[str, str]:
    """The tasks of the main grid on which no model can carry a part, with the reason in
    words: none used its state, or none went beyond the strongest shallow predictor."""
    main = summary_rows[summary_rows["variant"] == ""]
    out = {}
    for task, rows in main.groupby("task"):
        if not (rows["learned"] >= MIN_LEARNED).any():
            out[task] = (
                f"no model has {MIN_LEARNED} seeds beyond its no-mixing control and the "
                "strongest trivial predictor"
            )
        elif not ((rows["learned"] >= MIN_LEARNED) & (rows["beyond"] >= MIN_LEARNED)).any():
            out[task] = (
                f"no model has {MIN_LEARNED} seeds beyond the strongest shallow predictor: the "
                "task instance makes no demand on the state at this scale"
            )
    return out


def findings(
    parts: pd.DataFrame, claim_ids: tuple[str, ...], tasks=None, analysis: str = "exact"
) -> str:
    """The parts of some claims in words, as a Markdown list: each part's effect with its 95 %
    interval and what that means for the claim (the chapters end with it). ``tasks`` keeps
    the parts about those tasks."""
    rows = parts[(parts["analysis"] == analysis) & parts["claim"].isin(claim_ids)]
    if tasks is not None:
        rows = rows[rows["task"].isin(tasks)]
    lines = []
    for _, p in rows.iterrows():
        if p["state"] == "missing":
            lines.append(f"- {p['part']} ({p['claim']}): no runs at this profile.")
            continue
        if p["state"] == "untestable":
            lines.append(
                f"- {p['part']} ({p['claim']}): **untestable at this scale**: {p['note']}."
            )
            continue
        interval = "" if pd.isna(p["low"]) else f" [{p['low']:.2f}, {p['high']:.2f}]"
        need = (
            f"outside ±{p['threshold']:g}"
            if p["direction"] == "≠"
            else f"{p['direction']} {p['threshold']:g}"
        )
        settled = " (settled at initialisation)" if p.get("settled", False) else ""
        lines.append(
            f"- {p['part']} ({p['claim']}): {p['measure']} = {p['effect']:.2f}{interval}, "
            f"needs {need}: **{p['state']}**{settled}."
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the decision rule in words, its numbers read from the constants the code applies

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DECISION_RULE = """\
Each claim of the paper (as collected from its abstract, code and reviews) is split into
**parts**: one measured effect each (a share of eigenvalues, a distance between spectra, an
accuracy, a difference of two, or a rank), compared with a threshold of ours (the paper states
none), with a {conf} interval from the seeds.

**A model counts when it used its state.** Every claim is about the state $h_i$ and its
transition $\\Lambda_i$, so a model's spectrum says something about a task only when the model
did better than the same network could without its sequence mixer. Every experiment therefore
runs a second time as its **no-mixing control**: the same configuration, seeds and recipe with
each mixer replaced by the identity ($\\Lambda_i = 0$: every step sees only its own input; the
attention models keep their positional embeddings). A seed **used its state** when its test
metric is beyond both the mean of its control's seeds and the strongest *trivial* predictor of
the task (one that reads at most one token: the majority label of ListOps' root operator, the
majority class, a value guessed from MQAR's context, the bigram language model), by at
least {margin} points and {se} binomial standard errors of the test set (language model: a
perplexity at most {ppl} × the line's). This says the model carried something across time; it
does not say it carried what the claim is about.

**A task counts when it makes the demand.** Each task also has strong *shallow* predictors,
fitted on its training split, chosen on its validation split and scored on the same test split
(the flat ListOps evaluator and logistic regression on token n-grams, logistic regression on
byte n-grams, logistic regression and nearest neighbours on pixels, a query-order MQAR guess,
n-gram language models up to order 5). A condition (task, model, variant) can carry a part only
when at least {seeds} of its seeds used their state **and** went beyond the strongest shallow
predictor by the same margin; otherwise the part is **untestable at this scale**, and its note
names the line that failed. A shallow model that does as well as the sequence models means the
task instance, at this scale, does not ask for the memory the claim is about.

Spectra are read from the seeds that used their state; accuracies are compared over **every**
seed (keeping only the seeds that passed would favour the lucky ones), and a condition whose
seeds split is named as bimodal. Intervals use the seed noise pooled over the task's conditions
(also for sums of bins and for per-run quantities such as the distance a spectrum travelled),
within the range the quantity can take. "A peak near 0" (C4) means at least {peak} of the
eigenvalues in ${near0}$ and more there than in ${next}$: a local maximum, which a second
peak near 1 does not undo.

A part **holds** when its whole interval lies on the claim's side of the threshold, **fails**
when it lies wholly on the other side, is **within noise** when it straddles the threshold,
**untestable** when a gate, the accuracy ceiling ({ceiling}) or a control failed, and **missing**
when its runs are not there. "The most accurate" models are not picked by the largest mean (that
would favour the luckiest seeds): every model gets a rank interval, from one plus the models
clearly more accurate than it to the number of models not clearly less accurate, and the most
accurate models are those whose interval starts at 1. "Shape kept" needs a positive control:
another model that used its state on the same task moved by more than the threshold.

Two corrections come before a verdict. A spectral part that already fails on the spectra at
initialisation (training did not make it fail) cannot refute a claim: it is untestable. And the
parts of one claim are tested together: each decision's one-sided p-value is adjusted by Holm's
method across the claim's parts, and a decision whose adjusted p-value exceeds {alpha:g} goes
back to "within noise", so that with ten parts one failing by chance does not refute the claim. Rank
parts and seed counts carry no p-value and are not adjusted.

A claim **does not hold** as soon as one part fails, **holds** when every part holds, is
**incomplete** when runs are missing, **untestable at this scale** when a part is untestable,
and **inconclusive** otherwise; the table names the part that decides. Every claim is checked
twice: under the **exact** analysis of this companion and under the paper's **published**
analysis (chapter 6). Everything below is recomputed from the runs of the profile named on the
landing page.
"""


def percent(x: float) -> str:
    """``0.95`` -> ``95 %``."""
    return f"{100 * x:g} %"


def bin_interval(label: str) -> str:
    """A bin's label as an interval: ``(0.1,0.5]`` -> ``(0.1, 0.5]``."""
    return label.replace(",", ", ")


def decision_rule() -> str:
    """The claims chapter's statement of how a part and a claim are decided (Markdown), with the
    gate's margins (:mod:`companion.baselines`), the seeds a condition needs, the accuracy
    ceiling and Holm's level (:mod:`companion.decision`), the confidence of the intervals
    (:mod:`companion.statistics`) and the peak of C4 (:mod:`companion.claims`) read from the
    constants the code applies."""
    return DECISION_RULE.format(
        conf=percent(st.CONFIDENCE),
        margin=f"{100 * baselines.MARGIN:g}",
        se=f"{baselines.SE_MARGIN:g}",
        ppl=f"{baselines.PPL_FACTOR:g}",
        seeds=NUMBER_WORDS[decision.MIN_LEARNED],
        peak=percent(claims.PEAK_MASS),
        near0=bin_interval(claims.NEAR0),
        next=bin_interval(claims.NEXT),
        ceiling=percent(decision.CEILING),
        alpha=decision.ALPHA,
    )

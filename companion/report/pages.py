"""The landing page's words: what each profile is against the paper's scale, the record of the
run that made the numbers, its findings, and the tasks untestable at its scale.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from companion import config as C
from companion import decision, grid
from companion import style as S
from companion.decision import MIN_LEARNED
from companion.grid import runs_profile
from companion.report.tables import cell
from companion.report.words import NUMBER_WORDS
from companion.tasks import DataError, get_task, preset
from companion.tasks.listops import nesting_depths


@dataclass(frozen=True)
class Profile:
    """How the book describes a profile: ``what`` it runs against the paper's scale (the
    landing page), and the ``evidence`` its numbers are, in a phrase (the claims)."""

    what: str
    evidence: str


PROFILES = {
    "smoke": Profile(
        "the **smoke** profile: a few hundred examples per task, short sequences, models of "
        "{smoke_models} trained for a handful of steps. It checks that every part of the "
        "pipeline runs; its numbers say nothing about the paper's claims.",
        "machinery only: smoke runs are too short for any model to learn its task",
    ),
    "quick": Profile(
        "the **quick** profile, which runs on two CPU cores: real offline data (Rotten-Tomatoes "
        "sentences as bytes instead of IMDb, 5,000 MNIST digits at {quick_image} instead of "
        "CIFAR-10, "
        "Wikipedia articles as bytes instead of WikiText-103 with GPT-2 BPE), generated ListOps "
        "({listops}) instead of up to 2,000 tokens and 10 levels, MQAR ({mqar}) instead of "
        "{paper_mqar}, and models of {quick_models} instead of the public configurations. "
        "Spectral shapes can be compared with the paper's; accuracies cannot.",
        "small-scale evidence: short runs of small models, {quick_seeds} seeds each",
    ),
    "ladder": Profile(
        "the **quick** profile's runs at {ladder_seeds} seeds each and the **scale ladder**'s: "
        "the main models, {ladder_seeds} seeds each, also on MQAR at length 128 with 16 pairs "
        "and at 256 with 32, and on ListOps at nesting depth 2 and 4 and with every tree "
        "nested exactly 4 operators deep (see the scale ladder chapter). Every chapter but "
        "that one reads the "
        "quick experiments, at their {ladder_seeds} seeds.",
        "the quick models on harder MQAR and ListOps rungs, {ladder_seeds} seeds each",
    ),
    "paper": Profile(
        "the **paper** profile: the public configurations' hyperparameters and the paper's "
        "data (LRA ListOps, IMDb, CIFAR-10, MQAR with vocabulary {paper_vocab}, WikiText-103), "
        "trained on a GPU.",
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
    if "{" not in found.what + found.evidence:
        return found
    facts = {task: stand_in(task, runs_profile(name)) for task in ("listops", "mqar")}
    facts.update(profile_facts())
    return Profile(found.what.format(**facts), found.evidence.format(**facts))


def _models(profile: str) -> str:
    """The depths and widths of the main grid at ``profile``, in words (``two layers and width
    64``)."""
    shapes = sorted(
        {
            (c.model["n_layers"], c.model["d_model"])
            for c in (C.resolve(t, m, None, profile) for t in grid.tasks() for m in grid.models(t))
        }
    )
    return " or ".join(f"{NUMBER_WORDS[n]} layers and width {d}" for n, d in shapes)


def profile_facts() -> dict[str, str]:
    """The numbers the profiles' descriptions state, read from the configuration files: the
    models' sizes, the quick image's side, the paper's MQAR, and how many seeds the quick
    profile and the ladder give every experiment (the most common count)."""
    image, mqar = preset("image", "quick"), preset("mqar", "paper")
    side = 28 // image.downsample  # MNIST digits are 28 × 28
    seeds = Counter(Counter(k[:3] for k in grid.plan("quick")).values()).most_common(1)[0][0]
    return {
        "smoke_models": _models("smoke"),
        "quick_models": _models("quick"),
        "quick_image": f"{side}×{side}",
        "quick_seeds": NUMBER_WORDS[seeds],
        "ladder_seeds": NUMBER_WORDS[len(grid.ladder_seeds())],
        "paper_vocab": f"{mqar.vocab_size:,}",
        "paper_mqar": f"vocabulary {mqar.vocab_size:,}, length {mqar.seq_len} and "
        f"{mqar.n_pairs} pairs",
    }


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

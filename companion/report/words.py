"""The claims chapter's words: the decision rule, its numbers read from the constants the code
applies, and the parts of some claims as a list.
"""

from __future__ import annotations

import pandas as pd

from companion import baselines, claims, decision
from companion import statistics as st


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

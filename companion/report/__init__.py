"""Runs and measures in words and tables: every word and table of the book's pages, without a
figure (claims, evidence and the ladder return data; this package says it).

* :mod:`~companion.report.tables`: :func:`markdown_table` (with the one Markdown escape,
  :func:`cell`), how the notebooks and pages print a table, stable text for nbval;
  :func:`accuracy_table`, the test metric per task and model, every seed, against the task's
  baselines and competence line; :func:`best_models`, the same in sentences; :func:`gates`, who
  used their state;
* :mod:`~companion.report.pages`: :data:`PROFILES`, what each profile is against the paper's
  scale and what its numbers can support; :func:`profile_page` and :func:`findings_page`, the
  landing page's record of the run that made the numbers and its findings;
* :mod:`~companion.report.words`: the claims chapter's :func:`decision_rule` and
  :func:`findings`;
* :mod:`~companion.report.appendix`: the appendix of configurations.

Names, orders and labels come from :mod:`companion.style`; the baselines from
:mod:`companion.baselines`.
"""

from companion.report.appendix import appendix
from companion.report.pages import (
    PROFILES,
    Profile,
    claim_anchor,
    findings_page,
    profile,
    profile_page,
    stand_in,
    untestable_tasks,
)
from companion.report.tables import (
    accuracy_table,
    best_models,
    cell,
    gates,
    markdown_table,
    profile_of,
    reference,
    task_baselines,
)
from companion.report.words import decision_rule, findings

__all__ = [
    "PROFILES",
    "Profile",
    "accuracy_table",
    "appendix",
    "best_models",
    "cell",
    "claim_anchor",
    "decision_rule",
    "findings",
    "findings_page",
    "gates",
    "markdown_table",
    "profile",
    "profile_of",
    "profile_page",
    "reference",
    "stand_in",
    "task_baselines",
    "untestable_tasks",
]

"""What a task's test set gives away without a sequence model's state: trivial and shallow
predictors, and the gate the claims read.

Every predictor is fitted on the training split (a hyperparameter chosen on the validation
split) and scored on the test split of the task's prepared data:

* **trivial** predictors read at most one token, and each task names its own
  (:meth:`companion.tasks.base.Task.trivial`): the majority class; the majority label given
  the first token (for ListOps the root operator: MIN→0, MAX→9, MED/SM→5); for MQAR a value
  guessed among the ``K`` values of the context (``1/K``) and the most frequent value; for the
  language model the unigram and the bigram (Kneser–Ney) perplexity;
* **shallow** predictors (:mod:`companion.shallow`), as strong as we could make them without
  a state: the flat ListOps evaluator and logistic regression on token n-grams, logistic
  regression on byte n-grams and naive Bayes on words (Text), logistic regression and nearest
  neighbours on pixels (Image), the query-order guess (MQAR), n-gram models up to order 5.

:func:`gate` draws two lines per model. A seed **used its state** when its test metric is
beyond both the strongest trivial predictor and the mean of the same network without its
mixer (the ``nomix`` control, :func:`companion.evidence.run_gates`) by the **margin**: at
least 3 points and 2 binomial standard errors of that accuracy on the test set,
``max(0.03, 2·sqrt(p(1-p)/n))`` (``n`` scored predictions); for the language model, a
perplexity of at most 0.9 × that line's. It went **beyond the shallow predictors** when it is
beyond the strongest one by the same margin: only then does the task instance make the
demand a sequence model is for.

The table is computed once per data cache and stored beside it
(``<task>/<profile>/baselines.json``, keyed by the cache's sha256 and :data:`VERSION`), so
that ``companion data info`` prints it and the book reads it without refitting.

>>> from companion.tasks import get_task
>>> table = compute(get_task("mqar", "smoke"))
>>> [(b.name, round(b.value, 3)) for b in table if b.kind == "trivial"][0]
('a value guessed from the context', 0.25)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from companion.io import atomic_write_text
from companion.tasks import Task, get_task
from companion.tasks.base import silent
from companion.tasks.common import DataError, Metric

FILE = "baselines.json"
VERSION = 2  # of the predictors: a table stored by another version is computed again
MARGIN = 0.03  # accuracy points a learned model must add to the strongest trivial predictor
SE_MARGIN = 2.0  # ... and this many binomial standard errors of it on the test set
PPL_FACTOR = 0.9  # a learned language model's perplexity is at most this × the unigram one


@dataclass(frozen=True)
class Baseline:
    """One predictor's test score: ``value`` is an accuracy in [0, 1] (``metric`` "accuracy")
    or a perplexity; ``n`` the scored test predictions."""

    name: str
    kind: str  # "trivial" | "shallow"
    metric: str  # "accuracy" | "perplexity"
    value: float
    n: int


def _margin(metric: str, value: float, n: int) -> tuple[float, str]:
    """How far beyond ``value`` (an accuracy on ``n`` test predictions, or a perplexity) a
    score must be to count as clearly beyond it: the line, and the margin in words."""
    if Metric(metric).lower_is_better:
        return PPL_FACTOR * value, f"{PPL_FACTOR:g} × its perplexity"
    se = math.sqrt(value * (1 - value) / max(n, 1))
    margin = max(MARGIN, SE_MARGIN * se)
    why = f"{100 * MARGIN:g} points" if margin == MARGIN else f"{SE_MARGIN:g} standard errors"
    return value + margin, f"+{100 * margin:.1f} ({why})"


@dataclass(frozen=True)
class Gate:
    """The two lines a seed's test metric is read against.

    ``line``: the seed **used its state** when it is clearly beyond both the strongest trivial
    predictor and the mean of the same network without its mixer (``control``; NaN when that
    control has no runs, and then no seed passes); ``baseline``/``value`` name the stronger of
    the two. ``shallow_line``: the seed went **beyond the strongest shallow predictor**
    (``shallow``/``shallow_value``), the sign that the task instance made the demand a
    sequence model is for."""

    metric: str  # "accuracy" (higher is better) | "perplexity" (lower is better)
    line: float
    baseline: str  # what sets the line
    value: float  # its score
    margin: str  # the margin in words
    control: float = math.nan  # the no-mixing control's mean test metric
    trivial: str = ""  # the strongest trivial predictor
    trivial_value: float = math.nan
    shallow: str = ""
    shallow_value: float = math.nan
    shallow_line: float = math.nan

    def _beyond(self, score, line) -> bool:
        if score is None or not math.isfinite(score) or not math.isfinite(line):
            return False
        return Metric(self.metric).reaches(score, line)

    def passes(self, score: float) -> bool:
        """The seed used its state (see the class docstring)."""
        return self._beyond(score, self.line)

    def beyond_shallow(self, score: float) -> bool:
        """The seed is clearly beyond the strongest shallow predictor (True when the task has
        none)."""
        return self._beyond(score, self.shallow_line) if self.shallow else self.passes(score)


def strongest(table: list[Baseline], kind: str) -> Baseline | None:
    """The best predictor of ``kind`` ("trivial" | "shallow"): the highest accuracy or the
    lowest perplexity; None when the task has none of that kind."""
    found = [b for b in table if b.kind == kind]
    if not found:
        return None
    sign = 1 if Metric(found[0].metric).lower_is_better else -1
    return min(found, key=lambda b: sign * b.value)


CONTROL_NAME = "the network without its mixer"


def gate(table: list[Baseline], control: float | None = None) -> Gate:
    """The gate of a task from its baselines and, for one model, the mean test metric of its
    no-mixing ``control`` (None: the task's gate before any control ran, as ``companion data
    info`` prints it; NaN: the control has no runs, so nothing passes)."""
    best = strongest(table, "trivial")
    lower = Metric(best.metric).lower_is_better
    name, value = best.name, best.value
    if (
        control is not None
        and math.isfinite(control)
        and (control < value if lower else control > value)
    ):
        name, value = CONTROL_NAME, control
    line, margin = _margin(best.metric, value, best.n)
    if control is not None and not math.isfinite(control):
        line = math.nan
    top = strongest(table, "shallow")
    extra = {}
    if top is not None:
        shallow_line = _margin(top.metric, top.value, top.n)[0]
        extra = dict(shallow=top.name, shallow_value=top.value, shallow_line=shallow_line)
    control = math.nan if control is None else control
    return Gate(best.metric, line, name, value, margin, control, best.name, best.value, **extra)


# ---------------------------------------------------------------------------------------------
# the predictors


def compute(task: Task) -> list[Baseline]:
    """Every baseline of ``task``: its trivial predictors and the shallow ones of
    :mod:`companion.shallow` (each fitted on the train split, scored on the test split)."""
    from companion import shallow  # scikit-learn, only where a table is computed

    trivial = task.trivial(task.stored("train"), task.stored("test"))
    found = [
        (name, "trivial" if name == shallow.BIGRAM else "shallow", v, n)
        for name, v, n in shallow.predictors(task)
    ]
    return [Baseline(name, "trivial", task.metric, v, n) for name, v, n in trivial] + [
        Baseline(name, kind, task.metric, v, n) for name, kind, v, n in found
    ]


# ---------------------------------------------------------------------------------------------
# stored beside the cache


def _data_key(task: Task) -> str | None:
    """The predictors' version and the sha256 of the cache's files (None for a generated task
    built in memory)."""
    try:
        files = task.manifest()["files"]
    except DataError:
        return None
    return ":".join([f"v{VERSION}", *(files[s]["sha256"] for s in sorted(files))])


def load(task: Task, log=silent) -> list[Baseline]:
    """The baselines of ``task``: read from ``baselines.json`` beside its cache when that was
    computed from the same files by the same predictors, else computed (and stored there,
    when the cache exists). A stored file that cannot be read is named through ``log`` and
    computed again."""
    key = _data_key(task)
    path = Path(task.cache_dir()) / FILE
    if key is not None and path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("data") == key:
                return [Baseline(**b) for b in stored["baselines"]]
        except (ValueError, TypeError, KeyError, AttributeError):
            log(f"  {path} is damaged; computing the baselines again")
    table = compute(task)
    if key is not None:
        text = json.dumps({"data": key, "baselines": [asdict(b) for b in table]}, indent=2)
        atomic_write_text(path, text + "\n")
    return table


def for_task(name: str, profile: str, **options) -> tuple[list[Baseline], Gate]:
    """The baselines and the gate of task ``name`` at ``profile`` (its preset data, with
    ``options`` replacing some of its settings). The predictors read the stored columns, so
    a float-encoded image cache is scored on its pixel tokens, like the token-encoded one."""
    table = load(get_task(name, profile, **options))
    return table, gate(table)


def describe(table: list[Baseline], g: Gate) -> str:
    """One line per baseline and two for the gate's lines, for ``companion data info``."""
    lower = Metric(g.metric).lower_is_better
    unit = (lambda v: f"{v:.2f}") if lower else (lambda v: f"{100 * v:.1f} %")
    lines = [f"  {b.kind:7s} {b.name}: {unit(b.value)}" for b in table]
    word = "at most" if lower else "at least"
    lines.append(
        f"  gate    used its state = {word} {unit(g.line)} ({g.baseline} {g.margin}), and "
        f"beyond {CONTROL_NAME} (its own runs)"
    )
    if g.shallow:
        lines.append(
            f"  demand  beyond the shallow predictors = {word} {unit(g.shallow_line)} ({g.shallow})"
        )
    return "\n".join(lines)

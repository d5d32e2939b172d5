"""The statistics the claims rest on, with ``scipy.stats``: a condition's mean over its seeds
with a confidence interval (:class:`Estimate`, :func:`estimate`, the task's seed noise
:func:`pooled_sd`), the distance between two groups of seeds beyond their own spread
(:func:`pair_contrast`), Spearman's ρ with a bootstrap interval over clusters, Holm's
step-down adjustment, and the two distances between spectra (:func:`w1` on quantiles of
``log |λ|``, :func:`tv` on the binned shares).

A condition (task, model, variant) is the mean of its seeds; its noise is the typical
seed-to-seed standard deviation of its task (:func:`pooled_sd`, over every condition with
several seeds, so that two seeds give an interval with many degrees of freedom), or its own
where its seeds spread more; a condition of one seed with no task noise falls back to the
analysis batch's standard error (spectra) or has no interval (accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVELS = np.linspace(0.0, 1.0, 101)  # the levels of the stored quantiles of log |λ|


CONFIDENCE = 0.95


def w1(q1: np.ndarray, q2: np.ndarray) -> float:
    """Wasserstein-1 distance between two distributions of ``log |λ|`` given as quantiles at
    the same levels (the area between their quantile functions)."""
    return float(np.trapezoid(np.abs(np.asarray(q1) - np.asarray(q2)), LEVELS))


def tv(p, q) -> float:
    """Total variation distance between two distributions over the seven bins."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error and degrees of freedom (``inf``: a normal interval;
    ``se`` None: no noise estimate, so no interval). ``bounds``: the range the quantity can
    take (a share or an accuracy lies in [0, 1]); its interval is clipped to them."""

    mean: float
    se: float | None
    df: float = math.inf
    n: int = 1
    bounds: tuple[float, float] = (-math.inf, math.inf)

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
        """The two-sided ``confidence`` interval (Student's t with ``df``) within ``bounds``,
        or None."""
        if self.se is None or not math.isfinite(self.mean):
            return None
        half = stats.t.ppf(0.5 + confidence / 2, self.df) * self.se
        low, high = self.bounds
        return max(self.mean - half, low), min(self.mean + half, high)

    def __sub__(self, other: Estimate) -> Estimate:
        """The difference of two independent estimates (conservative ``df``: the smaller)."""
        se = None if self.se is None or other.se is None else math.hypot(self.se, other.se)
        bounds = (self.bounds[0] - other.bounds[1], self.bounds[1] - other.bounds[0])
        return Estimate(
            self.mean - other.mean, se, min(self.df, other.df), min(self.n, other.n), bounds
        )

    def __neg__(self) -> Estimate:
        return Estimate(-self.mean, self.se, self.df, self.n, (-self.bounds[1], -self.bounds[0]))

    @staticmethod
    def average(estimates: Sequence[Estimate]) -> Estimate:
        """The mean of independent estimates: its standard error is the root of the summed
        variances over their number (None when one has none; ``df`` and ``n`` the smallest)."""
        ses = [v.se for v in estimates]
        se = None if None in ses else math.sqrt(sum(x**2 for x in ses)) / len(estimates)
        return Estimate(
            float(np.mean([v.mean for v in estimates])),
            se,
            min(v.df for v in estimates),
            min(v.n for v in estimates),
            (min(v.bounds[0] for v in estimates), max(v.bounds[1] for v in estimates)),
        )


def pooled_sd(values: pd.DataFrame, column: str, by: list[str]) -> tuple[float, int] | None:
    """The typical seed-to-seed standard deviation of ``column`` in ``values``: the square root
    of the median of the variances of the groups ``by`` that have at least two seeds that
    differ (the median, so that one unstable experiment does not widen every interval of its
    task; seeds that all ended identical, such as runs that collapsed to one constant output,
    carry no information about the noise), with the degrees of freedom of those groups; None
    if no group qualifies."""
    groups = values.dropna(subset=[column]).groupby(by)[column]
    var, n = groups.var(ddof=1), groups.count()
    keep = (n >= 2) & (var > 0)
    df = int((n[keep] - 1).sum())
    if df == 0:
        return None
    return math.sqrt(float(var[keep].median())), df


def estimate(
    seeds: pd.Series,
    noise: tuple[float, int] | None,
    batch_se: pd.Series | None = None,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Estimate | None:
    """The mean of one condition's per-seed ``seeds`` and its standard error: from the typical
    seed noise of its task (:func:`pooled_sd`), or from its own seeds where they spread more;
    without task noise from its own seeds, else from the analysis batch (``batch_se``: the
    per-seed standard errors), else none. None without any seed. ``bounds``: see
    :class:`Estimate`."""
    seeds = seeds.dropna()
    n = len(seeds)
    if n == 0:
        return None
    mean = float(seeds.mean())
    own = float(seeds.std(ddof=1)) if n >= 2 else None
    if noise is not None and (own is None or own <= noise[0]):
        return Estimate(mean, noise[0] / math.sqrt(n), noise[1], n, bounds)
    if own is not None:
        return Estimate(mean, own / math.sqrt(n), n - 1, n, bounds)
    if batch_se is not None and not batch_se.dropna().empty:
        return Estimate(mean, float(batch_se.dropna().mean()), math.inf, n, bounds)
    return Estimate(mean, None, math.inf, n, bounds)


def pair_contrast(a: list, b: list, distance) -> Estimate | None:
    """How much farther apart two groups of seeds are than the seeds within a group: the mean
    ``distance`` between a seed of ``a`` and one of ``b`` minus the mean distance between two
    seeds of the same group. The pairs share seeds, so they are not independent samples: the
    standard error is the two-sample jackknife over seeds (leave one seed of one group out),
    with ``min(len(a), len(b)) - 1`` degrees of freedom. None with fewer than two seeds in a
    group."""
    if len(a) < 2 or len(b) < 2:
        return None

    def contrast(xs, ys):
        between = [distance(x, y) for x in xs for y in ys]
        within = [distance(x, y) for s in (xs, ys) for i, x in enumerate(s) for y in s[i + 1 :]]
        return float(np.mean(between) - np.mean(within)) if within else math.nan

    point = contrast(list(a), list(b))
    var = 0.0
    for group, other in ((list(a), list(b)), (list(b), list(a))):  # the contrast is symmetric
        n = len(group)
        leave = [contrast(group[:i] + group[i + 1 :], other) for i in range(n)]
        if any(math.isnan(v) for v in leave):
            return Estimate(point, None, math.inf, min(len(a), len(b)))
        var += (n - 1) / n * float(np.sum((np.asarray(leave) - np.mean(leave)) ** 2))
    return Estimate(point, math.sqrt(var), min(len(a), len(b)) - 1, min(len(a), len(b)))


def spearman(x, y) -> tuple[float, float] | None:
    """Spearman's rank correlation and its two-sided p-value (None for fewer than 3 points or
    a constant variable)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    result = stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def rho_interval(
    x, y, clusters=None, n_resamples: int = 2000, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float, float]:
    """Spearman's ρ of ``x`` and ``y`` and its percentile bootstrap interval
    (``scipy.stats.bootstrap``), resampling runs, or whole ``clusters`` (e.g. the experiment of
    each run, so that its seeds move together). A resample with a constant side counts as
    ρ = 0. All three are NaN when ρ itself is undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    point = spearman(x, y)
    if point is None:
        return math.nan, math.nan, math.nan
    groups = pd.factorize(pd.Series(range(len(x)) if clusters is None else list(clusters)))[0]
    members = [np.flatnonzero(groups == g) for g in range(groups.max() + 1)]

    def rho(ids):
        idx = np.concatenate([members[int(g)] for g in ids])
        found = spearman(x[idx], y[idx])
        return 0.0 if found is None else found[0]

    result = stats.bootstrap(
        (np.arange(len(members)),),
        rho,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=False,
        random_state=seed,
    )
    interval = result.confidence_interval
    return point[0], float(interval.low), float(interval.high)


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of the p-values ``p`` (NaN: no test, left NaN): the
    ``k``-th smallest of ``m`` is multiplied by ``m - k`` and the running maximum kept."""
    order = sorted((v, k) for k, v in enumerate(p) if not math.isnan(v))
    out, running = [math.nan] * len(p), 0.0
    for rank, (v, k) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * v))
        out[k] = running
    return out

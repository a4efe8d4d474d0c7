"""The study's statistics as pure functions: areas under accuracy-vs-samples curves, paired intervals.

- :func:`curve_value` / :func:`area_under_curve`: a run's curve is a list of points (samples, value),
  read by linear interpolation between evaluations; its AUC up to a budget B is ∫₀ᴮ value d(samples) / B,
  the accuracy averaged over the budget (a run that is better at every spend has the larger AUC, and no
  single threshold crossing decides it).
- :func:`paired_t_interval`: mean of paired differences ± t_{1−α/2, n−1} · sd / √n.
- :func:`bca_interval`: the bias-corrected and accelerated bootstrap interval of the mean of paired
  differences (Efron 1987): percentiles of the bootstrap means shifted by the bias z₀ and the jackknife
  acceleration a.
- :func:`first_reaching`: the samples at which a curve first reaches a level (interpolated between the
  evaluations around the crossing), inf if never.

No SciPy: Student's t quantile comes from the regularised incomplete beta function (continued fraction).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

Curve = list[tuple[float, float]]


def curve_value(curve: Curve, samples: float) -> float:
    """The curve's value at ``samples`` (linear between evaluations, flat beyond the last one)."""
    xs, ys = zip(*sorted(curve))
    return float(np.interp(samples, xs, ys))


def area_under_curve(curve: Curve, budget: float) -> float:
    """∫₀ᴮ value d(samples) / B by the trapezoid rule on the curve cut (and interpolated) at B."""
    points = sorted(curve)
    xs = [x for x, _ in points if x < budget] + [budget]
    ys = [curve_value(points, x) for x in xs]
    if xs[0] > 0:  # no point at 0 samples: the first value stands for the start
        xs, ys = [0.0, *xs], [ys[0], *ys]
    return float(np.trapezoid(ys, xs) / budget) if budget > 0 else float(ys[0])


def first_reaching(curve: Curve, level: float) -> float:
    """Samples at which the curve first reaches ``level`` after training started (π0's point does not
    count), interpolated between the two evaluations around the crossing; inf if never."""
    points = sorted(curve)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 >= level:
            if y0 >= level:  # only π0 (x0 = 0) can be at the level already: the first evaluation after it counts
                return float(x1)
            return float(x0 + (level - y0) / (y1 - y0) * (x1 - x0))
    return float("inf")


# ---------------------------------------------------------------- intervals
def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)) / a
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)), -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return front * result


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (bisection on :func:`t_cdf`)."""
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < q else (low, mid)
    return (low + high) / 2


def paired_t_interval(differences, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the paired differences: mean ± t · sd / √n (nan bounds with fewer than 2)."""
    d = np.asarray(differences, dtype=np.float64)
    mean = float(d.mean()) if d.size else float("nan")
    if d.size < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile(1 - (1 - confidence) / 2, d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return mean, mean - half, mean + half


def bca_interval(differences, confidence: float = 0.95, resamples: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the BCa bootstrap interval of the mean of ``differences`` (seeded, so that the
    tables rebuild identically). nan bounds with fewer than 3 differences or no spread."""
    d = np.asarray(differences, dtype=np.float64)
    mean = float(d.mean()) if d.size else float("nan")
    if d.size < 3 or np.ptp(d) == 0:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    normal = NormalDist()
    below = np.clip((means < mean).mean() + 0.5 * (means == mean).mean(), 1 / resamples, 1 - 1 / resamples)
    bias = normal.inv_cdf(float(below))
    jackknife = (d.sum() - d) / (d.size - 1)
    spread = jackknife.mean() - jackknife
    denominator = 6.0 * float((spread**2).sum()) ** 1.5
    acceleration = float((spread**3).sum()) / denominator if denominator > 0 else 0.0
    bounds = []
    for alpha in ((1 - confidence) / 2, 1 - (1 - confidence) / 2):
        z = normal.inv_cdf(alpha)
        adjusted = normal.cdf(bias + (bias + z) / (1 - acceleration * (bias + z)))
        bounds.append(float(np.quantile(means, adjusted)))
    return mean, bounds[0], bounds[1]

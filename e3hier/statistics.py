"""Intervals over seeds and the one rule that turns an interval into a verdict.

Every interval in the tables and figures is a two-sided 95 % Student-t interval of a mean over seeds
(``t_interval``): with 3-10 seeds a bootstrap interval is too narrow, and the per-seed statistics
(paired differences of models that share data, splits and initial-weight seed) are close to normal.

The verdict rule (``verdict``): a claim has a direction (the statistic is > 0, or < 0, if it holds).
If the interval excludes 0 on the claimed side, the claim is ``supported``; if it excludes 0 on the
other side, ``not_supported``; otherwise (the interval contains 0, or fewer than 2 seeds) ``inconclusive``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

#: Coverage of every interval.
CONFIDENCE = 0.95


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean of ``values`` (NaNs dropped; NaN bounds
    with fewer than two values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def errorbar(values) -> tuple[float, float]:
    """``t_interval`` bounds in the form seaborn's ``errorbar=`` callable takes (the mean ± t·SE)."""
    _, low, high = t_interval(values)
    mean = float(np.mean(values))
    return (mean, mean) if math.isnan(low) else (low, high)


def verdict(low: float, high: float, direction: int) -> str:
    """``supported`` / ``not_supported`` / ``inconclusive`` for a claim that the statistic has the sign
    of ``direction`` (+1 or -1), from its interval (module docstring)."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    low, high = sorted((direction * low, direction * high))
    if low > 0:
        return "supported"
    if high < 0:
        return "not_supported"
    return "inconclusive"

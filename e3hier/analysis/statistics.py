"""Intervals over seeds and test structures, and the one rule that turns an interval into a verdict.

Two intervals, both two-sided 95 %:

- ``t_interval``: the Student-t interval of a mean over seeds. Used for the bands of the figures, for
  ``lmax_gains`` and for the findings without test structures (2a, 2b: probes of a fixed set of validation
  structures). With 3-10 seeds it is the conservative choice: a percentile bootstrap over so few seeds is
  too narrow (it has no t quantile and shrinks the variance by (n - 1) / n).
- ``paired_bootstrap``: for the findings measured on test structures (1a, 1b, 3). A t interval over seeds
  treats the test structures as fixed, so it says nothing about another draw of them; a gain carried by one
  unusual test structure would look certain. A t interval over *data draws* would need new structures, DFT
  and training for every draw, which costs the whole study again. The bootstrap resamples what we have:
  seeds with replacement and, independently, test structures with replacement (a crossed design: every seed's
  models are evaluated on the same structures), and recomputes the statistic from the per-(model, structure)
  errors, so both pairings are kept: the models compared within a seed stay that seed's models, and a
  resampled structure is the same structure for every model. The interval is the percentile interval of
  ``BOOTSTRAP_RESAMPLES`` resamples from a fixed seed (``BOOTSTRAP_SEED``), so a table is reproducible. The
  two-way bootstrap counts the seed × structure interaction twice, which errs on the wide side. What neither
  interval covers is the draw of the *training* structures: every seed trains on the same ones.

  ``covering_interval`` reports the union of the bootstrap interval and the t interval over seeds of the
  per-seed statistic: the bootstrap adds the test structures' variance, the t interval keeps the small-seed
  caution, and a claim is decided only if both exclude 0.

The verdict rule (``verdict``): a claim has a direction (the statistic is > 0, or < 0, if it holds) and a
pre-declared equivalence margin δ (``analysis.equivalence``): effects smaller than δ do not matter. If the
interval lies inside (−δ, +δ), the effect is ``absent`` (whatever its sign: too small to matter, shown with
95 % confidence); else if it excludes 0 on the claimed side, the claim is ``supported``; if it excludes 0 on
the other side, ``not_supported``; otherwise (the interval contains 0 and reaches past ±δ, has zero width, or
is undefined: fewer than 2 seeds) ``inconclusive``. A zero-width interval means the statistic did not vary at
all over the seeds (or resamples), which is a sign of too little data (or a degenerate statistic), not of
certainty.

Power (``minimum_detectable_effect``, ``seeds_to_decide``): the smallest effect a paired design of n seeds
with per-seed standard deviation SD detects with 80 % power at two-sided 5 %, (t(0.975, n−1) + t(0.80, n−1))
· SD/√n; and, for an ``inconclusive`` row, the seeds that would decide it at the same SD: the fewest n whose
MDE reaches the estimate, or whose interval (estimate ± t·SD/√n) fits inside ±δ, whichever comes first.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

#: Coverage of every interval.
CONFIDENCE = 0.95
#: Resamples of the paired bootstrap: enough for stable 2.5 % / 97.5 % percentiles (about 50 beyond each).
BOOTSTRAP_RESAMPLES = 2000
#: Seed of the bootstrap's random generator, so that the verdict table is reproducible.
BOOTSTRAP_SEED = 2022
#: The ``interval`` column of the verdict table: which interval a row reports.
T_INTERVAL = "95 % Student-t over seeds"
BOOTSTRAP_INTERVAL = (
    f"95 %: Student-t over seeds ∪ paired percentile bootstrap over seeds × test structures "
    f"({BOOTSTRAP_RESAMPLES} resamples)"
)


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


def _resample_weights(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """(resamples, n): how often each of ``n`` items is drawn in each resample, divided by n."""
    picks = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(picks.ravel(), minlength=resamples * n).reshape(resamples, n) / n


def paired_bootstrap(
    errors,
    statistic,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(estimate, low, high): the paired bootstrap over seeds × test structures (module docstring).

    Parameters
    ----------
    errors : array_like, shape (seeds, structures, models)
        Each seed's errors of the models it compares, on the same test structures.
    statistic : callable
        Maps mean errors over structures, shape (..., seeds, models), to the per-seed statistic, shape
        (..., seeds); it must work on a leading batch axis (numpy broadcasting).
    resamples, confidence, seed
        Number of resamples, coverage and seed of the random generator.

    Returns
    -------
    The mean over seeds of the per-seed statistic, and the percentile interval (NaN bounds with fewer than
    two seeds).
    """
    errors = np.asarray(errors, dtype=float)
    if errors.ndim != 3:
        raise ValueError(f"errors must have shape (seeds, structures, models), got {errors.shape}")
    n_seeds, n_structures, _ = errors.shape
    if n_seeds == 0 or n_structures == 0:
        return math.nan, math.nan, math.nan
    estimate = float(np.mean(statistic(errors.mean(axis=1))))
    if n_seeds < 2:
        return estimate, math.nan, math.nan
    rng = np.random.default_rng(seed)
    # structures first: one weight per structure and resample, the same for every seed and model (paired)
    means = np.einsum("bj,sjm->bsm", _resample_weights(rng, n_structures, resamples), errors)
    # then seeds: a resampled seed brings all its models along (paired)
    drawn = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    values = statistic(np.take_along_axis(means, drawn[:, :, None], axis=1)).mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return estimate, float(low), float(high)


def covering_interval(errors, statistic) -> tuple[float, float, float]:
    """(estimate, low, high): the union of ``paired_bootstrap`` and the ``t_interval`` over seeds of the
    per-seed statistic (module docstring); NaN bounds where either is undefined."""
    estimate, low, high = paired_bootstrap(errors, statistic)
    errors = np.asarray(errors, dtype=float)
    _, t_low, t_high = t_interval(statistic(errors.mean(axis=1))) if errors.size else (math.nan,) * 3
    if not all(map(math.isfinite, (low, high, t_low, t_high))):
        return estimate, math.nan, math.nan
    return estimate, min(low, t_low), max(high, t_high)


#: Power of ``minimum_detectable_effect`` (and ``seeds_to_decide``).
POWER = 0.8
#: The most seeds ``seeds_to_decide`` searches.
MAX_SEEDS = 1000


def verdict(low: float, high: float, direction: int, margin: float = 0.0) -> str:
    """``supported`` / ``not_supported`` / ``absent`` / ``inconclusive`` for a claim that the statistic has the
    sign of ``direction`` (+1 or -1), from its interval and the equivalence margin δ = ``margin`` (module
    docstring; 0: no margin, never ``absent``)."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if math.isclose(low, high, rel_tol=1e-9, abs_tol=0.0):  # zero variance: no evidence either way
        return "inconclusive"
    if -margin < low and high < margin:
        return "absent"
    low, high = sorted((direction * low, direction * high))
    if low > 0:
        return "supported"
    if high < 0:
        return "not_supported"
    return "inconclusive"


def minimum_detectable_effect(sd: float, n: int, power: float = POWER, confidence: float = CONFIDENCE) -> float:
    """The smallest true effect a paired design of ``n`` seeds with per-seed standard deviation ``sd`` detects
    with ``power`` at two-sided ``1 - confidence``: (t(1 - α/2, n - 1) + t(power, n - 1))·sd/√n; NaN for n < 2."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    return float((stats.t.ppf(0.5 + confidence / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def seeds_to_decide(estimate: float, sd: float, margin: float) -> float:
    """The fewest seeds that would decide a claim at this ``sd``: the MDE reaches ``|estimate|``, or the t
    interval around ``estimate`` fits inside ±``margin`` (module docstring); NaN if none up to ``MAX_SEEDS``."""
    if not (math.isfinite(estimate) and math.isfinite(sd)) or sd == 0:
        return math.nan
    for n in range(2, MAX_SEEDS + 1):
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
        if minimum_detectable_effect(sd, n) <= abs(estimate) or abs(estimate) + half < margin:
            return float(n)
    return math.nan

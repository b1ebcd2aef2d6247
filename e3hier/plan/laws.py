"""Scaling laws: ``base + scale × Π feature**exponent`` per rule family, fitted in log space.

``TIME_LAWS`` predict a job's seconds, ``MEMORY_LAWS`` its peak RSS; coefficients, and exponents where a
calibration holds enough distinct sizes, come from least squares on calibration tables (``calibration``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from e3hier.data.metric import COLLOCATION_DTYPE

#: Starting values of a fit's size-independent part, as fractions of the smallest measured value (the fit
#: in log space has local minima when start-up dominates; the best of these starts is kept).
START_BASE_FRACTIONS = (0.05, 0.5, 0.95)

#: A measured max RSS below this (MB) is a job too short for the benchmark's first sample (a Python with
#: pandas imported holds ~80 MB): not a peak.
RSS_FLOOR_MB = 50.0


@dataclass(frozen=True)
class Law:
    """A scaling law ``target = base + scale × Π feature**exponent`` for the jobs of one rule family.

    Attributes
    ----------
    target : str
        The calibration column it predicts (``seconds``, a train part, ``max_rss``).
    features : tuple
        ``(column, physical exponent, fit[, upper bound])`` per feature. With ``fit`` the exponent is
        fitted (between 0 and the bound, by default twice the physical exponent) where the calibration
        holds enough distinct sizes; else the physical exponent is used.
    intercept : bool
        Whether ``base`` (a size-independent part: start-up, imports) is fitted; else it is 0.
    note : str
        What the law stands for.
    known : tuple
        ``(column, coefficient)`` terms added to the law as they are, not fitted (e.g. bytes held per
        entry); the law is fitted to what they leave of the target.
    """

    target: str
    features: tuple = ()
    intercept: bool = True
    note: str = ""
    known: tuple = ()


@dataclass
class FittedLaw:
    """A ``Law`` with its coefficients.

    Attributes
    ----------
    law : Law
        The law.
    base, scale : float
        Its coefficients.
    exponents : dict
        ``{feature: exponent}``.
    fitted : list of str
        The features whose exponent came from the data (the others are physical).
    n_jobs, n_sizes : int
        Calibration jobs and distinct sizes it was fitted on.
    rms_log_error : float
        Root-mean-square log residual on them.
    """

    law: Law
    base: float
    scale: float
    exponents: dict
    fitted: list = field(default_factory=list)
    n_jobs: int = 0
    n_sizes: int = 0
    rms_log_error: float = float("nan")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The law's value at each row's features.

        Parameters
        ----------
        frame : pandas.DataFrame
            Rows with the law's feature columns.

        Returns
        -------
        numpy.ndarray
            ``base + scale × Π feature**exponent`` per row.
        """
        product = np.ones(len(frame))
        for column, exponent in self.exponents.items():
            product = product * np.power(frame[column].to_numpy(dtype=float), exponent)
        return self.base + self.scale * product + known_part(frame, self.law)

    def describe(self) -> str:
        """The law as text, e.g. ``0.66 + 2.3e-05 × md_work^1.00`` (``*``: fitted exponent)."""
        terms = [f"{self.scale:.3g}"] + [
            f"{c}^{e:.2f}" + ("*" if c in self.fitted else "") for c, e in self.exponents.items()
        ]
        text = " × ".join(terms) + "".join(f" + {coefficient:.3g} × {c}" for c, coefficient in self.law.known)
        return (f"{self.base:.3g} + " if self.law.intercept else "") + text


def known_part(frame: pd.DataFrame, law: Law) -> np.ndarray:
    """The sum of a law's ``known`` terms at each row; a term whose column a table lacks is 0 there (a calibration
    measured before the term existed: e.g. ``held_overlap``, jobs that held no overlap)."""
    terms = (frame[c].fillna(0.0).to_numpy(dtype=float) * k for c, k in law.known if c in frame)
    return sum(terms, np.zeros(len(frame)))


#: Time laws (seconds of one job at one thread) per rule family. A train job is the sum of four measured
#: parts (``summarise_run``): optimiser steps, validation + probes, test evaluation, start-up + set-up.
TIME_LAWS: dict[str, list[Law]] = {
    "structure": [
        Law("seconds", (("md_work", 1.0, False),), note="start-up + (FIRE minimisation + Langevin MD) steps × atoms")
    ],
    "structure_manifest": [Law("seconds", (("n_structures", 1.0, True),), note="reads every structure")],
    "free_atom": [Law("seconds", (("element_basis", 3.0, False),), note="start-up + one atom's SCF ∝ N_basis³")],
    "dft": [
        Law(
            "seconds",
            (
                ("atoms", 3.0, True),
                ("basis_per_atom", 3.0, True),
                ("grid_per_atom", 1.0, True),
                ("scf_digits", 1.0, False),
            ),
            intercept=False,
            note="SCF ∝ N_basis³ = (atoms × basis functions per atom)³ with its own exponent for each "
            "(a cluster grows: more atoms, auxiliary functions and grid; a basis grows: more functions "
            "on the same atoms), × grid points per atom (XC), × SCF cycles ∝ digits of conv_tol",
        )
    ],
    "dataset": [Law("seconds", (("split_functions", 1.0, False),), note="reads each structure's fit table")],
    "train": [
        Law(
            "steps_s",
            (("step_work", 1.0, False), ("n_params", 1.0, True), ("lmax_plus_1", 1.0, True)),
            intercept=False,
            note="epochs × structures × (dispatch per step / batch + atoms) × model × l_max",
        ),
        Law(
            "validate_s",
            (("forward_work", 1.0, False), ("n_params", 1.0, True), ("lmax_plus_1", 1.0, True)),
            intercept=False,
            note="(epochs × validation structures + probes × probe structures) × model; the coefficient-space "
            "validation's S·Δc (calibrated with the per-epoch ε on held grids, an upper bound)",
        ),
        Law("evaluate_s", (("test_grid", 1.0, False),), note="test (and ablation) ε: structures × grid points"),
        Law(
            "overhead_s",
            (("val_grid", 1.0, False),),
            note="start-up, data, the validation ε grids (built once: for the kept epoch's ε)",
        ),
    ],
    "models_table": [Law("seconds", (("n_models_read", 1.0, True),), note="one summary per model")],
    "analysis": [Law("seconds", (("n_models_read", 1.0, True),), note="tables of every model")],
    "figure": [Law("seconds", (("n_models_read", 1.0, True),), note="figures over every model")],
    "density_slice": [Law("seconds", (), intercept=False, note="two models on one plane: constant")],
    "findings_report": [Law("seconds", (), intercept=False, note="one small table: constant")],
}

#: Peak-memory laws (max RSS, MB) per rule family; ``dft`` uses its rule's ``mem_mb`` (the DFT estimate) instead.
#: Memory is held data, so exponents are the physical 1; each law is raised to bound every calibration job.
MEMORY_LAWS: dict[str, Law] = {
    # a held collocation entry is one float32: 4 B (grids are built a block of points at a time, so the
    # transient is ~0.2 GB at paper scale, within the fitted rest of a job); an overlap entry one float64: 8 B
    "train": Law(
        "max_rss",
        intercept=False,
        known=(
            ("held_grid", np.dtype(COLLOCATION_DTYPE).itemsize / 1e6),
            ("held_overlap", np.dtype(np.float64).itemsize / 1e6),
        ),
        note="the held ε collocations (a test chunk; jobs before the coefficient-space validation: the validation "
        "grids too) + the validation fit overlaps + the rest of a job",
    ),
    "dataset": Law("max_rss", (("split_functions", 1.0, False),)),
    "analysis": Law("max_rss", (("n_models_read", 1.0, False),)),
    "figure": Law("max_rss", (("n_models_read", 1.0, False),)),
    "structure_manifest": Law("max_rss", (("n_structures", 1.0, False),)),
}
#: Families whose memory is the largest measured RSS (nothing they hold grows much with the config:
#: models_table keeps one summary row per model).
CONSTANT_MEMORY = ("structure", "free_atom", "density_slice", "findings_report", "models_table")


def fit_law(table: pd.DataFrame, law: Law) -> FittedLaw:
    """Fit a law by least squares in log space.

    Parameters
    ----------
    table : pandas.DataFrame
        Calibration rows of one rule family; rows without a positive ``law.target`` are ignored.
    law : Law
        The law to fit.

    Returns
    -------
    FittedLaw
        The fitted law. An exponent is fitted only where the rows hold enough distinct sizes (n distinct
        feature vectors fit at most n parameters: scale, base, exponents, in that order of priority);
        the others keep their physical value. With a single size the base is dropped and the law is
        the geometric mean times the physical size dependence.

    Raises
    ------
    ValueError
        If no row measured the law's target.
    """
    from scipy.optimize import least_squares

    columns = [f[0] for f in law.features]
    rows = table[table[law.target].notna() & (table[law.target] > 0)] if law.target in table else table.iloc[:0]
    rows = rows.dropna(subset=columns)
    if rows.empty:
        raise ValueError(f"no calibration rows measure {law.target!r} for this law ({law.note})")
    y = np.log(rows[law.target].to_numpy(dtype=float))
    x = {c: rows[c].to_numpy(dtype=float) for c in columns}
    n_sizes = len(rows[columns].drop_duplicates()) if columns else 1
    free = [f[0] for f in law.features if f[2] and len(np.unique(x[f[0]])) > 1]
    intercept = law.intercept and n_sizes > 1
    while free and 1 + intercept + len(free) > n_sizes:
        free.pop()
    physical = {f[0]: f[1] for f in law.features}
    # costs grow with size, at most twice as fast as the physical law unless the law names a bound
    upper = {f[0]: (f[3] if len(f) > 3 else 2.0 * max(f[1], 0.5)) for f in law.features}

    def unpack(p):
        exps = {c: physical[c] for c in columns}
        exps.update(zip(free, p[2:]))
        return (math.exp(p[1]) if intercept else 0.0), math.exp(p[0]), exps

    def model(p):
        base, scale, exps = unpack(p)
        product = np.ones(len(y))
        for c in columns:
            product = product * np.power(x[c], exps[c])
        return base + scale * product

    # starts: physical exponents, a base of 5, 50 or 95 % of the smallest value, the scale through the median
    product = np.ones(len(y))
    for c in columns:
        product = product * np.power(x[c], physical[c])
    if intercept or free:
        bounds = ([-np.inf, -30] + [0.0] * len(free), [np.inf, 30] + [upper[c] for c in free])
        best = None
        for fraction in START_BASE_FRACTIONS if intercept else (0.0,):
            base0 = fraction * math.exp(y.min())
            scale0 = max(float(np.median((np.exp(y) - base0) / product)), 1e-30)
            p0 = np.array([math.log(scale0), math.log(max(base0, 1e-12))] + [physical[c] for c in free])
            p0 = np.clip(p0, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9)
            result = least_squares(lambda p: np.log(model(p)) - y, p0, bounds=bounds)
            if best is None or result.cost < best.cost - 1e-12:
                best = result
        p = best.x
    else:
        p = np.array([float(np.mean(y - np.log(product))), 0.0])
    base, scale, exps = unpack(p)
    fitted = FittedLaw(law, base, scale, exps, free, len(rows), n_sizes)
    fitted.rms_log_error = float(np.sqrt(np.mean((np.log(fitted.predict(rows)) - y) ** 2)))
    return fitted


def fit_memory_law(table: pd.DataFrame, law: Law) -> FittedLaw:
    """Fit a peak-memory law that bounds every calibration job.

    Parameters
    ----------
    table : pandas.DataFrame
        Calibration rows of one rule family. Peaks below ``RSS_FLOOR_MB`` are left out: the benchmark
        sampled such a job before its imports.
    law : Law
        The memory law.

    Returns
    -------
    FittedLaw
        ``fit_law``'s fit, scaled up until no calibration job's measured peak exceeds it.
    """
    table = table[table[law.target] >= RSS_FLOOR_MB]
    # a known term's missing value is 0 (``known_part``): a table measured before the term existed (e.g. no
    # ``held_overlap`` in the runs before the coefficient-space validation) stays in the fit
    rows = table.dropna(subset=[law.target] + [f[0] for f in law.features])
    rest = rows.assign(**{law.target: rows[law.target] - known_part(rows, law)})  # what the known terms leave
    fitted = fit_law(rest, law)
    margin = float(np.max(rest[law.target].to_numpy(dtype=float) / (fitted.predict(rows) - known_part(rows, law))))
    fitted.base, fitted.scale = fitted.base * max(margin, 1.0), fitted.scale * max(margin, 1.0)
    return fitted

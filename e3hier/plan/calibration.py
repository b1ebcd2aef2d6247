"""Calibration: tables of finished runs' measured jobs, and every law fitted on them.

The shipped tables are ``benchmarks/calibration/*.tsv`` (written by ``--summarise-run``, ``runs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e3hier.plan.dag import ROOT
from e3hier.plan.laws import CONSTANT_MEMORY, MEMORY_LAWS, RSS_FLOOR_MB, TIME_LAWS, fit_law, fit_memory_law

CALIBRATION_DIR = ROOT / "benchmarks" / "calibration"

#: Calibration tables used when none are given: the tiny and the default run, and three DFT jobs at the
#: paper's basis and grid (``paper-dft.yaml``), so a plan of ``config.paper.yaml`` does not extrapolate the
#: DFT from cc-pVDZ alone.
DEFAULT_CALIBRATION = ("tiny.tsv", "default.tsv", "paper-dft.tsv")

#: The study-tier check (docs/plan.md, tests/test_plan.py) is calibrated on the tiny and default runs only.
VALIDATION_CALIBRATION = ("tiny.tsv", "default.tsv")
VALIDATION_RUN = CALIBRATION_DIR / "validation" / "study.tsv"


@dataclass
class Calibration:
    """The fitted laws of a calibration.

    Attributes
    ----------
    time : dict
        ``{family: [FittedLaw, ...]}``: the parts of a job's seconds (four for ``train``).
    memory : dict
        ``{family: FittedLaw}`` of peak RSS (MB).
    constant_memory : dict
        ``{family: MB}``: the largest measured peak, for families whose memory does not grow.
    dft_startup : float
        CPU seconds of a DFT job outside its JSON's ``wall_seconds``.
    fallback_seconds : float
        Seconds of a job of a rule no calibration covers (the median small job).
    sources : list of str
        Names of the calibration tables.
    """

    time: dict
    memory: dict
    constant_memory: dict
    dft_startup: float
    fallback_seconds: float
    sources: list


def read_calibration(paths) -> pd.DataFrame:
    """Read calibration tables.

    Parameters
    ----------
    paths : list of path-like
        TSV files (``summarise_run`` output), or folders whose ``*.tsv`` are read.

    Returns
    -------
    pandas.DataFrame
        The tables stacked, with a ``source`` column (the file's stem).
    """
    files = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no calibration tables in {list(map(str, paths))}")
    frames = [pd.read_csv(f, sep="\t").assign(source=f.stem) for f in files]
    return pd.concat(frames, ignore_index=True)


def default_calibration_paths(names=DEFAULT_CALIBRATION) -> list[Path]:
    """The shipped calibration tables ``names`` (``DEFAULT_CALIBRATION``, or e.g. ``VALIDATION_CALIBRATION``) in
    ``benchmarks/calibration/``."""
    return [CALIBRATION_DIR / name for name in names]


def load_calibration(paths=None) -> Calibration:
    """``calibrate`` of the tables ``paths`` (``read_calibration``; default: ``default_calibration_paths()``)."""
    return calibrate(read_calibration(paths or default_calibration_paths()))


def calibrate(table: pd.DataFrame) -> Calibration:
    """Fit every law on a calibration table.

    Parameters
    ----------
    table : pandas.DataFrame
        ``read_calibration`` rows. Ensemble jobs are left out: their cost follows from a single model's
        and ``ensemble_cost``.

    Returns
    -------
    Calibration
        The fitted time and memory laws.
    """
    if "ensemble" in table:
        table = table[~table["ensemble"].fillna(False).astype(bool)]
    time = {
        family: [fit_law(table[table["family"] == family], law) for law in laws]
        for family, laws in TIME_LAWS.items()
        if (table["family"] == family).any()
    }
    memory = {}
    for family, law in MEMORY_LAWS.items():
        rows = table[(table["family"] == family) & (table["max_rss"] >= RSS_FLOOR_MB)]
        if not rows.empty:
            memory[family] = fit_memory_law(rows, law)
    constant = {
        family: float(table.loc[table["family"] == family, "max_rss"].max())
        for family in CONSTANT_MEMORY
        if (table["family"] == family).any()
    }
    dft = table[(table["family"] == "dft")]
    startup = float(dft["startup_s"].median()) if "startup_s" in dft and dft["startup_s"].notna().any() else 0.0
    small = table.loc[~table["family"].isin(["train", "dft"]), "seconds"]
    fallback = float(small.median()) if small.notna().any() else 10.0
    return Calibration(time, memory, constant, startup, fallback, sorted(table["source"].unique()))

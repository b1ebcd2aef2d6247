"""Validation of a calibration: predicted against measured core-hours of a summarised run."""

from __future__ import annotations

import pandas as pd

from e3hier.plan.calibration import Calibration
from e3hier.plan.predict import predict_jobs


def measured_rule_table(calibration_rows: pd.DataFrame) -> pd.DataFrame:
    """Measured totals of a summarised run (``calibration_rows``: ``summarise_run`` rows), per rule: ``jobs`` and
    ``core_hours`` (Σ seconds × threads / 3600)."""
    rows = calibration_rows.assign(core_hours=calibration_rows["seconds"] * calibration_rows["threads"] / 3600)
    grouped = rows.groupby("rule", sort=False)
    return pd.DataFrame({"jobs": grouped.size(), "core_hours": grouped["core_hours"].sum()})


def compare(predicted: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Predicted against measured core-hours.

    Parameters
    ----------
    predicted : pandas.DataFrame
        Per rule, a ``core_hours`` column.
    measured : pandas.DataFrame
        ``measured_rule_table`` output.

    Returns
    -------
    pandas.DataFrame
        Per rule and ``total``: ``jobs``, ``predicted_core_h``, ``measured_core_h`` and ``ratio``
        (predicted / measured).
    """
    table = pd.DataFrame(
        {
            "jobs": measured["jobs"],
            "predicted_core_h": predicted["core_hours"].reindex(measured.index).fillna(0.0),
            "measured_core_h": measured["core_hours"],
        }
    )
    table.loc["total"] = [table["jobs"].sum(), table["predicted_core_h"].sum(), table["measured_core_h"].sum()]
    table["ratio"] = table["predicted_core_h"] / table["measured_core_h"]
    return table


def validate_on(rows: pd.DataFrame, calibration: Calibration) -> pd.DataFrame:
    """Validate a calibration on a summarised run.

    Parameters
    ----------
    rows : pandas.DataFrame
        ``summarise_run`` rows of a run (e.g. ``VALIDATION_RUN``, the study tier).
    calibration : Calibration
        Laws fitted on other runs.

    Returns
    -------
    pandas.DataFrame
        ``compare`` of the plan of the run's own jobs with what they measured. The DFT is compared
        without job start-up, as the run's DFT cost is its JSONs' ``wall_seconds``.
    """
    predicted = predict_jobs(
        rows.drop(columns=["seconds", "max_rss"], errors="ignore"), calibration, include_dft_startup=False
    )
    by_rule = predicted.groupby("rule", sort=False)["core_hours"].sum().to_frame()
    return compare(by_rule, measured_rule_table(rows))

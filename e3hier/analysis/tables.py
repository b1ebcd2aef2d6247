"""Hierarchy analysis across the training grid: learning per l, ablation, data efficiency, transfer, and the
per-(model, test structure) errors the findings are measured on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from e3hier.analysis.families import trained
from e3hier.analysis.findings import REACHABLE, contributions, findings_table, study_models
from e3hier.analysis.gains import lmax_gains
from e3hier.io import read_json, read_table
from e3hier.training.evaluation import L_COLUMNS

GRID_COLUMNS = ["lmax_hidden", "output", "capacity", "channels", "seed", "n_train"]


def gather(model_dirs, name: str) -> pd.DataFrame:
    """Stack ``{dir}/{name}.parquet`` of every model, with its grid-point columns and ``diverged`` in front (a
    diverged ensemble member's rows stop at its last good epoch: flagged, never taken for a trained model's)."""
    frames = []
    for folder in map(Path, model_dirs):
        summary = read_json(folder / "summary.json")
        frame = read_table(folder / f"{name}.parquet")
        for i, column in enumerate(GRID_COLUMNS):
            frame.insert(i, column, summary[column])
        frame.insert(len(GRID_COLUMNS), "diverged", bool(summary.get("diverged", False)))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=GRID_COLUMNS + ["diverged"])


def learning_per_l(metrics: pd.DataFrame) -> pd.DataFrame:
    """Validation L2 error of each order l against epoch (coefficient space, ``val_l2_l{l}``), normalised by
    each l's free-atom (zero-prediction) baseline (``val_l2_baseline_l{l}``).

    Long format: grid columns, ``epoch``, ``l``, ``l2_l``, ``baseline_l``, ``ratio``.
    """
    missing = sorted({f"val_l2_l{l}" for l in L_COLUMNS} - set(metrics))
    if missing and len(metrics):
        raise ValueError(
            f"metrics tables: no columns {missing} (written before validation in coefficient space: retrain)"
        )
    rows = []
    for l in L_COLUMNS:
        part = metrics[GRID_COLUMNS + ["epoch"]].copy()
        part["l"] = l
        part["l2_l"] = metrics[f"val_l2_l{l}"]
        part["baseline_l"] = metrics[f"val_l2_baseline_l{l}"]
        rows.append(part)
    frame = pd.concat(rows, ignore_index=True)
    frame["ratio"] = frame["l2_l"] / frame["baseline_l"]
    return frame.dropna(subset=["ratio"])


def onset_table(learning: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Per model and l: the first epoch at which the validation error of order l (``learning_per_l``) falls
    below ``fraction`` × its baseline.

    ``onset_epoch`` is NaN when it never does; ``final_ratio`` is the error / baseline at the last epoch.
    """
    rows = []
    for key, group in learning.groupby(GRID_COLUMNS + ["l"], sort=True):
        group = group.sort_values("epoch")
        below = group[group["ratio"] < fraction]
        rows.append(
            {
                **dict(zip(GRID_COLUMNS + ["l"], key)),
                "onset_epoch": float(below["epoch"].iloc[0]) if len(below) else np.nan,
                "final_ratio": float(group["ratio"].iloc[-1]),
                "best_ratio": float(group["ratio"].min()),
                "baseline_l": float(group["baseline_l"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def learning_curve_slopes(models: pd.DataFrame) -> pd.DataFrame:
    """Slope of log ε_test against log N_train per (output, l_max, seed); empty with fewer than two sizes."""
    rows = []
    models = study_models(models)  # the controls are trained at one size only
    for key, group in models.groupby(["output", "lmax_hidden", "seed"], sort=True):
        if group["n_train"].nunique() < 2:
            continue
        slope, intercept = np.polyfit(np.log(group["n_train"]), np.log(group["epsilon_test"]), 1)
        rows.append(
            {
                "output": key[0],
                "lmax_hidden": key[1],
                "seed": key[2],
                "slope": slope,
                "intercept": intercept,
                "n_sizes": group["n_train"].nunique(),
            }
        )
    return pd.DataFrame(rows, columns=["output", "lmax_hidden", "seed", "slope", "intercept", "n_sizes"])


def transfer_table(evaluations: pd.DataFrame) -> pd.DataFrame:
    """Mean ε per model and test split (the larger clusters measure transfer)."""
    columns = ["epsilon", "epsilon_block", "epsilon_baseline", "electron_error"]
    table = evaluations.groupby(GRID_COLUMNS + ["split"], sort=True)[columns].mean().reset_index()
    sizes = evaluations.groupby(GRID_COLUMNS + ["split"], sort=True)["n_atoms"].mean().reset_index(drop=True)
    table["mean_atoms"] = sizes
    return table


def evaluation_table(evaluations: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Every model's ``eval.parquet`` (stacked by ``gather``) with the models table's ``reachable_lmax`` and
    ``epsilon_reachable``: each row's ``epsilon_block_upto_l{reachable_lmax}`` (ε of the block on the output
    orders every hidden l_max of the grid reaches)."""
    if "reachable_lmax" not in models:
        raise ValueError("models table: no column 'reachable_lmax' (written by training: rerun the train jobs)")
    reach = models[GRID_COLUMNS + ["reachable_lmax"]]
    table = evaluations.merge(reach, on=GRID_COLUMNS, how="left", validate="many_to_one")
    if table["reachable_lmax"].isna().any():
        raise ValueError("evaluation table: models without a reachable_lmax in the models table")
    table[REACHABLE.test] = np.nan
    for lmax in sorted(table["reachable_lmax"].unique()):
        column = f"epsilon_block_upto_l{int(lmax)}"
        if column not in table:
            raise ValueError(f"eval.parquet: no column {column!r} (reachable_lmax {int(lmax)}): rerun the train jobs")
        rows = table["reachable_lmax"] == lmax
        table.loc[rows, REACHABLE.test] = table.loc[rows, column]
    return table


def hierarchy_tables(
    model_dirs, onset_fraction: float, models: pd.DataFrame, test_split: str, equivalence: dict | None = None
) -> dict[str, pd.DataFrame]:
    """Every table of the analysis stage, keyed by its file stem under ``results/tables/``, from the models'
    folders and the models table (``results/tables/models.parquet``: its ``reachable_lmax`` and reachable ε);
    ``test_split`` is the first of ``train.test_splits``, the one split the findings are measured on;
    ``equivalence`` the findings' margins (``analysis.equivalence``)."""
    metrics = gather(model_dirs, "metrics")
    learning = learning_per_l(metrics)
    features = gather(model_dirs, "features")
    evaluation = evaluation_table(gather(model_dirs, "eval"), models)
    return {
        "findings": findings_table(models, evaluation, features, test_split, equivalence),
        "evaluation": evaluation,
        "lmax_gains": lmax_gains(trained(models)),
        "contributions": contributions(features),
        "training": metrics,
        "learning": learning,
        "hierarchy": onset_table(learning, onset_fraction),
        "features": features,
        "ablation": gather(model_dirs, "ablation"),
        "learning_curve": learning_curve_slopes(models),
        "transfer": transfer_table(evaluation),
    }

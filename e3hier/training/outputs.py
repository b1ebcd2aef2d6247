"""The outputs of one trained grid point: its tables and its row of the models table (the test columns are the
evaluation job's: ``test_columns``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from e3hier.data.layout import unreachable_orders
from e3hier.io import write_parquet
from e3hier.training.evaluation import L_COLUMNS, upto_columns
from e3hier.training.features import features_table
from e3hier.training.grid import GridPoint
from e3hier.training.trainer import Trainer

#: A trained grid point's training summary (``finish_training``), beside its ``model.pt``; the evaluate job adds the
#: test columns and writes ``summary.json``.
TRAINING_SUMMARY = "training.json"


def target_sizes(samples, predictor) -> dict:
    """Per output order l: RMS per component of the training targets (``target_rms_l{l}``) and of what
    the loss sees after ``train.target_scaling`` (``loss_target_rms_l{l}``)."""
    sums, scaled, counts = {}, {}, {}
    for s in samples:
        target = s.target[s.rows]
        seen = target / predictor.row_scales(s).double().cpu().numpy()
        for l in np.unique(s.l[s.rows]):
            rows = s.l[s.rows] == l
            sums[l] = sums.get(l, 0.0) + float((target[rows] ** 2).sum())
            scaled[l] = scaled.get(l, 0.0) + float((seen[rows] ** 2).sum())
            counts[l] = counts.get(l, 0) + int(rows.sum())
    out = {}
    for l in L_COLUMNS:
        out[f"target_rms_l{l}"] = (sums[l] / counts[l]) ** 0.5 if l in counts else float("nan")
        out[f"loss_target_rms_l{l}"] = (scaled[l] / counts[l]) ** 0.5 if l in counts else float("nan")
    return out


def finish_training(
    point: GridPoint,
    trainer: Trainer,
    metrics: pd.DataFrame,
    best: dict,
    callbacks: list,
    validation: dict,
    plan: dict,
    out_dir: Path,
) -> dict:
    """Write the training tables of one grid point (``model.pt`` is written already); returns its summary row
    without the test splits' columns (``training.json``, written by the caller; the evaluation job adds them:
    ``e3hier.training.held_out``). ``validation``: ``validation_row`` (the L1 ε on Becke grids) of the kept
    epoch's model on the validation split."""
    name = point.name
    # no epoch recorded: an ensemble member that diverged in its first epoch (its outputs are NaN)
    last = metrics.iloc[-1] if len(metrics) else {"wall_seconds": float("nan"), "epoch": 0, "step": 0}
    model_cfg, train_cfg, layout = trainer.model_config["model"], trainer.cfg, trainer.layout
    write_parquet(out_dir / "metrics.parquet", metrics, metadata=provenance(point, trainer))
    write_parquet(out_dir / "features.parquet", features_table(callbacks), metadata=provenance(point, trainer))
    n_params = int(sum(p.numel() for p in trainer.model.parameters()))
    if n_params != plan["n_params"]:  # the count the capacity control was planned with
        raise RuntimeError(f"grid point {name}: {n_params} parameters built, {plan['n_params']} planned")
    upto = [key.removeprefix("val_") for key in validation if key.startswith("val_epsilon_block_upto_")]
    return {
        "lmax_hidden": point.lmax_hidden,
        "output": point.output,
        "capacity": point.capacity,
        "channels": point.channels,
        "seed": point.seed,
        "n_train": len(trainer.train),
        "n_params": n_params,
        "target_params": int(plan["target_params"]),
        "hidden_multiplicities": "/".join(map(str, plan["multiplicities"])),
        "node_attributes": model_cfg.get("node_attributes", "constant"),
        "target_scaling": train_cfg["target_scaling"],
        "lmax_output": max(layout.counts),
        "unreachable_l": "/".join(
            map(str, unreachable_orders(point.lmax_hidden, model_cfg["lmax_edge"], sorted(layout.counts)))
        ),
        # the validation split's ε on Becke grids at the kept epoch (chosen on l2_val_best)
        "epsilon_val_best": float(validation["val_epsilon_block"]),
        "epsilon_val": float(validation["val_epsilon"]),
        **{c.replace("epsilon_", "epsilon_val_", 1): float(validation[f"val_{c}"]) for c in upto},
        "l2_val_best": float(best["l2"]),  # val_l2_block of the kept epoch (% of ‖ρ_ref‖)
        "best_epoch": int(best["epoch"]),
        "epochs": int(last["epoch"]),
        "steps": int(last["step"]),
        **target_sizes(trainer.train, trainer.predictor),
        "train_seconds": float(last["wall_seconds"]),
    }


def provenance(point: GridPoint, trainer: Trainer) -> dict:
    """The metadata of a grid point's tables: its grid point, train and model settings, device."""
    model_cfg, train_cfg = trainer.model_config["model"], trainer.cfg
    return {"grid_point": point.as_dict(), "train": train_cfg, "model": model_cfg, "device": str(trainer.device)}


def summary_test_columns(eval_table: pd.DataFrame, test_split: str, name: str) -> dict:
    """The summary's test columns of one model: the means over the structures of ``test_split`` (the first of
    ``train.test_splits``, never another one) of its ``eval.parquet`` table."""
    test = eval_table[eval_table["split"] == test_split] if len(eval_table) else eval_table
    if test.empty:
        raise ValueError(f"grid point {name}: no evaluation of the test split {test_split!r} (was it empty?)")
    return {
        "epsilon_test": float(test["epsilon"].mean()),
        "epsilon_test_block": float(test["epsilon_block"].mean()),
        **{f"epsilon_test_l{l}": float(test[f"epsilon_l{l}"].mean()) for l in L_COLUMNS},
        **{c.replace("epsilon_", "epsilon_test_", 1): float(test[c].mean()) for c in upto_columns(test)},
        "epsilon_test_baseline": float(test["epsilon_baseline"].mean()),
    }

"""The outputs of one trained and evaluated grid point: its tables and its row of the models table."""

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


def finish_grid_point(
    point: GridPoint,
    trainer: Trainer,
    metrics: pd.DataFrame,
    best: dict,
    callbacks: list,
    validation: dict,
    eval_table: pd.DataFrame,
    ablation: pd.DataFrame,
    plan: dict,
    out_dir: Path,
    test_split: str,
) -> dict:
    """Write the tables of one trained and evaluated grid point (``model.pt`` is written already); returns
    its summary row (``summary.json`` is written by the caller). ``validation``: ``validation_row`` (the L1 ε on
    Becke grids) of the kept epoch's model on the validation split; ``test_split``: the first of
    ``train.test_splits``, the split of the summary's test ε (never another one)."""
    name = point.name
    # no epoch recorded: an ensemble member that diverged in its first epoch (its outputs are NaN)
    last = metrics.iloc[-1] if len(metrics) else {"wall_seconds": float("nan"), "epoch": 0, "step": 0}
    train_seconds = float(last["wall_seconds"])
    model_cfg, train_cfg, layout = trainer.model_config["model"], trainer.cfg, trainer.layout
    provenance = {"grid_point": point.as_dict(), "train": train_cfg, "model": model_cfg, "device": str(trainer.device)}
    write_parquet(out_dir / "metrics.parquet", metrics, metadata=provenance)
    write_parquet(out_dir / "eval.parquet", eval_table, metadata=provenance)
    write_parquet(out_dir / "features.parquet", features_table(callbacks), metadata=provenance)
    write_parquet(out_dir / "ablation.parquet", ablation, metadata=provenance)
    # the summary's test ε: the first of train.test_splits, whatever its name
    test = eval_table[eval_table["split"] == test_split] if len(eval_table) else eval_table
    if test.empty:
        raise ValueError(f"grid point {name}: no evaluation of the test split {test_split!r} (was it empty?)")
    n_params = int(sum(p.numel() for p in trainer.model.parameters()))
    if n_params != plan["n_params"]:  # the count the capacity control was planned with
        raise RuntimeError(f"grid point {name}: {n_params} parameters built, {plan['n_params']} planned")
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
        "epsilon_test": float(test["epsilon"].mean()),
        "epsilon_test_block": float(test["epsilon_block"].mean()),
        **{f"epsilon_test_l{l}": float(test[f"epsilon_l{l}"].mean()) for l in L_COLUMNS},
        **{c.replace("epsilon_", "epsilon_test_", 1): float(test[c].mean()) for c in upto_columns(test)},
        "epsilon_test_baseline": float(test["epsilon_baseline"].mean()),
        # the validation split's ε on Becke grids at the kept epoch (chosen on l2_val_best)
        "epsilon_val_best": float(validation["val_epsilon_block"]),
        "epsilon_val": float(validation["val_epsilon"]),
        **{c.replace("epsilon_", "epsilon_val_", 1): float(validation[f"val_{c}"]) for c in upto_columns(test)},
        "l2_val_best": float(best["l2"]),  # val_l2_block of the kept epoch (% of ‖ρ_ref‖)
        "best_epoch": int(best["epoch"]),
        "epochs": int(last["epoch"]),
        "steps": int(last["step"]),
        **target_sizes(trainer.train, trainer.predictor),
        "train_seconds": train_seconds,
    }

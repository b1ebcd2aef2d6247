"""Did the models finish learning? ``python -m e3hier.analysis.convergence OUT RESULTS... --names NAME...``.

A verdict on how features organise *during training* is a claim about learned networks only if training ended
on a plateau. A model counts as settled (``SETTLED_CHANGE``) when either

- its kept epoch (the best validation error) lies before the last epoch: later epochs no longer improved it; or
- its validation error changed by less than 2 % over the last fifth of the epochs.

The validation error is the per-epoch ``val_l2`` of ``metrics.parquet`` (the coefficient-space L2 that picks the
kept epoch): validation ε on Becke grids is computed for the kept epoch only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from e3hier.io import read_table, write_parquet

#: The relative change of the validation error over the last fifth of the epochs below which a model has settled.
SETTLED_CHANGE = 0.02
#: The fraction of a run's epochs whose change ``SETTLED_CHANGE`` bounds.
LAST_FRACTION = 1 / 5
#: Columns of ``convergence_table``.
CONVERGENCE_COLUMNS = ["run", "name", "epochs", "best_epoch", "change_last_fifth", "kept_before_last", "settled"]


def change_last_fifth(val_l2: np.ndarray) -> float:
    """Relative change of the validation error over the last fifth of the epochs (at least one epoch back):
    ``(last − earlier) / earlier``."""
    val_l2 = np.asarray(val_l2, dtype=float)
    back = max(1, int(round(len(val_l2) * LAST_FRACTION)))
    if len(val_l2) <= back:
        return float("nan")
    return float((val_l2[-1] - val_l2[-1 - back]) / val_l2[-1 - back])


def is_settled(best_epoch: int, epochs: int, change: float) -> tuple[bool, bool]:
    """``(kept_before_last, settled)`` of one model (module docstring)."""
    kept_before_last = int(best_epoch) < int(epochs)
    return kept_before_last, bool(kept_before_last or (np.isfinite(change) and abs(change) < SETTLED_CHANGE))


def convergence_table(results: Path, run: str) -> pd.DataFrame:
    """One row per trained (not diverged) model of a run's ``results/`` folder (each ``models/*/summary.json``): its
    kept epoch, the epochs it ran, the validation error's change over the last fifth and whether it settled."""
    rows = []
    for summary_path in sorted((results / "models").glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        if summary.get("diverged"):
            continue
        metrics = read_table(summary_path.with_name("metrics.parquet"), ["epoch", "val_l2"]).sort_values("epoch")
        change = change_last_fifth(metrics["val_l2"].to_numpy())
        epochs = int(metrics["epoch"].max())
        kept_before_last, settled = is_settled(summary["best_epoch"], epochs, change)
        best = int(summary["best_epoch"])
        rows.append([run, summary_path.parent.name, epochs, best, change, kept_before_last, settled])
    if not rows:
        raise ValueError(f"{results / 'models'}: no trained model (no */summary.json)")
    return pd.DataFrame(rows, columns=CONVERGENCE_COLUMNS)


def convergence_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per run: models, how many kept an epoch before the last, how many settled, the median change."""
    grouped = table.groupby("run", sort=False)
    return pd.DataFrame(
        {
            "models": grouped.size(),
            "kept_before_last": grouped["kept_before_last"].sum(),
            "settled": grouped["settled"].sum(),
            "median_change_last_fifth": grouped["change_last_fifth"].median(),
            "epochs": grouped["epochs"].max(),
        }
    ).reset_index()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e3hier.analysis.convergence", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the table, one row per model (Parquet)")
    parser.add_argument("results", nargs="+", type=Path, help="each run's results/ folder")
    parser.add_argument("--names", nargs="+", help="one name per folder (default: the folders)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    names = args.names or [str(r) for r in args.results]
    if len(names) != len(args.results):
        parser.error(f"--names: {len(names)} names for {len(args.results)} results folders")
    missing = [str(r / "models") for r in args.results if not (r / "models").is_dir()]
    if missing:
        raise SystemExit(f"e3hier.analysis.convergence: no trained models at {', '.join(missing)} (run it first)")
    tables = [convergence_table(r, name) for r, name in zip(args.results, names)]
    write_parquet(args.out, pd.concat(tables, ignore_index=True))


if __name__ == "__main__":
    main()

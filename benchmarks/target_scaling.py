"""Benchmark: test ε after training with each ``train.target_scaling`` (the study's loss against the default).

``python -m benchmarks.target_scaling [--epochs 15] [--seeds 0 1] [--n-train 20] [--batch-size 4] [--lr-decay 0.9]
[--scalings population population_rms global_rms] [--lmax 2] [--out FILE]`` trains each hidden l_max, full
output, on the first ``--n-train`` training structures of a finished run's dataset (``results/dataset/``: run
``make study`` or ``make reproduce`` first), validating on 3 and testing on 2, and writes
``results/benchmarks/target_scaling.csv`` (``--out``): one row per scaling, l_max and seed with the test ε in
total and per order l. docs/conventions.md quotes its numbers.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import OUT, ROOT, load_config
from e3hier.training.train_and_evaluate import run_grid_point

DATASET = ROOT / "results" / "dataset"


def first_structures(split: str, count: int, folder: Path) -> Path:
    """The first ``count`` structures of a split, as a dataset file in ``folder``."""
    frame = pd.read_parquet(DATASET / f"{split}.parquet")
    keep = list(dict.fromkeys(frame["structure"]))[:count]
    path = folder / f"{split}.parquet"
    frame[frame["structure"].isin(keep)].to_parquet(path)
    return path


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.target_scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-train", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr-decay", type=float, default=0.9)
    parser.add_argument("--lmax", type=int, nargs="+", default=[2], help="hidden l_max (full output)")
    parser.add_argument("--out", default="target_scaling.csv", help="file name under results/benchmarks/")
    parser.add_argument("--scalings", nargs="+", default=["population", "population_rms", "global_rms"])
    args = parser.parse_args(argv)
    if not (DATASET / "train.parquet").is_file():
        raise SystemExit(f"benchmarks.target_scaling: no dataset at {DATASET} (run make study or make reproduce)")
    config = load_config(ROOT / "config.yaml")
    train_cfg = {
        **config["train"],
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr_decay": args.lr_decay,
        "device": "cpu",
        "threads": 1,
        "patience": 0,
    }
    probes_off = {"probe_schedule": {"dense_steps": 0, "max_probes": 2}, "probe_structures": 1}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, val, test = (first_structures(s, n, tmp) for s, n in (("train", args.n_train), ("val", 3), ("test", 2)))
        for scaling, lmax, seed in itertools.product(args.scalings, args.lmax, args.seeds):
            start = time.perf_counter()
            point = {"lmax_hidden": lmax, "output": "full", "seed": seed, "n_train": "all"}
            summary = run_grid_point(
                point,
                train,
                val,
                {"test": test},
                config["dft"],
                config["model"],
                {**train_cfg, "target_scaling": scaling},
                config["metric"],
                tmp / f"{scaling}_{lmax}_{seed}",
                analysis_cfg=probes_off,
            )["summary"]
            row = {"scaling": scaling, "lmax_hidden": lmax, "seed": seed, "steps": summary["steps"]}
            row["seconds"] = round(time.perf_counter() - start, 1)
            row.update({k: v for k, v in summary.items() if k.startswith("epsilon_test_l") or k == "epsilon_test"})
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / args.out, index=False)
    print(table.groupby(["scaling", "lmax_hidden"])["epsilon_test"].agg(["mean", "min", "max"]).to_string())
    return table


if __name__ == "__main__":
    main()

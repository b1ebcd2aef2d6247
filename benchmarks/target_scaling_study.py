"""Benchmark: the study's loss (``population``) against the default (``global_rms``) on the study tier.

Both sides train the same structures (draw 0), seeds, epochs and networks; only ``train.target_scaling``
differs, so each (l_max, seed) is a pair. Run ``make study`` first, then the population side in its own
folder, which reuses draw 0's DFT when ``results/{structures,dft,dataset,reference}`` are copied there first
(``cp -a``):

    python -m e3hier.workflow.resume --cores all --snakefile $PWD/Snakefile --directory results/population \\
        results/tables/models.parquet --configfile $PWD/config.yaml $PWD/config.study.yaml \\
        $PWD/benchmarks/configs/population_study.yaml
    python -m benchmarks.target_scaling_study results/population/results/tables/models.parquet \\
        results/tables/models.parquet

It prints, per hidden l_max (full output), the test ε of both (mean ± SD over seeds), their paired ratio
(geometric mean, 95 % t interval over seeds) and the mean kept epoch. docs/study.md quotes it.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import stats

from e3hier.analysis.families import study_models

PAIR = ["lmax_hidden", "seed"]
COLUMNS = PAIR + ["epsilon_test", "best_epoch", "epochs"]


def full_output_models(models: pd.DataFrame) -> pd.DataFrame:
    """The full-output models of the l_max axis (no capacity or channel control: ``families.study_models``)."""
    study = study_models(models)
    return study.loc[study["output"] == "full", COLUMNS]


def compare(population: pd.DataFrame, global_rms: pd.DataFrame) -> pd.DataFrame:
    """One row per hidden l_max: test ε under each loss, the paired ratio and its 95 % t interval."""
    pairs = full_output_models(population).merge(
        full_output_models(global_rms), on=PAIR, suffixes=("_population", "_global")
    )
    if pairs.empty:
        raise ValueError("no (lmax_hidden, seed) pair of full-output models in both tables")
    rows = []
    for lmax, group in pairs.groupby("lmax_hidden"):
        log_ratio = np.log(group["epsilon_test_population"] / group["epsilon_test_global"])
        half = stats.t.ppf(0.975, len(group) - 1) * log_ratio.std(ddof=1) / np.sqrt(len(group))
        rows.append(
            {
                "lmax_hidden": lmax,
                "seeds": len(group),
                "epsilon_test_population": group["epsilon_test_population"].mean(),
                "sd_population": group["epsilon_test_population"].std(ddof=1),
                "epsilon_test_global_rms": group["epsilon_test_global"].mean(),
                "sd_global_rms": group["epsilon_test_global"].std(ddof=1),
                "ratio": np.exp(log_ratio.mean()),
                "ratio_low": np.exp(log_ratio.mean() - half),
                "ratio_high": np.exp(log_ratio.mean() + half),
                "best_epoch_population": group["best_epoch_population"].mean(),
                "best_epoch_global_rms": group["best_epoch_global"].mean(),
                "epochs": group["epochs_population"].max(),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.target_scaling_study", description=__doc__.split("\n")[0]
    )
    parser.add_argument("population", help="models.parquet of the run with train.target_scaling: population")
    parser.add_argument("global_rms", help="models.parquet of make study (train.target_scaling: global_rms)")
    args = parser.parse_args(argv)
    table = compare(pd.read_parquet(args.population), pd.read_parquet(args.global_rms))
    print(table.round(3).to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()

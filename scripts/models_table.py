"""Snakemake glue: gather every model's summary into results/tables/models.parquet, with the ε of the output
orders every model of the grid can reach (``e3hier.training.evaluation.with_reachable``)."""

import pandas as pd

from e3hier.io import logged_errors, read_json, setup_logging, write_parquet
from e3hier.training.evaluation import with_reachable

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    table = pd.DataFrame([read_json(p) for p in snakemake.input.summaries])
    table = with_reachable(table, snakemake.params.lmax_hidden, snakemake.params.lmax_edge)
    table = table.sort_values(["output", "capacity", "channels", "lmax_hidden", "seed", "n_train"], ignore_index=True)
    write_parquet(snakemake.output[0], table)
    log.info("%d models", len(table))

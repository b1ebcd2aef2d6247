"""Snakemake glue: the hierarchy tables of the whole training grid."""

import pandas as pd

from e3hier.analysis.tables import hierarchy_tables
from e3hier.io import logged_errors, setup_logging, write_parquet

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    tables = hierarchy_tables(
        snakemake.params.model_dirs,
        snakemake.params.onset_fraction,
        pd.read_parquet(snakemake.input.models),
        snakemake.params.test_split,
        snakemake.params.equivalence,
    )
    for name, table in tables.items():
        write_parquet(snakemake.output[name], table)
        log.info("%s: %d rows", name, len(table))

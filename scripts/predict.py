"""Snakemake glue: predict the density of the structures of the config's predict block (e3hier.predict)."""

from pathlib import Path

from e3hier.io import logged_errors, setup_logging
from e3hier.predict.bundle import load_bundle
from e3hier.predict.predictions import predict

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    table = predict(
        load_bundle(snakemake.input.model),
        list(snakemake.input.xyz),
        Path(snakemake.params.out),
        snakemake.params.spacing,
        snakemake.params.margin,
        snakemake.params.config,
        min_distance=snakemake.params.min_distance,
        # the DFT rule's table of each structure (predict.reference), by id
        references=dict(zip(snakemake.params.ids, snakemake.input.dft)) if snakemake.input.dft else None,
    )
    log.info("%d structures predicted:\n%s", len(table), table.to_string(index=False))

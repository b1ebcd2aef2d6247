"""Snakemake glue: train and evaluate one grid point."""

from pathlib import Path

from e3hier.experiment import run_grid_point
from e3hier.io import logged_errors, setup_logging

log = setup_logging(snakemake.log[0])

with logged_errors(log), open(snakemake.log[0], "a") as progress:
    point = dict(snakemake.params.point)
    result = run_grid_point(
        point,
        snakemake.input.train,
        snakemake.input.val,
        dict(zip(snakemake.params.test_splits, snakemake.input.tests)),
        snakemake.params.dft,
        snakemake.params.model,
        snakemake.params.train,
        snakemake.params.metric,
        Path(snakemake.output.model).parent,
        log_stream=progress,
        analysis_cfg=snakemake.params.probes,
        reference_lmax=snakemake.params.reference_lmax,
    )
    log.info("done: %s", result["summary"])

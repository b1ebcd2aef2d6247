"""Snakemake glue: evaluate the models of one train job (a grid point, or a block of its seeds) on the test splits."""

from pathlib import Path

import torch

from e3hier.io import logged_errors, setup_logging
from e3hier.training.held_out import evaluate_grid_points

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    models = snakemake.input.model
    models = [models] if isinstance(models, str) else list(models)
    # how the job runs is no param (a change re-evaluates nothing): from the config
    torch.set_num_threads(int(snakemake.threads))
    summaries = evaluate_grid_points(
        [Path(model).parent for model in models],
        dict(zip(snakemake.params.test_splits, snakemake.input.tests)),
        snakemake.params.dft,
        snakemake.params.metric,
        device=snakemake.config["train"]["device"],
        # the ε grids held: metric.collocation_cache_mb, or the profile's resource of that name (rules/train.smk)
        collocation_cache_mb=snakemake.resources.collocation_cache_mb,
    )
    for summary in summaries:
        log.info("evaluated: %s", summary)

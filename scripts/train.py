"""Snakemake glue: train and evaluate one grid point, or a block of its seeds together."""

from pathlib import Path

from e3hier.experiment import run_grid_points
from e3hier.grid import EXECUTION_SETTINGS
from e3hier.io import logged_errors, setup_logging
from e3hier.metric import TRAINING_BASE_MB

log = setup_logging(snakemake.log[0])

with logged_errors(log), open(snakemake.log[0], "a") as progress:
    models = snakemake.output.model
    models = [models] if isinstance(models, str) else list(models)
    # how the job runs is no param (a change retrains nothing): from the config, threads as the job got them
    execution = {key: snakemake.config["train"][key] for key in EXECUTION_SETTINGS}
    train_cfg = {**snakemake.params.train, **execution, "threads": snakemake.threads}
    results = run_grid_points(
        [dict(point) for point in snakemake.params.points],
        snakemake.input.train,
        snakemake.input.val,
        dict(zip(snakemake.params.test_splits, snakemake.input.tests)),
        snakemake.params.dft,
        snakemake.params.model,
        train_cfg,
        snakemake.params.metric,
        [Path(model).parent for model in models],
        log_stream=progress,
        analysis_cfg=snakemake.params.probes,
        reference_lmax=snakemake.params.reference_lmax,
        # the ε grids held: what the job's memory leaves (metric.collocation_cache_mb, or a bigger mem_mb)
        collocation_cache_mb=snakemake.resources.mem_mb - TRAINING_BASE_MB,
    )
    for result in results:
        log.info("done: %s", result["summary"])

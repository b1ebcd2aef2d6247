"""Snakemake glue: train one grid point, or a block of its seeds together (the evaluate job tests them)."""

from pathlib import Path

from e3hier.io import logged_errors, setup_logging
from e3hier.training.experiment import train_grid_points
from e3hier.training.grid import EXECUTION_SETTINGS, folder_values

log = setup_logging(snakemake.log[0])

with logged_errors(log), open(snakemake.log[0], "a") as progress:  # not an output: the progress log, appended to
    models = snakemake.output.model
    models = [models] if isinstance(models, str) else list(models)
    # how the job runs is no param (a change retrains nothing): from the config, threads as the job got them
    execution = {key: snakemake.config["train"][key] for key in EXECUTION_SETTINGS}
    train_cfg = {**snakemake.params.train, **execution, "threads": snakemake.threads}
    results = train_grid_points(
        # a job's grid points are its output folders (no param names them: a block that loses a seed keeps the
        # others' models, e3hier.training.grid.seed_blocks)
        [folder_values(Path(model).parent.name) for model in models],
        snakemake.input.train,
        snakemake.input.val,
        snakemake.params.dft,
        snakemake.params.model,
        train_cfg,
        snakemake.params.metric,
        [Path(model).parent for model in models],
        log_stream=progress,
        analysis_cfg=snakemake.params.probes,
        reference_lmax=snakemake.params.reference_lmax,
        # the ε grids held: metric.collocation_cache_mb, or the profile's resource of that name (rules/train.smk)
        collocation_cache_mb=snakemake.resources.collocation_cache_mb,
        # read from the config, not a param: adding a size retrains nothing; a size equal to another is refused
        n_train_grid=snakemake.config["train"]["n_train"],
    )
    for result in results:
        log.info("trained: %s", result["summary"])

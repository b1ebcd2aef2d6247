"""Train, then evaluate on the test splits, as the workflow's train and evaluate jobs do one after the other (for
tests, benchmarks and scripts that need a finished grid point without Snakemake)."""

from __future__ import annotations

from e3hier.data.metric import COLLOCATION_CACHE_MB
from e3hier.training.experiment import train_grid_points
from e3hier.training.held_out import evaluate_grid_points


def run_grid_point(
    point: dict, train_path, val_path, test_paths: dict, dft_cfg, model_cfg, train_cfg, metric_cfg, out_dir, **options
) -> dict:
    """Train and evaluate one grid point; write ``model.pt``, ``metrics.parquet``, ``features.parquet``,
    ``training.json``, then ``eval.parquet``, ``ablation.parquet`` and ``summary.json``.

    ``point`` holds the fields of ``e3hier.training.grid.GridPoint`` (``capacity``, ``channels``: ``study`` if absent);
    ``test_paths`` maps each test split to its dataset file; ``analysis_cfg`` sets ``probe_schedule``
    (``dense_steps``, ``max_probes``: the optimiser steps after which the hidden features are probed,
    ``e3hier.training.features.probe_steps``) and ``probe_structures`` (the first validation structures probed);
    ``reference_lmax`` is the l_max whose parameter count a ``capacity: matched`` point takes;
    ``collocation_cache_mb`` bounds the ε-grid collocation held (``e3hier.data.metric.CollocationBudget``): a chunk of
    test grids at a time. Every epoch is validated in coefficient space (``e3hier.data.coefficient_metric``); the ε
    grids of the validation split are built once, after training, for the kept epoch's ε (streamed: used once).
    ``options``: ``log_stream``, ``analysis_cfg``, ``reference_lmax``, ``n_train_grid`` of ``train_grid_points`` and
    ``collocation_cache_mb``. Returns its ``run_grid_points`` result (``summary``: the row of the models table).
    """
    paths_and_settings = (train_path, val_path, test_paths, dft_cfg, model_cfg, train_cfg, metric_cfg)
    return run_grid_points([point], *paths_and_settings, [out_dir], **options)[0]


def run_grid_points(
    points: list[dict],
    train_path,
    val_path,
    test_paths: dict,
    dft_cfg: dict,
    model_cfg: dict,
    train_cfg: dict,
    metric_cfg: dict,
    out_dirs: list,
    collocation_cache_mb: float = COLLOCATION_CACHE_MB,
    **options,
) -> list[dict]:
    """``run_grid_point`` for grid points that differ only in their seed: ``train_grid_points`` (trained together in
    one ``EnsembleTrainer``; one point: trained alone), then ``e3hier.training.held_out.evaluate_grid_points`` on the
    test splits, as the workflow's train and evaluate jobs do. Returns each point's ``train_grid_points`` result,
    its summary completed with the test columns."""
    results = train_grid_points(
        points, train_path, val_path, dft_cfg, model_cfg, train_cfg, metric_cfg, out_dirs,
        collocation_cache_mb=collocation_cache_mb, **options,
    )  # fmt: skip
    summaries = evaluate_grid_points(
        out_dirs, test_paths, dft_cfg, metric_cfg, train_cfg["device"], collocation_cache_mb=collocation_cache_mb
    )
    for result, summary in zip(results, summaries):
        result["summary"] = summary
    return results

"""The plan: each job's seconds, core-hours, GPU-hours and peak memory, and the totals per rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from e3hier.plan.calibration import Calibration, load_calibration
from e3hier.plan.dag import dag_jobs, load_config
from e3hier.plan.features import job_features

#: Cost of one model trained in a ``train_ensemble_*`` job on the CPU, relative to the same model trained alone,
#: per part of the job (the ``train`` laws' targets; K models cost Σ over parts of K × one model's part × this).
#: Measured by ``make bench``'s ensemble benchmark (``benchmarks/ensemble.py``: ``part_cost_factor``, K = 5,
#: one thread, the least of 2 repetitions per job), two runs on 2026-12-02: per part the larger of l_max 2 and 4,
#: averaged over the runs (steps 0.79 and 0.95, validation + probes 0.87 and 0.90, test 0.28 and 0.23, start-up
#: 0.22 and 0.21; an in-process A/B of 6 epochs' steps at l_max 4 gave 0.83): the stacked
#: members' steps and forwards share only the per-op dispatch (their per-edge arithmetic grows with K), the
#: test split's ε grids are read once for all members, and the start-up and data are the job's once. A long
#: CPU job is mostly steps, so its ensemble saves ~10 %, where the benchmark's short jobs save ~60–70 %.
ENSEMBLE_PART_COST_CPU = {"steps_s": 0.87, "validate_s": 0.89, "evaluate_s": 0.26, "overhead_s": 0.22}

#: The same on a GPU, not measured: a stated assumption. A batch-1 step is bound by kernel launches, which the
#: members share (one launch per op for the K stacked members), so the whole job is priced at the CPU
#: benchmark's whole-job ratio (``ensemble_speedup`` ≈ 3 at K = 5), not at the ~1/K that launch-bound steps
#: would give: a conservative price until a GPU is measured (``make gpu-check``).
ENSEMBLE_COST_FACTOR_GPU = 1 / 3.0

#: Speed of a training job on one GPU relative to the same job on one CPU core. No GPU was measured: the
#: study's batch-1 steps on 9–30-atom graphs are ~2,400 small autograd ops each, bound by per-op dispatch
#: (the Python/ATen overhead and, on a GPU, the kernel launch latency), not arithmetic, so a GPU is
#: assumed to run them no faster than a core. Change this constant (or ``--gpu-speedup``) once measured.
GPU_SPEEDUP_OVER_CORE = 1.0

#: Compile time added to every training job where ``train.compile`` is on (``e3hier.training.compiled_step``): a cold
#: compile of a job's forward and backward measured 2.5 min (l_max 0), 3–4 min (l_max 2–4) and 7.3 min (an
#: ensemble of 5 at l_max 4) on our loaded 2-core machine (``benchmarks/compile_step.py``); 10 min covers them.
#: Compiling is CPU work that a GPU does not shorten. The steps' cost is left unchanged (on the CPU compiled
#: steps measured 1.3× as fast at l_max 0 and 0.6–0.8× at l_max 2–4; not measured on a GPU).
COMPILE_SECONDS = 600.0

#: Share of a job's work that extra threads parallelise (Amdahl), per rule family. Only one-thread jobs were
#: measured. Training: 0, the dispatch-bound batch-1 step does not thread, so wall = the one-thread time and
#: core-hours = wall × threads (an upper bound for its threaded numpy parts). Other rules (e.g. dft at the
#: Slurm profile's 4 threads, PySCF's OpenMP): ``DEFAULT_PARALLEL_FRACTION`` = 1, ideal scaling, so their
#: core-hours do not depend on threads (an optimistic bound).
PARALLEL_FRACTION = {"train": 0.0, "evaluate": 0.0}

#: The parts of the ``train`` laws that the evaluate job runs (the test splits' ε and the ablation); the train job
#: runs the others (a table without evaluate jobs, e.g. a calibration's, prices its train jobs whole). The shipped
#: calibrations measured train jobs that still evaluated their models, so both families are priced from the
#: ``train`` laws, and an evaluate job's start-up as a small job's (``Calibration.fallback_seconds``). Its memory
#: is priced as a train job's (an upper bound: no validation overlaps).
EVALUATE_PARTS = ("evaluate_s",)
TRAIN_PARTS = ("steps_s", "validate_s", "evaluate_s", "overhead_s")
DEFAULT_PARALLEL_FRACTION = 1.0

#: Rules that run nothing (a target-only rule).
NO_COST_RULES = ("all",)


def predict_jobs(
    features: pd.DataFrame,
    calibration: Calibration,
    gpu_speedup: float = GPU_SPEEDUP_OVER_CORE,
    include_dft_startup: bool = True,
    compile_seconds: float = 0.0,
) -> pd.DataFrame:
    """Predict every job's cost.

    Parameters
    ----------
    features : pandas.DataFrame
        ``job_features`` rows (or a calibration table's).
    calibration : Calibration
        The fitted laws.
    gpu_speedup : float
        Speed of a training job on a GPU relative to one core (``GPU_SPEEDUP_OVER_CORE``).
    include_dft_startup : bool
        Add the DFT job start-up (False to compare with the JSONs' ``wall_seconds``).
    compile_seconds : float
        Added to every training job (``COMPILE_SECONDS`` where ``train.compile`` is on), after the GPU speed-up.

    Returns
    -------
    pandas.DataFrame
        ``features`` with ``seconds`` (the job's wall time: one-thread seconds, ``PARALLEL_FRACTION`` for
        more threads, ``gpu_speedup`` on a GPU, ``ensemble_cost`` for an ensemble job),
        ``core_hours`` (seconds × threads), ``gpu_hours``, ``mem_mb`` (peak RSS), the train parts, and
        ``uncalibrated`` (a rule no calibration covers: ``fallback_seconds``).
    """
    out = features.copy()
    out["seconds"] = 0.0
    out["uncalibrated"] = False
    # jobs without evaluate jobs beside them (a calibration table: its train jobs evaluated their models) are priced
    # whole; in today's DAG each train job's test evaluation is its evaluate job's
    separate_evaluation = (out["family"] == "evaluate").any()
    for family, group in out.groupby("family"):
        if family in NO_COST_RULES:
            continue
        laws = calibration.time.get("train" if family == "evaluate" else family)
        if laws is None:
            out.loc[group.index, "uncalibrated"] = True
            out.loc[group.index, "seconds"] = calibration.fallback_seconds
            continue
        if family in ("train", "evaluate") and separate_evaluation:  # each its parts of the train laws, the others 0
            laws = [law for law in laws if (law.law.target in EVALUATE_PARTS) == (family == "evaluate")]
            out.loc[group.index, list(TRAIN_PARTS)] = 0.0
        total = np.zeros(len(group))
        for law in laws:
            part = law.predict(group)
            out.loc[group.index, law.law.target] = part
            total = total + part
        if family == "evaluate":
            out.loc[group.index, "overhead_s"] = calibration.fallback_seconds
            total = total + calibration.fallback_seconds
        out.loc[group.index, "seconds"] = total
    if "n_models" in out:
        ensemble_cost(out)
    dft = out["family"] == "dft"
    if include_dft_startup:
        out.loc[dft, "seconds"] += calibration.dft_startup
    threads = out["threads"].to_numpy(dtype=float)
    on_gpu = out["gpu"].to_numpy(dtype=float) > 0
    speed = np.where(on_gpu, gpu_speedup, 1.0)
    parallel = out["family"].map(lambda f: PARALLEL_FRACTION.get(f, DEFAULT_PARALLEL_FRACTION)).to_numpy(float)
    out["seconds"] = out["seconds"] * ((1 - parallel) + parallel / threads) / speed
    out.loc[out["family"] == "train", "seconds"] += compile_seconds
    out["core_hours"] = out["seconds"] * threads / 3600
    out["gpu_hours"] = out["seconds"] * out["gpu"].to_numpy(dtype=float) / 3600
    out["mem_mb"] = np.nan
    for family, group in out.groupby("family"):
        family = "train" if family == "evaluate" else family
        if family == "dft":
            out.loc[group.index, "mem_mb"] = group["dft_mem_mb"]
        elif family in calibration.memory:
            out.loc[group.index, "mem_mb"] = calibration.memory[family].predict(group)
        elif family in calibration.constant_memory:
            out.loc[group.index, "mem_mb"] = calibration.constant_memory[family]
    return out


def ensemble_cost(out: pd.DataFrame) -> None:
    """Price the ``train_ensemble_*`` and ``evaluate_ensemble_*`` jobs of ``out`` in place (their laws' parts are one
    model's): K × one model
    × the factor, on the CPU part by part (``ENSEMBLE_PART_COST_CPU``), on a GPU (or without the parts: an
    uncalibrated rule) as a whole (``ENSEMBLE_COST_FACTOR_GPU``)."""
    models = out["n_models"].fillna(1).to_numpy(dtype=float)
    ensemble = models > 1
    parts = list(ENSEMBLE_PART_COST_CPU)
    has_parts = out.reindex(columns=parts).notna().all(axis=1).to_numpy()
    by_parts = ensemble & has_parts & (out["gpu"].to_numpy(dtype=float) == 0)
    whole = ensemble & ~by_parts
    for part in (p for p in parts if p in out):
        factor = np.where(by_parts, ENSEMBLE_PART_COST_CPU[part], ENSEMBLE_COST_FACTOR_GPU)
        out.loc[ensemble, part] = out.loc[ensemble, part] * (models * factor)[ensemble]
    if by_parts.any():
        out.loc[by_parts, "seconds"] = out.loc[by_parts, parts].sum(axis=1)
    out.loc[whole, "seconds"] *= models[whole] * ENSEMBLE_COST_FACTOR_GPU


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per-rule totals of a prediction.

    Parameters
    ----------
    jobs : pandas.DataFrame
        ``predict_jobs`` output.

    Returns
    -------
    pandas.DataFrame
        Indexed by rule, by core-hours: ``jobs``, ``models``, ``threads``, ``core_hours``,
        ``longest_job_h``, ``peak_mem_gb`` (the largest job's), ``gpu_hours``, ``requested_mem_gb`` and
        ``requested_runtime_h`` (the largest request in the DAG).
    """
    grouped = jobs.groupby("rule", sort=False)
    table = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "models": grouped["n_models"].sum().where(grouped["family"].first() == "train", 0).astype(int),
            "threads": grouped["threads"].max(),
            "core_hours": grouped["core_hours"].sum(),
            "longest_job_h": grouped["seconds"].max() / 3600,
            "peak_mem_gb": grouped["mem_mb"].max() / 1000,
            "gpu_hours": grouped["gpu_hours"].sum(),
            "requested_mem_gb": grouped["mem_mb_requested"].max() / 1000,
            "requested_runtime_h": grouped["runtime_requested_min"].max() / 60,
        }
    )
    return table.sort_values("core_hours", ascending=False)


def plan(configfiles, calibration_paths=None, workdir=None, gpu_speedup: float = GPU_SPEEDUP_OVER_CORE, profile=None):
    """The cost plan of a config.

    Parameters
    ----------
    configfiles : list of path-like
        Config files in merge order.
    calibration_paths : list of path-like, optional
        Calibration tables (default: ``default_calibration_paths()``).
    workdir : path-like, optional
        Where the config's relative paths resolve (a scratch directory if None).
    gpu_speedup : float
        As in ``predict_jobs``.
    profile : path-like, optional
        As in ``dry_run_text``.

    Returns
    -------
    tuple
        ``(rule_table, per-job predict_jobs table, Calibration)``.
    """
    configfiles = [Path(f).resolve() for f in configfiles]
    calibration = load_calibration(calibration_paths)
    config = load_config(configfiles)
    jobs = dag_jobs(configfiles, workdir, profile)
    compile_seconds = COMPILE_SECONDS if config["train"].get("compile") else 0.0  # train.compile
    per_job = predict_jobs(job_features(jobs, config, workdir or "."), calibration, gpu_speedup, True, compile_seconds)
    return rule_table(per_job), per_job, calibration

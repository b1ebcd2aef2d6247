"""Calibration tables from finished runs: each job's size features beside what was measured.

``python -m e3hier.plan --summarise-run RUN_DIR`` writes one (``summarise_run``); reads only the run's
benchmark files, model summaries, DFT JSONs and Snakemake's metadata.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

from e3hier.plan.dag import dag_jobs, load_config
from e3hier.plan.features import job_features


def _benchmark(path: Path) -> dict:
    """Wall seconds, max RSS and mean load of a Snakemake benchmark file."""
    frame = pd.read_csv(path, sep="\t")
    load = pd.to_numeric(frame["mean_load"], errors="coerce").iloc[0] if "mean_load" in frame else np.nan
    return {"seconds": float(frame["s"].iloc[0]), "max_rss": float(frame["max_rss"].iloc[0]), "mean_load": load}


def _job_wall(run_dir: Path, output: str) -> float:
    """A job's wall time from Snakemake's metadata of one of its outputs (NaN if not recorded)."""
    name = base64.urlsafe_b64encode(output.encode()).decode()
    path = run_dir / ".snakemake" / "metadata" / name
    try:
        record = json.loads(path.read_text())
        return float(record["endtime"]) - float(record["starttime"])
    except (OSError, KeyError, TypeError, ValueError):
        return float("nan")


#: The measured parts of a train job (``train_parts``): the ``train`` time laws' targets.
TRAIN_PARTS = ("steps_s", "validate_s", "evaluate_s", "overhead_s")


def train_parts(model_dir: Path, seconds: float, models: int = 1) -> dict:
    """The four measured parts of a train job: optimiser steps (Σ ``train_seconds`` of the epochs),
    validation + probes (the rest of the fit), test evaluation (the rest of the job's timed part) and
    start-up/set-up (the benchmark's seconds outside the job's timed part). ``model_dir``: one of the job's
    ``models`` (an ensemble's member records the ensemble's epochs and its share of the job's seconds)."""
    summary = json.loads((model_dir / "summary.json").read_text())
    metrics = pd.read_parquet(model_dir / "metrics.parquet", columns=["train_seconds", "wall_seconds"])
    steps = float(metrics["train_seconds"].sum())
    fit = float(metrics["wall_seconds"].iloc[-1])
    job = float(summary["job_seconds"]) * models
    return {
        "steps_s": steps,
        "validate_s": max(fit - steps, 1e-3),
        "evaluate_s": max(job - fit, 1e-3),
        "overhead_s": max(seconds - job, 1e-3),
    }


def fold_evaluate_jobs(jobs: pd.DataFrame, features: pd.DataFrame, measured: list[dict]) -> None:
    """Add each measured evaluate job to the row of the train job of the same models (its seconds to ``seconds``,
    ``wall_s`` and the ``evaluate_s`` part, its peak to ``max_rss``) and drop its own row, in place: the laws price a
    train job with its test evaluation (``e3hier.plan.predict.EVALUATE_PARTS``), as the shipped calibrations were
    measured before the evaluate rule."""
    families = features["family"].tolist()
    train_rows = {tuple(points): k for k, points in enumerate(jobs["points"]) if families[k] == "train"}
    for k, points in enumerate(jobs["points"]):
        if families[k] != "evaluate" or "seconds" not in measured[k]:
            continue
        evaluation, measured[k] = measured[k], {}
        train = measured[train_rows[tuple(points)]] if tuple(points) in train_rows else {}
        if "seconds" not in train:
            continue
        for key in ("seconds", "wall_s", "evaluate_s"):
            if key in train:
                train[key] += evaluation["seconds"]
        if "max_rss" in evaluation:
            train["max_rss"] = max(train.get("max_rss", 0.0), evaluation["max_rss"])


def summarise_run(run_dir, configfiles, workdir=None, cpu_table=None) -> pd.DataFrame:
    """The calibration table of a finished run: each job's size features and what was measured.

    Parameters
    ----------
    run_dir : path-like
        The run's working directory (with ``results/`` and ``.snakemake/``); only read.
    configfiles : list of path-like
        The config files the run used, in merge order.
    workdir : path-like, optional
        Where the DAG is dry-run (a scratch directory if None: nothing is written into the run).
    cpu_table : path-like, optional
        ``benchmarks/calibration/cpu_monitor.py``'s polls of the run: CPU seconds per job process.

    Returns
    -------
    pandas.DataFrame
        ``job_features`` rows of the jobs that left a measurement, with ``wall_s`` (the benchmark's
        ``s``; for the DFT, the JSON's ``wall_seconds``), ``max_rss`` (MB), ``mean_load``, the train
        parts (``steps_s``, ``validate_s``, ``evaluate_s``, ``overhead_s``), ``startup_s`` of DFT jobs
        (job wall from Snakemake's metadata − ``wall_seconds``), and ``seconds``, what the laws are fitted
        on: ``wall_s``, or with ``cpu_table`` the job's CPU seconds (``wall_s`` × its CPU share; the parts
        are scaled alike). On a shared machine the wall time grows with the other load, the CPU time does
        not; jobs the monitor missed take the run's median CPU share (``cpu_share_source``).
    """
    run_dir = Path(run_dir).resolve()
    config = load_config(configfiles)
    jobs = dag_jobs(configfiles, workdir)
    features = job_features(jobs, config, workdir or run_dir)
    cpu = None
    if cpu_table:  # a job's forked children carry its script too: their CPU counts for the job
        polled = pd.read_csv(cpu_table, sep="\t")
        cpu = polled.groupby("log").agg(
            {c: ("sum" if c == "cpu_s" else "max") for c in polled.columns if c in ("cpu_s", "wall_s", "max_rss_mb")}
        )
    measured = []
    for job, feat in zip(jobs.itertuples(index=False), features.itertuples(index=False)):
        row: dict = {}
        if job.benchmark and (run_dir / job.benchmark).exists():
            row.update(_benchmark(run_dir / job.benchmark))
            if feat.family == "train" and len(job.points) == 1:
                row.update(train_parts(run_dir / "results" / "models" / job.points[0], row["seconds"]))
        elif feat.family == "dft":
            summary_path = next((o for o in job.outputs if o.endswith(".json")), None)
            if summary_path and (run_dir / summary_path).exists():
                record = json.loads((run_dir / summary_path).read_text())
                if not record.get("skipped"):
                    row["seconds"] = float(record["wall_seconds"])
                    row["startup_s"] = _job_wall(run_dir, summary_path) - row["seconds"]
        if row:
            row["wall_s"] = row["seconds"]
            if cpu is not None and job.log in cpu.index:
                process = cpu.loc[job.log]
                # a process living much longer than its job's benchmark is another job that reused the pid
                if "mean_load" not in row or float(process["wall_s"]) <= 1.5 * row["wall_s"] + 2:
                    row["cpu_share"] = float(process["cpu_s"]) / max(float(process["wall_s"]), 1e-9)
                    if "max_rss_mb" in process and "max_rss" not in row:  # dft: no benchmark, the monitor's peak
                        row["max_rss"] = float(process["max_rss_mb"])
        measured.append(row)
    fold_evaluate_jobs(jobs, features, measured)
    table = pd.concat([features, pd.DataFrame(measured, index=features.index)], axis=1)
    table = table[table["seconds"].notna()] if "seconds" in table else table.iloc[:0]
    if cpu is not None and "cpu_share" in table:
        # the few jobs the monitor missed (shorter than a poll, or a reused pid) take the run's median share
        missed = table["cpu_share"].isna()
        table["cpu_share_source"] = np.where(missed, "run median", "monitor")
        table.loc[missed, "cpu_share"] = table.loc[~missed, "cpu_share"].median()
        share = table["cpu_share"]
        dft = table["family"] == "dft"
        startup_cpu = table["startup_s"] * share
        for part in ("seconds", *TRAIN_PARTS):
            if part in table:
                table[part] = table[part] * share
        table.loc[dft, "startup_s"] = startup_cpu[dft]
    return table.drop(columns=["benchmark"])

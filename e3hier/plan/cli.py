"""A cost plan of a workflow run before it runs: core-hours, peak memory per job and GPU-hours per rule.

The command line (``python -m e3hier.plan``, ``make plan``): plan a config, summarise a finished run
into a calibration table, or validate a calibration.
"""

from __future__ import annotations

import argparse

import pandas as pd

from e3hier.io import write_tsv
from e3hier.plan.calibration import (
    VALIDATION_CALIBRATION,
    VALIDATION_RUN,
    Calibration,
    default_calibration_paths,
    load_calibration,
)
from e3hier.plan.predict import GPU_SPEEDUP_OVER_CORE, plan
from e3hier.plan.runs import summarise_run
from e3hier.plan.validation import validate_on


def format_plan(table: pd.DataFrame, calibration: Calibration, configfiles, gpu_speedup: float) -> str:
    """The plan as text.

    Parameters
    ----------
    table : pandas.DataFrame
        ``rule_table`` output.
    calibration : Calibration
        Its calibration (named in the header).
    configfiles : list
        The config files (named in the header).
    gpu_speedup : float
        The GPU assumption, stated when GPU-hours are planned.

    Returns
    -------
    str
        The per-rule table, the totals, a ``!`` line per request a job would outgrow, and the assumptions.
    """
    total = table[["jobs", "core_hours", "gpu_hours"]].sum()
    shown = table.copy()
    formats = {
        "core_hours": "{:,.2f}",
        "longest_job_h": "{:,.3f}",
        "peak_mem_gb": "{:,.2f}",
        "gpu_hours": "{:,.2f}",
        "requested_mem_gb": "{:,.1f}",
        "requested_runtime_h": "{:,.1f}",
    }
    for column, fmt in formats.items():
        shown[column] = shown[column].map(lambda v, fmt=fmt: "" if pd.isna(v) else fmt.format(v))
    lines = [
        f"Cost plan of {' + '.join(map(str, configfiles))} (calibration: {', '.join(calibration.sources)})",
        "",
        shown.to_string(),
        "",
        f"total: {int(total['jobs'])} jobs, {total['core_hours']:,.1f} core-hours, "
        f"peak memory of one job {table['peak_mem_gb'].max():,.1f} GB "
        f"({table['peak_mem_gb'].idxmax()}), {total['gpu_hours']:,.1f} GPU-hours",
    ]
    for rule, row in table.iterrows():
        if row["peak_mem_gb"] > row["requested_mem_gb"]:
            lines.append(
                f"! {rule}: predicted peak {row['peak_mem_gb']:,.1f} GB > mem_mb requested "
                f"({row['requested_mem_gb']:,.1f} GB)"
            )
        if row["longest_job_h"] > row["requested_runtime_h"]:
            lines.append(
                f"! {rule}: longest job {row['longest_job_h']:,.2f} h > runtime requested "
                f"({row['requested_runtime_h']:,.2f} h)"
            )
    if total["gpu_hours"] > 0:
        lines.append(
            f"GPU-hours assume a GPU runs a training job {gpu_speedup:g}× as fast as one CPU core "
            "(not measured: dispatch-bound batch-1 steps; set --gpu-speedup when known)."
        )
    lines.append(
        "Core-hours: CPU seconds on a dedicated core × threads held by train jobs; all epochs run "
        "(no early stop). docs/plan.md has the laws and their validation."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: ``python -m e3hier.plan --configfile a.yaml b.yaml [--calibration ...]`` (``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m e3hier.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", nargs="+", default=["config.yaml"], help="config files in merge order")
    parser.add_argument(
        "--calibration",
        nargs="+",
        default=None,
        help="calibration tables (TSV, or folders of them); default: benchmarks/calibration/"
        "{tiny,default,paper-dft}.tsv",
    )
    parser.add_argument(
        "--add-calibration",
        nargs="+",
        default=[],
        help="tables used in addition to the default ones (e.g. your own --summarise-run)",
    )
    parser.add_argument("--workdir", default=None, help="where the config's relative paths resolve (XYZ globs)")
    parser.add_argument(
        "--gpu-speedup",
        type=float,
        default=GPU_SPEEDUP_OVER_CORE,
        help="speed of a training job on one GPU relative to one CPU core (not measured: 1)",
    )
    parser.add_argument(
        "--profile",
        help="plan with a Snakemake profile's threads and resources "
        "(e.g. profiles/slurm); the requested memory and runtime are then checked",
    )
    parser.add_argument("--jobs", metavar="TSV", help="also write the per-job prediction here")
    parser.add_argument(
        "--summarise-run",
        metavar="RUN_DIR",
        help="instead of planning: write the calibration table of a finished run (its working "
        "directory, run with --configfile) to --output",
    )
    parser.add_argument(
        "--validate",
        metavar="TSV",
        nargs="?",
        const=str(VALIDATION_RUN),
        help="instead of planning: predicted vs measured core-hours per rule of a summarised run "
        "(default: the study tier, calibrated on tiny and default)",
    )
    parser.add_argument("--output", "-o", metavar="TSV", help="output of --summarise-run")
    parser.add_argument(
        "--cpu-table",
        metavar="TSV",
        help="--summarise-run: the run's CPU seconds per job (benchmarks/calibration/cpu_monitor.py)",
    )
    args = parser.parse_args(argv)
    if args.summarise_run:
        if not args.output:
            parser.error("--summarise-run needs --output")
        table = summarise_run(args.summarise_run, args.configfile, args.workdir, args.cpu_table)
        write_tsv(args.output, table, float_format="%.6g")
        print(f"{args.output}: {len(table)} jobs, {table['seconds'].mul(table['threads']).sum() / 3600:.3f} core-hours")
        return 0
    if args.validate:
        calibration = load_calibration(args.calibration or default_calibration_paths(VALIDATION_CALIBRATION))
        table = validate_on(pd.read_csv(args.validate, sep="\t"), calibration)
        print(f"{args.validate}: predicted (calibration: {', '.join(calibration.sources)}) vs measured core-hours")
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
        return 0
    paths = (args.calibration or default_calibration_paths()) + args.add_calibration
    table, per_job, calibration = plan(args.configfile, paths, args.workdir, args.gpu_speedup, args.profile)
    print(format_plan(table, calibration, args.configfile, args.gpu_speedup))
    if args.jobs:
        write_tsv(args.jobs, per_job.drop(columns=["benchmark"], errors="ignore"))
    return 0

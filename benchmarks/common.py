"""Shared helpers of the benchmarks: paths, configs, repeated timings, subprocess runs."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
OUT = ROOT / "results" / "benchmarks"
PYTHON = sys.executable
#: A finished small run (W3–W4, real DFT): training data and the no-op rerun benchmark. Kept between runs.
PIPELINE_DIR = OUT / "pipeline"
PIPELINE_CONFIGS = [ROOT / "config.yaml", ROOT / "tests" / "configs" / "tiny.yaml", BENCH / "configs" / "data.yaml"]


def load_config(*paths) -> dict:
    """Merge YAML files like Snakemake's ``--configfile a b`` (nested dicts updated recursively)."""

    def merge(base, extra):
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    config: dict = {}
    for path in paths:
        merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def stats(runs) -> dict:
    """All repetitions and their median (and min / max)."""
    runs = [float(r) for r in runs]
    return {"runs": runs, "median": statistics.median(runs), "min": min(runs), "max": max(runs)}


def ratio(numerator: dict, denominator: dict) -> float:
    return numerator["median"] / denominator["median"]


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_subprocess(cmd, cwd=ROOT, env=None, timeout=600, cpu: list | None = None):
    """Wall time (s) of a command, and its result; raises with its output on failure.

    ``cpu``, if given, gets the command's CPU time (user + system, s) appended: less sensitive than
    wall time to other jobs on a shared machine.
    """
    environment = dict(os.environ, **(env or {}))
    cpu_start = child_cpu_seconds()
    start = time.perf_counter()
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )
    seconds = time.perf_counter() - start
    if cpu is not None:
        cpu.append(child_cpu_seconds() - cpu_start)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return seconds, result


def snakemake_cmd(workdir, configfiles, *args, cores=2):
    return [
        PYTHON,
        "-m",
        "snakemake",
        "-s",
        ROOT / "Snakefile",
        "-d",
        workdir,
        "--configfile",
        *configfiles,
        "--cores",
        str(cores),
        *args,
    ]


def single_thread_env() -> dict:
    return {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

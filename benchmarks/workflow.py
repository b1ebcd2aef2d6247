"""Benchmark 4: Snakemake DAG at paper scale (dry run) and the no-op rerun of a finished run.

Also owns the small finished run (``PIPELINE_DIR``) whose real W3–W4 DFT data the training
benchmark uses.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from benchmarks.common import BENCH, PIPELINE_CONFIGS, PIPELINE_DIR, ROOT, log, snakemake_cmd, stats, timed_subprocess

SLOW_SECONDS = 60.0  # a dry run slower than this is not repeated (the bench must fit in 10 minutes)

PAPER_CONFIGS = [ROOT / "config.yaml", ROOT / "config.paper.yaml", BENCH / "configs" / "paper_dag.yaml"]
DEFAULT_CONFIGS = [ROOT / "config.yaml"]


def job_counts(text: str) -> dict:
    """``{rule: jobs}`` of the "Job stats" table of Snakemake's output ({} when nothing is to be done)."""
    if "Job stats:" not in text:
        return {}
    counts = {}
    for line in text.split("Job stats:", 1)[1].splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def nothing_to_do(workdir, configfiles) -> bool:
    _, result = timed_subprocess(snakemake_cmd(workdir, configfiles, "-n"))
    return "Nothing to be done" in result.stdout + result.stderr


def finished_run() -> tuple[Path, list, float | None]:
    """A finished run to rerun: the repository's own default run if ``results/`` holds one, else the
    benchmark's small run (built, or brought up to date, here). Returns (workdir, configfiles, build seconds)."""
    if (ROOT / "results" / "tables" / "models.parquet").exists() and nothing_to_do(ROOT, DEFAULT_CONFIGS):
        return ROOT, DEFAULT_CONFIGS, None
    PIPELINE_DIR.mkdir(parents=True, exist_ok=True)
    log(f"building / updating the benchmark run in {PIPELINE_DIR} (first run: a few minutes)")
    seconds, _ = timed_subprocess(snakemake_cmd(PIPELINE_DIR, PIPELINE_CONFIGS), timeout=900)
    return PIPELINE_DIR, PIPELINE_CONFIGS, seconds


def run(repeats: int = 3) -> dict:
    out: dict = {}
    workdir, configs, build_seconds = finished_run()
    out["noop"] = {
        "workdir": str(workdir),
        "configfiles": [str(c.relative_to(ROOT)) for c in configs],
        "build_or_update_seconds": build_seconds,
    }
    if not nothing_to_do(workdir, configs):
        raise RuntimeError(f"the run in {workdir} is not finished after building it")
    runs = []
    for _ in range(repeats):
        seconds, result = timed_subprocess(snakemake_cmd(workdir, configs))
        text = result.stdout + result.stderr
        if "Nothing to be done" not in text:
            raise RuntimeError(f"the rerun in {workdir} was not a no-op:\n{text[-2000:]}")
        runs.append(seconds)
    out["noop"]["seconds"] = stats(runs)
    log(f"no-op rerun: median {out['noop']['seconds']['median']:.1f} s")

    runs, counts = [], {}
    with tempfile.TemporaryDirectory(prefix="e3hier-dag-") as tmp:
        for _ in range(repeats):
            seconds, result = timed_subprocess(snakemake_cmd(tmp, PAPER_CONFIGS, "-n"))
            runs.append(seconds)
            counts = job_counts(result.stdout + result.stderr)
            if seconds > SLOW_SECONDS:
                break
    out["dag"] = {
        "configfiles": [str(c.relative_to(ROOT)) for c in PAPER_CONFIGS],
        "jobs": counts,
        "seconds": stats(runs),
    }
    if len(runs) < repeats:
        out["dag"]["note"] = f"not repeated: one dry run took over {SLOW_SECONDS:.0f} s"
    log(f"paper-scale dry run ({counts.get('total', '?')} jobs): median {out['dag']['seconds']['median']:.1f} s")
    # Snakemake's own per-job work (DAG update, resources, script checks, printing) dominates: per job
    out["dag"]["milliseconds_per_job"] = 1000 * out["dag"]["seconds"]["median"] / max(counts.get("total", 1), 1)
    return out

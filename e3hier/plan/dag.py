"""The jobs of a config: Snakemake's own dry run of the full DAG, parsed job by job.

Only ``dry_run_text`` (and so ``dag_jobs``) runs Snakemake; the rest parses its text.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from e3hier.config import SCHEMA, load_config  # noqa: F401 (load_config: e3hier.plan's, read here by the plan)

ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = ROOT / "Snakefile"

#: ``--cores`` of the planning dry run: large, so no rule's ``threads`` is capped by it.
PLAN_CORES = 4096

#: Indentation of a job's lines below its header, and of the jobs of a group job (a profile's ``groups:``).
GROUP_INDENT = 4

#: The model folders a job writes: a train job's ``model.pt``, an evaluate job's ``summary.json``.
MODEL_PATH = re.compile(r"results/models/([^/,\s]+)/(?:model\.pt|summary\.json)")
JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) ([A-Za-z_][A-Za-z0-9_]*):$")


def snakemake_command(snakefile, workdir, *args) -> list[str]:
    """``python -m snakemake -s snakefile -d workdir *args`` with this interpreter, for ``subprocess.run``."""
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *map(str, args)]


def dry_run_text(configfiles, workdir=None, snakefile=SNAKEFILE, timeout: float = 900, profile=None) -> str:
    """The text of ``snakemake --dry-run --forceall`` of the workflow with the given config files.

    Parameters
    ----------
    configfiles : list of path-like
        Config files in merge order.
    workdir : path-like, optional
        Working directory, where relative paths of the config resolve. A scratch directory if None. A dry
        run writes no results.
    snakefile : path-like
        The workflow (default: this project's).
    timeout : float
        Seconds before the dry run is abandoned.
    profile : path-like, optional
        A Snakemake profile whose threads and resources the jobs then get (``profiles/slurm``: dft at 4
        threads). Without one, ``--cores PLAN_CORES`` so no rule's threads are capped.

    Returns
    -------
    str
        stdout and stderr of the dry run.
    """
    files = [str(Path(f).resolve()) for f in configfiles]
    extra = ["--profile", str(Path(profile).resolve())] if profile else ["--cores", str(PLAN_CORES)]
    with tempfile.TemporaryDirectory(prefix="e3hier-plan-") as scratch:
        cmd = snakemake_command(
            snakefile, workdir or scratch, "--dry-run", "--forceall", *extra, "--configfile", *files
        )
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake dry run failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout + result.stderr


def _key_values(text: str) -> dict[str, str]:
    """``"a=1, b=x"`` -> ``{"a": "1", "b": "x"}``."""
    pairs = (item.split("=", 1) for item in text.split(", ") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def parse_dry_run(text: str) -> pd.DataFrame:
    """The jobs of a dry run's job list, including the jobs inside group jobs.

    Parameters
    ----------
    text : str
        Output of ``dry_run_text``.

    Returns
    -------
    pandas.DataFrame
        One row per job: ``rule``, ``jobid``, ``threads``, ``gpu`` (GPUs requested), ``mem_mb`` and
        ``runtime_min`` (requested), ``wildcards`` (dict), ``outputs`` (list), ``benchmark`` (path or ""),
        ``log`` (its first log file, unique per job) and ``points`` (the model folders a training job
        writes: one for ``train`` and ``evaluate``, K for a ``train_ensemble_*`` or ``evaluate_ensemble_*`` job).
    """
    jobs, current, indent = [], None, 0
    for line in text.splitlines():
        depth = len(line) - len(line.lstrip(" "))
        header = JOB_HEADER.match(line.strip()) if depth in (0, GROUP_INDENT) else None
        if header:  # a job, at the left margin or inside a group job's block
            current, indent = {"rule": header.group(1)}, depth
            jobs.append(current)
        elif current is not None and depth == indent + GROUP_INDENT and ": " in line:
            key, value = line.strip().split(": ", 1)
            current[key] = value
        elif depth <= indent:
            current = None
    rows = []
    for job in jobs:
        resources = _key_values(job.get("resources", ""))
        outputs = job.get("output", "").split(", ") if job.get("output") else []
        rows.append(
            {
                "rule": job["rule"],
                "jobid": int(job.get("jobid", -1)),
                "threads": int(job.get("threads", 1)),
                "gpu": int(float(resources.get("gpu", 0))),
                "mem_mb": float(resources["mem_mb"]) if "mem_mb" in resources else np.nan,
                "runtime_min": float(resources["runtime"]) if "runtime" in resources else np.nan,
                "wildcards": _key_values(job.get("wildcards", "")),
                "outputs": outputs,
                "benchmark": job.get("benchmark", ""),
                "log": job.get("log", "").split(", ")[0],
                "points": MODEL_PATH.findall(job.get("output", "")),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "rule",
            "jobid",
            "threads",
            "gpu",
            "mem_mb",
            "runtime_min",
            "wildcards",
            "outputs",
            "benchmark",
            "log",
            "points",
        ],
    )


def job_counts(text: str) -> dict[str, int]:
    """Snakemake's own job count of a dry run's ``text`` (``dry_run_text``): ``{rule: jobs}`` from its "Job stats"
    table."""
    stats = text.split("Job stats:", 1)[1]
    counts = {}
    for line in stats.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def dag_jobs(configfiles, workdir=None, profile=None) -> pd.DataFrame:
    """Every job of a config's full DAG.

    Parameters
    ----------
    configfiles : list of path-like
        Config files in merge order.
    workdir, profile
        As in ``dry_run_text``.

    Returns
    -------
    pandas.DataFrame
        ``parse_dry_run`` of the dry run.

    Raises
    ------
    RuntimeError
        If the parsed jobs per rule differ from Snakemake's "Job stats".
    """
    text = dry_run_text(configfiles, workdir, profile=profile)
    jobs = parse_dry_run(text)
    parsed = jobs["rule"].value_counts().to_dict()
    if parsed != job_counts(text):
        raise RuntimeError(f"dry-run parse: {parsed} jobs, Snakemake counts {job_counts(text)}")
    return jobs


def rule_family(rule: str) -> str:
    """The scaling law a rule follows.

    Parameters
    ----------
    rule : str
        Rule name.

    Returns
    -------
    str
        ``figure`` for ``figure_*``, ``train`` for ``train`` and ``train_ensemble_*``, ``evaluate`` for
        ``evaluate`` and ``evaluate_ensemble_*``, else the rule.
    """
    if rule.startswith("figure_"):
        return "figure"
    for family in ("train", "evaluate"):
        if rule == family or rule.startswith(f"{family}_ensemble"):
            return family
    return rule

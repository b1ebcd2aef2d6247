"""A cost plan of a workflow run before it runs: core-hours, peak memory per job and GPU-hours per rule.

``make plan CONFIG="config.yaml config.paper.yaml"`` (= ``python -m e3hier.plan --configfile ...``).

How it works (docs/plan.md has the justification and the validation):

1. **Jobs** come from the real Snakemake DAG: a ``--dry-run --forceall`` of the workflow with the given
   config files in a scratch working directory, parsed job by job (rule, wildcards, outputs, threads,
   resources). A ``train_ensemble_*`` job (``train.ensemble_size`` K > 1) counts as a train job of the K
   models whose folders it writes.
2. **Size features** of every job are computed from the merged config (with the schema's defaults) and
   the job's wildcards: atoms, SCF basis functions, DFT and ε grid points, fit functions, training
   structures, epochs, batch size, parameter count, number of models ... (``job_features``).
3. **Scaling laws** (``TIME_LAWS``, ``MEMORY_LAWS``) predict each job's seconds (and peak RSS) from its
   features as ``base + scale × Π feature**exponent``. Their coefficients, and the exponents where the
   calibration holds enough distinct sizes, are fitted by least squares in log space on **calibration
   tables** (``benchmarks/calibration/*.tsv``: the features and the measured seconds / max RSS of every
   job of earlier runs, written by ``--summarise-run``); elsewhere the physical exponent is used.
4. **Totals**: core-hours = Σ seconds × threads / 3600 per rule; peak memory = the largest predicted RSS
   of a rule's jobs (the dft rule: ``e3hier.workflow.dft_mem_mb``, the same estimate its ``mem_mb``
   uses); GPU-hours = Σ wall hours × GPUs of the jobs that ask for a GPU.

Everything here is plain functions over pandas tables; only ``dag_jobs`` runs Snakemake.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
SCHEMA = ROOT / "e3hier" / "schemas" / "config.schema.yaml"
CALIBRATION_DIR = ROOT / "benchmarks" / "calibration"

#: Calibration tables used when none are given: the tiny and the default run (the study-tier validation
#: in docs/plan.md is made with exactly these).
DEFAULT_CALIBRATION = ("tiny.tsv", "default.tsv")

#: ``--cores`` of the planning dry run: large, so no rule's ``threads`` is capped by it.
PLAN_CORES = 4096

#: Cost of one model trained in a ``train_ensemble_*`` job, relative to the same model trained alone
#: (K models cost K × one model × this factor).
ENSEMBLE_COST_FACTOR = 1 / 2.5  # to be calibrated from make bench's ensemble_speedup

#: Speed of a training job on one GPU relative to the same job on one CPU core. No GPU was measured: the
#: study's batch-1 steps on 9–60-atom graphs are ~2,400 small autograd ops each, bound by per-op dispatch
#: (the Python/ATen overhead and, on a GPU, the kernel launch latency), not arithmetic, so a GPU is
#: assumed to run them no faster than a core. Change this constant (or ``--gpu-speedup``) once measured.
GPU_SPEEDUP_OVER_CORE = 1.0

#: Share of a job's work that extra threads parallelise (Amdahl), per rule family. Only one-thread jobs were
#: measured. Training: 0, the dispatch-bound batch-1 step does not thread, so wall = the one-thread time and
#: core-hours = wall × threads (an upper bound for its threaded numpy parts). Other rules (e.g. dft at the
#: Slurm profile's 4 threads, PySCF's OpenMP): ``DEFAULT_PARALLEL_FRACTION`` = 1, ideal scaling, so their
#: core-hours do not depend on threads (an optimistic bound).
PARALLEL_FRACTION = {"train": 0.0}
DEFAULT_PARALLEL_FRACTION = 1.0

#: Share of a batch-1 optimiser step that does not grow with the atoms in the step (op dispatch), at
#: ``BATCH_REFERENCE_ATOMS`` atoms per structure: ``make bench``'s training benchmark (README, W3–W4
#: clusters) measured 20.9 vs 29.3 structures/s at batch 1 vs 4 (l_max 2) and 12.4 vs 17.9 (l_max 4),
#: i.e. a step costs s0 + s1·batch with s0/(s0 + s1) = 0.38 and 0.41.
BATCH1_FIXED_FRACTION = 0.4
BATCH_REFERENCE_ATOMS = 10.5

#: Points of the ε grid are float32 collocation entries (``metric.density_grid``): bytes per entry.
GRID_ENTRY_BYTES = 4

#: Rules that run nothing (a target-only rule).
NO_COST_RULES = ("all",)

MODEL_PATH = re.compile(r"results/models/([^/,\s]+)/model\.pt")
JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) ([A-Za-z_][A-Za-z0-9_]*):$")


# ---------------------------------------------------------------------------------------------------------
# config and DAG
# ---------------------------------------------------------------------------------------------------------
def load_config(configfiles) -> dict:
    """The workflow's config: the files merged in order (Snakemake's ``update_config``), schema defaults set."""
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in configfiles:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    validate(config, str(SCHEMA))
    return config


def dry_run_text(configfiles, workdir=None, snakefile=SNAKEFILE, timeout: float = 900, profile=None) -> str:
    """stdout + stderr of ``snakemake --dry-run --forceall`` for the config files (in order).

    ``workdir``: the working directory (where relative paths of the config resolve); a scratch directory
    if None. ``profile``: a Snakemake profile whose threads and resources the jobs then get (e.g.
    ``profiles/slurm``: dft at 4 threads). A dry run writes no results.
    """
    files = [str(Path(f).resolve()) for f in configfiles]
    extra = ["--profile", str(Path(profile).resolve())] if profile else ["--cores", str(PLAN_CORES)]
    with tempfile.TemporaryDirectory(prefix="e3hier-plan-") as scratch:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir or scratch),
               "--dry-run", "--forceall", *extra, "--configfile", *files]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake dry run failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout + result.stderr


def _key_values(text: str) -> dict[str, str]:
    """``"a=1, b=x"`` → ``{"a": "1", "b": "x"}``."""
    pairs = (item.split("=", 1) for item in text.split(", ") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def parse_dry_run(text: str) -> pd.DataFrame:
    """One row per job of a dry run's job list.

    Columns: ``rule``, ``jobid``, ``threads``, ``gpu`` (requested GPUs), ``mem_mb`` and ``runtime_min``
    (requested),
    ``wildcards`` (dict), ``outputs`` (list), ``benchmark`` (path or ""), ``log`` (its first log file, unique
    per job), ``points`` (the model folders a
    training job writes: one for ``train``, K for a ``train_ensemble_*`` job).
    """
    jobs, current = [], None
    for line in text.splitlines():
        header = JOB_HEADER.match(line) if not line.startswith(" ") else None
        if header:
            current = {"rule": header.group(1)}
            jobs.append(current)
        elif current is not None and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            current[key] = value
        elif not line.startswith(" "):
            current = None
    rows = []
    for job in jobs:
        resources = _key_values(job.get("resources", ""))
        outputs = job.get("output", "").split(", ") if job.get("output") else []
        rows.append({
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
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["rule", "jobid", "threads", "gpu", "mem_mb", "runtime_min", "wildcards",
                                       "outputs", "benchmark", "log", "points"])  # fmt: skip


def job_counts(text: str) -> dict[str, int]:
    """``{rule: count}`` of the dry run's "Job stats" table (Snakemake's own count)."""
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
    """The jobs of the full DAG of a config (``parse_dry_run`` of ``dry_run_text``), checked against
    Snakemake's own job count."""
    text = dry_run_text(configfiles, workdir, profile=profile)
    jobs = parse_dry_run(text)
    parsed = jobs["rule"].value_counts().to_dict()
    if parsed != job_counts(text):
        raise RuntimeError(f"dry-run parse: {parsed} jobs, Snakemake counts {job_counts(text)}")
    return jobs


def rule_family(rule: str) -> str:
    """The scaling law a rule follows: ``figure_*`` → ``figure``, ``train_ensemble_*`` → ``train``."""
    if rule.startswith("figure_"):
        return "figure"
    if rule == "train" or rule.startswith("train_ensemble"):
        return "train"
    return rule


def parse_point(name: str) -> dict:
    """A model folder name (``lmax~2_output~full_..._ntrain~all``) → ``{"lmax": "2", ...}``."""
    return dict(part.split("~", 1) for part in name.split("_") if "~" in part)


# ---------------------------------------------------------------------------------------------------------
# size features
# ---------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def atom_grid_points(element: str, grid_key: str) -> int:
    """Points of one free atom's grid: a DFT grid (``grid_key`` = the ``dft.grid`` block as JSON) or the ε
    grid (``{"level": L}``). A molecule's grid has ~ the sum over its atoms (Becke partition)."""
    from pyscf import dft, gto

    from e3hier.dft import configure_grid

    mol = gto.M(atom=f"{element} 0 0 0", basis="sto-3g", spin=gto.charge(element) % 2, verbose=0)
    grids = dft.gen_grid.Grids(mol)
    settings = json.loads(grid_key)
    if "level" in settings:
        grids.level = int(settings["level"])
    else:
        configure_grid(grids, settings)
    grids.build(with_non0tab=False)
    return len(grids.weights)


@functools.lru_cache(maxsize=None)
def basis_functions(basis_name: str, element: str) -> int:
    """Spherical functions of ``element`` in a (contracted) SCF basis, as PySCF builds it: every contraction
    column of a generally contracted shell counts (O in cc-pVDZ: 14)."""
    from pyscf import gto

    return int(gto.M(atom=f"{element} 0 0 0", basis=basis_name, spin=gto.charge(element) % 2, verbose=0).nao_nr())


def structure_table(config: dict, base_dir=".") -> pd.DataFrame:
    """One row per structure of the config: split, atoms, molecules, MD steps, SCF/fit functions, grid points.

    ``dft_points``: points of the SCF grid; ``metric_points``: of the ε grid (``metric.grid_level``);
    ``fit_functions``: functions of the density fit (the model's outputs and the ε collocation columns).
    """
    from e3hier import workflow as wf
    from e3hier.structures import OPT_STEPS

    dft_cfg = config["dft"]
    dft_key = json.dumps(dft_cfg["grid"], sort_keys=True)
    metric_key = json.dumps({"level": config["metric"]["grid_level"]})
    rows = []
    for sid, info in wf.structure_manifest(config["structures"], base_dir).items():
        symbols, recipe = info["symbols"], info["recipe"]
        generated = recipe.get("source") == "water_clusters"
        rows.append({
            "structure": sid,
            "split": info["split"],
            "atoms": len(symbols),
            "md_steps": (OPT_STEPS + int(recipe["md_steps"])) if generated else 0,
            "n_basis": sum(basis_functions(dft_cfg["basis"], el) for el in symbols),
            "fit_functions": sum(wf.n_functions(dft_cfg["fit_auxbasis"], el, dft_cfg["decontract"]) for el in symbols),
            "dft_points": sum(atom_grid_points(el, dft_key) for el in symbols),
            "metric_points": sum(atom_grid_points(el, metric_key) for el in symbols),
            "symbols": tuple(symbols),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["metric_grid"] = frame["metric_points"] * frame["fit_functions"]  # collocation entries
    return frame.set_index("structure")


@functools.lru_cache(maxsize=None)
def _model_size(lmax: int, output: str, capacity: str, channels: str, reference_lmax: int, elements: tuple,
                fit_basis: str, decontract: bool, model_json: str) -> int:  # fmt: skip
    """Parameter count of one grid point's network (from the irreps alone, ``e3hier.capacity``)."""
    from e3hier.capacity import grid_multiplicities
    from e3hier.layout import OutputLayout

    layout = OutputLayout.from_basis(fit_basis, list(elements), decontract, output)
    plan = grid_multiplicities(lmax, capacity, channels, reference_lmax, len(elements), layout.irreps,
                               json.loads(model_json))  # fmt: skip
    return int(plan["n_params"])


def train_features(point: dict, config: dict, structures: pd.DataFrame) -> dict:
    """Size features of training one grid point (one model).

    ``step_work``: structure passes of the optimiser (epochs × structures), each weighted by its cost
    relative to a batch-1 pass of a ``BATCH_REFERENCE_ATOMS``-atom structure: a fixed per-step share
    (dispatch, divided among the batch) plus a share that grows with the atoms (edges at a fixed cutoff).
    ``forward_work``: forward passes outside the optimiser (validation every epoch, hidden-feature
    probes). ``test_grid``: the ε grids of the test splits, set up once per job (the collocation of the fit
    functions dominates the evaluation; ``eval_work`` counts the ε evaluations, the ``test`` split again
    for each of the 2·l_max ablations, which are cheap next to it). Grids are in collocation entries
    (points × fit functions).
    """
    train_cfg, analysis_cfg = config["train"], config.get("analysis", {})
    splits = structures.groupby("split", sort=False)
    train_ids = structures.index[structures["split"] == "train"]
    n_train = len(train_ids) if point["ntrain"] == "all" else min(int(point["ntrain"]), len(train_ids))
    train_atoms = float(structures.loc[train_ids[:n_train], "atoms"].mean()) if n_train else 0.0
    val = structures[structures["split"] == train_cfg.get("val_split", "val")]
    tests = [s for s in train_cfg.get("test_splits", ["test", "test_large"]) if s in splits.groups]
    test_grids = {s: float(structures.loc[structures["split"] == s, "metric_grid"].sum()) for s in tests}
    test_counts = {s: int((structures["split"] == s).sum()) for s in tests}
    lmax, batch, epochs = int(point["lmax"]), int(train_cfg["batch_size"]), int(train_cfg["epochs"])
    steps = epochs * math.ceil(n_train / batch) if n_train else 0
    probe_every = int(analysis_cfg.get("probe_every", 8))
    probe_structures = min(int(analysis_cfg.get("probe_structures", 6)), len(val))
    n_probes = steps // probe_every + 2  # every probe_every steps, plus the initial and the final model
    elements = tuple(sorted({el for symbols in structures["symbols"] for el in symbols}))
    model_cfg = config["model"]
    lmaxes = sorted(train_cfg["lmax_hidden"])
    n_params = _model_size(lmax, point["output"], point.get("capacity", "study"), point.get("channels", "study"),
                           lmaxes[-1], elements, config["dft"]["fit_auxbasis"], bool(config["dft"]["decontract"]),
                           json.dumps(model_cfg, sort_keys=True))  # fmt: skip
    phi, ref = BATCH1_FIXED_FRACTION, BATCH_REFERENCE_ATOMS
    ablations = 2 * lmax
    return {
        "lmax_plus_1": lmax + 1,
        "n_params": n_params,
        "epochs": epochs,
        "n_train": n_train,
        "batch_size": batch,
        "train_atoms": train_atoms,
        "step_work": epochs * n_train * (phi / batch + (1 - phi) * train_atoms / ref),
        "forward_work": (epochs * len(val) + n_probes * probe_structures) * (val["atoms"].mean() / ref if len(val) else 0),
        "val_grid": float(val["metric_grid"].sum()),
        "epoch_grid": epochs * float(val["metric_grid"].sum()),
        "eval_work": float(sum(test_counts.values()) + ablations * test_counts.get("test", 0)),
        "test_grid": float(sum(test_grids.values())),
        "held_grid": float(val["metric_grid"].sum() + max(test_grids.values(), default=0.0)),
    }  # fmt: skip


def job_features(jobs: pd.DataFrame, config: dict, base_dir=".") -> pd.DataFrame:
    """Size features of every job (``parse_dry_run`` rows) of a config: one row per job, NaN where a
    feature does not apply. ``n_models``: models a training job trains (K for an ensemble job); for the
    rules that read every model (tables, analysis, figures), the models of the whole grid."""
    structures = structure_table(config, base_dir)
    n_models_total = int(sum(len(p) for p in jobs["points"]))
    per_point: dict = {}  # the seeds of a grid point share its features
    rows = []
    for job in jobs.itertuples(index=False):
        family = rule_family(job.rule)
        row = {"rule": job.rule, "family": family, "threads": job.threads, "gpu": job.gpu,
               "mem_mb_requested": job.mem_mb, "runtime_requested_min": job.runtime_min, "benchmark": job.benchmark,
               "job": job.rule + (":" + ",".join(f"{k}={v}" for k, v in job.wildcards.items()) if job.wildcards else ""),
               "n_models": 1}  # fmt: skip
        wc = job.wildcards
        if family in ("structure", "dft"):
            info = structures.loc[wc["structure"]]
            row.update(atoms=info["atoms"], md_work=info["md_steps"] * info["atoms"], n_basis=info["n_basis"],
                       grid_per_atom=info["dft_points"] / info["atoms"], dft_points=info["dft_points"],
                       scf_digits=-math.log10(float(config["dft"]["conv_tol"])))  # fmt: skip
            if family == "dft":  # the rule's own mem_mb (its estimate of the DFT's peak), as the DAG requests it
                row["dft_mem_mb"] = job.mem_mb
            row["job"] = f"{job.rule}:{wc['structure']}"
        elif family == "free_atom":
            row["element_basis"] = basis_functions(config["dft"]["basis"], wc["element"])
        elif family == "dataset":
            members = structures[structures["split"] == wc["split"]]
            row.update(n_structures=len(members), split_functions=float(members["fit_functions"].sum()))
        elif family == "structure_manifest":
            row["n_structures"] = len(structures)
        elif family == "train":
            points = [parse_point(p) for p in job.points]
            key = tuple(sorted((k, v) for k, v in points[0].items() if k != "seed"))
            if key not in per_point:
                per_point[key] = train_features(points[0], config, structures)
            row.update(per_point[key])
            row["n_models"] = len(points)
            row["ensemble"] = job.rule != "train"
            row["job"] = f"{job.rule}:{job.points[0]}" + (f"+{len(points) - 1}" if len(points) > 1 else "")
        elif family in ("models_table", "analysis", "figure"):
            row["n_models_read"] = n_models_total
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# scaling laws
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Law:
    """``target = base + scale × Π feature**exponent`` for the jobs of one rule family.

    ``features``: ``(column, physical exponent, fit)``: with ``fit`` the exponent is fitted when the
    calibration holds enough distinct sizes, else the physical exponent is used. ``intercept``: whether
    ``base`` (a size-independent part: start-up, imports) is fitted; else it is 0.
    """

    target: str
    features: tuple = ()
    intercept: bool = True
    note: str = ""


@dataclass
class FittedLaw:
    """A ``Law`` with its coefficients; ``fitted`` names the exponents that came from data."""

    law: Law
    base: float
    scale: float
    exponents: dict
    fitted: list = field(default_factory=list)
    n_jobs: int = 0
    n_sizes: int = 0
    rms_log_error: float = float("nan")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The law at each row's features."""
        product = np.ones(len(frame))
        for column, exponent in self.exponents.items():
            product = product * np.power(frame[column].to_numpy(dtype=float), exponent)
        return self.base + self.scale * product

    def describe(self) -> str:
        """``2.1 s + 3.4e-05 × n_basis^2.71 (fitted) × ...`` for the docs and the CLI."""
        terms = [f"{self.scale:.3g}"] + [
            f"{c}^{e:.2f}" + ("*" if c in self.fitted else "") for c, e in self.exponents.items()
        ]
        text = " × ".join(terms)
        return (f"{self.base:.3g} + " if self.law.intercept else "") + text


#: Time laws (seconds of one job at one thread) per rule family. A train job is the sum of four measured
#: parts (``summarise_run``): optimiser steps, validation + probes, test evaluation, start-up + set-up.
TIME_LAWS: dict[str, list[Law]] = {
    "structure": [Law("seconds", (("md_work", 1.0, True),),
                      note="start-up + (FIRE minimisation + Langevin MD) steps × atoms")],
    "structure_manifest": [Law("seconds", (("n_structures", 1.0, True),), note="reads every structure")],
    "free_atom": [Law("seconds", (("element_basis", 3.0, False),), note="start-up + one atom's SCF ∝ N_basis³")],
    "dft": [Law("seconds", (("n_basis", 3.0, True), ("grid_per_atom", 1.0, True), ("scf_digits", 1.0, False)),
                intercept=False,
                note="SCF ∝ N_basis^α (dense algebra, density-fitted J/K), grid points per atom (XC), "
                     "SCF cycles ∝ digits of conv_tol")],  # fmt: skip
    "dataset": [Law("seconds", (("split_functions", 1.0, True),), note="reads each structure's fit table")],
    "train": [
        Law("steps_s", (("step_work", 1.0, False), ("n_params", 1.0, True), ("lmax_plus_1", 1.0, True)),
            intercept=False, note="epochs × structures × (per-step dispatch/batch + atoms) × model size × l_max factor"),
        Law("validate_s", (("forward_work", 1.0, False), ("n_params", 1.0, True), ("lmax_plus_1", 1.0, True)),
            intercept=False, note="(epochs × validation structures + probes × probe structures) × model"),
        Law("evaluate_s", (("test_grid", 1.0, False),), note="test (and ablation) ε: structures × grid points"),
        Law("overhead_s", (("val_grid", 1.0, False),), note="start-up, data, validation ε grids"),
    ],
    "models_table": [Law("seconds", (("n_models_read", 1.0, True),), note="one summary per model")],
    "analysis": [Law("seconds", (("n_models_read", 1.0, True),), note="tables of every model")],
    "figure": [Law("seconds", (("n_models_read", 1.0, True),), note="figures over every model")],
    "density_slice": [Law("seconds", (), intercept=False, note="two models on one plane: constant")],
    "findings_report": [Law("seconds", (), intercept=False, note="one small table: constant")],
}

#: Peak-memory laws (max RSS, MB) per rule family; ``dft`` uses ``e3hier.workflow.dft_mem_mb`` instead.
#: Memory is held data, so exponents are the physical 1; each law is raised to bound every calibration job.
MEMORY_LAWS: dict[str, Law] = {
    "train": Law("max_rss", (("held_grid", 1.0, False),), note="validation + largest test split ε collocation"),
    "dataset": Law("max_rss", (("split_functions", 1.0, False),)),
    "models_table": Law("max_rss", (("n_models_read", 1.0, False),)),
    "analysis": Law("max_rss", (("n_models_read", 1.0, False),)),
    "figure": Law("max_rss", (("n_models_read", 1.0, False),)),
    "structure_manifest": Law("max_rss", (("n_structures", 1.0, False),)),
}
#: Families whose memory is the largest measured RSS (nothing in them grows with the config).
CONSTANT_MEMORY = ("structure", "free_atom", "density_slice", "findings_report")

#: ``dft``: the JSON's ``wall_seconds`` (the fit above) excludes the job's start-up (imports, reading the
#: structure, writing outputs), taken from the job's start/end in Snakemake's metadata.
DFT_STARTUP_LAW = Law("startup_s", (), intercept=False, note="job wall − wall_seconds")


def fit_law(table: pd.DataFrame, law: Law) -> FittedLaw:
    """Least squares in log space of ``law`` on the calibration rows that measured its target.

    An exponent is fitted only where the rows hold enough distinct feature values: with n distinct sizes,
    at most n − 1 (− 1 with an intercept) exponents; the others keep their physical value. Without
    distinct sizes the intercept is dropped and the law is the geometric mean.
    """
    from scipy.optimize import least_squares

    columns = [c for c, _, _ in law.features]
    rows = table[table[law.target].notna() & (table[law.target] > 0)] if law.target in table else table.iloc[:0]
    rows = rows.dropna(subset=columns)
    if rows.empty:
        raise ValueError(f"no calibration rows measure {law.target!r} for this law ({law.note})")
    y = np.log(rows[law.target].to_numpy(dtype=float))
    x = {c: rows[c].to_numpy(dtype=float) for c in columns}
    n_sizes = len(rows[columns].drop_duplicates()) if columns else 1
    free = [c for c, _, fit in law.features if fit and len(np.unique(x[c])) > 1]
    intercept = law.intercept and n_sizes > 1
    while free and 1 + intercept + len(free) > n_sizes:
        free.pop()
    physical = {c: e for c, e, _ in law.features}

    def unpack(p):
        exps = {c: physical[c] for c in columns}
        exps.update(zip(free, p[2:]))
        return (math.exp(p[1]) if intercept else 0.0), math.exp(p[0]), exps

    def model(p):
        base, scale, exps = unpack(p)
        product = np.ones(len(y))
        for c in columns:
            product = product * np.power(x[c], exps[c])
        return base + scale * product

    # start: physical exponents, half of the smallest time as base, scale through the median
    product = np.ones(len(y))
    for c in columns:
        product = product * np.power(x[c], physical[c])
    base0 = 0.5 * math.exp(y.min()) if intercept else 0.0
    scale0 = max(float(np.median((np.exp(y) - base0) / product)), 1e-30)
    p0 = np.array([math.log(scale0), math.log(max(base0, 1e-12))] + [physical[c] for c in free])
    if intercept or free:
        bounds = ([-np.inf, -30] + [0.0] * len(free), [np.inf, 30] + [6.0] * len(free))  # costs grow with size
        p0 = np.clip(p0, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9)
        result = least_squares(lambda p: np.log(model(p)) - y, p0, bounds=bounds)
        p = result.x
    else:
        p = p0.copy()
        p[0] = float(np.mean(y - np.log(product)))
    base, scale, exps = unpack(p)
    fitted = FittedLaw(law, base, scale, exps, free, len(rows), n_sizes)
    fitted.rms_log_error = float(np.sqrt(np.mean((np.log(fitted.predict(rows)) - y) ** 2)))
    return fitted


def fit_memory_law(table: pd.DataFrame, law: Law) -> FittedLaw:
    """``fit_law``, then scaled up so that it bounds every calibration job's measured peak."""
    fitted = fit_law(table, law)
    rows = table.dropna(subset=[law.target] + [c for c, _, _ in law.features])
    rows = rows[rows[law.target] > 0]
    margin = float(np.max(rows[law.target].to_numpy(dtype=float) / fitted.predict(rows)))
    fitted.base, fitted.scale = fitted.base * max(margin, 1.0), fitted.scale * max(margin, 1.0)
    return fitted


@dataclass
class Calibration:
    """Fitted laws: ``time[family]`` (a list of parts), ``memory[family]``, ``constant_memory[family]`` (MB),
    ``dft_startup`` (seconds per DFT job), and the calibration files they came from."""

    time: dict
    memory: dict
    constant_memory: dict
    dft_startup: float
    sources: list


def read_calibration(paths) -> pd.DataFrame:
    """Calibration tables (TSV files, or folders of them) stacked, with a ``source`` column."""
    files = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no calibration tables in {list(map(str, paths))}")
    frames = [pd.read_csv(f, sep="\t").assign(source=f.stem) for f in files]
    return pd.concat(frames, ignore_index=True)


def default_calibration_paths() -> list[Path]:
    return [CALIBRATION_DIR / name for name in DEFAULT_CALIBRATION]


def calibrate(table: pd.DataFrame) -> Calibration:
    """Fit every law on a calibration table. Ensemble jobs are left out (their cost is set by
    ``ENSEMBLE_COST_FACTOR``), as are rows that measured nothing."""
    if "ensemble" in table:
        table = table[~table["ensemble"].fillna(False).astype(bool)]
    time = {family: [fit_law(table[table["family"] == family], law) for law in laws]
            for family, laws in TIME_LAWS.items() if (table["family"] == family).any()}  # fmt: skip
    memory = {family: fit_memory_law(table[table["family"] == family], law)
              for family, law in MEMORY_LAWS.items() if (table["family"] == family).any()}  # fmt: skip
    constant = {family: float(table.loc[table["family"] == family, "max_rss"].max()) for family in CONSTANT_MEMORY
                if (table["family"] == family).any()}  # fmt: skip
    dft = table[(table["family"] == "dft")]
    startup = float(dft["startup_s"].median()) if "startup_s" in dft and dft["startup_s"].notna().any() else 0.0
    return Calibration(time, memory, constant, startup, sorted(table["source"].unique()))


# ---------------------------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------------------------
def predict_jobs(features: pd.DataFrame, calibration: Calibration, gpu_speedup: float = GPU_SPEEDUP_OVER_CORE,
                 include_dft_startup: bool = True) -> pd.DataFrame:  # fmt: skip
    """Per-job prediction: ``seconds`` (wall), ``core_hours``, ``gpu_hours``, ``mem_mb`` (peak RSS) and the
    train parts. A family without a calibrated law is predicted as its median calibrated relative and
    marked in ``uncalibrated``."""
    out = features.copy()
    out["seconds"] = 0.0
    out["uncalibrated"] = False
    for family, group in out.groupby("family"):
        if family in NO_COST_RULES:
            continue
        laws = calibration.time.get(family)
        if laws is None:
            out.loc[group.index, "uncalibrated"] = True
            fallback = np.median([law.predict(pd.DataFrame(index=[0])).item() for law in
                                  calibration.time.get("findings_report", [])] or [10.0])  # fmt: skip
            out.loc[group.index, "seconds"] = fallback
            continue
        total = np.zeros(len(group))
        for law in laws:
            part = law.predict(group)
            out.loc[group.index, law.law.target] = part
            total = total + part
        out.loc[group.index, "seconds"] = total
    if "n_models" in out:  # K models of an ensemble job cost K × one × ENSEMBLE_COST_FACTOR
        ensemble = out["n_models"].fillna(1).to_numpy() > 1
        out.loc[ensemble, "seconds"] *= out.loc[ensemble, "n_models"] * ENSEMBLE_COST_FACTOR
    dft = out["family"] == "dft"
    if include_dft_startup:
        out.loc[dft, "seconds"] += calibration.dft_startup
    threads = out["threads"].to_numpy(dtype=float)
    on_gpu = out["gpu"].to_numpy(dtype=float) > 0
    speed = np.where(on_gpu, gpu_speedup, 1.0)
    parallel = out["family"].map(lambda f: PARALLEL_FRACTION.get(f, DEFAULT_PARALLEL_FRACTION)).to_numpy(float)
    out["seconds"] = out["seconds"] * ((1 - parallel) + parallel / threads) / speed
    out["core_hours"] = out["seconds"] * threads / 3600
    out["gpu_hours"] = out["seconds"] * out["gpu"].to_numpy(dtype=float) / 3600
    out["mem_mb"] = np.nan
    for family, group in out.groupby("family"):
        if family == "dft":
            out.loc[group.index, "mem_mb"] = group["dft_mem_mb"]
        elif family in calibration.memory:
            out.loc[group.index, "mem_mb"] = calibration.memory[family].predict(group)
        elif family in calibration.constant_memory:
            out.loc[group.index, "mem_mb"] = calibration.constant_memory[family]
    return out


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per-rule totals of ``predict_jobs``: jobs, models, core-hours, the longest job, peak memory, GPU-hours."""
    grouped = jobs.groupby("rule", sort=False)
    table = pd.DataFrame({
        "jobs": grouped.size(),
        "models": grouped["n_models"].sum().where(grouped["family"].first() == "train", 0).astype(int),
        "threads": grouped["threads"].max(),
        "core_hours": grouped["core_hours"].sum(),
        "longest_job_h": grouped["seconds"].max() / 3600,
        "peak_mem_gb": grouped["mem_mb"].max() / 1000,
        "gpu_hours": grouped["gpu_hours"].sum(),
        "requested_mem_gb": grouped["mem_mb_requested"].max() / 1000,
        "requested_runtime_h": grouped["runtime_requested_min"].max() / 60,
    })  # fmt: skip
    return table.sort_values("core_hours", ascending=False)


def plan(configfiles, calibration_paths=None, workdir=None, gpu_speedup: float = GPU_SPEEDUP_OVER_CORE,
         profile=None):  # fmt: skip
    """``(per-rule table, per-job table, Calibration)`` for a config (files in merge order)."""
    configfiles = [Path(f).resolve() for f in configfiles]
    calibration = calibrate(read_calibration(calibration_paths or default_calibration_paths()))
    config = load_config(configfiles)
    jobs = dag_jobs(configfiles, workdir, profile)
    per_job = predict_jobs(job_features(jobs, config, workdir or "."), calibration, gpu_speedup)
    return rule_table(per_job), per_job, calibration


# ---------------------------------------------------------------------------------------------------------
# calibration tables from finished runs
# ---------------------------------------------------------------------------------------------------------
def _benchmark(path: Path) -> dict:
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


def _train_parts(model_dir: Path, seconds: float) -> dict:
    """The four measured parts of a train job: optimiser steps (Σ ``train_seconds`` of the epochs),
    validation + probes (the rest of the fit), test evaluation (the rest of the job's timed part) and
    start-up/set-up (the benchmark's seconds outside ``job_seconds``)."""
    summary = json.loads((model_dir / "summary.json").read_text())
    metrics = pd.read_parquet(model_dir / "metrics.parquet", columns=["train_seconds", "wall_seconds"])
    steps = float(metrics["train_seconds"].sum())
    fit = float(metrics["wall_seconds"].iloc[-1])
    job = float(summary["job_seconds"])
    return {"steps_s": steps, "validate_s": max(fit - steps, 1e-3), "evaluate_s": max(job - fit, 1e-3),
            "overhead_s": max(seconds - job, 1e-3)}  # fmt: skip


def summarise_run(run_dir, configfiles, workdir=None, cpu_table=None) -> pd.DataFrame:
    """A calibration table of a finished run (its working directory and its config files): the features of
    each job of its DAG with what was measured. Jobs that left no measurement are dropped.

    ``wall_s``: the benchmark's ``s`` (the DFT: the JSON's ``wall_seconds``, its timed part); ``max_rss``
    (MB); the train parts (``_train_parts``); ``startup_s`` of DFT jobs (job wall − ``wall_seconds``, from
    Snakemake's metadata). ``seconds``, what the laws are fitted on, is ``wall_s`` — or, with
    ``cpu_table`` (``benchmarks/calibration/cpu_monitor.py``'s polls of the run), the CPU seconds of the
    job's process: on a shared machine the wall time grows with the other load, the CPU time does not.
    The parts of a train or DFT job are then scaled by the job's CPU share (CPU / wall). The DAG is
    dry-run in ``workdir`` (a scratch directory if None: nothing is written into the run)."""
    run_dir = Path(run_dir).resolve()
    config = load_config(configfiles)
    jobs = dag_jobs(configfiles, workdir)
    features = job_features(jobs, config, workdir or run_dir)
    cpu = pd.read_csv(cpu_table, sep="\t").set_index("log") if cpu_table else None
    measured = []
    for job, feat in zip(jobs.itertuples(index=False), features.itertuples(index=False)):
        row: dict = {}
        if job.benchmark and (run_dir / job.benchmark).exists():
            row.update(_benchmark(run_dir / job.benchmark))
            if feat.family == "train" and len(job.points) == 1:
                row.update(_train_parts(run_dir / "results" / "models" / job.points[0], row["seconds"]))
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
                share = float(process["cpu_s"]) / max(float(process["wall_s"]), 1e-9)
                row["cpu_share"] = share
                if "max_rss_mb" in process and "max_rss" not in row:  # dft: no benchmark, the monitor's peak
                    row["max_rss"] = float(process["max_rss_mb"])
                if feat.family == "dft":
                    row["seconds"] = row["wall_s"] * share
                    row["startup_s"] = max(float(process["cpu_s"]) - row["seconds"], 0.0)
                else:
                    for part in ("steps_s", "validate_s", "evaluate_s", "overhead_s"):
                        if part in row:
                            row[part] *= float(process["cpu_s"]) / row["wall_s"]
                    row["seconds"] = float(process["cpu_s"])
        measured.append(row)
    table = pd.concat([features, pd.DataFrame(measured, index=features.index)], axis=1)
    table = table[table["seconds"].notna()] if "seconds" in table else table.iloc[:0]
    return table.drop(columns=["benchmark"])


def measured_rule_table(calibration_rows: pd.DataFrame) -> pd.DataFrame:
    """Per-rule measured totals of a summarised run: jobs and core-hours (Σ seconds × threads)."""
    rows = calibration_rows.assign(core_hours=calibration_rows["seconds"] * calibration_rows["threads"] / 3600)
    grouped = rows.groupby("rule", sort=False)
    return pd.DataFrame({"jobs": grouped.size(), "core_hours": grouped["core_hours"].sum()})


def compare(predicted: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Predicted vs measured core-hours per rule and in total (``ratio`` = predicted / measured)."""
    table = pd.DataFrame({
        "jobs": measured["jobs"],
        "predicted_core_h": predicted["core_hours"].reindex(measured.index).fillna(0.0),
        "measured_core_h": measured["core_hours"],
    })  # fmt: skip
    table.loc["total"] = [table["jobs"].sum(), table["predicted_core_h"].sum(), table["measured_core_h"].sum()]
    table["ratio"] = table["predicted_core_h"] / table["measured_core_h"]
    return table


def validate_on(rows: pd.DataFrame, calibration: Calibration) -> pd.DataFrame:
    """``compare`` of a summarised run's measured costs with the plan of its own jobs (their features):
    the DFT part without start-up, as the run's DFT cost is the JSONs' ``wall_seconds``."""
    predicted = predict_jobs(rows.drop(columns=["seconds", "max_rss"], errors="ignore"), calibration,
                             include_dft_startup=False)  # fmt: skip
    by_rule = predicted.groupby("rule", sort=False)["core_hours"].sum().to_frame()
    return compare(by_rule, measured_rule_table(rows))


# ---------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------
def format_plan(table: pd.DataFrame, calibration: Calibration, configfiles, gpu_speedup: float) -> str:
    """The plan as text: the per-rule table, totals, the requests a job would outgrow, and the assumptions."""
    total = table[["jobs", "core_hours", "gpu_hours"]].sum()
    shown = table.copy()
    formats = {"core_hours": "{:,.2f}", "longest_job_h": "{:,.3f}", "peak_mem_gb": "{:,.2f}", "gpu_hours": "{:,.2f}",
               "requested_mem_gb": "{:,.1f}", "requested_runtime_h": "{:,.1f}"}  # fmt: skip
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
    ]  # fmt: skip
    for rule, row in table.iterrows():
        if row["peak_mem_gb"] > row["requested_mem_gb"]:
            lines.append(f"! {rule}: predicted peak {row['peak_mem_gb']:,.1f} GB > mem_mb requested "
                         f"({row['requested_mem_gb']:,.1f} GB)")  # fmt: skip
        if row["longest_job_h"] > row["requested_runtime_h"]:
            lines.append(f"! {rule}: longest job {row['longest_job_h']:,.2f} h > runtime requested "
                         f"({row['requested_runtime_h']:,.2f} h)")  # fmt: skip
    if total["gpu_hours"] > 0:
        lines.append(f"GPU-hours assume a GPU runs a training job {gpu_speedup:g}× as fast as one CPU core "
                     "(not measured: dispatch-bound batch-1 steps; set --gpu-speedup when known).")  # fmt: skip
    lines.append("Core-hours: CPU seconds on a dedicated core × threads held by train jobs; all epochs run "
                 "(no early stop). docs/plan.md has the laws and their validation.")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e3hier.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", nargs="+", default=["config.yaml"], help="config files in merge order")
    parser.add_argument("--calibration", nargs="+", default=None,
                        help="calibration tables (TSV, or folders of them); default: benchmarks/calibration/"
                             "{tiny,default}.tsv")  # fmt: skip
    parser.add_argument("--add-calibration", nargs="+", default=[],
                        help="tables used in addition to the default ones (e.g. your own --summarise-run)")
    parser.add_argument("--workdir", default=None, help="where the config's relative paths resolve (XYZ globs)")
    parser.add_argument("--gpu-speedup", type=float, default=GPU_SPEEDUP_OVER_CORE,
                        help="speed of a training job on one GPU relative to one CPU core (not measured: 1)")
    parser.add_argument("--profile", help="plan with a Snakemake profile's threads and resources "
                        "(e.g. profiles/slurm); the requested memory and runtime are then checked")  # fmt: skip
    parser.add_argument("--jobs", metavar="TSV", help="also write the per-job prediction here")
    parser.add_argument("--summarise-run", metavar="RUN_DIR",
                        help="instead of planning: write the calibration table of a finished run (its working "
                             "directory, run with --configfile) to --output")  # fmt: skip
    parser.add_argument("--output", "-o", metavar="TSV", help="output of --summarise-run")
    parser.add_argument("--cpu-table", metavar="TSV", help="--summarise-run: the run's CPU seconds per job "
                        "(benchmarks/calibration/cpu_monitor.py)")
    args = parser.parse_args(argv)
    if args.summarise_run:
        if not args.output:
            parser.error("--summarise-run needs --output")
        table = summarise_run(args.summarise_run, args.configfile, args.workdir, args.cpu_table)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.output, sep="\t", index=False, float_format="%.6g")
        print(f"{args.output}: {len(table)} jobs, {table['seconds'].mul(table['threads']).sum() / 3600:.3f} core-hours")
        return 0
    paths = (args.calibration or default_calibration_paths()) + args.add_calibration
    table, per_job, calibration = plan(args.configfile, paths, args.workdir, args.gpu_speedup, args.profile)
    print(format_plan(table, calibration, args.configfile, args.gpu_speedup))
    if args.jobs:
        per_job.drop(columns=["benchmark"], errors="ignore").to_csv(args.jobs, sep="\t", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

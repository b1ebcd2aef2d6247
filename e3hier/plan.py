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
   of a rule's jobs (the dft rule: its own ``mem_mb`` as the DAG requests it, i.e. the workflow's
   estimate of the DFT's peak, not a second model of it); GPU-hours = Σ wall hours × GPUs of the jobs
   that ask for a GPU.

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

#: Calibration tables used when none are given: the tiny and the default run, and three DFT jobs at the
#: paper's basis and grid (``paper-dft.yaml``), so a plan of ``config.paper.yaml`` does not extrapolate the
#: DFT from cc-pVDZ alone.
DEFAULT_CALIBRATION = ("tiny.tsv", "default.tsv", "paper-dft.tsv")

#: The study-tier check (docs/plan.md, tests/test_plan.py) is calibrated on the tiny and default runs only.
VALIDATION_CALIBRATION = ("tiny.tsv", "default.tsv")
VALIDATION_RUN = CALIBRATION_DIR / "validation" / "study.tsv"

#: ``--cores`` of the planning dry run: large, so no rule's ``threads`` is capped by it.
PLAN_CORES = 4096

#: Cost of one model trained in a ``train_ensemble_*`` job, relative to the same model trained alone
#: (K models cost K × one model × this factor).
ENSEMBLE_COST_FACTOR = 1 / 2.4  # make bench: ensemble_speedup 2.80 (l_max 2) and 2.03 (l_max 4) at K = 5

#: Speed of a training job on one GPU relative to the same job on one CPU core. No GPU was measured: the
#: study's batch-1 steps on 9–30-atom graphs are ~2,400 small autograd ops each, bound by per-op dispatch
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

#: Starting values of a fit's size-independent part, as fractions of the smallest measured value (the fit
#: in log space has local minima when start-up dominates; the best of these starts is kept).
START_BASE_FRACTIONS = (0.05, 0.5, 0.95)

#: A measured max RSS below this (MB) is a job too short for the benchmark's first sample (a Python with
#: pandas imported holds ~80 MB): not a peak.
RSS_FLOOR_MB = 50.0

#: Rules that run nothing (a target-only rule).
NO_COST_RULES = ("all",)

#: Indentation of a job's lines below its header, and of the jobs of a group job (a profile's ``groups:``).
GROUP_INDENT = 4

MODEL_PATH = re.compile(r"results/models/([^/,\s]+)/model\.pt")
JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) ([A-Za-z_][A-Za-z0-9_]*):$")


# ---------------------------------------------------------------------------------------------------------
# config and DAG
# ---------------------------------------------------------------------------------------------------------
def load_config(configfiles) -> dict:
    """The config the workflow sees.

    Parameters
    ----------
    configfiles : list of path-like
        Config files in merge order (later files override earlier ones, as ``--configfile a b``).

    Returns
    -------
    dict
        The files merged with Snakemake's ``update_config``, validated against the config schema with its
        defaults filled in.
    """
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in configfiles:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    validate(config, str(SCHEMA))
    return config


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
        cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir or scratch),
               "--dry-run", "--forceall", *extra, "--configfile", *files]  # fmt: skip
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
        writes: one for ``train``, K for a ``train_ensemble_*`` job).
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
    """Snakemake's own job count of a dry run.

    Parameters
    ----------
    text : str
        Output of ``dry_run_text``.

    Returns
    -------
    dict
        ``{rule: jobs}`` from the "Job stats" table.
    """
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
        ``figure`` for ``figure_*``, ``train`` for ``train`` and ``train_ensemble_*``, else the rule.
    """
    if rule.startswith("figure_"):
        return "figure"
    if rule == "train" or rule.startswith("train_ensemble"):
        return "train"
    return rule


def parse_point(name: str) -> dict:
    """The grid point of a model folder name.

    Parameters
    ----------
    name : str
        A folder name such as ``lmax~2_output~full_capacity~study_channels~study_seed~0_ntrain~all``.

    Returns
    -------
    dict
        ``{"lmax": "2", "output": "full", ...}`` (values as strings).
    """
    return dict(part.split("~", 1) for part in name.split("_") if "~" in part)


# ---------------------------------------------------------------------------------------------------------
# size features
# ---------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def atom_grid_points(element: str, grid_key: str) -> int:
    """Quadrature points of one free atom's grid (a molecule's grid has about the sum over its atoms).

    Parameters
    ----------
    element : str
        Element symbol.
    grid_key : str
        JSON of a ``dft.grid`` block (the SCF grid) or of ``{"level": L}`` (the ε grid,
        ``metric.grid_level``).

    Returns
    -------
    int
        Number of points.
    """
    from pyscf import dft, gto

    from e3hier.dft.scf import configure_grid

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
    """Spherical functions of one element in a contracted SCF basis, as PySCF builds it.

    Parameters
    ----------
    basis_name : str
        Basis set name (``dft.basis``).
    element : str
        Element symbol.

    Returns
    -------
    int
        Functions, counting every contraction column of a generally contracted shell (O in cc-pVDZ: 14).
    """
    from pyscf import gto

    return int(gto.M(atom=f"{element} 0 0 0", basis=basis_name, spin=gto.charge(element) % 2, verbose=0).nao_nr())


def structure_table(config: dict, base_dir=".") -> pd.DataFrame:
    """Size of every structure of a config, known from the config alone.

    Parameters
    ----------
    config : dict
        A ``load_config`` config.
    base_dir : path-like
        Where the config's XYZ globs resolve.

    Returns
    -------
    pandas.DataFrame
        Indexed by structure id: ``split``, ``atoms``, ``md_steps`` (FIRE minimisation + MD steps; 0 for
        XYZ input), ``n_basis`` (SCF basis functions), ``fit_functions`` (density-fit functions: the model's
        outputs and the ε collocation columns), ``dft_points`` (SCF grid), ``metric_points`` (ε grid),
        ``symbols`` and ``metric_grid`` (ε collocation entries, points × fit functions).
    """
    from e3hier import workflow as wf
    from e3hier.structures.water_clusters import OPT_STEPS

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
    """Parameter count of one grid point's network, from the irreps alone (``e3hier.capacity``)."""
    from e3hier.capacity import grid_multiplicities
    from e3hier.layout import OutputLayout

    layout = OutputLayout.from_basis(fit_basis, list(elements), decontract, output)
    plan = grid_multiplicities(lmax, capacity, channels, reference_lmax, len(elements), layout.irreps,
                               json.loads(model_json))  # fmt: skip
    return int(plan["n_params"])


def train_features(point: dict, config: dict, structures: pd.DataFrame) -> dict:
    """Size features of training one grid point (one model).

    Parameters
    ----------
    point : dict
        The grid point (``parse_point``): ``lmax``, ``output``, ``capacity``, ``channels``, ``ntrain``.
    config : dict
        A ``load_config`` config.
    structures : pandas.DataFrame
        ``structure_table`` of the config.

    Returns
    -------
    dict
        ``lmax_plus_1``, ``n_params``, ``epochs``, ``n_train``, ``batch_size``, ``train_atoms`` and:

        - ``step_work``: structure passes of the optimiser (epochs × structures), each weighted by its
          cost relative to a batch-1 pass of a ``BATCH_REFERENCE_ATOMS``-atom structure: a fixed per-step
          share (dispatch, divided among the batch) plus a share that grows with the atoms (edges at a
          fixed cutoff);
        - ``forward_work``: forward passes outside the optimiser (validation every epoch, hidden-feature
          probes every ``probe_every`` steps), weighted by atoms the same way;
        - ``test_grid``: ε collocation entries (points × fit functions) of the test splits, set up once
          per job; the 2·l_max ablations re-evaluate the ``test`` split on them, cheaply;
        - ``val_grid``: the same for the validation split, set up before training;
        - ``held_grid``: entries held at once (validation + the largest test split), for memory.
    """
    train_cfg, analysis_cfg = config["train"], config.get("analysis", {})
    splits = structures.groupby("split", sort=False)
    train_ids = structures.index[structures["split"] == "train"]
    n_train = len(train_ids) if point["ntrain"] == "all" else min(int(point["ntrain"]), len(train_ids))
    train_atoms = float(structures.loc[train_ids[:n_train], "atoms"].mean()) if n_train else 0.0
    val = structures[structures["split"] == train_cfg.get("val_split", "val")]
    tests = [s for s in train_cfg.get("test_splits", ["test", "test_large"]) if s in splits.groups]
    test_grids = {s: float(structures.loc[structures["split"] == s, "metric_grid"].sum()) for s in tests}
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
    val_atoms = float(val["atoms"].mean()) if len(val) else 0.0
    return {
        "lmax_plus_1": lmax + 1,
        "n_params": n_params,
        "epochs": epochs,
        "n_train": n_train,
        "batch_size": batch,
        "train_atoms": train_atoms,
        "step_work": epochs * n_train * (phi / batch + (1 - phi) * train_atoms / ref),
        "forward_work": (epochs * len(val) + n_probes * probe_structures) * (val_atoms / ref),
        "val_grid": float(val["metric_grid"].sum()),
        "test_grid": float(sum(test_grids.values())),
        "held_grid": float(val["metric_grid"].sum() + max(test_grids.values(), default=0.0)),
    }  # fmt: skip


def job_features(jobs: pd.DataFrame, config: dict, base_dir=".") -> pd.DataFrame:
    """Size features of every job of a config.

    Parameters
    ----------
    jobs : pandas.DataFrame
        ``parse_dry_run`` rows of the config's DAG.
    config : dict
        A ``load_config`` config.
    base_dir : path-like
        Where the config's XYZ globs resolve.

    Returns
    -------
    pandas.DataFrame
        One row per job: ``rule``, ``family`` (``rule_family``), ``job`` (a readable id), ``threads``,
        ``gpu``, the requested ``mem_mb_requested`` and ``runtime_requested_min``, ``n_models`` (models a
        training job trains: K for an ensemble job), ``n_models_read`` (for the rules that read every
        model) and the features of its family (NaN where one does not apply); ``dft_mem_mb`` of a DFT job
        is its rule's own ``mem_mb``, the workflow's estimate of the DFT's peak.
    """
    structures = structure_table(config, base_dir)
    n_models_total = int(sum(len(p) for p in jobs["points"]))
    per_point: dict = {}  # the seeds of a grid point share its features
    rows = []
    for job in jobs.itertuples(index=False):
        family = rule_family(job.rule)
        row = {"rule": job.rule, "family": family, "threads": job.threads, "gpu": job.gpu,
               "mem_mb_requested": job.mem_mb, "runtime_requested_min": job.runtime_min, "benchmark": job.benchmark,
               "job": job.rule + "".join(f":{k}={v}" for k, v in job.wildcards.items()),
               "n_models": 1}  # fmt: skip
        wc = job.wildcards
        if family in ("structure", "dft"):
            info = structures.loc[wc["structure"]]
            row.update(atoms=info["atoms"], md_work=info["md_steps"] * info["atoms"], n_basis=info["n_basis"],
                       basis_per_atom=info["n_basis"] / info["atoms"],
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
    """A scaling law ``target = base + scale × Π feature**exponent`` for the jobs of one rule family.

    Attributes
    ----------
    target : str
        The calibration column it predicts (``seconds``, a train part, ``max_rss``).
    features : tuple
        ``(column, physical exponent, fit[, upper bound])`` per feature. With ``fit`` the exponent is
        fitted (between 0 and the bound, by default twice the physical exponent) where the calibration
        holds enough distinct sizes; else the physical exponent is used.
    intercept : bool
        Whether ``base`` (a size-independent part: start-up, imports) is fitted; else it is 0.
    note : str
        What the law stands for.
    """

    target: str
    features: tuple = ()
    intercept: bool = True
    note: str = ""


@dataclass
class FittedLaw:
    """A ``Law`` with its coefficients.

    Attributes
    ----------
    law : Law
        The law.
    base, scale : float
        Its coefficients.
    exponents : dict
        ``{feature: exponent}``.
    fitted : list of str
        The features whose exponent came from the data (the others are physical).
    n_jobs, n_sizes : int
        Calibration jobs and distinct sizes it was fitted on.
    rms_log_error : float
        Root-mean-square log residual on them.
    """

    law: Law
    base: float
    scale: float
    exponents: dict
    fitted: list = field(default_factory=list)
    n_jobs: int = 0
    n_sizes: int = 0
    rms_log_error: float = float("nan")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The law's value at each row's features.

        Parameters
        ----------
        frame : pandas.DataFrame
            Rows with the law's feature columns.

        Returns
        -------
        numpy.ndarray
            ``base + scale × Π feature**exponent`` per row.
        """
        product = np.ones(len(frame))
        for column, exponent in self.exponents.items():
            product = product * np.power(frame[column].to_numpy(dtype=float), exponent)
        return self.base + self.scale * product

    def describe(self) -> str:
        """The law as text, e.g. ``0.66 + 2.3e-05 × md_work^1.00`` (``*``: fitted exponent)."""
        terms = [f"{self.scale:.3g}"] + [
            f"{c}^{e:.2f}" + ("*" if c in self.fitted else "") for c, e in self.exponents.items()
        ]
        text = " × ".join(terms)
        return (f"{self.base:.3g} + " if self.law.intercept else "") + text


#: Time laws (seconds of one job at one thread) per rule family. A train job is the sum of four measured
#: parts (``summarise_run``): optimiser steps, validation + probes, test evaluation, start-up + set-up.
TIME_LAWS: dict[str, list[Law]] = {
    "structure": [Law("seconds", (("md_work", 1.0, False),),
                      note="start-up + (FIRE minimisation + Langevin MD) steps × atoms")],
    "structure_manifest": [Law("seconds", (("n_structures", 1.0, True),), note="reads every structure")],
    "free_atom": [Law("seconds", (("element_basis", 3.0, False),), note="start-up + one atom's SCF ∝ N_basis³")],
    "dft": [Law("seconds", (("atoms", 3.0, True), ("basis_per_atom", 3.0, True), ("grid_per_atom", 1.0, True),
                            ("scf_digits", 1.0, False)),
                intercept=False,
                note="SCF ∝ N_basis³ = (atoms × basis functions per atom)³ with its own exponent for each "
                     "(a cluster grows: more atoms, auxiliary functions and grid; a basis grows: more functions "
                     "on the same atoms), × grid points per atom (XC), × SCF cycles ∝ digits of conv_tol")],
    "dataset": [Law("seconds", (("split_functions", 1.0, False),), note="reads each structure's fit table")],
    "train": [
        Law("steps_s", (("step_work", 1.0, False), ("n_params", 1.0, True), ("lmax_plus_1", 1.0, True)),
            intercept=False, note="epochs × structures × (dispatch per step / batch + atoms) × model × l_max"),
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

#: Peak-memory laws (max RSS, MB) per rule family; ``dft`` uses its rule's ``mem_mb`` (the DFT estimate) instead.
#: Memory is held data, so exponents are the physical 1; each law is raised to bound every calibration job.
MEMORY_LAWS: dict[str, Law] = {
    "train": Law("max_rss", (("held_grid", 1.0, False),), note="validation + largest test split ε collocation"),
    "dataset": Law("max_rss", (("split_functions", 1.0, False),)),
    "analysis": Law("max_rss", (("n_models_read", 1.0, False),)),
    "figure": Law("max_rss", (("n_models_read", 1.0, False),)),
    "structure_manifest": Law("max_rss", (("n_structures", 1.0, False),)),
}
#: Families whose memory is the largest measured RSS (nothing they hold grows much with the config:
#: models_table keeps one summary row per model).
CONSTANT_MEMORY = ("structure", "free_atom", "density_slice", "findings_report", "models_table")

def fit_law(table: pd.DataFrame, law: Law) -> FittedLaw:
    """Fit a law by least squares in log space.

    Parameters
    ----------
    table : pandas.DataFrame
        Calibration rows of one rule family; rows without a positive ``law.target`` are ignored.
    law : Law
        The law to fit.

    Returns
    -------
    FittedLaw
        The fitted law. An exponent is fitted only where the rows hold enough distinct sizes (n distinct
        feature vectors fit at most n parameters: scale, base, exponents, in that order of priority);
        the others keep their physical value. With a single size the base is dropped and the law is
        the geometric mean times the physical size dependence.

    Raises
    ------
    ValueError
        If no row measured the law's target.
    """
    from scipy.optimize import least_squares

    columns = [f[0] for f in law.features]
    rows = table[table[law.target].notna() & (table[law.target] > 0)] if law.target in table else table.iloc[:0]
    rows = rows.dropna(subset=columns)
    if rows.empty:
        raise ValueError(f"no calibration rows measure {law.target!r} for this law ({law.note})")
    y = np.log(rows[law.target].to_numpy(dtype=float))
    x = {c: rows[c].to_numpy(dtype=float) for c in columns}
    n_sizes = len(rows[columns].drop_duplicates()) if columns else 1
    free = [f[0] for f in law.features if f[2] and len(np.unique(x[f[0]])) > 1]
    intercept = law.intercept and n_sizes > 1
    while free and 1 + intercept + len(free) > n_sizes:
        free.pop()
    physical = {f[0]: f[1] for f in law.features}
    # costs grow with size, at most twice as fast as the physical law unless the law names a bound
    upper = {f[0]: (f[3] if len(f) > 3 else 2.0 * max(f[1], 0.5)) for f in law.features}

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

    # starts: physical exponents, a base of 5, 50 or 95 % of the smallest value, the scale through the median
    product = np.ones(len(y))
    for c in columns:
        product = product * np.power(x[c], physical[c])
    if intercept or free:
        bounds = ([-np.inf, -30] + [0.0] * len(free), [np.inf, 30] + [upper[c] for c in free])
        best = None
        for fraction in (START_BASE_FRACTIONS if intercept else (0.0,)):
            base0 = fraction * math.exp(y.min())
            scale0 = max(float(np.median((np.exp(y) - base0) / product)), 1e-30)
            p0 = np.array([math.log(scale0), math.log(max(base0, 1e-12))] + [physical[c] for c in free])
            p0 = np.clip(p0, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9)
            result = least_squares(lambda p: np.log(model(p)) - y, p0, bounds=bounds)
            if best is None or result.cost < best.cost - 1e-12:
                best = result
        p = best.x
    else:
        p = np.array([float(np.mean(y - np.log(product))), 0.0])
    base, scale, exps = unpack(p)
    fitted = FittedLaw(law, base, scale, exps, free, len(rows), n_sizes)
    fitted.rms_log_error = float(np.sqrt(np.mean((np.log(fitted.predict(rows)) - y) ** 2)))
    return fitted


def fit_memory_law(table: pd.DataFrame, law: Law) -> FittedLaw:
    """Fit a peak-memory law that bounds every calibration job.

    Parameters
    ----------
    table : pandas.DataFrame
        Calibration rows of one rule family. Peaks below ``RSS_FLOOR_MB`` are left out: the benchmark
        sampled such a job before its imports.
    law : Law
        The memory law.

    Returns
    -------
    FittedLaw
        ``fit_law``'s fit, scaled up until no calibration job's measured peak exceeds it.
    """
    table = table[table[law.target] >= RSS_FLOOR_MB]
    fitted = fit_law(table, law)
    rows = table.dropna(subset=[law.target] + [f[0] for f in law.features])
    margin = float(np.max(rows[law.target].to_numpy(dtype=float) / fitted.predict(rows)))
    fitted.base, fitted.scale = fitted.base * max(margin, 1.0), fitted.scale * max(margin, 1.0)
    return fitted


@dataclass
class Calibration:
    """The fitted laws of a calibration.

    Attributes
    ----------
    time : dict
        ``{family: [FittedLaw, ...]}``: the parts of a job's seconds (four for ``train``).
    memory : dict
        ``{family: FittedLaw}`` of peak RSS (MB).
    constant_memory : dict
        ``{family: MB}``: the largest measured peak, for families whose memory does not grow.
    dft_startup : float
        CPU seconds of a DFT job outside its JSON's ``wall_seconds``.
    fallback_seconds : float
        Seconds of a job of a rule no calibration covers (the median small job).
    sources : list of str
        Names of the calibration tables.
    """

    time: dict
    memory: dict
    constant_memory: dict
    dft_startup: float
    fallback_seconds: float
    sources: list


def read_calibration(paths) -> pd.DataFrame:
    """Read calibration tables.

    Parameters
    ----------
    paths : list of path-like
        TSV files (``summarise_run`` output), or folders whose ``*.tsv`` are read.

    Returns
    -------
    pandas.DataFrame
        The tables stacked, with a ``source`` column (the file's stem).
    """
    files = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no calibration tables in {list(map(str, paths))}")
    frames = [pd.read_csv(f, sep="\t").assign(source=f.stem) for f in files]
    return pd.concat(frames, ignore_index=True)


def default_calibration_paths() -> list[Path]:
    """The shipped calibration tables ``DEFAULT_CALIBRATION`` in ``benchmarks/calibration/``."""
    return [CALIBRATION_DIR / name for name in DEFAULT_CALIBRATION]


def calibrate(table: pd.DataFrame) -> Calibration:
    """Fit every law on a calibration table.

    Parameters
    ----------
    table : pandas.DataFrame
        ``read_calibration`` rows. Ensemble jobs are left out: their cost follows from a single model's
        and ``ENSEMBLE_COST_FACTOR``.

    Returns
    -------
    Calibration
        The fitted time and memory laws.
    """
    if "ensemble" in table:
        table = table[~table["ensemble"].fillna(False).astype(bool)]
    time = {family: [fit_law(table[table["family"] == family], law) for law in laws]
            for family, laws in TIME_LAWS.items() if (table["family"] == family).any()}  # fmt: skip
    memory = {}
    for family, law in MEMORY_LAWS.items():
        rows = table[(table["family"] == family) & (table["max_rss"] >= RSS_FLOOR_MB)]
        if not rows.empty:
            memory[family] = fit_memory_law(rows, law)
    constant = {family: float(table.loc[table["family"] == family, "max_rss"].max()) for family in CONSTANT_MEMORY
                if (table["family"] == family).any()}  # fmt: skip
    dft = table[(table["family"] == "dft")]
    startup = float(dft["startup_s"].median()) if "startup_s" in dft and dft["startup_s"].notna().any() else 0.0
    small = table.loc[~table["family"].isin(["train", "dft"]), "seconds"]
    fallback = float(small.median()) if small.notna().any() else 10.0
    return Calibration(time, memory, constant, startup, fallback, sorted(table["source"].unique()))


# ---------------------------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------------------------
def predict_jobs(features: pd.DataFrame, calibration: Calibration, gpu_speedup: float = GPU_SPEEDUP_OVER_CORE,
                 include_dft_startup: bool = True) -> pd.DataFrame:  # fmt: skip
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

    Returns
    -------
    pandas.DataFrame
        ``features`` with ``seconds`` (the job's wall time: one-thread seconds, ``PARALLEL_FRACTION`` for
        more threads, ``gpu_speedup`` on a GPU, ``ENSEMBLE_COST_FACTOR`` for an ensemble job),
        ``core_hours`` (seconds × threads), ``gpu_hours``, ``mem_mb`` (peak RSS), the train parts, and
        ``uncalibrated`` (a rule no calibration covers: ``fallback_seconds``).
    """
    out = features.copy()
    out["seconds"] = 0.0
    out["uncalibrated"] = False
    for family, group in out.groupby("family"):
        if family in NO_COST_RULES:
            continue
        laws = calibration.time.get(family)
        if laws is None:
            out.loc[group.index, "uncalibrated"] = True
            out.loc[group.index, "seconds"] = calibration.fallback_seconds
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
    calibration = calibrate(read_calibration(calibration_paths or default_calibration_paths()))
    config = load_config(configfiles)
    jobs = dag_jobs(configfiles, workdir, profile)
    per_job = predict_jobs(job_features(jobs, config, workdir or "."), calibration, gpu_speedup)
    return rule_table(per_job), per_job, calibration


# ---------------------------------------------------------------------------------------------------------
# calibration tables from finished runs
# ---------------------------------------------------------------------------------------------------------
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
        cpu = polled.groupby("log").agg({c: ("sum" if c == "cpu_s" else "max") for c in polled.columns
                                         if c in ("cpu_s", "wall_s", "max_rss_mb")})  # fmt: skip
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
                # a process living much longer than its job's benchmark is another job that reused the pid
                if "mean_load" not in row or float(process["wall_s"]) <= 1.5 * row["wall_s"] + 2:
                    row["cpu_share"] = float(process["cpu_s"]) / max(float(process["wall_s"]), 1e-9)
                    if "max_rss_mb" in process and "max_rss" not in row:  # dft: no benchmark, the monitor's peak
                        row["max_rss"] = float(process["max_rss_mb"])
        measured.append(row)
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
        for part in ("seconds", "steps_s", "validate_s", "evaluate_s", "overhead_s"):
            if part in table:
                table[part] = table[part] * share
        table.loc[dft, "startup_s"] = startup_cpu[dft]
    return table.drop(columns=["benchmark"])


def measured_rule_table(calibration_rows: pd.DataFrame) -> pd.DataFrame:
    """Measured totals of a summarised run.

    Parameters
    ----------
    calibration_rows : pandas.DataFrame
        ``summarise_run`` rows.

    Returns
    -------
    pandas.DataFrame
        Per rule: ``jobs`` and ``core_hours`` (Σ seconds × threads / 3600).
    """
    rows = calibration_rows.assign(core_hours=calibration_rows["seconds"] * calibration_rows["threads"] / 3600)
    grouped = rows.groupby("rule", sort=False)
    return pd.DataFrame({"jobs": grouped.size(), "core_hours": grouped["core_hours"].sum()})


def compare(predicted: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Predicted against measured core-hours.

    Parameters
    ----------
    predicted : pandas.DataFrame
        Per rule, a ``core_hours`` column.
    measured : pandas.DataFrame
        ``measured_rule_table`` output.

    Returns
    -------
    pandas.DataFrame
        Per rule and ``total``: ``jobs``, ``predicted_core_h``, ``measured_core_h`` and ``ratio``
        (predicted / measured).
    """
    table = pd.DataFrame({
        "jobs": measured["jobs"],
        "predicted_core_h": predicted["core_hours"].reindex(measured.index).fillna(0.0),
        "measured_core_h": measured["core_hours"],
    })  # fmt: skip
    table.loc["total"] = [table["jobs"].sum(), table["predicted_core_h"].sum(), table["measured_core_h"].sum()]
    table["ratio"] = table["predicted_core_h"] / table["measured_core_h"]
    return table


def validate_on(rows: pd.DataFrame, calibration: Calibration) -> pd.DataFrame:
    """Validate a calibration on a summarised run.

    Parameters
    ----------
    rows : pandas.DataFrame
        ``summarise_run`` rows of a run (e.g. ``VALIDATION_RUN``, the study tier).
    calibration : Calibration
        Laws fitted on other runs.

    Returns
    -------
    pandas.DataFrame
        ``compare`` of the plan of the run's own jobs with what they measured. The DFT is compared
        without job start-up, as the run's DFT cost is its JSONs' ``wall_seconds``.
    """
    predicted = predict_jobs(rows.drop(columns=["seconds", "max_rss"], errors="ignore"), calibration,
                             include_dft_startup=False)  # fmt: skip
    by_rule = predicted.groupby("rule", sort=False)["core_hours"].sum().to_frame()
    return compare(by_rule, measured_rule_table(rows))


# ---------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------
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
    """Command line: ``python -m e3hier.plan --configfile a.yaml b.yaml [--calibration ...]`` (``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m e3hier.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", nargs="+", default=["config.yaml"], help="config files in merge order")
    parser.add_argument("--calibration", nargs="+", default=None,
                        help="calibration tables (TSV, or folders of them); default: benchmarks/calibration/"
                             "{tiny,default,paper-dft}.tsv")  # fmt: skip
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
    parser.add_argument("--validate", metavar="TSV", nargs="?", const=str(VALIDATION_RUN),
                        help="instead of planning: predicted vs measured core-hours per rule of a summarised run "
                             "(default: the study tier, calibrated on tiny and default)")  # fmt: skip
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
    if args.validate:
        paths = args.calibration or [CALIBRATION_DIR / name for name in VALIDATION_CALIBRATION]
        calibration = calibrate(read_calibration(paths))
        table = validate_on(pd.read_csv(args.validate, sep="\t"), calibration)
        print(f"{args.validate}: predicted (calibration: {', '.join(calibration.sources)}) vs measured core-hours")
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
        return 0
    paths = (args.calibration or default_calibration_paths()) + args.add_calibration
    table, per_job, calibration = plan(args.configfile, paths, args.workdir, args.gpu_speedup, args.profile)
    print(format_plan(table, calibration, args.configfile, args.gpu_speedup))
    if args.jobs:
        per_job.drop(columns=["benchmark"], errors="ignore").to_csv(args.jobs, sep="\t", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

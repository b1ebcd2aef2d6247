"""Size features of every job: what its cost scales with, from the merged config and its wildcards.

Per structure (atoms, basis functions, grid points): ``e3hier.plan.structure_features``.

Atoms, SCF basis functions, DFT and ε grid points, fit functions, training structures, epochs, batch
size, parameter count, number of models ... (``job_features``), known before anything runs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from e3hier.data.metric import COLLOCATION_CACHE_MB, COLLOCATION_DTYPE, CollocationBudget
from e3hier.plan.dag import rule_family
from e3hier.plan.structure_features import basis_functions, model_size, structure_table
from e3hier.training.grid import folder_values

#: Share of a batch-1 optimiser step that does not grow with the atoms in the step (op dispatch), at
#: ``BATCH_REFERENCE_ATOMS`` atoms per structure: ``make bench``'s training benchmark (README, W3–W4
#: clusters) measured 20.9 vs 29.3 structures/s at batch 1 vs 4 (l_max 2) and 12.4 vs 17.9 (l_max 4),
#: i.e. a step costs s0 + s1·batch with s0/(s0 + s1) = 0.38 and 0.41.
BATCH1_FIXED_FRACTION = 0.4
BATCH_REFERENCE_ATOMS = 10.5


def held_collocation(test_grids: dict, metric_cfg: dict) -> float:
    """Collocation entries (float32 values) a training job holds at once: the largest chunk of a test split's
    grids (``e3hier.data.metric.CollocationBudget`` of ``metric.collocation_cache_mb``, at least the largest structure).

    Parameters
    ----------
    test_grids : dict
        ``{split: pandas.Series}``: collocation entries of each test structure, in dataset order.
    metric_cfg : dict
        The config's ``metric`` block (``collocation_cache_mb``).

    Returns
    -------
    float
        Entries of the largest chunk. Validation holds no grid: every epoch is validated in coefficient space,
        and the kept epoch's ε streams the validation grids once (``e3hier.training.experiment``).
    """
    itemsize = np.dtype(COLLOCATION_DTYPE).itemsize
    left = CollocationBudget(metric_cfg.get("collocation_cache_mb", COLLOCATION_CACHE_MB)).left / itemsize
    # a chunk never spans two splits, and holds at least one structure
    return max(
        (min(float(grids.sum()), max(left, float(grids.max()))) for grids in test_grids.values() if len(grids)),
        default=0.0,
    )


def train_features(point: dict, config: dict, structures: pd.DataFrame) -> dict:
    """Size features of training one grid point (one model).

    Parameters
    ----------
    point : dict
        The grid point (``e3hier.training.grid.folder_values`` of its folder name): ``lmax_hidden``, ``output``,
        ``capacity``, ``channels``, ``n_train``.
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
          probes at the steps of ``analysis.probe_schedule``), weighted by atoms the same way;
        - ``test_grid``: ε collocation entries (points × fit functions) of the test splits, evaluated once
          per job (a chunk of held grids at a time, for the test and the 2·l_max ablation passes);
        - ``val_grid``: the entries of the validation grids, evaluated once (the kept epoch's ε; every epoch is
          validated in coefficient space);
        - ``held_grid``: entries held at once (the largest test chunk), for memory;
        - ``held_overlap``: float64 entries of the validation structures' fit overlap matrices (Σ fit functions²),
          held through training (``e3hier.data.coefficient_metric``), for memory.
    """
    train_cfg, analysis_cfg = config["train"], config.get("analysis", {})
    splits = structures.groupby("split", sort=False)
    train_ids = structures.index[structures["split"] == "train"]
    n_train = len(train_ids) if point["n_train"] == "all" else min(int(point["n_train"]), len(train_ids))
    train_atoms = float(structures.loc[train_ids[:n_train], "atoms"].mean()) if n_train else 0.0
    val = structures[structures["split"] == train_cfg.get("val_split", "val")]
    tests = [s for s in train_cfg.get("test_splits", ["test", "test_large"]) if s in splits.groups]
    test_grids = {s: structures.loc[structures["split"] == s, "metric_grid"] for s in tests}
    test_chunk = held_collocation(test_grids, config["metric"])
    lmax, batch, epochs = int(point["lmax_hidden"]), int(train_cfg["batch_size"]), int(train_cfg["epochs"])
    steps = epochs * math.ceil(n_train / batch) if n_train else 0
    from e3hier.training.features import PROBE_SCHEDULE, probe_steps  # torch: imported when a job is planned

    probe_structures = min(int(analysis_cfg.get("probe_structures", 6)), len(val))
    schedule = {**PROBE_SCHEDULE, **analysis_cfg.get("probe_schedule", {})}
    n_probes = len(probe_steps(steps, **schedule))  # the initial and the final model included
    elements = tuple(sorted({el for symbols in structures["symbols"] for el in symbols}))
    model_cfg = config["model"]
    lmaxes = sorted(train_cfg["lmax_hidden"])
    n_params = model_size(
        lmax,
        point["output"],
        point.get("capacity", "study"),
        point.get("channels", "study"),
        lmaxes[-1],
        elements,
        config["dft"]["fit_auxbasis"],
        bool(config["dft"]["decontract"]),
        json.dumps(model_cfg, sort_keys=True),
    )
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
        "test_grid": float(sum(grids.sum() for grids in test_grids.values())),
        "held_grid": test_chunk,
        "held_overlap": float((val["fit_functions"].astype(float) ** 2).sum()),
    }


def job_features(jobs: pd.DataFrame, config: dict, base_dir=".") -> pd.DataFrame:
    """Size features of every job of a config.

    Parameters
    ----------
    jobs : pandas.DataFrame
        ``parse_dry_run`` rows of the config's DAG.
    config, base_dir
        As in ``structure_table``.

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
    n_models_total = int(sum(len(p) for p, r in zip(jobs["points"], jobs["rule"]) if rule_family(r) == "train"))
    per_point: dict = {}  # the seeds of a grid point share its features
    rows = []
    for job in jobs.itertuples(index=False):
        family = rule_family(job.rule)
        row = {
            "rule": job.rule,
            "family": family,
            "threads": job.threads,
            "gpu": job.gpu,
            "mem_mb_requested": job.mem_mb,
            "runtime_requested_min": job.runtime_min,
            "benchmark": job.benchmark,
            "job": job.rule + "".join(f":{k}={v}" for k, v in job.wildcards.items()),
            "n_models": 1,
        }
        wc = job.wildcards
        if family in ("structure", "dft"):
            info = structures.loc[wc["structure"]]
            row.update(
                atoms=info["atoms"],
                md_work=info["md_steps"] * info["atoms"],
                n_basis=info["n_basis"],
                basis_per_atom=info["n_basis"] / info["atoms"],
                grid_per_atom=info["dft_points"] / info["atoms"],
                dft_points=info["dft_points"],
                scf_digits=-math.log10(float(config["dft"]["conv_tol"])),
            )
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
        elif family in ("train", "evaluate"):  # an evaluate job tests the models of one train job
            points = [folder_values(p) for p in job.points]
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

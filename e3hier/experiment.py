"""One grid point of the study, end to end: load splits, train, evaluate the test splits, write outputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from e3hier.allocator import keep_freed_memory
from e3hier.capacity import grid_multiplicities
from e3hier.dataset import DATASET_COLUMNS
from e3hier.devices import check_cuda, to_device
from e3hier.ensemble import EnsembleTrainer, member_model, pack_members
from e3hier.evaluation import L_COLUMNS, evaluate, upto_columns, validation_row
from e3hier.features import PROBE_SCHEDULE, features_table, probe_rows
from e3hier.grid import GridPoint
from e3hier.held_out import evaluate_test_splits
from e3hier.io import read_table, write_json, write_parquet
from e3hier.layout import OutputLayout, unreachable_orders
from e3hier.metric import COLLOCATION_CACHE_MB, CollocationBudget
from e3hier.network_setup import place_on_device, resolve_device
from e3hier.samples import CHARGE_COLUMNS, TORCH_DTYPES, add_grids, check_single_charge, load_samples, pack
from e3hier.training import Trainer


def training_subset(frame: pd.DataFrame, n_train) -> pd.DataFrame:
    """The first ``n_train`` training structures (``"all"``: every one), in dataset order."""
    ids = list(dict.fromkeys(frame["structure"]))
    if n_train == "all":
        return frame
    n_train = int(n_train)
    if n_train > len(ids):
        raise ValueError(f"train.n_train: {n_train} structures requested, the training split has {len(ids)}")
    return frame[frame["structure"].isin(set(ids[:n_train]))]


def target_sizes(samples, predictor) -> dict:
    """Per output order l: RMS per component of the training targets (``target_rms_l{l}``) and of what
    the loss sees after ``train.target_scaling`` (``loss_target_rms_l{l}``)."""
    sums, scaled, counts = {}, {}, {}
    for s in samples:
        target = s.target[s.rows]
        seen = target / predictor.row_scales(s).double().cpu().numpy()
        for l in np.unique(s.l[s.rows]):
            rows = s.l[s.rows] == l
            sums[l] = sums.get(l, 0.0) + float((target[rows] ** 2).sum())
            scaled[l] = scaled.get(l, 0.0) + float((seen[rows] ** 2).sum())
            counts[l] = counts.get(l, 0) + int(rows.sum())
    out = {}
    for l in L_COLUMNS:
        out[f"target_rms_l{l}"] = (sums[l] / counts[l]) ** 0.5 if l in counts else float("nan")
        out[f"loss_target_rms_l{l}"] = (scaled[l] / counts[l]) ** 0.5 if l in counts else float("nan")
    return out


def run_grid_point(
    point: dict,
    train_path,
    val_path,
    test_paths: dict,
    dft_cfg: dict,
    model_cfg: dict,
    train_cfg: dict,
    metric_cfg: dict,
    out_dir,
    log_stream=None,
    analysis_cfg=None,
    reference_lmax: int | None = None,
    collocation_cache_mb: float = COLLOCATION_CACHE_MB,
) -> dict:
    """Train and evaluate one grid point; write ``model.pt``, ``metrics.parquet``, ``eval.parquet``,
    ``features.parquet``, ``ablation.parquet`` and ``summary.json``.

    ``point`` holds the fields of ``e3hier.grid.GridPoint`` (``capacity``, ``channels``: ``study`` if absent);
    ``test_paths`` maps each test split to its dataset file; ``analysis_cfg`` sets ``probe_schedule``
    (``dense_steps``, ``max_probes``: the optimiser steps after which the hidden features are probed,
    ``e3hier.features.probe_steps``) and ``probe_structures`` (the first validation structures probed);
    ``reference_lmax`` is the l_max whose parameter count a ``capacity: matched`` point takes;
    ``collocation_cache_mb`` bounds the ε-grid collocation held (``e3hier.metric.CollocationBudget``): a chunk of
    test grids at a time. Every epoch is validated in coefficient space (``e3hier.coefficient_metric``); the ε
    grids of the validation split are built once, after training, for the kept epoch's ε (streamed: used once).
    Returns the summary row of the models table.
    """
    return run_grid_points(
        [point],
        train_path,
        val_path,
        test_paths,
        dft_cfg,
        model_cfg,
        train_cfg,
        metric_cfg,
        [out_dir],
        log_stream,
        analysis_cfg,
        reference_lmax,
        collocation_cache_mb,
    )[0]


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
    log_stream=None,
    analysis_cfg=None,
    reference_lmax: int | None = None,
    collocation_cache_mb: float = COLLOCATION_CACHE_MB,
) -> list[dict]:
    """``run_grid_point`` for grid points that differ only in their seed, trained together in one
    ``EnsembleTrainer`` (one point: trained alone); each writes its own outputs to its ``out_dirs`` entry."""
    analysis_cfg = analysis_cfg or {"probe_schedule": PROBE_SCHEDULE, "probe_structures": 2}
    points = [GridPoint.from_mapping(point) for point in points]
    if len({p.with_seed(0) for p in points}) != 1:
        raise ValueError(f"trained together, grid points may differ only in their seed: {points}")
    point, out_dirs = points[0], [Path(d) for d in out_dirs]
    check_cuda(train_cfg["device"])  # before the data: loading it takes minutes at paper scale
    device = resolve_device(train_cfg["device"])
    torch.set_num_threads(int(train_cfg.get("threads", 1)))
    keep_freed_memory()  # before the samples' ε grids: see ``e3hier.allocator``
    train_frame = training_subset(read_table(train_path, DATASET_COLUMNS), point.n_train)
    val_frame = read_table(val_path, DATASET_COLUMNS)
    for path, frame in ((train_path, train_frame), (val_path, val_frame)):
        if frame.empty:
            raise ValueError(
                f"{path}: no structures (were all of the split's structures skipped? see its "
                ".skipped.tsv and dft.on_failure)"
            )
    # the network has no charge input: refuse mixed charges before any training (test splits: a few columns)
    check_single_charge(
        {
            "train": train_frame,
            "val": val_frame,
            **{split: read_table(path, CHARGE_COLUMNS) for split, path in test_paths.items()},
        }
    )
    elements = sorted(set(train_frame["element"]) | set(val_frame["element"]))
    layout = OutputLayout.from_basis(dft_cfg["fit_auxbasis"], elements, dft_cfg["decontract"], point.output)
    plan = grid_multiplicities(
        point.lmax_hidden,
        point.capacity,
        point.channels,
        point.lmax_hidden if reference_lmax is None else int(reference_lmax),
        len(elements),
        layout.irreps,
        model_cfg,
    )
    model_cfg = {**model_cfg, "hidden_multiplicities": plan["multiplicities"]}
    dtype = TORCH_DTYPES[train_cfg["dtype"]]
    grid_level = metric_cfg["grid_level"]
    train = load_samples(train_frame, layout, model_cfg, dtype)
    # every epoch is validated in coefficient space (the fit overlaps, a few MB per structure); the ε grids of
    # the validation split are built after training, for the kept epoch only
    val = load_samples(val_frame, layout, model_cfg, dtype, dft_cfg=dft_cfg, with_overlap=True)
    probe_graph = to_device(pack(val[: analysis_cfg["probe_structures"]]), device)

    def probe(step, epoch, model):
        return {"step": step, "epoch": epoch, "rows": probe_rows(model, probe_graph, layout.irreps)}

    trainers = []
    for p, out_dir in zip(points, out_dirs):  # the first builds the network, the others draw their own weights
        model = member_model(trainers[0].model, p.seed) if trainers else None
        trainers.append(
            Trainer(
                p.name,
                layout,
                train,
                val,
                p.lmax_hidden,
                p.seed,
                model_cfg,
                train_cfg,
                out_dir / "checkpoint.pt",
                log_stream,
                analysis_cfg["probe_schedule"],
                model,
                settings={"probe_structures": analysis_cfg["probe_structures"]},
            )
        )
    start = time.perf_counter()
    if len(trainers) == 1:
        fitted = [trainers[0].fit(probe)]
        model = trainers[0].model

        def evaluate_models(samples):
            return [evaluate(trainers[0].predictor, samples)]
    else:
        ensemble = EnsembleTrainer(trainers, out_dirs[0] / "ensemble_checkpoint.pt")
        members_graph = to_device(pack_members([probe_graph] * len(trainers)), device)

        def probe_members(step, epoch, network):
            rows = probe_rows(network, members_graph, layout.irreps, members=len(trainers))
            return [{"step": step, "epoch": epoch, "rows": member_rows} for member_rows in rows]

        fitted = ensemble.fit(probe_members)
        model, evaluate_models = ensemble.network.network, ensemble.evaluate
    for trainer, (_, best, _) in zip(trainers, fitted):
        trainer.save_model(trainer.checkpoint_path.with_name("model.pt"), best)
        if best["state"] is not None:  # None: a member that diverged before its first validated epoch
            trainer.model.load_state_dict(best["state"])  # an ensemble member writes into its row of the stack
    # the reported ε of the kept epoch on the validation split: its grids built once, streamed (used once)
    add_grids(val, val_frame, dft_cfg, grid_level, CollocationBudget(0))
    validations = [validation_row(table) for table in evaluate_models(val)]
    for sample in val:
        sample.grid = None

    def load_test_split(path):
        # streamed: a test split's grids are held a chunk at a time (evaluate_test_splits)
        samples = load_samples(
            read_table(path, DATASET_COLUMNS),
            layout,
            model_cfg,
            dtype,
            with_grid=True,
            dft_cfg=dft_cfg,
            grid_level=grid_level,
            budget=CollocationBudget(0),
        )
        place_on_device(samples, device)
        return samples

    # held collocations: a chunk of a test split's grids at a time (used once, plus the ablation's passes)
    held_bytes = CollocationBudget(collocation_cache_mb).left
    evaluations, ablations = evaluate_test_splits(
        evaluate_models, model, test_paths, load_test_split, point.lmax_hidden, held_bytes
    )
    results = []
    runs = ensemble.runs if len(trainers) > 1 else [None]
    for p, trainer, out_dir, (metrics, best, probe_log), validation, eval_table, ablation, run in zip(
        points, trainers, out_dirs, fitted, validations, evaluations, ablations, runs
    ):
        callbacks = list(probe_log)  # read back from the side file (e3hier.probe_log)
        summary = finish_grid_point(
            p, trainer, metrics, best, callbacks, validation, eval_table, ablation, plan, out_dir
        )
        # a member of an ensemble may diverge and stop, the others train on (e3hier.ensemble); alone, it raises
        diverged_epoch = None if run is None else run.diverged_epoch
        summary["diverged"], summary["diverged_epoch"] = diverged_epoch is not None, diverged_epoch
        summary["ensemble_size"] = len(trainers)
        summary["job_seconds"] = (time.perf_counter() - start) / len(trainers)  # the job's share per model
        write_json(out_dir / "summary.json", summary)
        results.append({"summary": summary, "callbacks": callbacks, "trainer": trainer})
    if len(trainers) > 1:
        ensemble.checkpoint_path.unlink(missing_ok=True)
    for trainer in trainers:
        trainer.checkpoint_path.unlink(missing_ok=True)
        trainer.probe_path.unlink(missing_ok=True)
    return results


def finish_grid_point(
    point: GridPoint,
    trainer: Trainer,
    metrics: pd.DataFrame,
    best: dict,
    callbacks: list,
    validation: dict,
    eval_table: pd.DataFrame,
    ablation: pd.DataFrame,
    plan: dict,
    out_dir: Path,
) -> dict:
    """Write the tables of one trained and evaluated grid point (``model.pt`` is written already); returns
    its summary row (``summary.json`` is written by the caller). ``validation``: ``validation_row`` (the L1 ε on
    Becke grids) of the kept epoch's model on the validation split."""
    name = point.name
    # no epoch recorded: an ensemble member that diverged in its first epoch (its outputs are NaN)
    last = metrics.iloc[-1] if len(metrics) else {"wall_seconds": float("nan"), "epoch": 0, "step": 0}
    train_seconds = float(last["wall_seconds"])
    model_cfg, train_cfg, layout = trainer.model_config["model"], trainer.cfg, trainer.layout
    provenance = {"grid_point": point.as_dict(), "train": train_cfg, "model": model_cfg, "device": str(trainer.device)}
    write_parquet(out_dir / "metrics.parquet", metrics, metadata=provenance)
    write_parquet(out_dir / "eval.parquet", eval_table, metadata=provenance)
    write_parquet(out_dir / "features.parquet", features_table(callbacks), metadata=provenance)
    write_parquet(out_dir / "ablation.parquet", ablation, metadata=provenance)
    # the summary's test ε: the first of train.test_splits (the evaluation's first rows), whatever its name
    test = eval_table[eval_table["split"] == eval_table["split"].iloc[0]] if len(eval_table) else eval_table
    n_params = int(sum(p.numel() for p in trainer.model.parameters()))
    if n_params != plan["n_params"]:  # the count the capacity control was planned with
        raise RuntimeError(f"grid point {name}: {n_params} parameters built, {plan['n_params']} planned")
    return {
        "lmax_hidden": point.lmax_hidden,
        "output": point.output,
        "capacity": point.capacity,
        "channels": point.channels,
        "seed": point.seed,
        "n_train": len(trainer.train),
        "n_params": n_params,
        "target_params": int(plan["target_params"]),
        "hidden_multiplicities": "/".join(map(str, plan["multiplicities"])),
        "node_attributes": model_cfg.get("node_attributes", "constant"),
        "target_scaling": train_cfg["target_scaling"],
        "lmax_output": max(layout.counts),
        "unreachable_l": "/".join(
            map(str, unreachable_orders(point.lmax_hidden, model_cfg["lmax_edge"], sorted(layout.counts)))
        ),
        "epsilon_test": float(test["epsilon"].mean()),
        "epsilon_test_block": float(test["epsilon_block"].mean()),
        **{f"epsilon_test_l{l}": float(test[f"epsilon_l{l}"].mean()) for l in L_COLUMNS},
        **{c.replace("epsilon_", "epsilon_test_", 1): float(test[c].mean()) for c in upto_columns(test)},
        "epsilon_test_baseline": float(test["epsilon_baseline"].mean()),
        # the validation split's ε on Becke grids at the kept epoch (chosen on l2_val_best)
        "epsilon_val_best": float(validation["val_epsilon_block"]),
        "epsilon_val": float(validation["val_epsilon"]),
        **{c.replace("epsilon_", "epsilon_val_", 1): float(validation[f"val_{c}"]) for c in upto_columns(test)},
        "l2_val_best": float(best["l2"]),  # val_l2_block of the kept epoch (% of ‖ρ_ref‖)
        "best_epoch": int(best["epoch"]),
        "epochs": int(last["epoch"]),
        "steps": int(last["step"]),
        **target_sizes(trainer.train, trainer.predictor),
        "train_seconds": train_seconds,
    }

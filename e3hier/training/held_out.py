"""The trained models on the held-out test splits: ε per structure, and the ablation of hidden orders.

Each test split is evaluated once per model, with its ε-grid collocations held a chunk at a time (within
what the job's ``metric.collocation_cache_mb`` leaves) for every pass over the chunk: the intact models and,
on the first of ``train.test_splits``, each ablation variant (hidden channels of some orders zeroed in every
layer).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from e3hier.data.dataset import DATASET_COLUMNS
from e3hier.data.metric import COLLOCATION_CACHE_MB, CollocationBudget
from e3hier.io import read_table, write_json, write_parquet
from e3hier.training.evaluation import L_COLUMNS, evaluate, predictor_from_payload
from e3hier.training.features import zero_hidden_orders
from e3hier.training.network_setup import place_on_device, resolve_device
from e3hier.training.outputs import TRAINING_SUMMARY, summary_test_columns
from e3hier.training.samples import TORCH_DTYPES, check_single_charge, load_samples

#: Columns of a model's ``ablation.parquet``.
ABLATION_COLUMNS = ["zeroed_l", "mode", "epsilon", "delta_epsilon"] + [f"delta_epsilon_l{l}" for l in L_COLUMNS]


def ablation_variants(lmax_hidden: int) -> list[tuple[int, str, tuple]]:
    """``(zeroed_l, mode, orders)``: the hidden orders zeroed in every layer, one order l (``single``) or
    all orders ≥ l (``cumulative``), for l = 1..lmax_hidden."""
    return [
        (zeroed, mode, tuple(orders))
        for zeroed in range(1, lmax_hidden + 1)
        for mode, orders in (("single", [zeroed]), ("cumulative", range(zeroed, lmax_hidden + 1)))
    ]


def evaluate_split(evaluate_models, model, samples, variants, held_bytes: float) -> tuple[list, dict]:
    """One split's ``evaluate`` tables per model, intact and with each ablation variant's orders zeroed.

    ``evaluate_models(samples)`` gives one table per model of ``model`` (one network, or a ``MemberNetworks``
    stack). The structures go in chunks whose ε-grid collocations fit in ``held_bytes`` (at least one
    structure): a chunk's streamed grids are evaluated once, held for all its passes, then released.
    Returns ``(intact, ablated)``: a table per model, and ``{variant: a table per model}``.
    """
    intact, ablated = [[] for _ in evaluate_models([])], {variant: [] for variant in variants}
    start = 0
    while start < len(samples):
        stop, size = start + 1, samples[start].grid.collocation_bytes
        while stop < len(samples) and size + samples[stop].grid.collocation_bytes <= held_bytes:
            size += samples[stop].grid.collocation_bytes
            stop += 1
        chunk = samples[start:stop]
        for sample in chunk:
            sample.grid.hold()
        for tables, table in zip(intact, evaluate_models(chunk)):
            tables.append(table)
        for variant in variants:
            with zero_hidden_orders(model, variant[2]):
                ablated[variant].append(evaluate_models(chunk))
        for sample in chunk:
            sample.grid.release()
        start = stop

    def joined(tables):
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    return (
        [joined(tables) for tables in intact],
        {variant: [joined(tables) for tables in zip(*chunks)] for variant, chunks in ablated.items()},
    )


def ablation_rows(intact: list[pd.DataFrame], ablated: dict) -> list[pd.DataFrame]:
    """Per model: test ε with each variant's hidden orders zeroed (``ablation_variants``), and Δε against
    the intact model, in total and per output l (means over the structures of ``evaluate_split``'s tables)."""

    def mean_errors(table):
        return {
            "epsilon": table["epsilon"].mean(),
            **{f"epsilon_l{l}": table[f"epsilon_l{l}"].mean() for l in L_COLUMNS},
        }

    rows = [[] for _ in intact]
    for (zeroed, mode, _), tables in ablated.items():
        for k, (before, after) in enumerate(zip(map(mean_errors, intact), map(mean_errors, tables))):
            row = {"zeroed_l": zeroed, "mode": mode, "epsilon": after["epsilon"]}
            row["delta_epsilon"] = after["epsilon"] - before["epsilon"]
            for l in L_COLUMNS:
                row[f"delta_epsilon_l{l}"] = after[f"epsilon_l{l}"] - before[f"epsilon_l{l}"]
            rows[k].append(row)
    return [pd.DataFrame(r, columns=ABLATION_COLUMNS) for r in rows]


def evaluate_test_splits(
    evaluate_models, model, test_paths: dict, load_split, lmax_hidden: int, held_bytes: float
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Per model: its ``eval.parquet`` table (every test split, column ``split``) and its ``ablation.parquet``.

    Parameters
    ----------
    evaluate_models
        ``evaluate_models(samples)``: one ``evaluate`` table per model of ``model``.
    model
        The network, or the ``MemberNetworks`` stack, whose hidden orders the ablation zeroes.
    test_paths
        ``{split: dataset file}`` in ``train.test_splits`` order; the ablation runs on the first split.
    load_split
        ``load_split(path)``: a split's samples, their grids streamed.
    lmax_hidden
        The models' hidden l_max (the ablation zeroes l = 1..lmax_hidden).
    held_bytes
        Collocation bytes a chunk of structures may hold.
    """
    n_models = len(evaluate_models([]))
    evaluations = [[] for _ in range(n_models)]
    ablations = [pd.DataFrame(columns=ABLATION_COLUMNS) for _ in range(n_models)]
    ablation_split = next(iter(test_paths), None)  # the first of train.test_splits, whatever its name
    for split, path in test_paths.items():
        samples = load_split(path)
        variants = ablation_variants(lmax_hidden) if split == ablation_split else []
        intact, ablated = evaluate_split(evaluate_models, model, samples, variants, held_bytes)
        for k, errors in enumerate(intact):
            errors.insert(0, "split", split)
            evaluations[k].append(errors)
        if variants and samples:
            ablations = ablation_rows(intact, ablated)
    return [pd.concat(tables, ignore_index=True) for tables in evaluations], ablations


def evaluate_grid_points(
    model_dirs: list,
    test_paths: dict,
    dft_cfg: dict,
    metric_cfg: dict,
    device: str = "cpu",
    collocation_cache_mb: float = COLLOCATION_CACHE_MB,
) -> list[dict]:
    """Evaluate trained grid points on the test splits: each folder's ``model.pt`` (its best weights) and
    ``training.json`` in, its ``eval.parquet``, ``ablation.parquet`` and ``summary.json`` (the models table's row)
    out. The models of one job (a block of seeds) share the test grids, each chunk held for every model's passes.

    Parameters
    ----------
    model_dirs
        The grid points' folders; their models share one output layout (the seeds of a grid point).
    test_paths
        ``{split: dataset file}`` in ``train.test_splits`` order: the summary's test ε and the ablation are the
        first split's.
    dft_cfg, metric_cfg
        The fit basis settings (``e3hier.workflow.rules.fit_layout_settings``) and the ``metric`` block (its
        ``grid_level``: the ε grids).
    device
        Where the networks run (``train.device``).
    collocation_cache_mb
        The ε-grid collocation held: a chunk of a test split's structures at a time.
    """
    device = resolve_device(device)
    model_dirs = [Path(d) for d in model_dirs]
    payloads = [torch.load(d / "model.pt", map_location=device, weights_only=True) for d in model_dirs]
    predictors = [predictor_from_payload(payload, device) for payload in payloads]
    config = payloads[0]["config"]
    test_split = next(iter(test_paths))  # the first of train.test_splits: the summary's test ε
    frames = {split: read_table(path, DATASET_COLUMNS) for split, path in test_paths.items()}
    if frames[test_split].empty:
        raise ValueError(
            f"{test_paths[test_split]}: no structures (were all of the split's structures skipped? see its "
            ".skipped.tsv and dft.on_failure)"
        )
    # the network has no charge input: the test structures must have the charge it was trained on (the workflow
    # refused mixed charges already; a bundle from before the charge was stored says nothing)
    check_single_charge(frames, trained=payloads[0]["bundle"].get("charge"))

    def load_test_split(path):
        split = next(s for s, p in test_paths.items() if p == path)
        samples = load_samples(
            frames[split],
            predictors[0].layout,
            config["model"],
            TORCH_DTYPES[config["dtype"]],
            with_grid=True,
            dft_cfg=dft_cfg,
            grid_level=metric_cfg["grid_level"],
            budget=CollocationBudget(0),  # streamed: held a chunk at a time by evaluate_split
        )
        place_on_device(samples, device)
        return samples

    def evaluate_models(samples):
        return [evaluate(predictor, samples) for predictor in predictors]

    networks = [predictor.model for predictor in predictors]
    held_bytes = CollocationBudget(collocation_cache_mb).left
    evaluations, ablations = evaluate_test_splits(
        evaluate_models, networks, test_paths, load_test_split, int(config["lmax_hidden"]), held_bytes
    )
    summaries = []
    for folder, payload, eval_table, ablation in zip(model_dirs, payloads, evaluations, ablations):
        training = json.loads((folder / TRAINING_SUMMARY).read_text())
        metadata = {"grid_point": payload["bundle"]["grid_point"], "model": config["model"], "device": str(device)}
        write_parquet(folder / "eval.parquet", eval_table, metadata=metadata)
        write_parquet(folder / "ablation.parquet", ablation, metadata=metadata)
        summary = {**training, **summary_test_columns(eval_table, test_split, folder.name)}
        write_json(folder / "summary.json", summary)
        summaries.append(summary)
    return summaries

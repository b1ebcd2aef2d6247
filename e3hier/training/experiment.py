"""The train job of the study: load the training and validation splits, train one grid point (or a block of its
seeds together), write its model and training tables. The test splits are the evaluate job's
(``e3hier.training.held_out``); ``e3hier.training.train_and_evaluate`` runs both, as the workflow does."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from e3hier.data.dataset import DATASET_COLUMNS
from e3hier.data.layout import OutputLayout
from e3hier.data.metric import COLLOCATION_CACHE_MB, CollocationBudget
from e3hier.io import read_table, write_json
from e3hier.network.capacity import grid_multiplicities
from e3hier.network.devices import check_cuda, to_device
from e3hier.training.allocator import keep_freed_memory
from e3hier.training.bundle import bundle_fields, with_grid_point
from e3hier.training.compiled_step import check_compile
from e3hier.training.ensemble import EnsembleTrainer
from e3hier.training.evaluation import evaluate, validation_row
from e3hier.training.features import PROBE_SCHEDULE, measures_output_epsilon, output_epsilon_rows, probe_rows
from e3hier.training.grid import GridPoint, same_size_n_train
from e3hier.training.members import member_model, pack_members
from e3hier.training.network_setup import resolve_device
from e3hier.training.outputs import TRAINING_SUMMARY, finish_training
from e3hier.training.samples import TORCH_DTYPES, add_grids, check_single_charge, load_samples, pack
from e3hier.training.trainer import Trainer


def training_subset(frame: pd.DataFrame, n_train, n_train_grid=None) -> pd.DataFrame:
    """The first ``n_train`` training structures (``"all"``: every one), in dataset order. ``n_train_grid``: the
    config's ``train.n_train``; a value that resolves to the same count as another on this split (e.g. after
    DFT skipped a structure) is refused: it would train the same models twice."""
    ids = list(dict.fromkeys(frame["structure"]))
    for same in same_size_n_train(n_train_grid or [n_train], len(ids)):
        if str(n_train) in map(str, same):
            raise ValueError(
                f"train.n_train: {same} are all the whole {len(ids)}-structure training split (structures skipped "
                "by DFT are listed in its .skipped.tsv): the same models would be trained twice; keep one"
            )
    if n_train == "all":
        return frame
    n_train = int(n_train)
    if n_train > len(ids):
        raise ValueError(f"train.n_train: {n_train} structures requested, the training split has {len(ids)}")
    return frame[frame["structure"].isin(set(ids[:n_train]))]


def train_grid_points(
    points: list[dict],
    train_path,
    val_path,
    dft_cfg: dict,
    model_cfg: dict,
    train_cfg: dict,
    metric_cfg: dict,
    out_dirs: list,
    log_stream=None,
    analysis_cfg=None,
    reference_lmax: int | None = None,
    collocation_cache_mb: float = COLLOCATION_CACHE_MB,
    n_train_grid: list | None = None,
) -> list[dict]:
    """Train grid points that differ only in their seed together, in one ``EnsembleTrainer`` (one point: alone);
    each writes ``model.pt``, ``metrics.parquet``, ``features.parquet`` and ``training.json`` (its summary without
    the test columns) to its ``out_dirs`` entry. ``n_train_grid``: the config's ``train.n_train``
    (``training_subset``). The test splits are no input: adding a test structure retrains nothing."""
    analysis_cfg = analysis_cfg or {"probe_schedule": PROBE_SCHEDULE, "probe_structures": 2}
    points = [GridPoint.from_mapping(point) for point in points]
    if len({p.with_seed(0) for p in points}) != 1:
        raise ValueError(f"trained together, grid points may differ only in their seed: {points}")
    point, out_dirs = points[0], [Path(d) for d in out_dirs]
    check_cuda(train_cfg["device"])  # before the data: loading it takes minutes at paper scale
    device = resolve_device(train_cfg["device"])
    check_compile(train_cfg, device)  # train.compile: a compiler, before the data too
    torch.set_num_threads(int(train_cfg.get("threads", 1)))
    keep_freed_memory()  # before the samples' ε grids: see ``e3hier.training.allocator``
    train_frame = training_subset(read_table(train_path, DATASET_COLUMNS), point.n_train, n_train_grid)
    val_frame = read_table(val_path, DATASET_COLUMNS)
    for path, frame in ((train_path, train_frame), (val_path, val_frame)):
        if frame.empty:
            raise ValueError(
                f"{path}: no structures (were all of the split's structures skipped? see its "
                ".skipped.tsv and dft.on_failure)"
            )
    # the network has no charge input: refuse mixed charges before any training (the evaluation: the test splits')
    check_single_charge({"train": train_frame, "val": val_frame})
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
    probed = val[: analysis_cfg["probe_structures"]]
    probe_graph = to_device(pack(probed), device)
    measured = measures_output_epsilon(point.output, point.capacity)  # finding 2c's probe, or none
    if measured:
        # the study's own measurement at each probe: ε per output order on the probed structures' Becke grids,
        # held while metric.collocation_cache_mb has room (they are used at every probe)
        probed_frame = val_frame[val_frame["structure"].isin({s.structure for s in probed})]
        add_grids(probed, probed_frame, dft_cfg, grid_level, CollocationBudget(collocation_cache_mb))

    def with_output_epsilon(rows, network, evaluate_probed):
        if not measured:
            return rows
        tables = evaluate_probed()
        network.train()  # evaluate leaves the network in eval mode; the probe comes mid-training
        return [member + output_epsilon_rows(table) for member, table in zip(rows, tables)]

    def probe(step, epoch, model):
        rows = with_output_epsilon(
            [probe_rows(model, probe_graph, layout.irreps)], model, lambda: [evaluate(trainers[0].predictor, probed)]
        )[0]
        return {"step": step, "epoch": epoch, "rows": rows}

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
    # one loop either way (e3hier.training.loop): a model alone, or the seeds' networks stacked
    if len(trainers) == 1:
        steps = trainers[0]
        fitted = [steps.fit(probe)]

        def evaluate_models(samples):
            return [evaluate(steps.predictor, samples)]
    else:
        steps = EnsembleTrainer(trainers, out_dirs[0] / "ensemble_checkpoint.pt")
        members_graph = to_device(pack_members([probe_graph] * len(trainers)), device)

        def probe_members(step, epoch, network):
            rows = probe_rows(network, members_graph, layout.irreps, members=len(trainers))
            rows = with_output_epsilon(rows, steps.network, lambda: steps.evaluate(probed))
            return [{"step": step, "epoch": epoch, "rows": member_rows} for member_rows in rows]

        fitted = steps.fit(probe_members)
        evaluate_models = steps.evaluate
    for sample in probed:  # their held grids go before the validation grids are built
        sample.grid = None
    bundle = bundle_fields(dft_cfg, train_frame)  # what a model needs to stand alone (e3hier.predict)
    for p, trainer, (_, best, _) in zip(points, trainers, fitted):
        trainer.save_model(trainer.checkpoint_path.with_name("model.pt"), best, with_grid_point(bundle, p.as_dict()))
        if best["state"] is not None:  # None: a member that diverged before its first validated epoch
            trainer.model.load_state_dict(best["state"])  # an ensemble member writes into its row of the stack
    # the reported ε of the kept epoch on the validation split: its grids built once, streamed (used once)
    add_grids(val, val_frame, dft_cfg, grid_level, CollocationBudget(0))
    validations = [validation_row(table) for table in evaluate_models(val)]
    for sample in val:
        sample.grid = None

    results = []
    for p, trainer, out_dir, (metrics, best, probe_log), validation, run in zip(
        points, trainers, out_dirs, fitted, validations, steps.runs
    ):
        callbacks = list(probe_log)  # read back from the side file (e3hier.training.probe_log)
        summary = finish_training(p, trainer, metrics, best, callbacks, validation, plan, out_dir)
        # a member of an ensemble may diverge and stop, the others train on (e3hier.training.loop); alone, it raises
        summary["diverged"], summary["diverged_epoch"] = run.diverged_epoch is not None, run.diverged_epoch
        summary["ensemble_size"] = len(trainers)
        summary["job_seconds"] = (time.perf_counter() - start) / len(trainers)  # the job's share per model
        write_json(out_dir / TRAINING_SUMMARY, summary)
        results.append({"summary": summary, "callbacks": callbacks, "trainer": trainer})
    steps.checkpoint_path.unlink(missing_ok=True)
    for trainer in trainers:
        trainer.checkpoint_path.unlink(missing_ok=True)
        trainer.probe_path.unlink(missing_ok=True)
    return results

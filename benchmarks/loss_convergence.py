"""Benchmark: does the study's loss converge at the study's recipe? Test ε per epoch under each loss.

The paper's recipe (batch 1, Adam, lr 0.01 × 0.99 per epoch, 300 epochs, full output, no early stopping) on the
default run's W3 clusters and DFT (``results/dataset/``: run ``make reproduce`` first, or its dataset targets):

    python -m benchmarks.loss_convergence [--epochs 300] [--n-train 32] [--lmax 0 4] [--seeds 0 1 2]
        [--losses population population_rms global_rms] [--out results/benchmarks/loss_convergence]

For each loss and hidden l_max, the seeds train together as one ensemble (``EnsembleTrainer``); after every
epoch each member's test ε (Becke grids, the project's ε) is recorded beside its validation error, and the kept
epoch is the usual one (lowest validation L2). It writes ``epochs.csv`` (one row per loss, l_max, seed and
epoch), ``final.csv`` (one row per model at its kept epoch: test ε in total, per output order l and per shell
class, ``shell_classes``) and each model's ``model.pt``. ``python -m benchmarks.loss_convergence_report``
turns them into ``docs/results/loss_convergence/`` (tables, figure, the rule of ``config.paper.yaml``'s loss).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.common import ROOT, load_config
from e3hier.data.dataset import DATASET_COLUMNS
from e3hier.data.layout import OutputLayout
from e3hier.data.metric import CollocationBudget
from e3hier.io import read_table
from e3hier.training.ensemble import EnsembleTrainer
from e3hier.training.evaluation import L_COLUMNS
from e3hier.training.members import member_model
from e3hier.training.samples import load_samples
from e3hier.training.trainer import Trainer

DATASET = ROOT / "results" / "dataset"
OUT = ROOT / "results" / "benchmarks" / "loss_convergence"
#: The study's recipe (its training script): batch 1, Adam at 0.01 decayed by 0.99 per epoch, 300 epochs.
PAPER_RECIPE = {"batch_size": 1, "lr": 0.01, "lr_schedule": "exponential", "lr_decay": 0.99, "patience": 0}
#: Shells with an exponent above this (bohr⁻²) are "tight" (core-like: within ~0.3 bohr of the nucleus); the
#: rest "diffuse" (valence and bonding). def2-universal-jfit's O and H shells straddle it.
TIGHT_EXPONENT = 10.0
VALIDATION_STRUCTURES = 6
TEST_STRUCTURES = 6


def first_structures(split: str, count: int) -> pd.DataFrame:
    """The first ``count`` structures of a split of the finished run's dataset."""
    frame = read_table(DATASET / f"{split}.parquet", DATASET_COLUMNS)
    keep = list(dict.fromkeys(frame["structure"]))[:count]
    return frame[frame["structure"].isin(keep)].reset_index(drop=True)


def shell_classes(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per function row of one structure: whether its shell is tight or diffuse (``TIGHT_EXPONENT``)."""
    tight = frame["exponent"].to_numpy() > TIGHT_EXPONENT
    return {"tight": tight, "diffuse": ~tight}


class TestedEachEpoch(EnsembleTrainer):
    """An ``EnsembleTrainer`` that records each member's test ε after every epoch (columns ``test_epsilon``,
    ``test_epsilon_l{l}``) beside the validation columns the loop selects on."""

    def __init__(self, trainers, checkpoint_path, test):
        super().__init__(trainers, checkpoint_path)
        self.test = test

    def validate_members(self) -> list[dict]:
        rows = super().validate_members()
        for row, table in zip(rows, self.evaluate(self.test)):
            row["test_epsilon"] = float(table["epsilon"].mean())
            for l in L_COLUMNS:
                row[f"test_epsilon_l{l}"] = float(table[f"epsilon_l{l}"].mean())
        return rows


def class_errors(ensemble: EnsembleTrainer, test, test_frame: pd.DataFrame) -> list[dict]:
    """Each member's test ε (mean over structures) of the error of each shell class alone."""
    targets = ensemble.predicted_targets(test).detach().double().cpu().numpy()
    totals: list[dict] = [dict.fromkeys(("tight", "diffuse"), 0.0) for _ in ensemble.members]
    start = 0
    frames = dict(tuple(test_frame.groupby("structure", sort=False)))
    for sample in test:
        classes = shell_classes(frames[sample.structure])
        for k in range(len(ensemble.members)):
            predicted = sample.reference.copy()
            predicted[sample.rows] += targets[k, start : start + len(sample.rows)]
            for name, mask in classes.items():
                part = np.where(mask, predicted, sample.coefficient)
                totals[k][name] += sample.grid.epsilon_by_l(part, sample.coefficient)["total"] / len(test)
        start += len(sample.rows)
    return [{f"test_epsilon_{name}": value for name, value in row.items()} for row in totals]


def train_loss(config, loss, lmax, seeds, data, out: Path) -> tuple[list[pd.DataFrame], list[dict]]:
    """One ensemble of ``seeds`` at (``loss``, ``lmax``): per-epoch tables and the final rows per member."""
    train_frame, val_frame, test_frame = data
    dft_cfg, model_cfg = config["dft"], config["model"]
    train_cfg = {**config["train"], **PAPER_RECIPE, "target_scaling": loss, "device": "cpu", "threads": 1}
    elements = sorted(set(train_frame["element"]))
    layout = OutputLayout.from_basis(dft_cfg["fit_auxbasis"], elements, dft_cfg["decontract"], "full")
    dtype = torch.float32
    train = load_samples(train_frame, layout, model_cfg, dtype)
    val = load_samples(val_frame, layout, model_cfg, dtype, dft_cfg=dft_cfg, with_overlap=True)
    test = load_samples(
        test_frame, layout, model_cfg, dtype, with_grid=True, dft_cfg=dft_cfg,
        grid_level=config["metric"]["grid_level"], budget=CollocationBudget(2000),
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    trainers = []
    for seed in seeds:
        model = member_model(trainers[0].model, seed) if trainers else None
        name = f"{loss}_lmax{lmax}_seed{seed}"
        trainers.append(
            Trainer(
                name, layout, train, val, lmax, seed, model_cfg, train_cfg, out / f"{name}.ckpt",
                probe_schedule={"dense_steps": 0, "max_probes": 2}, model=model,
            )
        )  # fmt: skip
    ensemble = TestedEachEpoch(trainers, out / f"{loss}_lmax{lmax}.ckpt", test)
    fitted = ensemble.fit(None)
    for trainer, (_, best, _) in zip(trainers, fitted):
        trainer.save_model(out / f"{trainer.name}.pt", best)
        if best["state"] is not None:
            trainer.model.load_state_dict(best["state"])
    kept = ensemble.evaluate(test)
    classes = class_errors(ensemble, test, test_frame)
    tables, finals = [], []
    for seed, trainer, (metrics, best, _), table, by_class in zip(seeds, trainers, fitted, kept, classes):
        key = {"loss": loss, "lmax_hidden": lmax, "seed": seed}
        tables.append(metrics.assign(**key))
        final = {**key, "kept_epoch": int(best["epoch"]), "epochs": int(metrics["epoch"].max())}
        final["test_epsilon"] = float(table["epsilon"].mean())
        final.update({f"test_epsilon_l{l}": float(table[f"epsilon_l{l}"].mean()) for l in L_COLUMNS})
        finals.append({**final, **by_class, "diverged": ensemble.runs[seeds.index(seed)].diverged_epoch is not None})
        trainer.checkpoint_path.unlink(missing_ok=True)
    ensemble.checkpoint_path.unlink(missing_ok=True)
    return tables, finals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loss_convergence", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--lmax", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--losses", nargs="+", default=["population", "population_rms", "global_rms"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not (DATASET / "train.parquet").is_file():
        raise SystemExit(f"benchmarks.loss_convergence: no dataset at {DATASET} (run make reproduce first)")
    torch.set_num_threads(1)  # one core per run: two runs side by side on 2 cores, not oversubscribed
    config = load_config(ROOT / "config.yaml")
    config["train"]["epochs"] = args.epochs
    data = (
        first_structures("train", args.n_train),
        first_structures("val", VALIDATION_STRUCTURES),
        first_structures("test", TEST_STRUCTURES),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    epochs, finals = [], []
    for lmax, loss in itertools.product(args.lmax, args.losses):
        start = time.perf_counter()
        tables, rows = train_loss(config, loss, lmax, args.seeds, data, args.out)
        seconds = time.perf_counter() - start
        epochs += tables
        finals += [{**row, "n_train": args.n_train, "job_seconds": seconds} for row in rows]
        # written after each ensemble: a killed run keeps what finished
        pd.concat(epochs).to_csv(args.out / "epochs.csv", index=False)
        pd.DataFrame(finals).to_csv(args.out / "final.csv", index=False)
        print(f"{loss} l_max {lmax}: {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""Training one grid point (hidden l_max × output order × seed × training-set size), with resume.

The loss is the mean squared error of the block's targets (coefficient − free-atom
reference). With ``train.target_scaling: none`` (the study's) every coefficient counts as it is;
``global_rms`` divides them all by one number (the same weighting, outputs in units of the targets' RMS);
``shell_rms`` divides each by its shell's RMS over the training set (``e3hier.samples.shell_scales``),
which weighs the orders l more evenly.
Validation ε is integrated on Becke grids every epoch; the weights of the epoch
with the lowest validation ε of the predicted block are kept (early stopping on it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from e3hier.allocator import keep_freed_memory
from e3hier.io import atomic_path
from e3hier.layout import OutputLayout
from e3hier.model import DensityNetwork
from e3hier.samples import Sample, pack, shell_scales

L_COLUMNS = range(5)  # per-l columns of the tables: l = 0..4
log = logging.getLogger(__name__)


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA where it exists, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def graph_statistics(samples: list[Sample]) -> tuple[float, float]:
    """(num_neighbors, num_nodes): mean edges per node and mean nodes per graph over ``samples``."""
    edges = sum(len(s.graph["edge_src"]) for s in samples)
    nodes = sum(s.n_atoms for s in samples)
    return edges / nodes, nodes / len(samples)


def build_model(model_config: dict) -> DensityNetwork:
    """The network described by a ``model.pt`` config (see ``Trainer.model_config``)."""
    cfg = model_config
    return DensityNetwork(
        n_elements=len(cfg["elements"]),
        lmax_hidden=cfg["lmax_hidden"],
        irreps_out=cfg["irreps_out"],
        num_neighbors=cfg["num_neighbors"],
        num_nodes=cfg["num_nodes"],
        **cfg["model"],
    )


def fingerprint(payload: dict) -> str:
    """Stable hash of the settings a checkpoint belongs to."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_hash(samples: list[Sample]) -> str:
    """A content hash of the data a model is trained and selected on: per structure its id, elements,
    positions, coefficients, free-atom reference and orders, and the ε grid's size and weights (so a new
    DFT setting, grid level or dataset gives another hash even with the same structure ids)."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(s.structure.encode())
        digest.update("".join(s.symbols).encode())
        for array in (s.positions, s.coefficient, s.reference, s.l):
            digest.update(np.ascontiguousarray(array).tobytes())
        if s.grid is not None:
            digest.update(np.ascontiguousarray(s.grid.weights).tobytes())
    return digest.hexdigest()[:16]


#: What ``torch.load`` raises on a truncated or corrupted checkpoint file.
CORRUPT_CHECKPOINT_ERRORS = (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError,
                             zipfile.BadZipFile)  # fmt: skip


def read_checkpoint(path: Path, device, expected: dict):
    """The checkpoint at ``path`` if it exists, loads and holds ``expected`` (e.g. its fingerprint), else None.

    A corrupted or truncated file (a job killed while the file system lost its last write, a disk filled up)
    or one of other settings or data is removed with a warning, and training starts again."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        problem = next((f"its {key} differs" for key, value in expected.items() if state.get(key) != value), None)
    except CORRUPT_CHECKPOINT_ERRORS as error:
        problem = f"it cannot be read ({type(error).__name__}: {error})"
    if problem is None:
        return state
    log.warning("checkpoint %s discarded, %s: training starts again", path, problem)
    path.unlink(missing_ok=True)
    return None


class Predictor:
    """Network + per-shell scales: turns a packed graph into block targets per function row."""

    def __init__(self, model: DensityNetwork, scales: torch.Tensor, layout: OutputLayout):
        self.model, self.scales, self.layout = model, scales, layout
        self.element_index = {el: i for i, el in enumerate(layout.elements)}
        self._row_scales: dict[str, torch.Tensor] = {}

    def row_scales(self, sample: Sample) -> torch.Tensor:
        """The scale of each of the sample's block rows (cached per structure)."""
        if sample.structure not in self._row_scales:
            el = torch.as_tensor([self.element_index[sample.symbols[a]] for a in sample.atom], dtype=torch.long)
            self._row_scales[sample.structure] = self.scales[el.to(self.scales.device), torch.as_tensor(sample.slot)]
        return self._row_scales[sample.structure]

    def scaled_outputs(self, graph: dict) -> torch.Tensor:
        """The network's output at every block row of the packed graph (scaled units)."""
        return self.model(graph)[graph["atom"], graph["slot"]]

    @torch.no_grad()
    def predict_targets(self, sample: Sample) -> np.ndarray:
        """Predicted targets (coefficient − reference) for the sample's block rows."""
        out = self.scaled_outputs(pack([sample])) * self.row_scales(sample).to(self.scales.dtype)
        return out.double().cpu().numpy()


def full_prediction(sample: Sample, predicted_block_targets: np.ndarray) -> np.ndarray:
    """Predicted coefficients of every function: reference + predicted target in the block, reference elsewhere."""
    coefficients = sample.reference.copy()
    coefficients[sample.rows] += predicted_block_targets
    return coefficients


def structure_errors(sample: Sample, predicted: np.ndarray, layout: OutputLayout) -> dict | list[dict]:
    """ε (%) total, of the block and per l; baseline (free-atom) ε; electron-count error (e).

    ``predicted`` is one model's coefficients (functions,), or K models' (functions, K): then one row
    per model, from one pass over the structure's ε grid.
    """
    block_orders = [l for l in np.unique(sample.l) if layout.in_block(l)]
    columns = predicted[:, None] if predicted.ndim == 1 else predicted  # one column per model
    errors = sample.grid.epsilon_by_l(columns, sample.coefficient[:, None], block_orders)
    if sample.baseline is None:  # the free-atom reference alone: fixed per structure, computed once
        sample.baseline = sample.grid.epsilon_by_l(sample.reference, sample.coefficient, block_orders)
    electrons = sample.integral @ columns - sample.n_electrons
    rows = []
    for k in range(columns.shape[1]):
        row = {
            "epsilon": errors["total"][k],
            "epsilon_block": errors["block"][k],
            "epsilon_baseline": sample.baseline["total"],
            "epsilon_baseline_block": sample.baseline["block"],
            "electron_error": electrons[k],
        }
        for l in L_COLUMNS:
            row[f"epsilon_l{l}"] = errors[l][k] if l in errors else float("nan")
            row[f"epsilon_baseline_l{l}"] = sample.baseline.get(l, float("nan"))
        rows.append({key: float(value) for key, value in row.items()})
    return rows[0] if predicted.ndim == 1 else rows


def evaluate(predictor: Predictor, samples: list[Sample]) -> pd.DataFrame:
    """One row per structure with ``structure_errors``."""
    predictor.model.eval()
    rows = []
    for s in samples:
        predicted = full_prediction(s, predictor.predict_targets(s))
        rows.append({"structure": s.structure, "n_atoms": s.n_atoms, **structure_errors(s, predicted, predictor.layout)})
    return pd.DataFrame(rows)


def validation_row(errors: pd.DataFrame) -> dict:
    """The validation columns of an epoch's metrics from ``evaluate``'s table of the validation split."""
    # NaN on one structure makes the epoch's ε NaN (pandas would skip it): a model that predicts NaN is broken
    row = {"val_epsilon": float(errors["epsilon"].mean(skipna=False)),
           "val_epsilon_block": float(errors["epsilon_block"].mean(skipna=False))}  # fmt: skip
    for l in L_COLUMNS:
        row[f"val_epsilon_l{l}"] = float(errors[f"epsilon_l{l}"].mean())
    # the free-atom (zero-prediction) baseline, against which learning per l is measured
    row["val_baseline"] = float(errors["epsilon_baseline"].mean())
    for l in L_COLUMNS:
        row[f"val_baseline_l{l}"] = float(errors[f"epsilon_baseline_l{l}"].mean())
    return row


def epoch_row(epoch: int, sums: list, counts: list, n_structures: int, seconds: float, step: int) -> dict:
    """The metrics of one training epoch from the squared residuals summed per l (``sums``, ``counts``:
    l = 0..4, then l > 4): the loss (mean over every block row) and its part per l."""
    row = {"epoch": epoch, "loss": sum(sums) / sum(counts)}
    for l in L_COLUMNS:
        row[f"loss_l{l}"] = sums[l] / counts[l] if counts[l] else float("nan")
    row["structures_per_second"] = n_structures / seconds
    row["train_seconds"] = seconds
    row["step"] = step
    return row


class Trainer:
    """Adam training of one grid point with checkpoints, resume, lr schedule and early stopping."""

    def __init__(self, name: str, layout: OutputLayout, train: list[Sample], val: list[Sample], lmax_hidden: int,
                 seed: int, model_cfg: dict, train_cfg: dict, checkpoint_path, log_stream=None,
                 probe_every: int = 1, model: DensityNetwork | None = None, settings: dict | None = None):  # fmt: skip
        """``model``: the network, initialised for ``seed`` already (``e3hier.ensemble.member_model``);
        by default it is built here from ``torch.manual_seed(seed)``. ``settings``: anything else the
        result depends on (e.g. the probed structures), for the checkpoint's fingerprint."""
        keep_freed_memory()  # a training step reuses its freed tensors (``e3hier.allocator``)
        self.name, self.layout, self.train, self.val = name, layout, train, val
        self.cfg, self.seed = train_cfg, seed
        self.probe_every = int(probe_every)
        self.checkpoint_path = Path(checkpoint_path)
        self.log_stream = log_stream
        self.device = resolve_device(train_cfg["device"])
        self.dtype = torch.float64 if train_cfg["dtype"] == "float64" else torch.float32
        num_neighbors, num_nodes = graph_statistics(train)
        scales = shell_scales(train, layout, train_cfg["target_scaling"])
        self.model_config = {
            "elements": list(layout.elements),
            "layout_counts": {str(l): n for l, n in layout.counts.items()},
            "output": layout.output,
            "irreps_out": str(layout.irreps),
            "lmax_hidden": int(lmax_hidden),
            "num_neighbors": float(num_neighbors),
            "num_nodes": float(num_nodes),
            "model": dict(model_cfg),
            "dtype": train_cfg["dtype"],
        }
        torch.manual_seed(seed)
        self.model = (build_model(self.model_config) if model is None else model).to(self.device, self.dtype)
        self.predictor = Predictor(self.model, torch.as_tensor(scales, dtype=self.dtype, device=self.device), layout)
        self.optimizer = self.make_optimizer(self.model)
        self.scheduler = self.make_scheduler(self.optimizer)
        self.fingerprint = fingerprint(
            {"model": self.model_config, "train": train_cfg, "seed": seed, "probe_every": self.probe_every,
             "train_set": [s.structure for s in train], "val_set": [s.structure for s in val],
             "data": data_hash(train + val), **(settings or {})}
        )  # fmt: skip
        for s in train + val:
            s.graph = {k: v.to(self.device) for k, v in s.graph.items()}
        self._step_targets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Adam:
        """Adam with ``train.lr``; the fused kernel (one pass over all parameters: ~3× cheaper steps on CPU
        for ~1M parameters in ~20 tensors, same algorithm)."""
        return torch.optim.Adam(model.parameters(), lr=self.cfg["lr"], fused=True)

    def make_scheduler(self, optimizer: torch.optim.Optimizer):
        """The ``train.lr_schedule`` of ``optimizer``, stepped once per epoch."""
        kind, epochs = self.cfg["lr_schedule"], self.cfg["epochs"]
        if kind == "exponential":
            return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.cfg["lr_decay"])
        if kind == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=self.cfg["lr_min"])
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)

    # ---- checkpoints -------------------------------------------------------------------------
    def state(self, epoch: int, metrics: list, best: dict, callbacks: list) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "metrics": metrics,
            "best": best,
            "callbacks": callbacks,
        }

    def save_checkpoint(self, epoch: int, metrics: list, best: dict, callbacks: list) -> None:
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(self.state(epoch, metrics, best, callbacks), tmp)

    def load_checkpoint(self):
        """Resume state ``(epoch, metrics, best, callbacks)`` if a checkpoint of these exact settings exists."""
        state = read_checkpoint(self.checkpoint_path, self.device, {"fingerprint": self.fingerprint})
        if state is None:
            return None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        return state["epoch"], state["metrics"], state["best"], state["callbacks"]

    # ---- one epoch ---------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[list[Sample]]:
        """Shuffled batches; the order depends only on (seed, epoch), so a resumed run sees the same."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train))
        size = self.cfg["batch_size"]
        return [[self.train[i] for i in order[k : k + size]] for k in range(0, len(order), size)]

    def step_targets(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample's scaled block targets and each row's l (capped at 5), on the device (cached)."""
        if sample.structure not in self._step_targets:
            target = torch.as_tensor(sample.target[sample.rows]).to(self.device, self.dtype)
            l_rows = torch.as_tensor(np.minimum(sample.l[sample.rows], len(L_COLUMNS)), device=self.device)
            self._step_targets[sample.structure] = (target / self.predictor.row_scales(sample), l_rows)
        return self._step_targets[sample.structure]

    def train_epoch(self, epoch: int, probe=None, probes: list | None = None) -> dict:
        """One pass over the shuffled training batches; the per-l losses are accumulated on the device
        (one host transfer per epoch; the finiteness check is the only per-step sync).

        ``probe(step, epoch, model)`` runs after every ``probe_every`` optimiser steps (counted over the
        whole run) and its results are appended to ``probes``."""
        self.model.train()
        n_l = len(L_COLUMNS)
        sums = torch.zeros(n_l + 1, dtype=torch.float64, device=self.device)  # per l, then l > 4
        counts = torch.zeros(n_l + 1, dtype=torch.long, device=self.device)
        batches = self.batches(epoch)
        show = self.log_stream is not None
        progress = tqdm(batches, desc=f"{self.name} epoch {epoch}", unit="batch", file=self.log_stream,
                        mininterval=2.0, leave=False, disable=not show)  # fmt: skip
        step = (epoch - 1) * len(batches)  # optimiser steps before this epoch (batches per epoch are fixed)
        probe_seconds = 0.0
        start = time.perf_counter()
        for batch in progress:
            graph = pack(batch)
            if self.device.type != "cpu":
                graph = {k: v.to(self.device, non_blocking=True) for k, v in graph.items()}
            targets, l_rows = zip(*(self.step_targets(s) for s in batch))
            target, l_rows = (targets[0], l_rows[0]) if len(batch) == 1 else (torch.cat(targets), torch.cat(l_rows))
            residual = self.predictor.scaled_outputs(graph) - target
            loss = residual.pow(2).mean()
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"grid point {self.name}: loss is {loss.item()} at epoch {epoch}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            squared = residual.detach().pow(2).double()
            counts += torch.bincount(l_rows, minlength=n_l + 1)
            sums.index_add_(0, l_rows, squared)
            if show:
                progress.set_postfix(loss=f"{loss.item():.3e}", refresh=False)
            step += 1
            if probe is not None and step % self.probe_every == 0:
                clock = time.perf_counter()
                probes.append(probe(step, epoch, self.model))
                probe_seconds += time.perf_counter() - clock
        seconds = time.perf_counter() - start - probe_seconds
        return epoch_row(epoch, sums.tolist(), counts.tolist(), len(self.train), seconds, step)

    def validate(self) -> dict:
        return validation_row(evaluate(self.predictor, self.val))

    # ---- the loop ----------------------------------------------------------------------------
    def start_run(self, probe=None) -> dict:
        """A fresh run's record: no metrics, no best epoch, and the probe of the initial weights (step 0)."""
        return {"metrics": [], "best": {"epsilon": math.inf, "epoch": 0, "state": None},
                "callbacks": [probe(0, 0, self.model)] if probe else [], "stopped": False}  # fmt: skip

    def finish_epoch(self, run: dict, row: dict, lr: float, started: float, probe=None, validation=None) -> bool:
        """Validate, record and select one trained epoch of ``run`` (``start_run``); True when training ends.

        ``row`` is ``train_epoch``'s; the validation ε, ``lr`` and the cumulative ``wall_seconds`` (training
        and validation since ``started``, a ``time.perf_counter()``) are added. ``validation``: the
        validation row if it was computed already (``validation_row``).
        """
        epoch = row["epoch"]
        row.update(self.validate() if validation is None else validation)
        if not math.isfinite(row["val_epsilon_block"]):
            raise TrainingDiverged(f"grid point {self.name}: validation ε is {row['val_epsilon_block']} at epoch "
                                   f"{epoch} (the model predicts non-finite coefficients on the validation split)")  # fmt: skip
        row["lr"] = lr
        wall_seconds = time.perf_counter() - started
        row["wall_seconds"] = (run["metrics"][-1]["wall_seconds"] if run["metrics"] else 0.0) + wall_seconds
        run["metrics"].append(row)
        # select on the block's own error: outside its block a model predicts nothing, and the
        # total ε of a partial output is not monotonic in the block's error (errors can cancel)
        if row["val_epsilon_block"] < run["best"]["epsilon"]:
            state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            run["best"] = {"epsilon": float(row["val_epsilon_block"]), "epoch": epoch, "state": state}
        if self.log_stream is not None:
            print(f"{self.name} epoch {epoch}: loss {row['loss']:.4e}, val ε {row['val_epsilon']:.3f} %, "
                  f"{row['structures_per_second']:.1f} structures/s", file=self.log_stream, flush=True)  # fmt: skip
        stop = self.cfg["patience"] > 0 and epoch - run["best"]["epoch"] >= self.cfg["patience"]
        callbacks = run["callbacks"]
        if probe is not None and (epoch == self.cfg["epochs"] or stop) and callbacks[-1]["step"] != row["step"]:
            callbacks.append(probe(row["step"], epoch, self.model))  # the trained model, always probed
        run["stopped"] = stop
        return stop

    def fit(self, probe=None) -> tuple[pd.DataFrame, dict, list]:
        """Train (resuming if possible).

        ``probe(step, epoch, model)`` (e.g. hidden-feature sizes) runs before training (step 0, the
        random initialisation), every ``probe_every`` optimiser steps and after the last step; its
        results are checkpointed with the metrics. Returns the metrics table, the best epoch
        ``{"epsilon", "epoch", "state"}`` and the probe results in step order.
        """
        epochs, every = self.cfg["epochs"], self.cfg["checkpoint_every"]
        resumed = self.load_checkpoint()
        if resumed:
            first_epoch = resumed[0] + 1
            run = {"metrics": resumed[1], "best": resumed[2], "callbacks": resumed[3], "stopped": False}
        else:
            first_epoch, run = 1, self.start_run(probe)
        for epoch in range(first_epoch, epochs + 1):
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            row = self.train_epoch(epoch, probe, run["callbacks"])
            self.scheduler.step()
            stop = self.finish_epoch(run, row, lr, started, probe)
            if epoch % every == 0 or epoch == epochs or stop:
                self.save_checkpoint(epoch, run["metrics"], run["best"], run["callbacks"])
            if stop:
                break
        return pd.DataFrame(run["metrics"]), run["best"], run["callbacks"]

    def save_model(self, path, best: dict) -> None:
        """``model.pt``: best-epoch state dict + the config to rebuild it (loads with weights_only=True)."""
        payload = {
            "state_dict": best["state"] if best["state"] is not None else self.model.state_dict(),
            "config": self.model_config,
            "scales": self.predictor.scales.detach().cpu(),
            "best_epoch": int(best["epoch"]),
            "epsilon_val_best": float(best["epsilon"]),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)


def load_predictor(path, device: str = "cpu") -> Predictor:
    """Rebuild the network of a ``model.pt`` (best weights) as a ``Predictor``."""
    payload = torch.load(path, map_location=device, weights_only=True)
    cfg = payload["config"]
    model = build_model(cfg)
    model.load_state_dict(payload["state_dict"])
    dtype = torch.float64 if cfg["dtype"] == "float64" else torch.float32
    model.to(device, dtype).eval()
    layout = OutputLayout(tuple(cfg["elements"]), {int(l): n for l, n in cfg["layout_counts"].items()}, cfg["output"])
    return Predictor(model, payload["scales"].to(device, dtype), layout)

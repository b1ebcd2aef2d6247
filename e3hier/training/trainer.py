"""Training one grid point (hidden l_max × output order × seed × training-set size), with resume.

The loss is the mean squared error of the block's targets (coefficient − free-atom
reference), scaled per shell by ``train.target_scaling`` (``e3hier.training.samples.shell_scales``): ``population``
(the study's) multiplies each by 2√2 / N(l, α), psi4's primitive normalisation, so the loss is the study's MSE
of populations; ``none`` leaves every coefficient as it is; ``global_rms`` divides them all by one number (the
weighting of ``none``, outputs in units of the targets' RMS); ``shell_rms`` divides each by its shell's RMS over
the training set, which weighs the orders l more evenly. Predictions are mapped back by the same scales
(``e3hier.training.evaluation.Predictor``) before any density or ε.

The epochs, validation, the kept epoch, early stopping and checkpoints are ``e3hier.training.loop``'s, shared
with the seeds trained together (``e3hier.training.ensemble``); a ``Trainer`` is the loop's ``Steps`` for one
model, and each member of an ensemble is a ``Trainer`` too (its data, targets, network and probes).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from e3hier.data.coefficient_metric import SELECTION_COLUMN
from e3hier.data.layout import OutputLayout
from e3hier.io import atomic_path
from e3hier.network.devices import to_device
from e3hier.network.model import DensityNetwork
from e3hier.training.allocator import keep_freed_memory
from e3hier.training.checkpoints import (
    Run,
    code_hash,
    data_hash,
    discard_checkpoint,
    fingerprint,
    read_checkpoint,
    write_checkpoint,
)
from e3hier.training.compiled_step import training_forward
from e3hier.training.evaluation import L_COLUMNS, Predictor, l2_validation_rows, validation_targets
from e3hier.training.features import PROBE_SCHEDULE, probe_steps
from e3hier.training.grid import EXECUTION_SETTINGS
from e3hier.training.loop import TrainingDiverged, TrainingLoop, epoch_row
from e3hier.training.network_setup import model_config, optimiser, place_on_device, resolve_device, seeded_model
from e3hier.training.probe_log import probe_path
from e3hier.training.samples import TORCH_DTYPES, Sample, pack, shell_scales

#: Optimiser steps between the progress bar's loss updates (each one waits for the device).
PROGRESS_EVERY = 100


class Trainer:
    """Adam training of one grid point with checkpoints, resume, lr schedule and early stopping
    (``e3hier.training.loop.Steps`` of one model)."""

    #: Alone, a model whose loss or validation error is not finite raises ``TrainingDiverged``.
    members_may_diverge = False

    def __init__(
        self,
        name: str,
        layout: OutputLayout,
        train: list[Sample],
        val: list[Sample],
        lmax_hidden: int,
        seed: int,
        model_cfg: dict,
        train_cfg: dict,
        checkpoint_path,
        log_stream=None,
        probe_schedule: dict | None = None,
        model: DensityNetwork | None = None,
        settings: dict | None = None,
    ):
        """``probe_schedule``: ``dense_steps`` and ``max_probes`` of ``analysis.probe_schedule`` (default: every
        step for 64 steps, at most 500 probes; ``e3hier.training.features.probe_steps``).
        ``model``: the network, initialised for ``seed`` already (``e3hier.training.members.member_model``);
        by default it is built here from ``torch.manual_seed(seed)``. ``settings``: anything else the
        result depends on (e.g. the probed structures), for the checkpoint's fingerprint."""
        keep_freed_memory()  # a training step reuses its freed tensors (``e3hier.training.allocator``)
        self.name, self.layout, self.train, self.val = name, layout, train, val
        self.cfg, self.seed = train_cfg, seed
        self.probe_schedule = {**PROBE_SCHEDULE, **(probe_schedule or {})}
        batches = math.ceil(len(train) / train_cfg["batch_size"])
        self.probe_steps = set(probe_steps(train_cfg["epochs"] * batches, **self.probe_schedule))
        self.checkpoint_path = Path(checkpoint_path)
        self.probe_path = probe_path(self.checkpoint_path)  # the probe records' side file (e3hier.training.probe_log)
        self.log_stream = log_stream
        self.device = resolve_device(train_cfg["device"])
        self.dtype = TORCH_DTYPES[train_cfg["dtype"]]
        scales = shell_scales(train, layout, train_cfg["target_scaling"])
        self.model_config = model_config(layout, lmax_hidden, train, model_cfg, train_cfg["dtype"])
        model = seeded_model(self.model_config, seed) if model is None else model
        self.model = model.to(self.device, self.dtype)
        self.predictor = Predictor(self.model, torch.as_tensor(scales, dtype=self.dtype, device=self.device), layout)
        self.step_outputs = training_forward(self.predictor.scaled_outputs, train_cfg)  # train.compile
        self.optimizer, self.scheduler = optimiser(self.model, train_cfg)
        self.fingerprint = fingerprint(
            {
                "model": self.model_config,
                # not how it runs: a checkpoint made on another device or thread count resumes
                "train": {k: v for k, v in train_cfg.items() if k not in EXECUTION_SETTINGS},
                "seed": seed,
                "probe_schedule": self.probe_schedule,
                "train_set": [s.structure for s in train],
                "val_set": [s.structure for s in val],
                "data": data_hash(train + val),
                "selection": SELECTION_COLUMN,  # what the kept epoch is chosen on
                "code": code_hash(),
                **(settings or {}),
            }
        )
        place_on_device(train + val, self.device)
        self._step_targets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.members = [self]
        self.runs: list[Run] = []  # its record, once ``fit`` has run

    # ---- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, epoch: int, runs: list[Run]) -> None:
        (run,) = runs
        write_checkpoint(
            self.checkpoint_path,
            {
                "fingerprint": self.fingerprint,
                "epoch": epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "run": run.state(),
            },
        )

    def load_checkpoint(self) -> tuple[int, list[Run]] | None:
        """``(epoch, [run])``: the run recorded by a checkpoint of these exact settings, its weights and optimiser
        restored.

        A checkpoint whose state does not load (e.g. a parameter of another shape) is discarded like a
        corrupt one, and the network, optimiser and schedule are those of a fresh run."""
        state = read_checkpoint(self.checkpoint_path, self.device, {"fingerprint": self.fingerprint})
        if state is None:
            return None
        initial = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        try:
            run = Run.from_state(state["run"], self.probe_path)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            return run.epoch, [run]
        except Exception as error:  # any (a lost probe log too): a stale state must not fail every retry of the job
            discard_checkpoint(self.checkpoint_path, f"its state does not load ({type(error).__name__}: {error})")
        self.model.load_state_dict(initial)  # a failed load may have copied some tensors already
        self.optimizer, self.scheduler = optimiser(self.model, self.cfg)
        return None

    # ---- one epoch ---------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[list[Sample]]:
        """Shuffled batches; the order depends only on (seed, epoch), so a resumed run sees the same."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train))
        size = self.cfg["batch_size"]
        return [[self.train[i] for i in order[k : k + size]] for k in range(0, len(order), size)]

    def step_targets(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """The sample's scaled block targets and each row's l (capped at 5), on the device, and its rows per l
        (l = 0..4, then l > 4) on the host (cached): the epoch's counts need no device sync."""
        if sample.structure not in self._step_targets:
            l_capped = np.minimum(sample.l[sample.rows], len(L_COLUMNS))
            target = torch.as_tensor(sample.target[sample.rows]).to(self.device, self.dtype)
            l_rows = torch.as_tensor(l_capped, device=self.device)
            l_counts = np.bincount(l_capped, minlength=len(L_COLUMNS) + 1)
            self._step_targets[sample.structure] = (target / self.predictor.row_scales(sample), l_rows, l_counts)
        return self._step_targets[sample.structure]

    def train_pass(self, epoch: int, probe=None, probes: list | None = None) -> dict:
        """One pass over the shuffled training batches; the per-l losses are accumulated on the device, so
        a step waits for no device result: the loss reaches the host every ``PROGRESS_EVERY`` steps (for the
        progress bar) and at the end of the epoch, which raises ``TrainingDiverged`` if any step's loss was
        not finite.

        ``probe(step, epoch, model)`` runs after the optimiser steps of ``probe_steps`` (counted over the
        whole run) and its results are appended to ``probes``."""
        self.model.train()
        n_l = len(L_COLUMNS)
        sums = torch.zeros(n_l + 1, dtype=torch.float64, device=self.device)  # per l, then l > 4
        counts = np.zeros(n_l + 1, dtype=np.int64)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # NaN or inf once a step's is
        batches = self.batches(epoch)
        show = self.log_stream is not None
        progress = tqdm(
            batches,
            desc=f"{self.name} epoch {epoch}",
            unit="batch",
            file=self.log_stream,
            mininterval=2.0,
            leave=False,
            disable=not show,
        )
        step = (epoch - 1) * len(batches)  # optimiser steps before this epoch (batches per epoch are fixed)
        probe_seconds = 0.0
        start = time.perf_counter()
        for index, batch in enumerate(progress, 1):
            graph = to_device(pack(batch), self.device)
            targets, l_rows, l_counts = zip(*(self.step_targets(s) for s in batch))
            target, l_rows = (targets[0], l_rows[0]) if len(batch) == 1 else (torch.cat(targets), torch.cat(l_rows))
            residual = self.step_outputs(graph) - target
            loss = residual.pow(2).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach()
            counts += sum(l_counts)
            sums.index_add_(0, l_rows, residual.detach().pow(2).double())
            if show and index % PROGRESS_EVERY == 0:
                progress.set_postfix(loss=f"{self.finite_loss(loss_sum, epoch) / index:.3e}", refresh=False)
            step += 1
            if probe is not None and step in self.probe_steps:
                clock = time.perf_counter()
                probes.append(probe(step, epoch, self.model))
                probe_seconds += time.perf_counter() - clock
        self.finite_loss(loss_sum, epoch)
        seconds = time.perf_counter() - start - probe_seconds
        return epoch_row(epoch, sums.tolist(), counts.tolist(), len(self.train), seconds, step)

    def train_epoch(self, epoch: int, runs: list[Run], probe=None) -> tuple[list[dict], list[bool]]:
        """``train_pass`` for the loop: its row, and a finite loss (a loss that is not raises)."""
        return [self.train_pass(epoch, probe, runs[0].callbacks)], [True]

    def finite_loss(self, loss_sum: torch.Tensor, epoch: int) -> float:
        """The summed loss of the epoch's steps so far (a host sync); TrainingDiverged if it is not finite."""
        value = float(loss_sum)
        if not math.isfinite(value):
            raise TrainingDiverged(f"grid point {self.name}: loss is {value} at epoch {epoch}")
        return value

    def validate(self) -> dict:
        """The validation columns of an epoch: the relative L2 density errors in coefficient space, on the model's
        device (``e3hier.training.evaluation.l2_validation_rows``)."""
        return l2_validation_rows(self.val, validation_targets(self.predictor, self.val), self.layout)[0]

    def validate_members(self) -> list[dict]:
        return [self.validate()]

    def probe_members(self, probe, step: int, epoch: int) -> list:
        return [probe(step, epoch, self.model)]

    # ---- the loop ----------------------------------------------------------------------------
    def fit(self, probe=None) -> tuple[pd.DataFrame, dict, list]:
        """Train (resuming if possible; ``e3hier.training.loop.TrainingLoop``).

        ``probe(step, epoch, model)`` (e.g. hidden-feature sizes) runs before training (step 0, the
        random initialisation), after the steps of ``probe_steps`` and after the last step; its
        results go to the side file ``probe_path`` as they come (``e3hier.training.probe_log``; a checkpoint holds
        their index). Returns the metrics table, the best epoch ``{"l2", "epoch", "state"}`` (the lowest
        ``val_l2_block``) and the probe results in step order.
        """
        self.runs = TrainingLoop(self).fit(probe)
        (run,) = self.runs
        return run.metrics_table(), run.best, run.callbacks

    def save_model(self, path, best: dict, bundle: dict | None = None) -> None:
        """``model.pt``: best-epoch state dict + the config to rebuild it (loads with weights_only=True); with
        ``bundle`` (``e3hier.training.bundle.bundle_fields``) what applying it to new structures needs."""
        payload = {
            **({"bundle": bundle} if bundle is not None else {}),
            "state_dict": best["state"] if best["state"] is not None else self.model.state_dict(),
            "config": self.model_config,
            "scales": self.predictor.scales.detach().cpu(),
            "best_epoch": int(best["epoch"]),
            "l2_val_best": float(best["l2"]),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

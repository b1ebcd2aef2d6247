"""The training loop, one for a model trained alone (``Trainer``) and for the seeds of a grid point trained
together (``EnsembleTrainer``): epochs, validation, the kept epoch, early stopping, probes, checkpoints, resume.

Following one epoch: ``TrainingLoop.fit`` → ``Steps.train_epoch`` (one pass over the shuffled batches: the
trainer's own optimiser steps) → ``validate_members`` → ``finish_epoch`` per model (record, select, stop) →
the final probes → ``save_checkpoint`` every ``train.checkpoint_every`` epochs. The loop sees a trainer of
K ≥ 1 models only through ``Steps``; each model's data, targets and network stay its ``Trainer``'s
(``members``), and each model's record is its own ``Run`` (``e3hier.training.checkpoints``).

The kept epoch is the one with the lowest validation L2 error of the predicted block (``SELECTION_COLUMN``);
``train.patience`` epochs without a better one stop a model (0: never). A model whose loss or validation
error is not finite raises ``TrainingDiverged`` when it trains alone; among the members of an ensemble
(``Steps.members_may_diverge``) it stops, recorded as diverged, and the others train on.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

import torch

from e3hier.data.coefficient_metric import SELECTION_COLUMN
from e3hier.training.checkpoints import Run
from e3hier.training.evaluation import L_COLUMNS
from e3hier.training.probe_log import ProbeLog

log = logging.getLogger(__name__)


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


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


class Steps(Protocol):
    """What ``TrainingLoop`` asks of a trainer of K ≥ 1 models that take their optimiser steps together."""

    #: The name of the grid point (or of the members trained together), for messages.
    name: str
    #: The models' ``Trainer``s, in order: their names, settings (``cfg``), networks and probe files.
    members: list
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    #: Whether a model whose loss or validation error is not finite stops while the others train on (an
    #: ensemble's members), instead of raising ``TrainingDiverged``.
    members_may_diverge: bool

    def load_checkpoint(self) -> tuple[int, list[Run]] | None:
        """The last finished epoch and each model's ``Run`` from a checkpoint of exactly these settings, the
        weights and optimiser restored; None without one."""

    def save_checkpoint(self, epoch: int, runs: list[Run]) -> None:
        """Write the checkpoint of ``epoch`` (atomically)."""

    def train_epoch(self, epoch: int, runs: list[Run], probe) -> tuple[list[dict], list[bool]]:
        """One pass over each model's shuffled batches: one ``epoch_row`` per model, and whether its loss
        stayed finite. ``probe`` runs after the steps of the probe schedule (``probe_members``); its results
        go to the runs that have not stopped."""

    def validate_members(self) -> list[dict]:
        """The validation columns of an epoch per model (``e3hier.training.evaluation.l2_validation_rows``)."""

    def probe_members(self, probe, step: int, epoch: int) -> list:
        """``probe`` of the models' networks as they are: one result per model."""


class TrainingLoop:
    """Epochs of a ``Steps`` trainer, with resume, early stopping per model and the checkpoint cadence."""

    def __init__(self, steps: Steps):
        self.steps = steps
        self.members = steps.members
        self.cfg = steps.members[0].cfg

    def fit(self, probe=None) -> list[Run]:
        """Train every model (resuming if possible); returns each model's ``Run``.

        ``probe`` (``Steps.probe_members``) runs before training (step 0, the random initialisation), after
        the steps of the probe schedule and after each model's last step; its results go to each model's probe
        file as they come (``e3hier.training.probe_log``; a checkpoint holds their index). A run that early
        stopping (or divergence) ended is done: a resumed job whose every model stopped trains no epoch (the
        checkpoint outlives the runs until every output is written).
        """
        steps, epochs, every = self.steps, self.cfg["epochs"], self.cfg["checkpoint_every"]
        resumed = steps.load_checkpoint()
        if resumed:
            first_epoch, runs = resumed[0] + 1, resumed[1]
        else:
            first_epoch = 1
            runs = [Run(callbacks=ProbeLog.fresh(member.probe_path)) for member in self.members]
            for run, result in zip(runs, steps.probe_members(probe, 0, 0) if probe else []):
                run.callbacks.append(result)
        last_epoch = first_epoch - 1 if all(run.stopped for run in runs) else epochs
        for epoch in range(first_epoch, last_epoch + 1):
            started = time.perf_counter()
            lr = steps.optimizer.param_groups[0]["lr"]
            rows, finite = steps.train_epoch(epoch, runs, probe)
            steps.scheduler.step()
            for k in (k for k, run in enumerate(runs) if not run.stopped and not finite[k]):
                self.diverged(runs[k], k, epoch, "its loss is not finite")
            active = [k for k, run in enumerate(runs) if not run.stopped]
            validation = steps.validate_members()
            for k in active:
                try:
                    self.finish_epoch(k, runs[k], rows[k], validation[k], lr, started)
                except TrainingDiverged as error:  # a non-finite validation error
                    if not steps.members_may_diverge:
                        raise
                    self.diverged(runs[k], k, epoch, str(error))
            active = [k for k in active if runs[k].diverged_epoch is None]
            ended = [
                k
                for k in active
                if (runs[k].stopped or epoch == epochs) and runs[k].callbacks.last_step != rows[k]["step"]
            ]
            if probe is not None and ended:  # each trained model, always probed
                results = steps.probe_members(probe, rows[ended[0]]["step"], epoch)
                for k in ended:
                    runs[k].callbacks.append(results[k])
            wall = runs[active[-1]].metrics[-1]["wall_seconds"] if active else 0.0
            for k in active:  # one clock for the models trained together: each one's wall time is the job's
                runs[k].metrics[-1]["wall_seconds"] = wall
            done = all(run.stopped for run in runs)
            if epoch % every == 0 or epoch == epochs or done:
                steps.save_checkpoint(epoch, runs)
            if done:
                break
        return runs

    def finish_epoch(self, k: int, run: Run, row: dict, validation: dict, lr: float, started: float) -> None:
        """Record and select one trained epoch of model ``k``; ``run.stopped`` once early stopping ends it.

        ``row`` is its ``epoch_row``; its ``validation`` columns, ``lr`` and the cumulative ``wall_seconds``
        (training and validation since ``started``, a ``time.perf_counter()``) are added. Raises
        ``TrainingDiverged`` if the validation error is not finite."""
        member, epoch = self.members[k], row["epoch"]
        row.update(validation)
        if not math.isfinite(row[SELECTION_COLUMN]):
            raise TrainingDiverged(
                f"grid point {member.name}: validation L2 error is {row[SELECTION_COLUMN]} at epoch "
                f"{epoch} (the model predicts non-finite coefficients on the validation split)"
            )
        row["lr"] = lr
        wall_seconds = time.perf_counter() - started
        row["wall_seconds"] = (run.metrics[-1]["wall_seconds"] if run.metrics else 0.0) + wall_seconds
        run.metrics.append(row)
        # select on the block's own error: outside its block a model predicts nothing, and the
        # total error of a partial output is not monotonic in the block's error (errors can cancel)
        if row[SELECTION_COLUMN] < run.best["l2"]:
            state = {key: value.detach().clone() for key, value in member.model.state_dict().items()}
            run.best = {"l2": float(row[SELECTION_COLUMN]), "epoch": epoch, "state": state}
        if member.log_stream is not None:
            print(
                f"{member.name} epoch {epoch}: loss {row['loss']:.4e}, val L2 {row['val_l2']:.3f} %, "
                f"{row['structures_per_second']:.1f} structures/s",
                file=member.log_stream,
                flush=True,
            )
        run.stopped = self.cfg["patience"] > 0 and epoch - run.best["epoch"] >= self.cfg["patience"]

    def diverged(self, run: Run, k: int, epoch: int, reason: str) -> None:
        """Stop model ``k`` at ``epoch``, recorded as diverged: its record ends with the last finished epoch
        (metrics, best state; the probes of ``epoch`` are dropped), and the others train on."""
        run.stopped, run.diverged_epoch = True, epoch
        run.callbacks.drop_from_epoch(epoch)
        log.warning(
            "ensemble %s: member %s diverged at epoch %d (%s)", self.steps.name, self.members[k].name, epoch, reason
        )

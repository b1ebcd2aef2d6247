"""Training the seeds of one grid point together (``train.ensemble_size``): one job, one batched step.

A training step of one small model is mostly dispatch: thousands of tiny operations. K models of
the same architecture (the seeds of a grid point: same data, same settings, different initial
weights and data order) can share that cost: ``e3hier.training.members`` stacks their parameters and
runs the fused kernels once for all of them, each member on a batch of its own.

Each seed keeps its own result. Its parameters stay a view of its row of the stacked tensors, so its
own ``Trainer`` holds its data order, targets and network exactly as when it is trained alone, and the
loop is the same (``e3hier.training.loop``: each member's validation, kept epoch, early stopping and
probes; this class is the loop's ``Steps`` of K models). The loss is the sum of the members' own mean
squared errors (each member's gradient is its own), and Adam is elementwise, so a member follows the
trajectory of the same seed trained alone up to float rounding (``tests/test_ensemble.py``). The cost for
incremental reruns: a job trains a block of seeds, so adding a seed to a block retrains that block
(``e3hier.training.grid.seed_blocks``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from e3hier.network.devices import to_device
from e3hier.training.checkpoints import Run, discard_checkpoint, read_checkpoint, write_checkpoint
from e3hier.training.compiled_step import training_forward
from e3hier.training.evaluation import L_COLUMNS, VALIDATION_CHUNK, l2_validation_rows, structure_errors
from e3hier.training.loop import TrainingLoop, epoch_row
from e3hier.training.members import MemberNetworks, pack_members
from e3hier.training.network_setup import optimiser
from e3hier.training.samples import pack
from e3hier.training.trainer import Trainer


class EnsembleTrainer:
    """The ``Trainer``s of K seeds of one grid point, trained together (see the module docstring).

    Each member ``Trainer`` keeps its data order (``batches``), targets, network and ``save_model``; this class
    owns the stacked network, one Adam over it and the schedule: the ``e3hier.training.loop.Steps`` of K models.
    """

    #: A member whose loss or validation error is not finite stops, the others train on.
    members_may_diverge = True

    def __init__(self, trainers: list[Trainer], checkpoint_path):
        if len({t.fingerprint for t in trainers}) != len(trainers):
            raise ValueError("ensemble members must differ (their seeds)")
        self.members = trainers
        self.checkpoint_path = Path(checkpoint_path)
        self.network = MemberNetworks([t.model for t in trainers])
        self.step_outputs = training_forward(self.network, trainers[0].cfg)  # train.compile
        self.cfg, self.device = trainers[0].cfg, trainers[0].device
        self.optimizer, self.scheduler = optimiser(self.network, self.cfg)
        self.runs: list[Run] = []  # the members' records, once ``fit`` has run

    @property
    def name(self) -> str:
        return "+".join(t.name for t in self.members)

    # ---- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, epoch: int, runs: list[Run]) -> None:
        write_checkpoint(
            self.checkpoint_path,
            {
                "fingerprints": [t.fingerprint for t in self.members],
                "epoch": epoch,  # the ensemble's: a member stopped early recorded fewer
                "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "runs": [run.state() for run in runs],
            },
        )

    def load_checkpoint(self):
        """``(epoch, runs)``: the ensemble's last finished epoch and each member's ``Run``, if a checkpoint of
        exactly these members exists."""
        state = read_checkpoint(
            self.checkpoint_path, self.device, {"fingerprints": [t.fingerprint for t in self.members]}
        )
        if state is None:
            return None
        initial = {name: param.detach().clone() for name, param in self.network.named_parameters()}
        try:
            runs = [Run.from_state(run, t.probe_path) for run, t in zip(state["runs"], self.members)]
            self.load_parameters(state["network"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            return state["epoch"], runs
        except Exception as error:  # any (a lost probe log too): a stale state must not fail every retry of the job
            discard_checkpoint(self.checkpoint_path, f"its state does not load ({type(error).__name__}: {error})")
        self.load_parameters(initial)  # a failed load may have copied some tensors already
        self.optimizer, self.scheduler = optimiser(self.network, self.cfg)
        return None

    @torch.no_grad()
    def load_parameters(self, parameters: dict) -> None:
        """Copy ``parameters`` into the stack in place (the members' parameters are views of it); no broadcast."""
        for name, param in self.network.named_parameters():
            if parameters[name].shape != param.shape:
                raise ValueError(f"parameter {name}: shape {tuple(parameters[name].shape)}, not {tuple(param.shape)}")
            param.copy_(parameters[name])

    # ---- one epoch ---------------------------------------------------------------------------
    def train_epoch(self, epoch: int, runs: list[Run], probe=None) -> tuple[list[dict], list[bool]]:
        """One pass over every member's shuffled batches, one optimiser step for all members per batch.

        A member whose loss is not finite at a step drops out of the summed loss from that step on: its
        rows of the stack go on being computed (the shapes, hence every other member's arithmetic, stay
        those of the ensemble without the divergence) but nothing of it reaches another member (each
        member's gradient is that of its own loss; Adam is elementwise). Which members are still finite
        is kept on the device and read once, at the end of the epoch.

        ``probe(step, epoch, network)`` of the stacked network gives one result per member (see ``fit``).
        Returns one ``epoch_row`` per member (the epoch's seconds are the ensemble's) and whether
        each member's loss stayed finite."""
        self.network.train()
        members, n_l = len(self.members), len(L_COLUMNS)
        sums = torch.zeros(members * (n_l + 1), dtype=torch.float64, device=self.device)
        counts = np.zeros((members, n_l + 1), dtype=np.int64)
        finite = torch.tensor([run.diverged_epoch is None for run in runs], device=self.device)
        batches = [t.batches(epoch) for t in self.members]
        step = (epoch - 1) * len(batches[0])
        probed = self.members[0].probe_steps
        probe_seconds = 0.0
        start = time.perf_counter()
        for member_batches in zip(*batches):
            graph = to_device(pack_members([pack(batch) for batch in member_batches]), self.device)
            targets, l_rows, sizes = [], [], []
            for k, (trainer, batch) in enumerate(zip(self.members, member_batches)):
                size = 0
                for sample in batch:
                    target, rows_l, l_counts = trainer.step_targets(sample)
                    targets.append(target)
                    l_rows.append(rows_l + k * (n_l + 1))
                    counts[k] += l_counts
                    size += len(target)
                sizes.append(size)
            target, l_rows = torch.cat(targets), torch.cat(l_rows)
            output = self.step_outputs(graph)
            residual = output.flatten(0, 1)[graph["atom"], graph["slot"]] - target
            losses = torch.stack([part.pow(2).mean() for part in residual.split(sizes)])
            finite &= torch.isfinite(losses)
            # each member's gradient is that of its own mean squared error; a diverged member's is zero
            loss = torch.where(finite, losses, torch.zeros_like(losses)).sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            sums.index_add_(0, l_rows, residual.detach().pow(2).double())
            step += 1
            if probe is not None and step in probed:
                clock = time.perf_counter()
                for run, result in zip(runs, probe(step, epoch, self.network.network)):
                    if not run.stopped:
                        run.callbacks.append(result)
                probe_seconds += time.perf_counter() - clock
        seconds = time.perf_counter() - start - probe_seconds
        sums, counts = sums.view(members, -1).tolist(), counts.tolist()
        rows = [epoch_row(epoch, sums[k], counts[k], len(t.train), seconds, step) for k, t in enumerate(self.members)]
        return rows, finite.tolist()

    # ---- evaluation ----------------------------------------------------------------------------
    def predicted_targets(self, samples) -> torch.Tensor:
        """Every member's predicted block targets of ``samples``: (K, block rows of all structures), on the device;
        one stacked forward pass."""
        members = len(self.members)
        graph = to_device(pack_members([pack(samples)] * members), self.device)
        out = self.network(graph).flatten(0, 1)[graph["atom"], graph["slot"]].view(members, -1)
        scales = torch.stack([torch.cat([t.predictor.row_scales(s) for s in samples]) for t in self.members])
        return out * scales.to(out.dtype)

    @torch.no_grad()
    def validate_members(self) -> list[dict]:
        """``Trainer.validate`` of every member at once: one validation row per member (coefficient space)."""
        self.network.eval()
        val, predicted = self.members[0].val, []
        for start in range(0, len(val), VALIDATION_CHUNK):
            chunk = val[start : start + VALIDATION_CHUNK]
            targets = self.predicted_targets(chunk)
            predicted += [part.T for part in targets.split([len(s.rows) for s in chunk], dim=1)]
        return l2_validation_rows(val, predicted, self.members[0].layout)

    @torch.no_grad()
    def evaluate(self, samples) -> list[pd.DataFrame]:
        """``e3hier.training.evaluation.evaluate`` of every member at once: one stacked forward pass over all the
        structures, and each structure's ε grid read once for all members. One table per member."""
        self.network.eval()
        members, layout = len(self.members), self.members[0].layout
        tables = [[] for _ in range(members)]
        if not samples:
            return [pd.DataFrame() for _ in range(members)]
        targets = self.predicted_targets(samples).double().cpu().numpy()  # (K, block rows of all structures)
        start = 0
        for sample in samples:
            predicted = np.repeat(sample.reference[:, None], members, axis=1)
            predicted[sample.rows] += targets[:, start : start + len(sample.rows)].T
            start += len(sample.rows)
            for k, row in enumerate(structure_errors(sample, predicted, layout)):
                tables[k].append({"structure": sample.structure, "n_atoms": sample.n_atoms, **row})
        return [pd.DataFrame(rows) for rows in tables]

    def probe_members(self, probe, step: int, epoch: int) -> list:
        return probe(step, epoch, self.network.network)

    # ---- the loop ----------------------------------------------------------------------------
    def fit(self, probe=None) -> list[tuple[pd.DataFrame, dict, list]]:
        """Train every member (resuming if possible; ``e3hier.training.loop.TrainingLoop``); returns
        ``Trainer.fit``'s triple per member.

        ``probe(step, epoch, network)`` probes the stacked network and returns one result per member, at
        the steps ``Trainer.fit`` probes one model. A member whose early stopping ends its run keeps the
        record of that epoch (its best state, metrics and probes); the others train on. So does a member whose
        loss or validation ε stops being finite, recorded as diverged (``Run.diverged_epoch``).
        """
        self.runs = TrainingLoop(self).fit(probe)  # each member's record, its ``diverged_epoch`` included
        return [(run.metrics_table(), run.best, run.callbacks) for run in self.runs]

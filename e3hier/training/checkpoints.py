"""Checkpoints of a training run: what a run has recorded, and whether a checkpoint belongs to it.

A checkpoint is resumed only if its fingerprint (settings, seed, data hash, the training code's hash) is
the run's; a truncated or foreign one, or one whose state does not load into the run's network and
optimiser, is discarded with a warning. ``Run`` is the record a checkpoint carries, stored as plain
containers so that ``torch.load(..., weights_only=True)`` reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from e3hier.io import atomic_path
from e3hier.script_imports import code_files
from e3hier.training.probe_log import ProbeLog
from e3hier.training.samples import Sample

log = logging.getLogger(__name__)

#: The package's folder (``e3hier/``)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: The module a training job runs (``scripts/train.py`` imports it, and little else), in ``PACKAGE_DIR``
TRAINING_ENTRY = "training/experiment.py"


@dataclasses.dataclass
class Run:
    """What a training run has recorded so far.

    Parameters
    ----------
    metrics
        One row per finished epoch (``epoch_row`` and the validation columns).
    best
        The epoch with the lowest validation L2 error of the block (``val_l2_block``): ``{"l2", "epoch", "state"}``.
    callbacks
        The probe results, in step order: a ``ProbeLog`` (a side file; a checkpoint carries its index only), or a
        list.
    stopped
        Whether the run ended before its last epoch: early stopping, or divergence (an ensemble member).
    diverged_epoch
        The epoch in which an ensemble member's loss or validation ε stopped being finite (None: it did not;
        ``e3hier.training.ensemble.EnsembleTrainer``).
    """

    metrics: list = dataclasses.field(default_factory=list)
    best: dict = dataclasses.field(default_factory=lambda: {"l2": math.inf, "epoch": 0, "state": None})
    callbacks: list = dataclasses.field(default_factory=list)
    stopped: bool = False
    diverged_epoch: int | None = None

    @property
    def epoch(self) -> int:
        """The last finished epoch (0 before training)."""
        return int(self.metrics[-1]["epoch"]) if self.metrics else 0

    def metrics_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics)

    def state(self) -> dict:
        """The record as plain containers, for a checkpoint (not copied: it is written at once); of the probes,
        the ``ProbeLog``'s index only (flushed to disk first)."""
        state = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        if isinstance(self.callbacks, ProbeLog):
            self.callbacks.sync()
            state["callbacks"] = self.callbacks.state()
        return state

    @classmethod
    def from_state(cls, state: dict, probe_path=None) -> Run:
        """The run a checkpoint recorded; its probe log (``probe_path``) cut back to the checkpoint's records."""
        callbacks = state["callbacks"]
        if isinstance(callbacks, dict):
            callbacks = ProbeLog.resume(probe_path, callbacks)
        return cls(**{**state, "callbacks": callbacks})


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


def training_code_files(package_dir=PACKAGE_DIR) -> list[Path]:
    """The source files of a training job: ``TRAINING_ENTRY`` and every package module it imports, transitively
    (``e3hier.script_imports``; the code inputs of the training rules are those of ``scripts/train.py``)."""
    package_dir = Path(package_dir).resolve()
    entry = package_dir / TRAINING_ENTRY
    return sorted({entry, *map(Path, code_files(entry, package_dir.name, package_dir.parent))})


@functools.cache
def code_hash(package_dir=PACKAGE_DIR) -> str:
    """A content hash of ``training_code_files``: a checkpoint of weights trained by other code is not
    resumed (a rerun after a code edit starts again, and a parameter of a new shape cannot fail its load).
    Paths count relative to the package's folder, so a moved checkout keeps its checkpoints."""
    package_dir = Path(package_dir).resolve()
    digest = hashlib.sha256()
    for path in training_code_files(package_dir):
        digest.update(path.relative_to(package_dir.parent).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


#: What ``torch.load`` raises on a truncated or corrupted checkpoint file.
CORRUPT_CHECKPOINT_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


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
    discard_checkpoint(path, problem)
    return None


def discard_checkpoint(path: Path, problem: str) -> None:
    """Remove the checkpoint at ``path``, warning with its ``problem``: the run starts again."""
    log.warning("checkpoint %s discarded, %s: training starts again", path, problem)
    path.unlink(missing_ok=True)


def write_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (a killed job leaves the previous one)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)

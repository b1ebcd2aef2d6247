"""The probe records of one model in a side file, written as they come, not into every checkpoint.

A training run probes its hidden features up to ``analysis.probe_schedule.max_probes`` times
(``e3hier.training.features``); each record (``{"step", "epoch", "rows"}``) is appended to ``<checkpoint>.probes.jsonl``
as one JSON line (JSON keeps every float exactly). A checkpoint carries only the log's index (step, epoch and
end offset of each record, a few kB), and the file is flushed to disk before the checkpoint is written; a run
resumed from that checkpoint cuts the file back to the checkpoint's last record, so the probes that a killed
job wrote after its checkpoint are written again, identically, as training replays them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def probe_path(checkpoint_path) -> Path:
    """The side file of a run's probe records, beside its checkpoint: ``<stem>.probes.jsonl``."""
    checkpoint_path = Path(checkpoint_path)
    return checkpoint_path.with_name(f"{checkpoint_path.stem}.probes.jsonl")


class ProbeLog:
    """Probe records appended to ``path`` (JSON lines); the list-like view of ``Run.callbacks``.

    Parameters
    ----------
    path : path-like
        The side file.
    index : list, optional
        ``[step, epoch, end offset]`` of each record written (a checkpoint's ``state()``).
    """

    def __init__(self, path, index=None):
        self.path = Path(path)
        self.index = [list(entry) for entry in (index or [])]

    @classmethod
    def fresh(cls, path) -> ProbeLog:
        """An empty log: a file left by an earlier run is removed."""
        Path(path).unlink(missing_ok=True)
        return cls(path)

    @classmethod
    def resume(cls, path, state: dict) -> ProbeLog:
        """The log a checkpoint recorded (``state()``): the file is cut back to its last record.

        Raises ValueError, naming the file, when it holds fewer bytes than the checkpoint recorded (lost)."""
        log = cls(path, state["index"])
        size = log.path.stat().st_size if log.path.exists() else 0
        if size < log.end:
            raise ValueError(f"probe log {log.path}: {size} bytes, its checkpoint recorded {log.end}")
        if size > log.end:  # records written after the checkpoint: training replays them
            with open(log.path, "r+b") as handle:
                handle.truncate(log.end)
        return log

    @property
    def end(self) -> int:
        """Bytes of the records in the index."""
        return int(self.index[-1][2]) if self.index else 0

    @property
    def last_step(self):
        """The step of the last record (None when empty)."""
        return self.index[-1][0] if self.index else None

    def __len__(self) -> int:
        return len(self.index)

    def __bool__(self) -> bool:
        return bool(self.index)

    def append(self, record: dict) -> None:
        """Write one record at the end of the file."""
        line = (json.dumps(record) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:  # not an output: a working log, fsynced before each checkpoint
            handle.write(line)
            end = handle.tell()
        known = record if isinstance(record, dict) else {}  # a probe may return None (nothing to record)
        self.index.append([known.get("step"), known.get("epoch"), end])

    def drop_from_epoch(self, epoch: int) -> None:
        """Remove the records of ``epoch`` and later (an ensemble member that diverged in that epoch)."""
        keep = [entry for entry in self.index if entry[1] is None or entry[1] < epoch]
        if len(keep) != len(self.index):
            self.index = keep
            with open(self.path, "r+b") as handle:
                handle.truncate(self.end)

    def sync(self) -> None:
        """Flush the file to disk: a checkpoint written next may then trust its index."""
        if self.path.exists():
            with open(self.path, "rb") as handle:
                os.fsync(handle.fileno())

    def state(self) -> dict:
        """The index, for a checkpoint (plain containers)."""
        return {"index": [list(entry) for entry in self.index]}

    def __iter__(self):
        """The records, read from the file in step order."""
        if not self.index:
            return
        with open(self.path, "rb") as handle:
            data = handle.read(self.end)
        for line in data.splitlines():
            yield json.loads(line)

    def remove(self) -> None:
        """Delete the side file (the run's outputs are written)."""
        self.path.unlink(missing_ok=True)

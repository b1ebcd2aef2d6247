"""``train.compile`` against the eager step: interleaved epochs of a compiled and an eager trainer from the same
weights (batch 1, ``config.paper.yaml``'s network and recipe, one thread, the training benchmark's 16 W3–W4
structures). Not part of ``make bench`` (a cold compile takes minutes); docs/performance.md quotes it.

    .venv/bin/python benchmarks/compile_step.py --lmax 4 [--members 5] [--epochs 4]

Prints one JSON line: the compile time (the first compiled epoch's wall time less an eager epoch's; point
``TORCHINDUCTOR_CACHE_DIR`` at an empty folder for a cold compile), each epoch's CPU and wall seconds, the speed-up
of the fastest compiled epoch over the fastest eager one, the largest relative difference of their losses, and
the compilations (``e3hier.training.compiled_step.compile_counts``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, load_config  # noqa: E402
from benchmarks.training import dataset_frames, load_data  # noqa: E402
from e3hier.training.checkpoints import Run  # noqa: E402
from e3hier.training.compiled_step import compile_counts  # noqa: E402
from e3hier.training.ensemble import EnsembleTrainer  # noqa: E402
from e3hier.training.members import member_model  # noqa: E402
from e3hier.training.trainer import Trainer  # noqa: E402


def epoch_function(config, data, lmax: int, members: int, compile_on: bool, folder: str):
    """``epoch(e)``: one training epoch (and the schedule's step) of a trainer or an ensemble; its rows."""
    layout, train, val = data
    cfg = dict(config["train"], device="cpu", batch_size=1, compile=compile_on)
    trainers = []
    for seed in range(members):
        model = member_model(trainers[0].model, seed) if trainers else None
        path = f"{folder}/{compile_on}-{seed}.pt"
        trainers.append(Trainer(str(seed), layout, train, val, lmax, seed, config["model"], cfg, path, model=model))
    if members == 1:
        (trainer,) = trainers

        def epoch(e):
            row = trainer.train_pass(e)
            trainer.scheduler.step()
            return [row]

        return epoch
    ensemble = EnsembleTrainer(trainers, f"{folder}/{compile_on}-ensemble.pt")
    runs = [Run() for _ in trainers]  # no probes: no probe records

    def epoch(e):
        rows = ensemble.train_epoch(e, runs)[0]
        ensemble.scheduler.step()
        return rows

    return epoch


def timed(epoch, e):
    cpu, wall = time.process_time(), time.perf_counter()
    rows = epoch(e)
    return rows, time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmax", type=int, default=4)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", ROOT / "config.paper.yaml")
    torch.set_num_threads(1)
    train_frame, val_frame, _ = dataset_frames()
    data = load_data(train_frame, val_frame, config)
    out = {"lmax": args.lmax, "members": args.members, "steps_per_epoch": len(data[1]), "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as folder:
        epochs = {
            name: epoch_function(config, data, args.lmax, args.members, name == "compiled", folder)
            for name in ("eager", "compiled")
        }
        _, _, eager_wall = timed(epochs["eager"], 1)
        _, compiled_cpu, compiled_wall = timed(epochs["compiled"], 1)  # its first step eager, then it compiles
        out["compile_seconds"] = compiled_wall - eager_wall
        out["first_compiled_epoch_cpu_seconds"] = compiled_cpu  # this process only: the compiler's workers are not
        times, losses = {name: [] for name in epochs}, {name: [] for name in epochs}
        for e in range(2, args.epochs + 2):
            for name, epoch in epochs.items():
                rows, cpu, wall = timed(epoch, e)
                times[name].append({"cpu": cpu, "wall": wall})
                losses[name].append([row["loss"] for row in rows])
    out["epochs"] = times
    fastest = {name: min(t["cpu"] for t in runs) for name, runs in times.items()}
    out["speedup"] = fastest["eager"] / fastest["compiled"]
    compiled, eager = np.array(losses["compiled"]), np.array(losses["eager"])
    out["loss_max_relative_difference"] = float(np.max(np.abs(compiled - eager) / np.abs(eager)))
    out["compile_counts"] = compile_counts()
    out["load_end"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make gpu-check``: one grid point and one ensemble of two seeds, a few epochs on CUDA and on the CPU; the
metrics, test ε and hidden-feature probes must agree to 1e-4 relative (float64, so only the order of the
sums differs). Exits 0 with "skipped: no CUDA device" where torch sees no GPU. A few minutes on a GPU node.

    .venv/bin/python benchmarks/gpu_check.py [--epochs 3] [--compile]

``--compile``: the CUDA runs with ``train.compile`` on (``e3hier.training.compiled_step``), against the eager CPU runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny in-process dataset of the tests

#: Relative tolerance between the CUDA and the CPU run.
RTOL = 1e-4
TIMING = ["structures_per_second", "train_seconds", "wall_seconds"]
POINT = {"lmax_hidden": 2, "output": "full", "seed": 0, "n_train": "all"}


def run(paths: dict, device: str, seeds: list[int], out: Path, epochs: int, compile_step: bool = False) -> list[dict]:
    from conftest import FIT, TINY_MODEL, TINY_TRAIN

    from e3hier.training.train_and_evaluate import run_grid_points

    train = dict(TINY_TRAIN, device=device, dtype="float64", epochs=epochs, compile=compile_step)
    results = run_grid_points(
        [dict(POINT, seed=s) for s in seeds],
        paths["train"],
        paths["val"],
        {"test": paths["test"]},
        FIT,
        TINY_MODEL,
        train,
        {"grid_level": 0},
        [out / f"{device}-{len(seeds)}-{s}" for s in seeds],
    )
    return [r["summary"] for r in results]


def compare(out: Path, seeds: list[int]) -> list[str]:
    """The differences beyond RTOL between the CPU and the CUDA run's tables, one line each."""
    problems = []
    for seed in seeds:
        for table in ("metrics", "eval", "features", "ablation"):
            cpu = pd.read_parquet(out / f"cpu-{len(seeds)}-{seed}" / f"{table}.parquet")
            cuda = pd.read_parquet(out / f"cuda-{len(seeds)}-{seed}" / f"{table}.parquet")
            try:
                pd.testing.assert_frame_equal(
                    cpu.drop(columns=TIMING, errors="ignore"), cuda.drop(columns=TIMING, errors="ignore"), rtol=RTOL
                )
            except AssertionError as error:
                problems.append(f"{len(seeds)} model(s), seed {seed}, {table}.parquet: {error}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="compile the CUDA runs' training step (train.compile)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"gpu-check skipped: no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda})")
        return 0
    from conftest import synthetic_frame

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        paths = {}
        for split, (n, seed) in {"train": (6, 1), "val": (2, 2), "test": (2, 3)}.items():
            paths[split] = out / f"{split}.parquet"
            synthetic_frame(n, seed).to_parquet(paths[split])
        problems = []
        for seeds in ([0], [0, 1]):
            summaries = {
                device: run(paths, device, seeds, out, args.epochs, args.compile and device == "cuda")
                for device in ("cpu", "cuda")
            }
            for cpu, cuda in zip(summaries["cpu"], summaries["cuda"]):
                print(
                    f"{len(seeds)} model(s), seed {cpu['seed']}: test ε cpu {cpu['epsilon_test']:.6f} %, "
                    f"cuda {cuda['epsilon_test']:.6f} %; train s cpu {cpu['train_seconds']:.1f}, "
                    f"cuda {cuda['train_seconds']:.1f}"
                )
            problems += compare(out, seeds)
    for line in problems:
        print(f"gpu-check MISMATCH: {line}", file=sys.stderr)
    print("gpu-check failed" if problems else f"gpu-check passed: CUDA equals the CPU to {RTOL} relative")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

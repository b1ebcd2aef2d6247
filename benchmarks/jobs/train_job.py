"""The train rule's work as Snakemake runs ``scripts/train.py`` (same imports and call), without Snakemake.

Usage: python train_job.py SPEC_JSON — ``{"points": [...], "out_dirs": [...], "train", "val", "tests",
"dft", "model", "train_cfg", "metric", "probes"}``: one grid point, or a block of its seeds trained together.
"""

import json
import sys
from pathlib import Path

from e3hier.training.train_and_evaluate import run_grid_points

spec = json.loads(Path(sys.argv[1]).read_text())
run_grid_points(
    spec["points"],
    spec["train"],
    spec["val"],
    spec["tests"],
    spec["dft"],
    spec["model"],
    spec["train_cfg"],
    spec["metric"],
    spec["out_dirs"],
    analysis_cfg=spec["probes"],
)

# Shared helpers: config validation, structure ids, narrow params, resources.
from pathlib import Path

from snakemake.utils import Paramspace, min_version, validate

from e3hier import workflow as wf

min_version("9.0")


validate(config, schema="../e3hier/schemas/config.schema.yaml")

STRUCTURES = wf.structure_manifest(config["structures"], base_dir=workflow.basedir)
SPLITS = wf.splits(STRUCTURES)
ELEMENTS = wf.elements(STRUCTURES)
TRAIN_SPLIT = "train"
TEST_SPLITS = [s for s in config["train"].get("test_splits", ["test", "test_large"]) if s in SPLITS]
GRID = Paramspace(wf.training_grid(config["train"]), filename_params="*", param_sep="~")
TRAIN_GPU = {"gpu": 1} if wf.training_uses_gpu(config["train"]) else {}


wildcard_constraints:
    structure=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    split=r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*",
    element=r"[A-Z][a-z]?",


def structure_ids(split=None):
    return [s for s, info in STRUCTURES.items() if split is None or info["split"] == split]


def dft_mem_mb(wildcards, attempt):
    """Memory for one DFT job: the 3-centre integrals dominate; doubles on each retry."""
    return wf.dft_mem_mb(STRUCTURES[wildcards.structure]["symbols"], config["dft"]) * attempt


def all_targets():
    return ["results/tables/models.parquet"]

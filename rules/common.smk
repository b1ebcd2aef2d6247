# Shared helpers: config validation, structure ids, narrow params, resources.
import functools
import os
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import Paramspace, min_version, validate

from e3hier import script_imports
from e3hier.training import grid
from e3hier.workflow import config_checks, slurm_nodes
from e3hier.workflow import rules as wf
from e3hier.data.metric import TRAINING_BASE_MB
from e3hier.structures.xyz import STRUCTURE_ID

min_version("9.0")


validate(config, schema="../e3hier/schemas/config.schema.yaml")

# XYZ globs are relative to the working directory (Snakemake's convention for paths in the config)
STRUCTURES = wf.structure_manifest(config["structures"])
wf.check_basis_coverage(STRUCTURES, config["dft"])
SPLITS = wf.splits(STRUCTURES)
# the structure ids, as the only values the per-structure XYZ rule may take
STRUCTURE_PATTERN = wf.literal_pattern(STRUCTURES)
ELEMENTS = wf.elements(STRUCTURES)
TRAIN_SPLIT = "train"
TEST_SPLITS = config["train"].get("test_splits", ["test", "test_large"])
# splits whose roles contradict each other, a functional PySCF does not know: refused before any job
config_checks.check_config(config, STRUCTURES, TRAIN_SPLIT)
# the network has no charge input: every structure it sees must carry the same charge
wf.check_single_charge(
    STRUCTURES,
    [TRAIN_SPLIT, config["train"].get("val_split", "val"), *TEST_SPLITS],
)
GRID = Paramspace(
    grid.training_grid(config["train"]), filename_params="*", param_sep="~"
)
# models of the grid: the analysis and figure jobs read all of them (their memory and time grow with it)
N_MODELS = sum(1 for _ in GRID.instance_patterns)
TRAIN_GPU = {"gpu": 1} if wf.training_uses_gpu(config["train"]) else {}
# torch's CUDA build where training runs on GPUs, its CPU build (no CUDA libraries) elsewhere (docs/cluster.md)
TRAIN_CONDA_ENV = "../envs/train-cuda.yaml" if TRAIN_GPU else "../envs/train.yaml"


def code_inputs(script):
    """The package modules a script runs (inputs: editing one reruns the jobs that run it), as paths
    relative to the working directory, so a moved or copied workflow and run keep their records.
    """
    modules = script_imports.code_files(Path(workflow.basedir) / "scripts" / script)
    return [os.path.relpath(module) for module in modules]


ENSEMBLE_SIZE = config["train"].get("ensemble_size", 1)
SEED_BLOCKS = grid.seed_blocks(config["train"]["seed"], ENSEMBLE_SIZE)


def training_inputs(wildcards):
    """A training job's inputs, once the training set-up passed ``wf.check_training_config``: a
    mistake in it stops the run while the DAG is built (before any job), naming the key; a run
    that trains nothing (e.g. a dataset target) is not held to it."""
    check_training_setup()
    return TRAIN_INPUT


@functools.cache
def check_training_setup():
    wf.check_training_config(config, STRUCTURES, TRAIN_SPLIT)
    config_checks.check_training_plan(config, STRUCTURES)


TRAIN_INPUT = {
    "train": f"results/dataset/{TRAIN_SPLIT}.parquet",
    "val": f"results/dataset/{config['train'].get('val_split', 'val')}.parquet",
    "code": code_inputs("train.py"),
}


def evaluation_inputs(patterns):
    """An evaluate job's inputs: its models (one grid point's pattern, or a block's list) and the test splits."""
    return {
        "model": model_files(patterns, TRAINING_FILES)["model"],
        "training": model_files(patterns, TRAINING_FILES)["training"],
        "tests": expand("results/dataset/{split}.parquet", split=TEST_SPLITS),
        "code": code_inputs("evaluate.py"),
    }


onstart:
    # Slurm accepts a job wider than every node of its partition and leaves it pending forever
    # (reason PartitionConfig): compare the nodes' CPUs (sinfo) with the jobs' before any is
    # submitted (docs/cluster.md). A workflow has one onstart handler: add to this one.
    if (
        workflow.executor_plugin is not None
        and workflow.executor_plugin.name == "slurm"
    ):
        for warning in slurm_nodes.check_slurm_node_sizes(
            slurm_nodes.slurm_job_requests(workflow)
        ):
            logger.warning(f"Slurm node-size check: {warning}")


wildcard_constraints:
    structure=STRUCTURE_ID,
    split=r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*",
    element=r"[A-Z][a-z]?",


def structure_ids(split=None):
    return [
        s for s, info in STRUCTURES.items() if split is None or info["split"] == split
    ]


def structure_source(wildcards):
    """An XYZ structure's source file ({"source": path}); nothing for a generated cluster."""
    recipe = STRUCTURES[wildcards.structure]["recipe"]
    return {"source": recipe["path"]} if recipe["source"] == "xyz" else {}


def dft_mem_mb(wildcards, attempt):
    """Memory (MB) for one DFT job: e3hier.dft.memory's estimate of its peak from the structure's elements
    and the dft block (SCF blocks, the fit's blocked integrals, the fit-error grid; docs/cluster.md,
    "DFT memory"); doubles on each retry."""
    return structure_dft_mem_mb(STRUCTURES[wildcards.structure], attempt)


def predict_dft_mem_mb(wildcards, attempt):
    """``dft_mem_mb`` of a structure of predict.structures (the predict_dft jobs)."""
    return structure_dft_mem_mb(PREDICT_PLANS[wildcards.structure], attempt)


def structure_dft_mem_mb(info, attempt):
    from e3hier.dft.memory import structure_memory_mb

    memory = structure_memory_mb(
        info["symbols"], config["dft"], unrestricted=info["multiplicity"] > 1
    )
    return memory * attempt


def share_profile_settings(source, target):
    """Give rule ``target`` the profile's per-rule settings of rule ``source`` (``set-resources``,
    ``set-threads``: Snakemake keys them by rule name), below any the profile gives ``target`` by name.

    The training rules of ``train.ensemble_size`` > 1 are named per block of seeds, so a profile's
    ``train:`` entry reaches them through this. Reads Snakemake 9's parsed settings (pinned in requirements.lock;
    ``tests/test_slurm.py`` checks the effect in a dry run).
    """
    settings = workflow.resource_settings
    target_rule = workflow.get_rule(target)
    resources = settings._parsed_overwrite_resources
    if source in resources:
        target_rule.resources.update(resources[source])
        target_rule.resources.update(resources.get(target, {}))
    threads = settings._parsed_overwrite_threads
    if source in threads and target not in threads:
        target_rule.resources["_cores"] = threads[source]


mem_mb_per_attempt = wf.mem_mb_per_attempt


ANALYSIS_TABLES = [
    "findings",
    "lmax_gains",
    "evaluation",
    "contributions",
    "training",
    "learning",
    "hierarchy",
    "features",
    "ablation",
    "learning_curve",
    "transfer",
]
LMAX_VALUES = sorted(config["train"]["lmax_hidden"])


def first_point(lmax_hidden, output):
    """The grid point drawn in single-model figures: the study's model, first seed, largest training set."""
    t = config["train"]
    return grid.GridPoint(
        lmax_hidden,
        output,
        seed=t["seed"][0],
        n_train=grid.largest_n_train(t["n_train"]),
    ).name


def density_slice_lmax():
    return sorted({LMAX_VALUES[0], LMAX_VALUES[-1]})


# the output order of the single-output figures and the density slice
FIGURE_OUTPUT = grid.preferred_output(config["train"]["output"])


def density_slice_points():
    return [first_point(lmax, FIGURE_OUTPUT) for lmax in density_slice_lmax()]


def tables(*names):
    return {name: f"results/tables/{name}.parquet" for name in names}


FIGURES = {
    "findings": {"category": "Findings", "inputs": tables("findings")},
    "epsilon_vs_lmax": {"category": "Errors", "inputs": tables("models")},
    "learning_curves": {"category": "Training", "inputs": tables("training")},
    "hierarchy": {
        "category": "Hierarchy",
        "inputs": tables("contributions", "models"),
        "options": {"output": FIGURE_OUTPUT},
    },
    "hidden_features": {
        "category": "Hierarchy",
        "inputs": tables("features"),
        "options": {"output": FIGURE_OUTPUT},
    },
    "output_orders": {
        "category": "Hierarchy",
        "inputs": tables("features"),
        "options": {"output": FIGURE_OUTPUT},
    },
    "ablation": {
        "category": "Hierarchy",
        "inputs": tables("ablation"),
        "options": {"lmax_hidden": LMAX_VALUES[-1]},
    },
    "density": {"category": "Densities", "inputs": tables("density_slice")},
}
if len(TEST_SPLITS) > 1:
    FIGURES["transfer"] = {"category": "Errors", "inputs": tables("transfer")}
if len(config["train"]["n_train"]) > 1:
    FIGURES["data_efficiency"] = {"category": "Errors", "inputs": tables("models")}


def all_targets():
    return [
        "results/structures/manifest.tsv",
        "results/tables/models.parquet",
        "results/tables/findings.html",
    ] + [f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")]


def member_patterns(seeds):
    """The model folders of a block of seeds: the grid's wildcard pattern with each seed filled in."""
    return [GRID.wildcard_pattern.replace("{seed}", str(seed)) for seed in seeds]


def block_pattern(seeds):
    """The log and benchmark name of a block's job (``..._seed~0-1-2_...``), as ``grid.block_name``."""
    return GRID.wildcard_pattern.replace("{seed}", "-".join(map(str, seeds)))


#: A train job's files per model (the test splits are the evaluate job's: adding a test structure retrains nothing).
TRAINING_FILES = {
    "model": "model.pt",
    "metrics": "metrics.parquet",
    "features": "features.parquet",
    "training": "training.json",
}
#: An evaluate job's files per model: the test splits' ε, the ablation, the models table's row.
EVALUATION_FILES = {
    "evaluation": "eval.parquet",
    "ablation": "ablation.parquet",
    "summary": "summary.json",
}


def model_files(patterns, files):
    """A job's ``files`` by kind: one path each for one grid point (a pattern), a list with one path per seed
    for a block of seeds (a list of patterns)."""
    if isinstance(patterns, str):
        return {
            kind: f"results/models/{patterns}/{name}" for kind, name in files.items()
        }
    return {
        kind: [f"results/models/{p}/{name}" for p in patterns]
        for kind, name in files.items()
    }


def reference_lmax(wildcards):
    """Only a capacity-matched point depends on the grid's largest l_max (its parameter count)."""
    return LMAX_VALUES[-1] if wildcards.capacity == "matched" else None


# the predict block (rules/predict.smk): your own structures through a trained model; off while it has none
PREDICT = config.get("predict", {})
PREDICT_MODEL = PREDICT.get("model") or first_point(LMAX_VALUES[-1], FIGURE_OUTPUT)
PREDICT_PLANS = wf.predict_plans(PREDICT, config["structures"])
PREDICT_IDS = list(PREDICT_PLANS)
# the ids of predict.structures, as the only values its structure and DFT jobs take
PREDICT_PATTERN = wf.literal_pattern(PREDICT_IDS)
PREDICT_DIR = f"results/predict/{PREDICT_MODEL}"
PREDICT_KINDS = [".cube"] + (
    [".dft.cube", ".difference.cube"] if PREDICT.get("reference") else []
)


def predict_targets():
    if not PREDICT_IDS:
        return []
    return [f"{PREDICT_DIR}/predictions.tsv"]

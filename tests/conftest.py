"""Shared fixtures: fast DFT settings and a water monomer / dimer."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from e3hier.network.model import MODEL_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]

WATER = (["O", "H", "H"], np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]))


@pytest.fixture(scope="session")
def default_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture
def dft_settings(default_config):
    """The default ``dft`` block with a light grid, for speed."""
    settings = copy.deepcopy(default_config["dft"])
    settings["grid"] = {"radial": 40, "angular": 110, "prune": True, "radial_scheme": "treutler"}
    return settings


@pytest.fixture
def float64_default():
    """Build modules in float64 (their constant buffers too, so rounding cannot hide a wrong kernel)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def water():
    return WATER


@pytest.fixture(scope="session")
def water_dimer():
    symbols, pos = WATER
    second = pos @ np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1.0]]).T + np.array([2.9, 0.1, 0.2])
    return symbols * 2, np.concatenate([pos, second])


def synthetic_frame(n_structures: int, seed: int, n_molecules: int = 2):
    """A dataset table (``e3hier.data.dataset`` schema) with real fit functions and random, smooth coefficients.

    No SCF is run: targets are random but deterministic, which is all the
    training-loop tests need.
    """
    import pandas as pd

    from e3hier.dft.basis import ao_population_factors, build_mol, fit_basis, function_table, make_auxmol
    from e3hier.dft.fit import fit_function_integrals

    rng = np.random.default_rng(seed)
    symbols0, pos0 = WATER
    frames = []
    for i in range(n_structures):
        symbols, blocks = [], []
        for k in range(n_molecules):
            rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
            blocks.append(pos0 @ rotation.T + np.array([2.8 * k, 0.3 * rng.normal(), 0.3 * rng.normal()]))
            symbols += symbols0
        pos = np.concatenate(blocks)
        mol = build_mol(symbols, pos, "cc-pvdz")
        auxmol = make_auxmol(mol, fit_basis("def2-universal-jfit", symbols, True))
        table = function_table(auxmol)
        table["integral"] = fit_function_integrals(auxmol)[table["ao_index"].to_numpy()]
        table["coefficient"] = rng.normal(scale=0.1, size=len(table)) / (1 + table["l"])
        table["reference"] = np.where(table["l"] == 0, 0.2, 0.0)
        table["target"] = table["coefficient"] - table["reference"]
        table["population_factor"] = ao_population_factors(auxmol)[table["ao_index"].to_numpy()]
        for axis, name in enumerate("xyz"):
            table[name] = pos[table["atom"].to_numpy(), axis]
        table["structure"] = f"s{seed}_{i:03d}"
        table["n_electrons"] = mol.nelectron
        table["charge"], table["multiplicity"] = 0, 1
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def synthetic_splits(tmp_path_factory):
    """Parquet files of small synthetic train / val / test splits (water dimers)."""
    folder = tmp_path_factory.mktemp("synthetic")
    paths = {}
    for split, (n, seed) in {"train": (6, 1), "val": (2, 2), "test": (2, 3)}.items():
        paths[split] = folder / f"{split}.parquet"
        synthetic_frame(n, seed).to_parquet(paths[split])
    return paths


#: The study's architecture (``MODEL_DEFAULTS``) with fewer channels and layers and a narrower radial network;
#: without ``node_attributes`` (the study's default), so that a test may pass its own.
TINY_MODEL = {**MODEL_DEFAULTS, "hidden_multiplicities": [8, 4, 4, 2, 2], "layers": 2, "radial_neurons": 16}
del TINY_MODEL["node_attributes"]

TINY_TRAIN = {
    "epochs": 4,
    "batch_size": 2,
    "lr": 0.01,
    "lr_schedule": "exponential",
    "lr_decay": 0.9,
    "lr_min": 1e-4,
    "patience": 0,
    "target_scaling": "shell_rms",
    "dtype": "float32",
    "device": "cpu",
    "checkpoint_every": 1,
    "threads": 1,
}

FIT = {"basis": "cc-pvdz", "fit_auxbasis": "def2-universal-jfit", "decontract": True}


def train_tiny(splits, points, train_cfg, out_dirs, **options):
    """The tiny model trained on synthetic splits (``{"train", "val", "test"}``: dataset paths), ε on grid level 0:
    ``run_grid_point`` of one point (a dict) into one folder, or ``run_grid_points`` of a list of points (one
    grid point, or an ensemble of several seeds) into as many folders; ``options`` go to that function."""
    from e3hier.training import train_and_evaluate

    run = train_and_evaluate.run_grid_point if isinstance(points, dict) else train_and_evaluate.run_grid_points
    test = {"test": splits["test"]}
    return run(
        points, splits["train"], splits["val"], test, FIT, TINY_MODEL, train_cfg, {"grid_level": 0}, out_dirs, **options
    )


def tiny_layout(output: str = "full"):
    """The output layout of the synthetic water data: ``FIT``'s fit functions of H and O, ``output`` block."""
    from e3hier.data.layout import OutputLayout

    return OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], FIT["decontract"], output)


def tiny_train_val(splits, layout):
    """Training and validation samples of synthetic splits for the tiny model (validation with its overlap)."""
    import pandas as pd

    from e3hier.training.samples import load_samples

    train = load_samples(pd.read_parquet(splits["train"]), layout, TINY_MODEL)
    val = load_samples(pd.read_parquet(splits["val"]), layout, TINY_MODEL, with_overlap=True, dft_cfg=FIT)
    return train, val


@pytest.fixture(scope="session")
def tiny_workflow_run(tmp_path_factory):
    """A copy of the workflow (``workflow/``) and a finished tiny run made with it (``run/``), shared by tests."""
    from workflow_helpers import copy_workflow, snakemake

    base = tmp_path_factory.mktemp("tiny")
    snakefile = copy_workflow(base / "workflow")
    snakemake(base / "run", snakefile=snakefile)
    return base

"""Shared fixtures: fast DFT settings and a water monomer / dimer."""

import copy

import numpy as np
import pytest
import yaml
from pathlib import Path

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


@pytest.fixture(scope="session")
def water():
    return WATER


@pytest.fixture(scope="session")
def water_dimer():
    symbols, pos = WATER
    second = pos @ np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1.0]]).T + np.array([2.9, 0.1, 0.2])
    return symbols * 2, np.concatenate([pos, second])

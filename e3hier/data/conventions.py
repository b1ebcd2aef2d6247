"""Frames and rotation matrices shared by the DFT coefficients and the e3nn model.

The stored coefficient layout orders each shell by m = -l..l (see ``e3hier.dft.basis``).
e3nn's ``o3.spherical_harmonics`` and ``Irrep.D_from_matrix`` agree with PySCF's
real spherical harmonics in that layout when Cartesian vectors are written in
e3nn's frame as (y, z, x). A rotation R of the molecule (Cartesian, x y z) is
therefore R_e3nn = P R Pᵀ in the model's frame, and a shell of order l rotates
by ``Irrep(l).D_from_matrix(R_e3nn)``. The tests in ``tests/test_conventions.py``
check this against refitted DFT densities.
"""

from __future__ import annotations

import numpy as np
import torch
from e3nn import o3

#: Cartesian (x, y, z) → e3nn frame (y, z, x): v_e3nn = P @ v_xyz.
XYZ_TO_E3NN = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def positions_to_e3nn(positions: np.ndarray) -> np.ndarray:
    """Cartesian positions (…, 3) in x, y, z → e3nn's frame (y, z, x)."""
    return np.asarray(positions)[..., [1, 2, 0]]


def rotation_to_e3nn(rotation: np.ndarray) -> np.ndarray:
    """A Cartesian rotation matrix expressed in e3nn's frame: P R Pᵀ."""
    return XYZ_TO_E3NN @ np.asarray(rotation) @ XYZ_TO_E3NN.T


def wigner_D(l: int, rotation: np.ndarray) -> np.ndarray:
    """(2l+1)×(2l+1) matrix rotating an m-ordered real shell of order l under Cartesian ``rotation``."""
    r = torch.as_tensor(rotation_to_e3nn(rotation), dtype=torch.float64)
    return o3.Irrep(l, (-1) ** l).D_from_matrix(r).numpy()


def rotate_coefficients(coefficients: np.ndarray, l_values: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Rotate a stored coefficient vector (rows grouped per shell, m = -l..l consecutive)."""
    coefficients = np.asarray(coefficients, dtype=float)
    l_values = np.asarray(l_values)
    out = np.empty_like(coefficients)
    cache: dict[int, np.ndarray] = {}
    i = 0
    while i < len(coefficients):
        l = int(l_values[i])
        if l not in cache:
            cache[l] = wigner_D(l, rotation)
        n = 2 * l + 1
        out[i : i + n] = cache[l] @ coefficients[i : i + n]
        i += n
    return out


def random_rotation(seed: int) -> np.ndarray:
    """A proper rotation matrix drawn uniformly (scipy's Haar measure), seeded."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=seed).as_matrix()

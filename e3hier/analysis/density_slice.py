"""Densities on a plane through a cluster: DFT reference against model predictions.

The plane passes through the centroid of the atoms and is spanned by their two
principal axes (for a water trimer, the plane of the three oxygens). Densities
are rendered from the stored coefficients with the very functions they belong
to (``ao_index`` columns of ``auxmol.eval_gto``), so no m re-ordering is involved.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyscf.data.nist import BOHR

from e3hier.dft.basis import build_mol, fit_basis, make_auxmol


def principal_plane(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid and two orthonormal in-plane axes (Å) of a set of points."""
    centroid = positions.mean(axis=0)
    _, _, vt = np.linalg.svd(positions - centroid)
    return centroid, vt[0], vt[1]


def plane_points(positions: np.ndarray, points: int = 120, margin: float = 2.0):
    """A square grid on the principal plane: ``(u, v, xyz)`` with u, v in Å and xyz (n, 3) in Å."""
    centroid, e1, e2 = principal_plane(positions)
    extent = np.abs((positions - centroid) @ np.stack([e1, e2]).T).max() + margin
    u = np.linspace(-extent, extent, points)
    uu, vv = np.meshgrid(u, u, indexing="xy")
    xyz = centroid + uu.reshape(-1, 1) * e1 + vv.reshape(-1, 1) * e2
    return uu.ravel(), vv.ravel(), xyz


def plane_densities(
    symbols, positions: np.ndarray, table: pd.DataFrame, coefficient_sets: dict, fit: dict, points: int = 120
) -> pd.DataFrame:
    """ρ (e/bohr³) of each coefficient set on the plane; long table ``u, v, label, density``.

    ``coefficient_sets`` maps a label (e.g. ``dft``, ``lmax 0``) to coefficients in ``table``'s row order.
    """
    mol = build_mol(symbols, positions, fit["basis"])
    auxmol = make_auxmol(mol, fit_basis(fit["fit_auxbasis"], symbols, fit["decontract"]))
    u, v, xyz = plane_points(positions, points)
    chi = auxmol.eval_gto("GTOval_sph", xyz / BOHR)[:, table["ao_index"].to_numpy()]
    frames = [
        pd.DataFrame({"u": u, "v": v, "label": label, "density": chi @ np.asarray(c)})
        for label, c in coefficient_sets.items()
    ]
    return pd.concat(frames, ignore_index=True)

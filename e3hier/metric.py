"""The density error ε on a molecular (Becke) grid.

ε = 100·∫|ρ_pred − ρ_ref| dr / N_e, with ρ(r) = Σ_P c_P χ_P(r) and χ the
PySCF-normalised fit functions (``auxmol.eval_gto``). The grid is PySCF's
atom-centred Becke grid, so the cusp and core density are integrated properly,
which a uniform box is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyscf import dft

from e3hier.basis import build_mol, fit_basis, make_auxmol


def epsilon_percent(rho_a: np.ndarray, rho_b: np.ndarray, weights: np.ndarray, n_electrons: float) -> float:
    """ε = 100·∫|ρ_a − ρ_b| dr / N_e on a quadrature grid (weights include the Becke partition)."""
    return float(100.0 * np.sum(weights * np.abs(rho_a - rho_b)) / n_electrons)


def becke_grid(mol, level: int) -> tuple[np.ndarray, np.ndarray]:
    """PySCF's default (Treutler radii, NWChem pruning, Becke partition) grid at ``level`` 0–9.

    Returns coordinates in bohr (n, 3) and weights (n,).
    """
    grids = dft.gen_grid.Grids(mol)
    grids.level = int(level)
    grids.build(with_non0tab=False)
    return grids.coords, grids.weights


@dataclass
class DensityGrid:
    """A structure's quadrature grid and the collocation of its fit functions, computed once.

    ``collocation`` is (n_points, n_functions) with columns in the stored row
    order of the structure's function table; ``l`` gives each column's order.
    """

    weights: np.ndarray
    collocation: np.ndarray
    l: np.ndarray
    n_electrons: float

    def density(self, coefficients: np.ndarray) -> np.ndarray:
        """ρ on the grid (electrons/bohr³)."""
        return self.collocation @ coefficients

    def epsilon(self, predicted: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
        """ε (%) of ``predicted`` against ``reference``; ``mask`` keeps only some functions (e.g. one l)."""
        delta = np.asarray(predicted) - np.asarray(reference)
        if mask is not None:
            delta = np.where(mask, delta, 0.0)
        return float(100.0 * np.sum(self.weights * np.abs(self.collocation @ delta)) / self.n_electrons)

    def epsilon_by_l(self, predicted: np.ndarray, reference: np.ndarray) -> dict[int, float]:
        """ε_l (%): the error of the density of l's functions alone, normalised by N_e."""
        return {int(l): self.epsilon(predicted, reference, self.l == l) for l in np.unique(self.l)}

    def electrons(self, coefficients: np.ndarray) -> float:
        """∫ρ on the grid."""
        return float(self.weights @ self.density(coefficients))


def density_grid(symbols, positions_angstrom, table, dft_settings: dict, level: int, dtype=np.float64) -> DensityGrid:
    """Grid + collocation for one structure whose functions are listed in ``table`` (stored order).

    ``table`` needs the ``ao_index`` and ``l`` columns of ``e3hier.basis.function_table``.
    """
    mol = build_mol(symbols, positions_angstrom, dft_settings["basis"])
    auxmol = make_auxmol(mol, fit_basis(dft_settings["fit_auxbasis"], symbols, dft_settings["decontract"]))
    coords, weights = becke_grid(mol, level)
    chi = auxmol.eval_gto("GTOval_sph", coords)[:, np.asarray(table["ao_index"])]
    return DensityGrid(
        weights=weights.astype(dtype),
        collocation=np.ascontiguousarray(chi, dtype=dtype),
        l=np.asarray(table["l"]),
        n_electrons=float(mol.nelectron),
    )

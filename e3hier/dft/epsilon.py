"""The density error ε on a molecular (Becke) grid: the study's metric, defined once.

ε = 100·∫|ρ_pred − ρ_ref| dr / N_e, with ρ(r) = Σ_P c_P χ_P(r) and χ the
PySCF-normalised fit functions (``auxmol.eval_gto``). The grid is PySCF's
atom-centred Becke grid, so the cusp and core density are integrated properly,
which a uniform box is not. The DFT stage measures its density fits with it
(``e3hier.dft.fit_error``); the trained models are measured on the same grids
(``e3hier.data.metric``).
"""

from __future__ import annotations

import numpy as np
from pyscf import dft


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

"""The fit's error: ε (%) of the fitted density against the SCF density, on a Becke grid, block by block."""

from __future__ import annotations

import numpy as np
from pyscf import dft, gto
from pyscf.dft.gen_grid import BLKSIZE

from e3hier.dft.epsilon import becke_grid, epsilon_percent

#: ``fit_error_percent`` is integrated on PySCF's Becke grid of this level (that of ``metric.grid_level``'s
#: default): it agrees with the SCF grid's value to ~0.2 % of itself at half the points (a water trimer:
#: 0.967 vs 0.969 %), and its collocation of the fit functions is the costliest part of the check.
FIT_ERROR_GRID_LEVEL = 1

#: Grid points per block when ``fit_error_percent`` collocates the SCF basis and the fit functions
#: on the fit-error grid (a multiple of PySCF's ``BLKSIZE``, so the screening masks are those of one
#: whole-grid call): memory (n_ao + n_aux) · 8 B per point of the block, not of the whole grid.
FIT_ERROR_BLOCK_POINTS = 200 * BLKSIZE


def fit_error_percent(
    mol: gto.Mole,
    dm: np.ndarray,
    auxmol: gto.Mole,
    coefficients: np.ndarray,
    block_points: int = FIT_ERROR_BLOCK_POINTS,
) -> float:
    """ε (%) of the fitted density against the SCF density ``dm``, on the level-``FIT_ERROR_GRID_LEVEL`` Becke grid.

    Collocated ``block_points`` points at a time (a multiple of ``BLKSIZE``: the screening masks, which
    skip shells negligible on a block of points, are those of the whole grid; same values to 1e-15).

    Parameters
    ----------
    mol, dm, auxmol
        As in ``e3hier.dft.fit.fit_density``.
    coefficients : numpy.ndarray
        The fit's coefficients, in ``eval_gto`` column order.
    block_points : int, optional
        Grid points collocated at once.
    """
    coords, weights = becke_grid(mol, FIT_ERROR_GRID_LEVEL)
    rho_scf, rho_fit = np.empty(len(weights)), np.empty(len(weights))
    step = max(BLKSIZE, block_points // BLKSIZE * BLKSIZE)
    for start in range(0, len(weights), step):
        block = coords[start : start + step]
        ao = dft.numint.eval_ao(mol, block, non0tab=dft.numint.make_mask(mol, block))
        rho_scf[start : start + step] = dft.numint.eval_rho(mol, ao, dm)
        del ao
        chi = auxmol.eval_gto("GTOval_sph", block, non0tab=dft.numint.make_mask(auxmol, block))
        rho_fit[start : start + step] = chi @ coefficients
    return epsilon_percent(rho_fit, rho_scf, weights, mol.nelectron)

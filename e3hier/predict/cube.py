"""A density of fit coefficients on a cube grid, written as a Gaussian cube file by PySCF's writer
(``pyscf.tools.cubegen.Cube``): VMD, Avogadro, Jmol and ASE read it."""

from __future__ import annotations

import numpy as np
from pyscf import gto
from pyscf.data.nist import BOHR
from pyscf.tools import cubegen

#: Points per block of the density evaluation (bounds the collocation's memory: blocks × functions × 8 bytes).
BLOCK_POINTS = 20_000


def density_at(auxmol: gto.Mole, coefficients_by_ao: np.ndarray, points_bohr: np.ndarray) -> np.ndarray:
    """ρ(r) = Σ_P c_P χ_P(r) at ``points_bohr`` (n, 3), coefficients in ``auxmol.eval_gto`` column order."""
    out = np.empty(len(points_bohr))
    for start in range(0, len(points_bohr), BLOCK_POINTS):
        block = points_bohr[start : start + BLOCK_POINTS]
        out[start : start + BLOCK_POINTS] = auxmol.eval_gto("GTOval_sph", block) @ coefficients_by_ao
    return out


def cube_grid(auxmol: gto.Mole, spacing_angstrom: float, margin_angstrom: float) -> cubegen.Cube:
    """PySCF's cube box around the atoms: ``margin`` beyond them on each side, points ``spacing`` apart."""
    return cubegen.Cube(auxmol, resolution=spacing_angstrom / BOHR, margin=margin_angstrom / BOHR)


def density_on(box: cubegen.Cube, auxmol: gto.Mole, coefficients_by_ao: np.ndarray) -> np.ndarray:
    """ρ of ``coefficients_by_ao`` on the points of ``box``, shaped (nx, ny, nz)."""
    return density_at(auxmol, coefficients_by_ao, box.get_coords()).reshape(box.nx, box.ny, box.nz)


def electrons_on(box: cubegen.Cube, field: np.ndarray) -> float:
    """∫ρ on the box's points: the sum times the voxel volume (e). Near N_e when the box holds the density and
    its points resolve the core; the free atoms' density, which integrates to Σ Z, measures how near."""
    return float(field.sum() * voxel_volume(box))


def write_density_cube(
    path, auxmol: gto.Mole, coefficients_by_ao: np.ndarray, box: cubegen.Cube, comment: str
) -> float:
    """Write ρ of ``coefficients_by_ao`` on ``box`` to ``path`` (PySCF's cube writer); returns ``electrons_on``."""
    field = density_on(box, auxmol, coefficients_by_ao)
    box.write(field, str(path), comment=comment)
    return electrons_on(box, field)


def voxel_volume(box: cubegen.Cube) -> float:
    """The volume of one cube cell, bohr³."""
    return float(abs(np.linalg.det(box.box / np.array([[box.nx - 1], [box.ny - 1], [box.nz - 1]]))))

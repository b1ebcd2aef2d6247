"""The Kohn–Sham SCF of one structure: PySCF's density-fitted RKS / UKS with the ``dft`` config block.

Units: bohr inside PySCF, hartree for energies.
"""

from __future__ import annotations

import numpy as np
from pyscf import dft, gto
from pyscf.dft import radi

#: ``dft.grid.radial_scheme`` → PySCF radial quadrature.
RADIAL_SCHEMES = {
    "treutler": radi.treutler,
    "becke": radi.becke,
    "mura_knowles": radi.mura_knowles,
    "delley": radi.delley,
    "gauss_chebyshev": radi.gauss_chebyshev,
}

#: PySCF's memory budget (MB) for the SCF, set explicitly so that neither ``PYSCF_MAX_MEMORY`` nor a
#: site config changes the job's memory behind ``memory.dft_memory_terms``' back. PySCF's own default: its
#: adaptive buffers (XC grid blocks, DF build and exchange blocks) grow up to about this, and a DF
#: tensor that does not fit in 90 % of what is left goes to a file in ``TMPDIR`` instead (PySCF's rule).
SCF_MAX_MEMORY_MB = 4000


class SCFNotConverged(RuntimeError):
    """The SCF stopped at ``max_cycle`` without meeting ``conv_tol``."""


def configure_grid(grids, grid: dict) -> None:
    """Apply ``dft.grid`` settings (radial × angular points, pruning, radial scheme).

    Parameters
    ----------
    grids : pyscf.dft.gen_grid.Grids
        The grid to set up (changed in place).
    grid : dict
        The ``dft.grid`` block.
    """
    grids.atom_grid = (int(grid["radial"]), int(grid["angular"]))
    grids.radi_method = RADIAL_SCHEMES[grid["radial_scheme"]]
    if not grid["prune"]:
        grids.prune = None


def run_scf(mol: gto.Mole, settings: dict, unrestricted: bool = False):
    """Density-fitted (U)KS SCF with the ``dft`` config block: RKS, or UKS with ``unrestricted`` (the
    same density fitting, grid and convergence settings). Returns the converged object.

    Raises ``SCFNotConverged`` when it does not converge.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        The structure in the SCF basis.
    settings : dict
        The ``dft`` config block.
    unrestricted : bool, optional
        UKS (an open shell) instead of RKS.
    """
    mf = (dft.UKS if unrestricted else dft.RKS)(mol)
    mf.xc = settings["xc"]
    mf = mf.density_fit(auxbasis=settings["scf_auxbasis"])
    mf.max_memory = mf.with_df.max_memory = SCF_MAX_MEMORY_MB
    configure_grid(mf.grids, settings["grid"])
    mf.conv_tol = float(settings["conv_tol"])
    mf.max_cycle = int(settings["max_cycle"])
    cycles = {"n": 0}

    def count(envs):
        cycles["n"] = envs.get("cycle", cycles["n"]) + 1

    mf.callback = count
    mf.kernel()
    mf.scf_cycles = cycles["n"]
    if not mf.converged:
        raise SCFNotConverged(
            f"SCF did not converge in {settings['max_cycle']} cycles (conv_tol {settings['conv_tol']})"
        )
    return mf


def total_density_matrix(dm: np.ndarray) -> np.ndarray:
    """The total (spin-summed) density matrix: RKS's ``make_rdm1`` as it is, UKS's (α, β) pair summed.

    Parameters
    ----------
    dm : numpy.ndarray
        ``make_rdm1()`` of the SCF: n_ao × n_ao, or 2 × n_ao × n_ao.
    """
    dm = np.asarray(dm)
    return dm[0] + dm[1] if dm.ndim == 3 else dm


#: Names ``DensityFit.scf_method`` may take: the kind of Kohn–Sham SCF that ran (PySCF's class).
SCF_METHODS = ("UKS", "ROKS", "RKS")

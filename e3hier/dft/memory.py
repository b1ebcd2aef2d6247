"""Memory of one DFT job: a model of its peak by phase (SCF, fit, fit error), and the dft rule's ``mem_mb``.

The terms follow how PySCF sizes its arrays and blocks from its budget (``scf.SCF_MAX_MEMORY_MB``) and
how ``fit`` and ``fit_error`` block theirs; the counts come from a structure's elements alone, so the
workflow sizes every DFT job before any runs.
"""

from __future__ import annotations

import functools
import json
from collections import Counter

import numpy as np
from pyscf import dft, gto
from pyscf.dft.gen_grid import BLKSIZE

from e3hier.dft.basis import element_basis
from e3hier.dft.fit import FIT_BLOCK_MB
from e3hier.dft.fit_error import FIT_ERROR_BLOCK_POINTS, FIT_ERROR_GRID_LEVEL
from e3hier.dft.scf import SCF_MAX_MEMORY_MB, configure_grid

#: Memory model of one DFT job (``dft_memory_terms``), in MB unless named otherwise.
#: Resident size of the job's Python process before any array: interpreter, numpy/SciPy/PySCF/libxc,
#: pyarrow, ASE and e3hier loaded (measured: 142 MB), plus the small arrays of a one-water job.
BASELINE_MB = 200
#: n_ao × n_ao matrices alive during the SCF: overlap, core Hamiltonian, density, Fock, J, K, XC
#: potential, orbitals, and DIIS's 8 Fock and 8 error vectors.
SCF_MATRICES = 40
#: An unrestricted (UKS, open-shell) SCF keeps each of those matrices once per spin (Fock, density,
#: orbitals, exchange, XC potential, DIIS vectors).
UNRESTRICTED_MATRIX_FACTOR = 2
#: Doubles per SCF grid point: coordinates and weight, and as much again while the Becke partition builds them.
SCF_GRID_DOUBLES = 8
#: n_aux × n_aux matrices of the fit alive at once: the metric, its eigenvectors, LAPACK's workspace
#: (2 n²) and the pseudo-inverse with its temporary.
FIT_METRIC_MATRICES = 6
#: Doubles per fit-error grid point: coordinates, weight, and the two densities.
FIT_ERROR_GRID_DOUBLES = 6
#: PySCF's rules and blocks (PySCF 2.x, ``df.df.DF.build``, ``df.incore.cholesky_eri``, ``df.df_jk.get_jk``,
#: ``dft.numint.NumInt.block_loop``): the DF tensor is kept in memory if it takes under 90 % of the
#: free budget; its build holds two buffers each ≤ 1/3 of what is left; exchange holds two blocks of
#: ≤ ``blockdim`` (240) × n_ao² doubles each ≤ 22 % of the free budget; an XC block is ≤ 1200 × BLKSIZE
#: points of (components + 1) × n_ao doubles (sized on components + 1; we count one more for the
#: density matrix product of the first cycle).
PYSCF_DF_INCORE_FRACTION = 0.9
PYSCF_DF_BLOCKDIM = 240
PYSCF_K_BLOCK_FRACTION = 0.22
PYSCF_XC_MAX_BLOCKS = 1200
#: The largest fit shell (l = 6) in functions: a block of ``fit_density`` holds at least one shell.
MAX_SHELL_FUNCTIONS = 13
#: Headroom on the sum: PySCF's budget is soft (a water tetramer's SCF given 240 / 300 MB peaked at
#: 246 / 314 MB) and the allocator keeps some freed memory.
MEMORY_MARGIN = 1.1


def dft_memory_terms(
    n_ao: int,
    n_aux_scf: int,
    n_aux_fit: int,
    n_grid_scf: int,
    n_grid_fit_error: int,
    *,
    hybrid: bool = True,
    ao_components: int = 4,
    unrestricted: bool = False,
    scf_max_memory_mb: float | None = None,
    fit_block_mb: float | None = None,
    fit_error_block_points: int | None = None,
) -> dict[str, float]:
    """Peak memory (MB) of one DFT job (``reference_density``) by term, and its ``total``.

    The phases run one after another and free their arrays (the SCF's DF tensor and grid too), so the
    peak is ``baseline`` plus the largest phase (times ``MEMORY_MARGIN``):

    - ``scf``: n_ao² matrices, the XC grid, the DF tensor (n_aux_scf · n_ao(n_ao+1)/2 doubles) when PySCF
      keeps it in memory, and the largest of PySCF's working blocks (DF build buffers, exchange blocks
      of the hybrid, the AO values of one XC grid block), each sized as PySCF sizes it from the free
      part of ``scf_max_memory_mb``. A DF tensor too large for that budget goes to a file and is read in
      blocks (``scf_df_on_disk`` = 1; its size is then disk, ``scf_df_tensor_disk``, not memory).
    - ``fit``: the metric's n_aux_fit² matrices and one block of packed 3-centre integrals (≤ ``fit_block_mb``).
    - ``fit_error``: the level-1 grid and the AO and fit-function values of one block of its points.
    ``fit`` and ``fit_error`` also count the density matrix (three n_ao² arrays with its temporaries).

    ``ao_components`` is 1 for an LDA functional and 4 (value and gradient) for a GGA or meta-GGA;
    ``unrestricted`` (an open-shell UKS SCF) counts the SCF's n_ao² matrices once per spin
    (``UNRESTRICTED_MATRIX_FACTOR``); the fit sees only the total density matrix. The budgets default to
    ``scf.SCF_MAX_MEMORY_MB``, ``fit.FIT_BLOCK_MB`` and ``fit_error.FIT_ERROR_BLOCK_POINTS``.

    Parameters
    ----------
    n_ao : int
        SCF basis functions.
    n_aux_scf : int
        Functions of the SCF's density-fitting basis (``dft.scf_auxbasis``).
    n_aux_fit : int
        Fit functions (``dft.fit_auxbasis``).
    n_grid_scf : int
        Points of the SCF's XC grid.
    n_grid_fit_error : int
        Points of the fit-error grid.
    hybrid : bool, optional
        The functional has exact exchange (PySCF's exchange blocks count).
    ao_components : int, optional
        AO values per grid point: 1 (LDA), 4 (GGA, meta-GGA).
    unrestricted : bool, optional
        An open-shell UKS SCF.
    scf_max_memory_mb, fit_block_mb, fit_error_block_points : optional
        The budgets; None for the defaults named above.
    """
    scf_max_memory_mb = SCF_MAX_MEMORY_MB if scf_max_memory_mb is None else scf_max_memory_mb
    fit_block_mb = FIT_BLOCK_MB if fit_block_mb is None else fit_block_mb
    fit_error_block_points = FIT_ERROR_BLOCK_POINTS if fit_error_block_points is None else fit_error_block_points
    mb = 8 / 1e6  # one double
    n_pair = n_ao * (n_ao + 1) // 2
    t = {"baseline": float(BASELINE_MB)}
    t["scf_matrices"] = SCF_MATRICES * (UNRESTRICTED_MATRIX_FACTOR if unrestricted else 1) * n_ao**2 * mb
    t["scf_grid"] = SCF_GRID_DOUBLES * n_grid_scf * mb
    resident = t["baseline"] + t["scf_matrices"] + t["scf_grid"]
    df_tensor = n_aux_scf * n_pair * mb
    free = max(scf_max_memory_mb - resident, 0.0)
    on_disk = not df_tensor < PYSCF_DF_INCORE_FRACTION * free
    t["scf_df_on_disk"] = float(on_disk)
    t["scf_df_tensor_disk" if on_disk else "scf_df_tensor"] = df_tensor
    if on_disk:  # built in blocks within the budget, read back in blocks of the exchange loop
        t["scf_df_build"] = free
    else:
        t["scf_df_build"] = (
            2 * min(df_tensor, max(free - df_tensor - n_aux_scf**2 * mb, 0.0) / 3) + 2 * n_aux_scf**2 * mb
        )
        free -= df_tensor
    if hybrid:
        rows = max(4, int(min(PYSCF_DF_BLOCKDIM, PYSCF_K_BLOCK_FRACTION * free / (n_ao**2 * mb))))
        t["scf_exchange_block"] = 2 * rows * n_ao**2 * mb + (2 * rows * n_pair * mb if on_disk else 0.0)
    xc_blocks = max(
        4, min(int(free / ((ao_components + 1) * n_ao * BLKSIZE * mb)), n_grid_scf // BLKSIZE + 1, PYSCF_XC_MAX_BLOCKS)
    )
    t["scf_xc_block"] = (ao_components + 2) * xc_blocks * BLKSIZE * n_ao * mb
    working = max(t["scf_df_build"], t.get("scf_exchange_block", 0.0), t["scf_xc_block"])
    t["scf"] = t["scf_matrices"] + t["scf_grid"] + t.get("scf_df_tensor", 0.0) + working

    t["fit_metric"] = FIT_METRIC_MATRICES * n_aux_fit**2 * mb
    per_block = max(int(fit_block_mb / (n_pair * mb)), MAX_SHELL_FUNCTIONS)
    t["fit_3c_block"] = min(per_block, n_aux_fit) * n_pair * mb
    t["fit"] = t["fit_metric"] + t["fit_3c_block"] + 3 * n_ao**2 * mb
    points = min(n_grid_fit_error, fit_error_block_points)
    t["fit_error_grid"] = FIT_ERROR_GRID_DOUBLES * n_grid_fit_error * mb
    t["fit_error_block"] = points * (n_ao + n_aux_fit) * mb
    t["fit_error"] = t["fit_error_grid"] + t["fit_error_block"] + 3 * n_ao**2 * mb
    t["total"] = MEMORY_MARGIN * (t["baseline"] + max(t["scf"], t["fit"], t["fit_error"]))
    return t


@functools.cache
def _element_functions(basis_name: str, element: str, decontract: bool) -> int:
    """Spherical functions of one atom in a basis (PySCF counts them: shells may hold several contractions)."""
    basis = {element: element_basis(basis_name, element, decontract)}
    return gto.M(atom=[(element, (0.0, 0.0, 0.0))], basis=basis, spin=None, verbose=0).nao_nr()


@functools.cache
def _element_grid_points(element: str, basis_name: str, grid_json: str | None) -> int:
    """Points of one atom's grid before the Becke partition (an upper bound on its share of the molecule's):
    the ``dft.grid`` settings (JSON), or ``None`` for the fit-error grid of level ``FIT_ERROR_GRID_LEVEL``."""
    atom = gto.M(atom=[(element, (0.0, 0.0, 0.0))], basis=basis_name, spin=None, verbose=0)
    grids = dft.gen_grid.Grids(atom)
    if grid_json is None:
        grids.level = FIT_ERROR_GRID_LEVEL
    else:
        configure_grid(grids, json.loads(grid_json))
    return sum(
        len(w)
        for _, w in grids.gen_atomic_grids(atom, grids.atom_grid, grids.radi_method, grids.level, grids.prune).values()
    )


@functools.cache
def _composition_counts(composition: tuple, settings_json: str) -> dict:
    settings = json.loads(settings_json)
    grid_json = json.dumps(settings["grid"], sort_keys=True)

    def total(count):
        return sum(n * count(el) for el, n in composition)

    xc_type = dft.libxc.xc_type(settings["xc"])
    return {
        "n_ao": total(lambda el: _element_functions(settings["basis"], el, False)),
        "n_aux_scf": total(lambda el: _element_functions(settings["scf_auxbasis"], el, False)),
        "n_aux_fit": total(lambda el: _element_functions(settings["fit_auxbasis"], el, settings["decontract"])),
        "n_grid_scf": total(lambda el: _element_grid_points(el, settings["basis"], grid_json)),
        "n_grid_fit_error": total(lambda el: _element_grid_points(el, settings["basis"], None)),
        "hybrid": bool(dft.libxc.is_hybrid_xc(settings["xc"])),
        "ao_components": 1 if xc_type in ("LDA", "HF") else 4,
    }


def structure_counts(symbols, settings: dict) -> dict:
    """``dft_memory_terms``' arguments for a structure: basis-function and grid-point counts from its elements
    and the ``dft`` config block (no integrals; cached by composition, so the thousands of same-sized
    clusters of a DAG cost one evaluation).

    Parameters
    ----------
    symbols : sequence of str
        Element symbols of the structure's atoms.
    settings : dict
        The ``dft`` config block.
    """
    keys = ("xc", "basis", "scf_auxbasis", "fit_auxbasis", "decontract", "grid")
    composition = tuple(sorted(Counter(symbols).items()))
    return dict(_composition_counts(composition, json.dumps({k: settings[k] for k in keys}, sort_keys=True)))


def structure_memory_terms(symbols, settings: dict, **options) -> dict[str, float]:
    """``dft_memory_terms`` of a structure (``options``: its budgets).

    Parameters
    ----------
    symbols, settings
        As in ``structure_counts``.
    **options
        The budgets, as in ``dft_memory_terms``.
    """
    return dft_memory_terms(**structure_counts(symbols, settings), **options)


def structure_memory_mb(symbols, settings: dict, **options) -> int:
    """Peak memory (MB, rounded up) of the DFT job of a structure with these elements: the dft rule's ``mem_mb``.

    Parameters
    ----------
    symbols, settings, **options
        As in ``structure_memory_terms``.
    """
    return int(np.ceil(structure_memory_terms(symbols, settings, **options)["total"]))

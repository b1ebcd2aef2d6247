"""Reference densities: density-fitted Kohn–Sham SCF and a Coulomb-metric fit of its density.

Units: bohr inside PySCF, Å in ``Atoms``, hartree for energies, electrons for charges.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyscf import df, dft, gto, lib
from pyscf.ao2mo.outcore import balance_partition
from pyscf.dft import radi
from pyscf.dft.gen_grid import BLKSIZE

from e3hier.basis import FUNCTION_COLUMNS, build_mol, element_basis, fit_basis, function_columns, make_auxmol
from e3hier.metric import becke_grid, epsilon_percent

#: ``dft.grid.radial_scheme`` → PySCF radial quadrature.
RADIAL_SCHEMES = {
    "treutler": radi.treutler,
    "becke": radi.becke,
    "mura_knowles": radi.mura_knowles,
    "delley": radi.delley,
    "gauss_chebyshev": radi.gauss_chebyshev,
}

#: Eigenvalues of the Coulomb metric below this are dropped in the pseudo-inverse.
METRIC_EIGENVALUE_CUTOFF = 1e-10

#: ``fit_error_percent`` is integrated on PySCF's Becke grid of this level (that of ``metric.grid_level``'s
#: default): it agrees with the SCF grid's value to ~0.2 % of itself at half the points (a water trimer:
#: 0.967 vs 0.969 %), and its collocation of the fit functions is the costliest part of the check.
FIT_ERROR_GRID_LEVEL = 1

#: PySCF's memory budget (MB) for the SCF, set explicitly so that neither ``PYSCF_MAX_MEMORY`` nor a
#: site config changes the job's memory behind ``dft_memory_mb``'s back. PySCF's own default: its
#: adaptive buffers (XC grid blocks, DF build and exchange blocks) grow up to about this, and a DF
#: tensor that does not fit in 90 % of what is left goes to a file in ``TMPDIR`` instead (PySCF's rule).
SCF_MAX_MEMORY_MB = 4000

#: Most memory (MB) one block of packed 3-centre integrals (μν|P), μ ≥ ν, takes in ``fit_density``:
#: the fit walks the fit functions' shells in blocks of this size, so its memory does not grow with
#: n_ao² · n_aux (6.9 GB for 10 waters in aug-cc-pVTZ) but stays below this (plus one shell's worth).
FIT_BLOCK_MB = 256

#: Grid points per block when ``fit_error_percent`` collocates the SCF basis and the fit functions
#: on the fit-error grid (a multiple of PySCF's ``BLKSIZE``, so the screening masks are those of one
#: whole-grid call): memory (n_ao + n_aux) · 8 B per point of the block, not of the whole grid.
FIT_ERROR_BLOCK_POINTS = 200 * BLKSIZE


#: Memory model of one DFT job (``dft_memory_mb``), in MB unless named otherwise.
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


def dft_memory_terms(n_ao: int, n_aux_scf: int, n_aux_fit: int, n_grid_scf: int, n_grid_fit_error: int, *,
                     hybrid: bool = True, ao_components: int = 4, unrestricted: bool = False,
                     scf_max_memory_mb: float | None = None, fit_block_mb: float | None = None,
                     fit_error_block_points: int | None = None) -> dict[str, float]:
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
    (``UNRESTRICTED_MATRIX_FACTOR``); the fit sees only the total density matrix. The budgets default to this module's ``SCF_MAX_MEMORY_MB``, ``FIT_BLOCK_MB`` and ``FIT_ERROR_BLOCK_POINTS``.
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
        t["scf_df_build"] = 2 * min(df_tensor, max(free - df_tensor - n_aux_scf**2 * mb, 0.0) / 3) + 2 * n_aux_scf**2 * mb
        free -= df_tensor
    if hybrid:
        rows = max(4, int(min(PYSCF_DF_BLOCKDIM, PYSCF_K_BLOCK_FRACTION * free / (n_ao**2 * mb))))
        t["scf_exchange_block"] = 2 * rows * n_ao**2 * mb + (2 * rows * n_pair * mb if on_disk else 0.0)
    xc_blocks = max(4, min(int(free / ((ao_components + 1) * n_ao * BLKSIZE * mb)), n_grid_scf // BLKSIZE + 1,
                           PYSCF_XC_MAX_BLOCKS))  # fmt: skip
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


def dft_memory_mb(n_ao: int, n_aux_scf: int, n_aux_fit: int, n_grid_scf: int, n_grid_fit_error: int,
                  **options) -> int:
    """Peak memory (MB, rounded up) of one DFT job: ``dft_memory_terms``' total."""
    return int(np.ceil(dft_memory_terms(n_ao, n_aux_scf, n_aux_fit, n_grid_scf, n_grid_fit_error, **options)["total"]))


@functools.lru_cache(maxsize=None)
def _element_functions(basis_name: str, element: str, decontract: bool) -> int:
    """Spherical functions of one atom in a basis (PySCF counts them: shells may hold several contractions)."""
    basis = {element: element_basis(basis_name, element, decontract)}
    return gto.M(atom=[(element, (0.0, 0.0, 0.0))], basis=basis, spin=None, verbose=0).nao_nr()


@functools.lru_cache(maxsize=None)
def _element_grid_points(element: str, basis_name: str, grid_json: str | None) -> int:
    """Points of one atom's grid before the Becke partition (an upper bound on its share of the molecule's):
    the ``dft.grid`` settings (JSON), or ``None`` for the fit-error grid of level ``FIT_ERROR_GRID_LEVEL``."""
    atom = gto.M(atom=[(element, (0.0, 0.0, 0.0))], basis=basis_name, spin=None, verbose=0)
    grids = dft.gen_grid.Grids(atom)
    if grid_json is None:
        grids.level = FIT_ERROR_GRID_LEVEL
    else:
        configure_grid(grids, json.loads(grid_json))
    return sum(len(w) for _, w in grids.gen_atomic_grids(atom, grids.atom_grid, grids.radi_method, grids.level,
                                                         grids.prune).values())  # fmt: skip


@functools.lru_cache(maxsize=None)
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
    clusters of a DAG cost one evaluation)."""
    keys = ("xc", "basis", "scf_auxbasis", "fit_auxbasis", "decontract", "grid")
    composition = tuple(sorted(Counter(symbols).items()))
    return dict(_composition_counts(composition, json.dumps({k: settings[k] for k in keys}, sort_keys=True)))


def structure_memory_terms(symbols, settings: dict, **options) -> dict[str, float]:
    """``dft_memory_terms`` of a structure (``options``: its budgets)."""
    return dft_memory_terms(**structure_counts(symbols, settings), **options)


def structure_memory_mb(symbols, settings: dict, **options) -> int:
    """Peak memory (MB, rounded up) of the DFT job of a structure with these elements: the dft rule's ``mem_mb``."""
    return int(np.ceil(structure_memory_terms(symbols, settings, **options)["total"]))


class SCFNotConverged(RuntimeError):
    """The SCF stopped at ``max_cycle`` without meeting ``conv_tol``."""


def configure_grid(grids, grid: dict) -> None:
    """Apply ``dft.grid`` settings (radial × angular points, pruning, radial scheme)."""
    grids.atom_grid = (int(grid["radial"]), int(grid["angular"]))
    grids.radi_method = RADIAL_SCHEMES[grid["radial_scheme"]]
    if not grid["prune"]:
        grids.prune = None


def run_scf(mol: gto.Mole, settings: dict, unrestricted: bool = False):
    """Density-fitted (U)KS SCF with the ``dft`` config block: RKS, or UKS with ``unrestricted`` (the
    same density fitting, grid and convergence settings). Returns the converged object.

    Raises ``SCFNotConverged`` when it does not converge.
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
        raise SCFNotConverged(f"SCF did not converge in {settings['max_cycle']} cycles (conv_tol {settings['conv_tol']})")
    return mf


def fit_function_integrals(auxmol: gto.Mole) -> np.ndarray:
    """q_P = ∫ χ_P(r) dr for every (PySCF-normalised) fit function, in ``eval_gto`` column order.

    Only s functions integrate to a non-zero value. For a primitive s shell
    χ(r) = χ(0)·exp(-α r²), so ∫χ = χ(0)·(π/α)^{3/2}; χ(0) is read from
    ``eval_gto`` itself so no normalisation convention is assumed.
    """
    q = np.zeros(auxmol.nao_nr())
    ao_loc = auxmol.ao_loc_nr()
    for ib in range(auxmol.nbas):
        if auxmol.bas_angular(ib) != 0:
            continue
        centre = auxmol.atom_coord(auxmol.bas_atom(ib))[None, :]
        exps = auxmol.bas_exp(ib)
        coeffs = auxmol._libcint_ctr_coeff(ib)[:, 0]
        # value of each primitive at the centre, scaled like eval_gto
        value_at_centre = auxmol.eval_gto("GTOval_sph", centre, shls_slice=(ib, ib + 1))[0, 0]
        shape = coeffs / coeffs.sum() if len(exps) > 1 else np.ones(1)
        q[ao_loc[ib]] = value_at_centre * float(np.sum(shape * (np.pi / exps) ** 1.5))
    return q


def coulomb_pseudo_inverse(metric: np.ndarray, cutoff: float = METRIC_EIGENVALUE_CUTOFF) -> np.ndarray:
    """J⁺ by eigendecomposition, dropping eigenvalues below ``cutoff``."""
    w, v = np.linalg.eigh(metric)
    keep = w > cutoff
    return (v[:, keep] / w[keep]) @ v[:, keep].T


def packed_density(dm: np.ndarray) -> np.ndarray:
    """D packed for (μν|P) with μ ≥ ν (PySCF's ``s2ij`` layout): D_μν + D_νμ off the diagonal, D_μμ on it.

    Then Σ_μν (μν|P) D_μν = Σ_{μ≥ν} (μν|P) packed_μν for any D, as (μν|P) = (νμ|P) (as in PySCF's
    ``df_jk.get_jk``).
    """
    dm = np.asarray(dm)
    packed = lib.pack_tril(dm + dm.T)
    diagonal = np.arange(dm.shape[0])
    packed[diagonal * (diagonal + 1) // 2 + diagonal] *= 0.5
    return packed


def aux_shell_blocks(mol: gto.Mole, auxmol: gto.Mole, block_mb: float = FIT_BLOCK_MB) -> list[tuple[int, int]]:
    """Ranges ``(first, end)`` of ``auxmol``'s shells whose packed (μν|P) take at most ``block_mb`` MB each
    (a shell larger than that alone makes a block)."""
    nao = mol.nao_nr()
    per_block = max(1, int(block_mb * 1e6 / (8 * nao * (nao + 1) // 2)))
    return [(first, end) for first, end, _ in balance_partition(auxmol.ao_loc_nr(), per_block)]


def fit_projection(mol: gto.Mole, dm: np.ndarray, auxmol: gto.Mole, block_mb: float = FIT_BLOCK_MB) -> np.ndarray:
    """(P|ρ) = Σ_μν (μν|P) D_μν, from the packed (``s2ij``) integrals, block by block of fit shells."""
    nao = mol.nao_nr()
    n_pair = nao * (nao + 1) // 2
    aux_loc = auxmol.ao_loc_nr()
    blocks = aux_shell_blocks(mol, auxmol, block_mb)
    dm_packed = packed_density(dm)
    buffer = np.empty(n_pair * max(aux_loc[end] - aux_loc[first] for first, end in blocks))
    projection = np.empty(auxmol.nao_nr())
    for first, end in blocks:
        integrals = df.incore.aux_e2(mol, auxmol, intor="int3c2e", aosym="s2ij",
                                     shls_slice=(0, mol.nbas, 0, mol.nbas, first, end), out=buffer)  # fmt: skip
        projection[aux_loc[first] : aux_loc[end]] = dm_packed @ integrals
    return projection


def fit_density(mol: gto.Mole, dm: np.ndarray, auxmol: gto.Mole, n_electrons: float | None = None,
                integrals: np.ndarray | None = None, block_mb: float = FIT_BLOCK_MB):
    """Coulomb-metric fit of density matrix ``dm`` onto ``auxmol``'s functions.

    d = J⁺ (P|μν) D_μν, then the charge constraint Σ q_P d'_P = N_e by a
    Lagrange multiplier: d' = d + λ J⁺ q. With ``n_electrons=None`` the
    unconstrained fit is returned. ``integrals`` (q, from ``fit_function_integrals``) may be passed
    when the caller already has them. Coefficients are in ``eval_gto`` column order.
    The 3-centre integrals are never held whole: ``fit_projection`` takes them in blocks of
    ``block_mb`` MB.

    Returns ``(coefficients, fitted_electrons_before_constraint)``.
    """
    metric = auxmol.intor("int2c2e")
    projection = fit_projection(mol, dm, auxmol, block_mb)
    j_inv = coulomb_pseudo_inverse(metric)
    del metric
    d = j_inv @ projection
    q = fit_function_integrals(auxmol) if integrals is None else integrals
    fitted = float(q @ d)
    if n_electrons is None:
        return d, fitted
    j_inv_q = j_inv @ q
    lam = (n_electrons - fitted) / float(q @ j_inv_q)
    return d + lam * j_inv_q, fitted


def total_density_matrix(dm: np.ndarray) -> np.ndarray:
    """The total (spin-summed) density matrix: RKS's ``make_rdm1`` as it is, UKS's (α, β) pair summed."""
    dm = np.asarray(dm)
    return dm[0] + dm[1] if dm.ndim == 3 else dm


#: Names ``DensityFit.scf_method`` may take: the kind of Kohn–Sham SCF that ran (PySCF's class).
SCF_METHODS = ("UKS", "ROKS", "RKS")


@dataclass
class DensityFit:
    """A structure's SCF result and fitted density (coefficients in the stored, m-ordered layout)."""

    table: pa.Table  # function_columns + integral + coefficient
    energy_hartree: float
    converged: bool
    scf_cycles: int
    n_electrons: int
    charge: int
    multiplicity: int
    scf_method: str  # one of SCF_METHODS
    fitted_electrons: float
    fit_error_percent: float
    wall_seconds: float


def fit_error_percent(mol: gto.Mole, dm: np.ndarray, auxmol: gto.Mole, coefficients: np.ndarray,
                      block_points: int = FIT_ERROR_BLOCK_POINTS) -> float:
    """ε (%) of the fitted density against the SCF density ``dm``, on the level-``FIT_ERROR_GRID_LEVEL`` Becke grid.

    Collocated ``block_points`` points at a time (a multiple of ``BLKSIZE``: the screening masks, which
    skip shells negligible on a block of points, are those of the whole grid; same values to 1e-15).
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


def arrow_column(values: np.ndarray) -> pa.Array:
    """A numpy column (int64, float64 or str objects) as an Arrow array, the type ``pa.array`` would give.

    Built from its buffers: ``pa.array`` imports pandas (~0.25 s, 40 MB) to check for pandas types,
    and the DFT job has no other use for pandas.
    """
    if values.dtype == object:
        encoded = [str(v).encode() for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets),
                                                                  pa.py_buffer(b"".join(encoded))])  # fmt: skip
    arrow_type = {np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64()}[values.dtype]
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def reference_density(symbols, positions_angstrom, settings: dict, charge: int = 0,
                      multiplicity: int = 1) -> DensityFit:  # fmt: skip
    """SCF + constrained density fit of one structure, with the ``dft`` config block.

    ``charge`` (e) and ``multiplicity`` (2S + 1) set the electrons: a singlet runs RKS, an open shell
    (multiplicity > 1) UKS. The fit, its charge constraint (Σ Z − charge electrons) and its error
    are of the total density, α + β.
    """
    start = time.perf_counter()
    mol = build_mol(symbols, positions_angstrom, settings["basis"], charge=int(charge), spin=int(multiplicity) - 1)
    mf = run_scf(mol, settings, unrestricted=multiplicity > 1)
    dm = total_density_matrix(mf.make_rdm1())
    energy, converged, scf_cycles = float(mf.e_tot), bool(mf.converged), int(mf.scf_cycles)
    scf_method = next(name for name in SCF_METHODS if mf.istype(name))
    # the SCF's DF tensor and grid are not needed by the fit: free them before it (``dft_memory_mb``)
    mf.with_df.reset()
    mf.grids.reset()
    del mf
    auxmol = make_auxmol(mol, fit_basis(settings["fit_auxbasis"], symbols, settings["decontract"]))
    integrals = fit_function_integrals(auxmol)
    coeff, fitted = fit_density(mol, dm, auxmol, n_electrons=mol.nelectron, integrals=integrals)
    fit_error = fit_error_percent(mol, dm, auxmol, coeff)

    columns = function_columns(auxmol)
    columns["integral"] = integrals[columns["ao_index"]]
    columns["coefficient"] = coeff[columns["ao_index"]]
    return DensityFit(
        table=pa.Table.from_arrays([arrow_column(v) for v in columns.values()], names=list(columns)),
        energy_hartree=energy,
        converged=converged,
        scf_cycles=scf_cycles,
        n_electrons=int(mol.nelectron),
        charge=int(mol.charge),
        multiplicity=int(mol.spin) + 1,
        scf_method=scf_method,
        fitted_electrons=fitted,
        fit_error_percent=fit_error,
        wall_seconds=time.perf_counter() - start,
    )


def dft_job(structure_id: str, symbols, positions_angstrom, settings: dict, charge: int = 0,
            multiplicity: int = 1) -> tuple:  # fmt: skip
    """One structure's DFT rule: ``(function table with coefficients (``pyarrow.Table``), summary dict)``.

    ``charge`` and ``multiplicity`` as in ``reference_density`` (ValueError naming the structure when
    they do not fit its electron count); the summary records both. With
    ``settings["on_failure"] == "skip"`` a non-converged SCF gives an empty
    table and a summary with ``skipped: true``; with ``error`` it raises,
    naming the structure.
    """
    from e3hier.io import package_versions
    from e3hier.structures.charge_spin import check_charge_multiplicity

    check_charge_multiplicity(symbols, charge, multiplicity, f"structure {structure_id}")
    base = {"structure": structure_id, "charge": int(charge), "multiplicity": int(multiplicity),
            "settings": settings, "versions": package_versions()}  # fmt: skip
    try:
        fit = reference_density(symbols, positions_angstrom, settings, charge, multiplicity)
    except SCFNotConverged as err:
        if settings["on_failure"] != "skip":
            raise SCFNotConverged(f"structure {structure_id}: {err}") from err
        summary = {**base, "skipped": True, "converged": False, "reason": str(err)}
        return function_table_columns_only(), summary
    except KeyError as err:
        raise KeyError(f"structure {structure_id}: {err.args[0]}") from err
    summary = {
        **base,
        "skipped": False,
        "energy_hartree": fit.energy_hartree,
        "converged": fit.converged,
        "scf_cycles": fit.scf_cycles,
        "n_electrons": fit.n_electrons,
        "scf_method": fit.scf_method,
        "fitted_electrons": fit.fitted_electrons,
        "fit_error_percent": fit.fit_error_percent,
        "n_functions": int(fit.table.num_rows),
        "wall_seconds": fit.wall_seconds,
    }
    return fit.table, summary


def function_table_columns_only() -> pa.Table:
    """An empty function table with the output schema's columns and types."""
    types = {"element": pa.string(), "exponent": pa.float64()}
    return pa.table({name: pa.array([], type=types.get(name, pa.int64())) for name in FUNCTION_COLUMNS}
                    | {"integral": pa.array([], type=pa.float64()), "coefficient": pa.array([], type=pa.float64())})

"""Reference densities: density-fitted Kohn–Sham SCF and a Coulomb-metric fit of its density.

Units: bohr inside PySCF, Å in ``Atoms``, hartree for energies, electrons for charges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyscf import df, dft, gto
from pyscf.dft import radi

from e3hier.basis import FUNCTION_COLUMNS, build_mol, fit_basis, function_columns, make_auxmol
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


class SCFNotConverged(RuntimeError):
    """The SCF stopped at ``max_cycle`` without meeting ``conv_tol``."""


def configure_grid(grids, grid: dict) -> None:
    """Apply ``dft.grid`` settings (radial × angular points, pruning, radial scheme)."""
    grids.atom_grid = (int(grid["radial"]), int(grid["angular"]))
    grids.radi_method = RADIAL_SCHEMES[grid["radial_scheme"]]
    if not grid["prune"]:
        grids.prune = None


def run_scf(mol: gto.Mole, settings: dict, unrestricted: bool = False):
    """Density-fitted (U)KS SCF with the ``dft`` config block. Returns the converged object.

    Raises ``SCFNotConverged`` when it does not converge.
    """
    mf = (dft.UKS if unrestricted else dft.RKS)(mol)
    mf.xc = settings["xc"]
    mf = mf.density_fit(auxbasis=settings["scf_auxbasis"])
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


def fit_density(mol: gto.Mole, dm: np.ndarray, auxmol: gto.Mole, n_electrons: float | None = None,
                integrals: np.ndarray | None = None):
    """Coulomb-metric fit of density matrix ``dm`` onto ``auxmol``'s functions.

    d = J⁺ (P|μν) D_μν, then the charge constraint Σ q_P d'_P = N_e by a
    Lagrange multiplier: d' = d + λ J⁺ q. With ``n_electrons=None`` the
    unconstrained fit is returned. ``integrals`` (q, from ``fit_function_integrals``) may be passed
    when the caller already has them. Coefficients are in ``eval_gto`` column order.

    Returns ``(coefficients, fitted_electrons_before_constraint)``.
    """
    metric = auxmol.intor("int2c2e")
    three_centre = df.incore.aux_e2(mol, auxmol, intor="int3c2e", aosym="s1")
    projection = np.einsum("ijP,ij->P", three_centre, dm)
    j_inv = coulomb_pseudo_inverse(metric)
    d = j_inv @ projection
    q = fit_function_integrals(auxmol) if integrals is None else integrals
    fitted = float(q @ d)
    if n_electrons is None:
        return d, fitted
    j_inv_q = j_inv @ q
    lam = (n_electrons - fitted) / float(q @ j_inv_q)
    return d + lam * j_inv_q, fitted


@dataclass
class DensityFit:
    """A structure's SCF result and fitted density (coefficients in the stored, m-ordered layout)."""

    table: pa.Table  # function_columns + integral + coefficient
    energy_hartree: float
    converged: bool
    scf_cycles: int
    n_electrons: int
    fitted_electrons: float
    fit_error_percent: float
    wall_seconds: float


def reference_density(symbols, positions_angstrom, settings: dict) -> DensityFit:
    """SCF + constrained density fit of one closed-shell structure, with the ``dft`` config block."""
    start = time.perf_counter()
    mol = build_mol(symbols, positions_angstrom, settings["basis"])
    mf = run_scf(mol, settings)
    dm = mf.make_rdm1()
    auxmol = make_auxmol(mol, fit_basis(settings["fit_auxbasis"], symbols, settings["decontract"]))
    integrals = fit_function_integrals(auxmol)
    coeff, fitted = fit_density(mol, dm, auxmol, n_electrons=mol.nelectron, integrals=integrals)

    # ε of the fit against the exact SCF density
    coords, weights = becke_grid(mol, FIT_ERROR_GRID_LEVEL)
    # shells negligible on a block of points are skipped (PySCF's screening masks: same values to 1e-15)
    ao = dft.numint.eval_ao(mol, coords, non0tab=dft.numint.make_mask(mol, coords))
    rho_scf = dft.numint.eval_rho(mol, ao, dm)
    rho_fit = auxmol.eval_gto("GTOval_sph", coords, non0tab=dft.numint.make_mask(auxmol, coords)) @ coeff
    fit_error = epsilon_percent(rho_fit, rho_scf, weights, mol.nelectron)

    columns = function_columns(auxmol)
    columns["integral"] = integrals[columns["ao_index"]]
    columns["coefficient"] = coeff[columns["ao_index"]]
    return DensityFit(
        table=pa.table(columns),
        energy_hartree=float(mf.e_tot),
        converged=bool(mf.converged),
        scf_cycles=int(mf.scf_cycles),
        n_electrons=int(mol.nelectron),
        fitted_electrons=fitted,
        fit_error_percent=fit_error,
        wall_seconds=time.perf_counter() - start,
    )


def dft_job(structure_id: str, symbols, positions_angstrom, settings: dict) -> tuple:
    """One structure's DFT rule: ``(function table with coefficients (``pyarrow.Table``), summary dict)``.

    With ``settings["on_failure"] == "skip"`` a non-converged SCF gives an empty
    table and a summary with ``skipped: true``; with ``error`` it raises,
    naming the structure.
    """
    from e3hier.io import package_versions

    base = {"structure": structure_id, "settings": settings, "versions": package_versions()}
    try:
        fit = reference_density(symbols, positions_angstrom, settings)
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

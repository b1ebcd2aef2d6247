"""One structure's DFT job: SCF, constrained density fit and its error, as a function table and a summary.

Units: Å for the positions given, hartree for energies, electrons for charges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from e3hier.dft.basis import (
    FUNCTION_COLUMNS,
    ao_population_factors,
    build_mol,
    fit_basis,
    function_columns,
    make_auxmol,
)
from e3hier.dft.fit import fit_density, fit_function_integrals
from e3hier.dft.fit_error import fit_error_percent
from e3hier.dft.scf import SCF_METHODS, SCFNotConverged, run_scf, total_density_matrix


@dataclass
class DensityFit:
    """A structure's SCF result and fitted density (coefficients in the stored, m-ordered layout)."""

    table: pa.Table  # function_columns + integral + coefficient + population_factor
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


def arrow_column(values: np.ndarray) -> pa.Array:
    """A numpy column (int64, float64 or str objects) as an Arrow array, the type ``pa.array`` would give.

    Built from its buffers: ``pa.array`` imports pandas (~0.25 s, 40 MB) to check for pandas types,
    and the DFT job has no other use for pandas.

    Parameters
    ----------
    values : numpy.ndarray
        int64, float64 or object (str) values.
    """
    if values.dtype == object:
        encoded = [str(v).encode() for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return pa.Array.from_buffers(
            pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        )
    arrow_type = {np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64()}[values.dtype]
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def reference_density(
    symbols, positions_angstrom, settings: dict, charge: int = 0, multiplicity: int = 1
) -> DensityFit:
    """SCF + constrained density fit of one structure, with the ``dft`` config block.

    ``charge`` (e) and ``multiplicity`` (2S + 1) set the electrons: a singlet runs RKS, an open shell
    (multiplicity > 1) UKS. The fit, its charge constraint (Σ Z − charge electrons) and its error
    are of the total density, α + β.

    Parameters
    ----------
    symbols : sequence of str
        Element symbols of the atoms.
    positions_angstrom : array_like
        Positions (Å), one row per atom.
    settings : dict
        The ``dft`` config block.
    charge : int, optional
        Net charge (e).
    multiplicity : int, optional
        2S + 1.
    """
    start = time.perf_counter()
    mol = build_mol(symbols, positions_angstrom, settings["basis"], charge=int(charge), spin=int(multiplicity) - 1)
    mf = run_scf(mol, settings, unrestricted=multiplicity > 1)
    dm = total_density_matrix(mf.make_rdm1())
    energy, converged, scf_cycles = float(mf.e_tot), bool(mf.converged), int(mf.scf_cycles)
    scf_method = next(name for name in SCF_METHODS if mf.istype(name))
    # the SCF's DF tensor and grid are not needed by the fit: free them before it (``memory.dft_memory_terms``)
    mf.with_df.reset()
    mf.grids.reset()
    del mf
    auxmol = make_auxmol(mol, fit_basis(settings["fit_auxbasis"], symbols, settings["decontract"]))
    integrals = fit_function_integrals(auxmol)
    coeff, fitted = fit_density(mol, dm, auxmol, n_electrons=mol.nelectron, integrals=integrals)
    fit_error = fit_error_percent(mol, dm, auxmol, coeff)

    columns = fit_table_columns(auxmol, coeff, integrals)
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


def dft_job(
    structure_id: str, symbols, positions_angstrom, settings: dict, charge: int = 0, multiplicity: int = 1
) -> tuple:
    """One structure's DFT rule: ``(function table with coefficients (``pyarrow.Table``), summary dict)``.

    ``charge`` and ``multiplicity`` as in ``reference_density`` (ValueError naming the structure when
    they do not fit its electron count); the summary records both. With
    ``settings["on_failure"] == "skip"`` a non-converged SCF gives an empty
    table and a summary with ``skipped: true``; with ``error`` it raises,
    naming the structure.

    Parameters
    ----------
    structure_id : str
        What errors and the summary name.
    symbols, positions_angstrom, settings, charge, multiplicity
        As in ``reference_density``.
    """
    from e3hier.io import package_versions
    from e3hier.structures.charge_spin import check_charge_multiplicity

    check_charge_multiplicity(symbols, charge, multiplicity, f"structure {structure_id}")
    base = {
        "structure": structure_id,
        "charge": int(charge),
        "multiplicity": int(multiplicity),
        "settings": settings,
        "versions": package_versions(),
    }
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


#: The DFT table's columns after ``FUNCTION_COLUMNS``; ``DFT_TABLE_COLUMNS``: all of them, in order.
FIT_COLUMNS = ("integral", "coefficient", "population_factor")
DFT_TABLE_COLUMNS = (*FUNCTION_COLUMNS, *FIT_COLUMNS)


def fit_table_columns(auxmol, coefficients_by_ao: np.ndarray, integrals: np.ndarray | None = None) -> dict:
    """The DFT table's columns (``DFT_TABLE_COLUMNS``) of ``auxmol``'s fit functions in the stored order, with
    ``coefficients_by_ao`` (``eval_gto`` column order); ``integrals`` (∫χ, the same order) if already computed."""
    integrals = fit_function_integrals(auxmol) if integrals is None else integrals
    columns = function_columns(auxmol)
    ao = columns["ao_index"]
    columns["integral"] = integrals[ao]
    columns["coefficient"] = np.asarray(coefficients_by_ao)[ao]
    columns["population_factor"] = ao_population_factors(auxmol)[ao]
    return columns


def function_table_columns_only() -> pa.Table:
    """An empty function table with the output schema's columns and types."""
    types = {"element": pa.string(), "exponent": pa.float64()}
    return pa.table(
        {name: pa.array([], type=types.get(name, pa.int64())) for name in FUNCTION_COLUMNS}
        | {name: pa.array([], type=pa.float64()) for name in FIT_COLUMNS}
    )

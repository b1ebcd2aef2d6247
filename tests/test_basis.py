from pathlib import Path

import numpy as np
import pandas as pd
from pyscf import gto

from e3hier.dft.basis import (
    ao_population_factors,
    build_mol,
    fit_basis,
    function_table,
    irreps_counts,
    irreps_string,
    make_auxmol,
    population_factor,
    primitive_normalisation,
)


def test_decontracted_universal_jfit_irreps():
    basis = fit_basis("def2-universal-jfit", ["O", "H"], decontract=True)
    assert irreps_string(irreps_counts(basis["O"])) == "12x0e+5x1o+4x2e+2x3o+1x4e"
    assert irreps_string(irreps_counts(basis["H"])) == "5x0e+2x1o+1x2e"
    # every primitive is its own shell
    assert all(len(shell) == 2 for shell in basis["O"])


def test_function_table_is_m_ordered_and_points_at_pyscf_columns(water):
    symbols, pos = water
    mol = build_mol(symbols, pos, "cc-pvdz")
    auxmol = make_auxmol(mol, fit_basis("def2-universal-jfit", symbols, True))
    table = function_table(auxmol)
    assert len(table) == auxmol.nao_nr()
    assert sorted(table["ao_index"]) == list(range(auxmol.nao_nr()))
    p = table[(table.atom == 0) & (table.l == 1) & (table.shell == 0)]
    assert list(p["m"]) == [-1, 0, 1]
    # PySCF's p columns are (x, y, z): m=-1 is y (column +1), m=0 is z (+2), m=+1 is x (+0)
    first = auxmol.ao_loc_nr()[[ib for ib in range(auxmol.nbas) if auxmol.bas_angular(ib) == 1][0]]
    assert list(p["ao_index"]) == [first + 1, first + 2, first]
    # the p_x function is odd in x: check on two points mirrored in x
    centre = mol.atom_coord(0)
    pts = np.array([centre + [0.3, 0.1, 0.05], centre + [-0.3, 0.1, 0.05]])
    values = auxmol.eval_gto("GTOval_sph", pts)[:, p["ao_index"].to_numpy()]
    np.testing.assert_allclose(values[0, 2], -values[1, 2])  # m=+1 ↔ x
    np.testing.assert_allclose(values[0, 0], values[1, 0])  # m=-1 ↔ y


#: psi4's normalisations of the study's W4 fit shells (source and commit in the file's header).
PSI4_NORMALISATIONS = Path(__file__).parent / "data" / "psi4_w4_normalisations.csv"


def test_primitive_normalisation_is_psi4s_for_the_studys_w4_fits():
    psi4 = pd.read_csv(PSI4_NORMALISATIONS, comment="#")
    assert len(psi4) == 32 and set(psi4["element"]) == {"H", "O"}
    ours = primitive_normalisation(psi4["l"].to_numpy(), psi4["exponent"].to_numpy())
    # psi4 keeps the sign of the basis file's contraction coefficient; the study's c / N cancels it
    np.testing.assert_allclose(ours, psi4["normalisation"].abs(), rtol=1e-8, atol=0)
    np.testing.assert_allclose(
        population_factor(psi4["l"], psi4["exponent"]), 2 * np.sqrt(2) / psi4["normalisation"].abs(), rtol=1e-8
    )


def test_primitive_normalisation_is_pyscfs_radial_norm_times_the_harmonic_factor():
    for l in range(7):
        for alpha in (0.05, 1.3, 2876.8):
            expected = gto.gto_norm(l, alpha) * np.sqrt((2 * l + 1) / (4 * np.pi))
            assert np.isclose(primitive_normalisation(l, alpha), expected, rtol=1e-12)


def test_every_fit_function_gets_the_population_factor_of_its_shell_as_psi4_prints_it(water):
    """The DFT table's ``population_factor``: PySCF's decontracted fit shells are the study's, one factor each."""
    symbols, pos = water
    auxmol = make_auxmol(build_mol(symbols, pos, "cc-pvdz"), fit_basis("def2-universal-jfit", symbols, True))
    table = function_table(auxmol)
    table["population_factor"] = ao_population_factors(auxmol)[table["ao_index"].to_numpy()]
    psi4 = pd.read_csv(PSI4_NORMALISATIONS, comment="#")
    psi4["key"] = psi4["exponent"].round(6)
    merged = table.assign(key=table["exponent"].round(6)).merge(
        psi4, on=["element", "l", "key"], how="left", validate="many_to_one"
    )
    assert merged["normalisation"].notna().all()  # the same shells as the study's W4 fits
    np.testing.assert_allclose(merged["population_factor"], 2 * np.sqrt(2) / merged["normalisation"].abs(), rtol=1e-8)


def test_a_contracted_shell_has_no_population_factor(water):
    symbols, pos = water
    auxmol = make_auxmol(build_mol(symbols, pos, "cc-pvdz"), fit_basis("def2-universal-jfit", symbols, False))
    factors = ao_population_factors(auxmol)
    contracted = np.repeat([len(auxmol.bas_exp(ib)) > 1 for ib in range(auxmol.nbas)], np.diff(auxmol.ao_loc_nr()))
    assert contracted.any() and np.isnan(factors[contracted]).all() and np.isfinite(factors[~contracted]).all()

import numpy as np
import pytest

from e3hier.basis import build_mol, fit_basis, make_auxmol
from e3hier.conventions import random_rotation, rotate_coefficients
from e3hier.dft import SCFNotConverged, dft_job, fit_function_integrals, reference_density
from e3hier.metric import becke_grid


@pytest.fixture(scope="module")
def monomer_fit(water, default_config):
    symbols, pos = water
    return reference_density(symbols, pos, default_config["dft"])


def test_monomer_fit_is_accurate_and_integrates_to_n_electrons(monomer_fit, water, default_config):
    assert monomer_fit.converged
    assert monomer_fit.n_electrons == 10
    assert monomer_fit.fit_error_percent < 2.0
    assert abs(monomer_fit.fitted_electrons - 10) < 0.05
    # integrate the constrained fit on an independent fine Becke grid
    symbols, pos = water
    mol = build_mol(symbols, pos, "cc-pvdz")
    auxmol = make_auxmol(mol, fit_basis("def2-universal-jfit", symbols, True))
    coords, weights = becke_grid(mol, 5)
    chi = auxmol.eval_gto("GTOval_sph", coords)[:, monomer_fit.table["ao_index"].to_numpy()]
    assert abs(weights @ chi @ monomer_fit.table["coefficient"].to_numpy() - 10) < 1e-6


@pytest.mark.parametrize("decontract", [True, False])
def test_fit_function_integrals_match_quadrature(water, decontract):
    symbols, pos = water
    mol = build_mol(symbols, pos, "cc-pvdz")
    auxmol = make_auxmol(mol, fit_basis("def2-universal-jfit", symbols, decontract))
    coords, weights = becke_grid(mol, 5)
    numeric = auxmol.eval_gto("GTOval_sph", coords).T @ weights
    np.testing.assert_allclose(fit_function_integrals(auxmol), numeric, atol=1e-6)


def test_coefficients_rotate_with_wigner_d_and_ignore_translation(water, default_config):
    symbols, pos = water
    # the XC grid is not rotation invariant: the default grid, not the light test one
    dft_settings = dict(default_config["dft"], conv_tol=1e-11)
    ref = reference_density(symbols, pos, dft_settings).table
    rotation = random_rotation(7)
    moved = reference_density(symbols, pos @ rotation.T + np.array([0.7, -1.3, 2.1]), dft_settings).table
    predicted = rotate_coefficients(ref["coefficient"].to_numpy(), ref["l"].to_numpy(), rotation)
    assert np.abs(predicted - moved["coefficient"].to_numpy()).max() < 1e-5
    shifted = reference_density(symbols, pos + np.array([1.5, 0.0, -0.5]), dft_settings).table
    assert np.abs(shifted["coefficient"].to_numpy() - ref["coefficient"].to_numpy()).max() < 1e-5


def test_unconverged_scf_raises_naming_the_structure(water, dft_settings):
    symbols, pos = water
    dft_settings["max_cycle"] = 2
    with pytest.raises(SCFNotConverged, match="structure w1_bad"):
        dft_job("w1_bad", symbols, pos, dft_settings)
    dft_settings["on_failure"] = "skip"
    table, summary = dft_job("w1_bad", symbols, pos, dft_settings)
    assert summary["skipped"] and not summary["converged"] and len(table) == 0


def test_missing_element_names_structure_and_element(dft_settings):
    with pytest.raises(KeyError, match=r"structure odd.*'Rn'"):
        dft_job("odd", ["Rn"], np.zeros((1, 3)), dft_settings)

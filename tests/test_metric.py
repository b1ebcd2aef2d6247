import numpy as np

from e3hier.basis import build_mol
from e3hier.metric import becke_grid, density_grid, epsilon_percent
from conftest import FIT, synthetic_frame


def test_becke_grid_integrates_a_normalised_gaussian():
    mol = build_mol(["O", "H", "H"], np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]]), "cc-pvdz")
    coords, weights = becke_grid(mol, 1)
    centre = mol.atom_coord(0)
    g = (2.0 / np.pi) ** 1.5 * np.exp(-2.0 * np.sum((coords - centre) ** 2, axis=1))
    assert abs(weights @ g - 1.0) < 1e-4


def test_epsilon_pieces_are_consistent():
    frame = synthetic_frame(1, seed=4)
    grid = density_grid(["O", "H", "H"] * 2, frame.groupby("atom")[["x", "y", "z"]].first().to_numpy(), frame, FIT, 0)
    coeff = frame["coefficient"].to_numpy()
    other = coeff + np.random.default_rng(0).normal(scale=0.01, size=len(coeff))
    eps = grid.epsilon_by_l(other, coeff, block_orders=[0, 1])
    assert grid.epsilon(coeff, coeff) == 0.0
    assert np.isclose(eps["total"], grid.epsilon(other, coeff), rtol=1e-5)
    assert np.isclose(eps[2], grid.epsilon(other, coeff, frame["l"].to_numpy() == 2), rtol=1e-5)
    # triangle inequality: the total never exceeds the sum of its parts
    assert eps["total"] <= sum(eps[l] for l in range(5)) * (1 + 1e-6)
    assert eps["block"] <= eps[0] + eps[1] + 1e-9
    rho_a, rho_b = grid.density(other), grid.density(coeff)
    assert np.isclose(epsilon_percent(rho_a, rho_b, grid.weights, grid.n_electrons), eps["total"], rtol=1e-5)

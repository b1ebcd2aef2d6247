import numpy as np
from conftest import FIT, synthetic_frame

from e3hier.data import metric
from e3hier.data.metric import CollocationBudget, density_grid
from e3hier.dft.basis import build_mol
from e3hier.dft.epsilon import becke_grid, epsilon_percent


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


def test_streamed_collocation_gives_the_held_epsilon_and_holds_nothing(monkeypatch):
    """A grid past the job's budget (metric.collocation_cache_mb) is evaluated again in blocks: same ε."""
    monkeypatch.setattr(metric, "STREAM_BLOCK_POINTS", 1000)  # several blocks on this small grid
    frame = synthetic_frame(1, seed=4)
    positions = frame.groupby("atom")[["x", "y", "z"]].first().to_numpy()
    args = (["O", "H", "H"] * 2, positions, frame, FIT, 1)
    held = density_grid(*args, dtype=np.float32)
    budget = CollocationBudget(held.held_bytes / 1e6 * 1.5)  # room for one grid, not two
    first, second = (
        density_grid(*args, dtype=np.float32, budget=budget),
        density_grid(*args, dtype=np.float32, budget=budget),
    )
    assert first.held_bytes == held.held_bytes > 0 and second.held_bytes == 0
    assert len(held.weights) > 3 * metric.STREAM_BLOCK_POINTS
    coeff = frame["coefficient"].to_numpy()
    # K = 3 models' predictions at once, as validation evaluates an ensemble
    predicted = coeff[:, None] + np.random.default_rng(1).normal(scale=0.01, size=(len(coeff), 3))
    expected, streamed = held.epsilon_by_l(predicted, coeff[:, None]), second.epsilon_by_l(predicted, coeff[:, None])
    assert expected.keys() == streamed.keys()
    for key in expected:
        np.testing.assert_allclose(streamed[key], expected[key], rtol=1e-5)


def test_block_upto_epsilon_is_the_block_restricted_to_orders_up_to_l():
    """ε of the block's orders l ≤ L: ε_l0 at L = 0, ε of the whole block from its highest order on, NaN when
    the block has no order ≤ L; one mask per cumulative order set over the same per-l densities."""
    frame = synthetic_frame(1, seed=4)
    grid = density_grid(["O", "H", "H"] * 2, frame.groupby("atom")[["x", "y", "z"]].first().to_numpy(), frame, FIT, 0)
    coeff, l = frame["coefficient"].to_numpy(), frame["l"].to_numpy()
    other = coeff[:, None] + np.random.default_rng(0).normal(scale=0.01, size=(len(coeff), 2))  # K = 2 models
    full = grid.epsilon_by_l(other, coeff[:, None], block_orders=range(5), upto=range(5))
    np.testing.assert_allclose(full[("block_upto", 0)], full[0], rtol=1e-6)
    np.testing.assert_allclose(full[("block_upto", 4)], full["block"], rtol=1e-6)
    for cap in range(5):
        for k in range(2):
            expected = grid.epsilon(other[:, k], coeff, l <= cap)
            assert np.isclose(full[("block_upto", cap)][k], expected, rtol=1e-5)
    higher = grid.epsilon_by_l(other, coeff[:, None], block_orders=[2, 3, 4], upto=range(5))
    assert np.isnan(higher[("block_upto", 0)]).all() and np.isnan(higher[("block_upto", 1)]).all()
    np.testing.assert_allclose(higher[("block_upto", 2)], higher[2], rtol=1e-6)
    for k in range(2):
        expected = grid.epsilon(other[:, k], coeff, (l >= 2) & (l <= 3))
        assert np.isclose(higher[("block_upto", 3)][k], expected, rtol=1e-5)
    np.testing.assert_allclose(higher[("block_upto", 4)], higher["block"], rtol=1e-6)

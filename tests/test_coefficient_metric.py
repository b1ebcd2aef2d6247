"""The density error in coefficient space: Δcᵀ S Δc is ∫(Δρ)² dr, in total, per order l and per block."""

import numpy as np
import pandas as pd
import torch
from conftest import FIT, TINY_MODEL, WATER

from e3hier.data.coefficient_metric import FitOverlap, fit_overlap
from e3hier.data.layout import OutputLayout
from e3hier.data.metric import density_grid
from e3hier.dft.basis import build_mol, fit_basis, function_table, make_auxmol
from e3hier.training.evaluation import l2_validation_rows
from e3hier.training.samples import load_samples


def water_functions():
    symbols, positions = WATER
    auxmol = make_auxmol(build_mol(symbols, positions, FIT["basis"]), fit_basis(FIT["fit_auxbasis"], symbols, True))
    return symbols, positions, function_table(auxmol)


def test_coefficient_l2_equals_the_grid_integral_of_the_squared_difference():
    """On a fine Becke grid (level 5: ~90,000 points for one water) ∫(Δρ)² agrees with Δcᵀ S Δc to ~1e-8;
    per order l from the diagonal blocks of S, and for a block of orders from its rows and columns."""
    symbols, positions, table = water_functions()
    l = table["l"].to_numpy()
    rng = np.random.default_rng(0)
    coefficient = rng.normal(size=len(table)) / (1 + l) ** 2
    delta = rng.normal(scale=0.01, size=(len(table), 2))  # two models at once
    overlap = FitOverlap.build(fit_overlap(symbols, positions, table, FIT), l, coefficient, coefficient)
    errors = overlap.l2_errors(torch.as_tensor(delta), block_orders=(1, 2), upto=(0, 1))
    grid = density_grid(symbols, positions, table, FIT, level=5)
    reference = np.sqrt(grid.weights @ grid.density(coefficient) ** 2)
    pieces = grid.density_by_l(delta)

    def on_grid(orders):
        rho = sum(pieces[o] for o in orders)
        return 100 * np.sqrt(grid.weights @ rho**2) / reference

    assert len(pieces) >= 3  # several orders, so the per-l and block values test the blocks of S
    np.testing.assert_allclose(errors["total"].numpy(), on_grid(pieces), rtol=1e-6)
    for order in pieces:
        np.testing.assert_allclose(errors[order].numpy(), on_grid([order]), rtol=1e-6)
    np.testing.assert_allclose(errors["block"].numpy(), on_grid([1, 2]), rtol=1e-6)
    np.testing.assert_allclose(errors[("block_upto", 1)].numpy(), on_grid([1]), rtol=1e-6)
    assert np.isnan(errors[("block_upto", 0)].numpy()).all()  # the block has no order ≤ 0


def test_validation_rows_are_per_model_means_over_the_structures(synthetic_splits):
    """``l2_validation_rows``: a perfect prediction has zero error; the free-atom reference alone is the
    baseline; the block's error of a scalar model is its l = 0 error."""
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, "scalar")
    frame = pd.read_parquet(synthetic_splits["val"])
    samples = load_samples(frame, layout, TINY_MODEL, with_overlap=True, dft_cfg=FIT)
    exact = [torch.as_tensor(s.target[s.rows])[:, None] for s in samples]
    zero = [torch.zeros(len(s.rows), 1, dtype=torch.float64) for s in samples]
    both = [torch.cat([a, b], dim=1) for a, b in zip(exact, zero)]
    perfect, reference = l2_validation_rows(samples, both, layout)
    assert perfect["val_l2_block"] == 0.0 and perfect["val_l2_l0"] == 0.0 and perfect["val_l2_l1"] > 0
    assert np.isclose(reference["val_l2"], reference["val_l2_baseline"])
    assert np.isclose(reference["val_l2_l2"], reference["val_l2_baseline_l2"])
    assert np.isclose(reference["val_l2_block"], reference["val_l2_l0"])
    assert np.isclose(reference["val_l2_block_upto_l0"], reference["val_l2_block"])

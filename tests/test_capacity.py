"""Parameter counts from irreps, the capacity-matched and equal-channel controls."""

import pytest
from conftest import FIT, TINY_MODEL

from e3hier.data.layout import OutputLayout
from e3hier.network.capacity import MATCH_TOLERANCE, grid_multiplicities, parameter_count
from e3hier.network.model import MODEL_DEFAULTS, DensityNetwork


def irreps_out(output="full"):
    return str(OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, output).irreps)


@pytest.mark.slow
@pytest.mark.parametrize("node_attributes", ["constant", "one_hot"])
@pytest.mark.parametrize("lmax", [0, 2, 4])
def test_parameter_count_equals_the_built_network(lmax, node_attributes):
    cfg = dict(TINY_MODEL, node_attributes=node_attributes)
    model = DensityNetwork(2, lmax, irreps_out(), 4.0, 6.0, kernels="e3nn", **cfg)
    built = sum(p.numel() for p in model.parameters())
    assert parameter_count(lmax, cfg["hidden_multiplicities"], 2, irreps_out(), cfg) == built


@pytest.mark.slow
def test_parameter_count_of_the_study_model_at_lmax_3_vector_output():
    cfg = dict(MODEL_DEFAULTS)
    model = DensityNetwork(2, 3, irreps_out("vector"), 4.0, 6.0, kernels="e3nn", **cfg)
    assert parameter_count(3, cfg["hidden_multiplicities"], 2, irreps_out("vector"), cfg) == sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.parametrize("lmax", [0, 1, 2, 3])
def test_matched_capacity_is_within_tolerance_of_the_reference(lmax):
    cfg = dict(MODEL_DEFAULTS)
    plan = grid_multiplicities(lmax, "matched", "study", 4, 2, irreps_out(), cfg)
    reference = parameter_count(4, cfg["hidden_multiplicities"], 2, irreps_out(), cfg)
    assert plan["target_params"] == reference
    assert abs(plan["n_params"] / reference - 1) <= MATCH_TOLERANCE
    study = parameter_count(lmax, cfg["hidden_multiplicities"], 2, irreps_out(), cfg)
    assert study < 0.95 * reference  # the control really changes the capacity
    # widening keeps the study's ratios between orders
    ratios = [m / s for m, s in zip(plan["multiplicities"], cfg["hidden_multiplicities"])]
    assert max(ratios) / min(ratios) < 1.1


def test_equal_channels_keep_the_study_capacity_with_one_count_for_every_order():
    cfg = dict(MODEL_DEFAULTS)
    plan = grid_multiplicities(4, "study", "equal", 4, 2, irreps_out(), cfg)
    assert len(set(plan["multiplicities"])) == 1 and len(plan["multiplicities"]) == 5
    study = parameter_count(4, cfg["hidden_multiplicities"], 2, irreps_out(), cfg)
    assert abs(plan["n_params"] / study - 1) <= MATCH_TOLERANCE


def test_study_capacity_keeps_the_configured_channels():
    cfg = dict(MODEL_DEFAULTS)
    plan = grid_multiplicities(2, "study", "study", 4, 2, irreps_out(), cfg)
    assert plan["multiplicities"] == [125, 40, 25]

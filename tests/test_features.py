"""Hidden-feature hooks, weight norms, ablation and the hierarchy tables, on small synthetic inputs."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIT, TINY_MODEL, synthetic_frame
from e3nn import o3

from e3hier.analysis import learning_curve_slopes, onset_table
from e3hier.features import component_rms, order_contributions, order_mask, probe_rows, zero_hidden_orders
from e3hier.layout import OutputLayout, unreachable_orders
from e3hier.model import DensityNetwork
from e3hier.samples import load_samples, pack


def tiny_model(lmax, output="full", seed=0, **options):
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, output)
    torch.manual_seed(seed)
    cfg = {**TINY_MODEL, **options}
    model = DensityNetwork(2, lmax, str(layout.irreps), num_neighbors=4.0, num_nodes=6.0, **cfg).eval()
    (sample,) = load_samples(synthetic_frame(1, seed=9), layout, TINY_MODEL)
    return model, pack([sample])


def test_component_rms_splits_irreps_by_l_and_parity_without_summing_over_m():
    irreps = o3.Irreps("2x0e+1x1o+1x2e")
    x = torch.zeros(3, irreps.dim)
    x[:, 0:2] = 1.0  # two scalars
    x[:, 2:5] = torch.tensor([0.0, 3.0, 0.0])  # one vector: mean square 9/3 over its components
    x[:, 5:10] = 2.0  # one l=2
    sizes = component_rms(x, irreps)
    assert sizes == pytest.approx({(0, 1): 1.0, (1, -1): 3.0**0.5, (2, 1): 2.0})


@pytest.mark.parametrize("node_attributes", ["constant", "one_hot"])
@pytest.mark.parametrize("lmax", [0, 2, 4])
def test_contributions_of_the_hidden_orders_sum_to_the_output(lmax, node_attributes):
    model, graph = tiny_model(lmax, node_attributes=node_attributes)
    with torch.no_grad():
        output = model(graph)
    hidden, contributions = order_contributions(model, graph)
    assert sorted(contributions) == list(range(lmax + 1)) and len(hidden) == TINY_MODEL["layers"]
    total = sum(contributions.values())
    assert torch.allclose(total, output, rtol=0, atol=1e-5 * float(output.abs().max()))
    if lmax:  # every order really contributes something of its own
        assert all(float(c.abs().max()) > 1e-3 * float(output.abs().max()) for c in contributions.values())


@pytest.mark.parametrize("node_attributes", ["constant", "one_hot"])
@pytest.mark.parametrize("lmax", [1, 4])
def test_fused_contributions_equal_the_output_layer_fed_each_order_alone(lmax, node_attributes):
    """``forward_masked`` runs the edge products once for all orders: the same as one call per order."""
    model, graph = tiny_model(lmax, node_attributes=node_attributes)
    hidden, contributions = order_contributions(model, graph)
    last, x = model.layers[-1], hidden[-1]
    assert hasattr(last, "forward_masked")
    irreps = model.layers[-2].second.irreps_out
    with torch.no_grad():
        for l, part in contributions.items():
            alone = last(x * order_mask(irreps, l, x), model.node_attr(graph), *model.edge_inputs(graph))
            torch.testing.assert_close(part, alone, rtol=1e-6, atol=1e-7 * float(alone.abs().max()))


def test_probe_captures_each_hidden_layer_with_its_irreps():
    model, graph = tiny_model(2)
    outputs, _ = order_contributions(model, graph)
    assert len(outputs) == TINY_MODEL["layers"]
    for out, layer in zip(outputs, model.layers[:-1]):
        assert out.shape[1] == layer.second.irreps_out.dim
    rows = pd.DataFrame(probe_rows(model, graph, model.irreps_out))
    features = rows[rows.kind == "feature"]
    assert set(features["l"]) == {0, 1, 2} and (features["value"] > 0).all()
    # the hidden features of the last hidden layer of an l_max 2 model include both parities of l = 1
    assert {(1, 1), (1, -1)} <= set(map(tuple, features[features.layer == 1][["l", "parity"]].to_numpy()))
    contributions = rows[rows.kind == "contribution"]
    assert set(contributions["l_out"]) == {-1, 0, 1, 2, 3, 4}


def test_an_l4_output_is_unreachable_at_hidden_lmax_0_with_edge_lmax_3():
    """The output convolution couples hidden order l with edge harmonics l' ≤ 3 into l ≤ l + 3: at hidden
    l_max 0 the l = 4 outputs are exactly zero (the prediction is the free-atom reference there)."""
    assert unreachable_orders(0, 3, [0, 1, 2, 3, 4]) == [4] and unreachable_orders(1, 3, [0, 1, 2, 3, 4]) == []
    for lmax, reachable in ((0, False), (1, True)):
        model, graph = tiny_model(lmax, output="higher")
        with torch.no_grad():
            out = model(graph)
        l4 = [sl for (mul, ir), sl in zip(model.irreps_out, model.irreps_out.slices()) if ir.l == 4]
        assert l4
        size = float(out[:, l4[0]].abs().max())
        assert (size > 1e-4) if reachable else (size == 0.0)


def test_ablating_nonscalar_channels_of_an_lmax0_model_changes_nothing():
    model, graph = tiny_model(0)
    before = model(graph)
    with zero_hidden_orders(model, [1, 2, 3, 4]):
        after = model(graph)
    assert torch.equal(before, after)


def test_ablation_zeroes_exactly_the_chosen_order():
    model, graph = tiny_model(2)
    with zero_hidden_orders(model, [2]):
        ablated = model(graph)
        outputs, _ = order_contributions(model, graph)  # the layers' hooks zero the order here too
    layer = model.layers[0]
    for l, _, sl, _ in (
        (ir.l, ir.p, s, m) for (m, ir), s in zip(layer.second.irreps_out, layer.second.irreps_out.slices())
    ):
        block = outputs[0][:, sl]
        assert (block == 0).all() if l == 2 else (block != 0).any()
    assert not torch.equal(ablated, model(graph))


def test_onset_is_first_epoch_below_the_fraction_of_baseline():
    learning = pd.DataFrame(
        {
            "lmax_hidden": 2,
            "output": "full",
            "capacity": "study",
            "channels": "study",
            "seed": 0,
            "n_train": 10,
            "epoch": [1, 2, 3, 1, 2, 3],
            "l": [0, 0, 0, 1, 1, 1],
            "epsilon_l": [4.0, 1.9, 1.0, 3.0, 2.9, 2.8],
            "baseline_l": [4.0] * 3 + [3.0] * 3,
        }
    )
    learning["ratio"] = learning["epsilon_l"] / learning["baseline_l"]
    table = onset_table(learning, 0.5).set_index("l")
    assert table.loc[0, "onset_epoch"] == 2
    assert np.isnan(table.loc[1, "onset_epoch"])
    assert np.isclose(table.loc[1, "final_ratio"], 2.8 / 3.0)


def test_learning_curve_slope_recovers_a_power_law():
    n = np.array([10, 20, 40, 80])
    models = pd.DataFrame({"output": "full", "lmax_hidden": 1, "seed": 0, "n_train": n, "epsilon_test": 5.0 * n**-0.5})
    slopes = learning_curve_slopes(models)
    assert np.isclose(slopes["slope"].iloc[0], -0.5)
    assert learning_curve_slopes(models.iloc[:1]).empty

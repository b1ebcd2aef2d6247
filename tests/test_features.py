"""Hidden-feature hooks, weight norms, ablation and the hierarchy tables, on small synthetic inputs."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIT, TINY_MODEL, synthetic_frame
from e3nn import o3

from e3hier.analysis.tables import learning_curve_slopes, onset_table
from e3hier.data.layout import OutputLayout, common_orders, orders_reached, reachable_lmax, unreachable_orders
from e3hier.network.devices import to_device
from e3hier.network.model import DensityNetwork
from e3hier.training.evaluation import with_reachable
from e3hier.training.features import (
    COMMON_ORDERS,
    component_rms,
    constrained_entries,
    order_contributions,
    order_mask,
    probe_rows,
    probe_steps,
    size_rows,
    zero_hidden_orders,
)
from e3hier.training.samples import load_samples, pack


def tiny_model(lmax, output="full", seed=0, rotation=None, **options):
    """A small network and the packed graph of one water dimer (its positions turned by ``rotation``)."""
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, output)
    torch.manual_seed(seed)
    cfg = {**TINY_MODEL, **options}
    model = DensityNetwork(2, lmax, str(layout.irreps), num_neighbors=4.0, num_nodes=6.0, **cfg).eval()
    frame = synthetic_frame(1, seed=9)
    if rotation is not None:
        frame[["x", "y", "z"]] = frame[["x", "y", "z"]].to_numpy() @ np.asarray(rotation).T
    (sample,) = load_samples(frame, layout, TINY_MODEL)
    return model, to_device(pack([sample]), "cpu")


def probe_table(model, graph):
    return pd.DataFrame(probe_rows(model, graph, model.irreps_out))


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
    assert set(contributions["l_out"]) == {COMMON_ORDERS, -1, 0, 1, 2, 3, 4}


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
            "l2_l": [4.0, 1.9, 1.0, 3.0, 2.9, 2.8],
            "baseline_l": [4.0] * 3 + [3.0] * 3,
        }
    )
    learning["ratio"] = learning["l2_l"] / learning["baseline_l"]
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


def test_triangle_rule_reaches_orders_within_lmax_edge_of_the_hidden_order():
    assert orders_reached(0, 3, range(6)) == [0, 1, 2, 3] and orders_reached(4, 1, range(6)) == [3, 4, 5]
    assert common_orders(2, 3, range(5)) == [0, 1, 2, 3] and common_orders(4, 3, [0]) == []
    assert reachable_lmax([2, 0, 4], 3, 4) == 3 and reachable_lmax([0], 1, 4) == 1 and reachable_lmax([1], 3, 0) == 0


def test_models_table_takes_the_epsilon_of_the_orders_every_model_reaches():
    upto = {
        f"epsilon_{split}_block_upto_l{l}": [10.0 * l + (split == "val"), 20.0 * l]
        for split in ("test", "val")
        for l in range(5)
    }
    models = pd.DataFrame({"lmax_hidden": [0, 4], "lmax_output": [4, 0], **upto})
    table = with_reachable(models, [0, 1, 4], 3)
    assert list(table["reachable_lmax"]) == [3, 0]
    assert list(table["epsilon_test_reachable"]) == [30.0, 0.0] and list(table["epsilon_val_reachable"]) == [31.0, 0.0]
    with pytest.raises(ValueError, match="lmax_output"):
        with_reachable(models.drop(columns="lmax_output"), [0], 3)


@pytest.mark.parametrize("lmax", [0, 2])
def test_shares_sum_to_one_and_probes_are_rotation_invariant(lmax):
    model, graph = tiny_model(lmax)
    rows = probe_table(model, graph)
    rotation = o3.angles_to_matrix(*torch.tensor([0.3, 1.1, -0.7])).numpy()
    turned = probe_table(*tiny_model(lmax, rotation=rotation))
    shares = rows[rows.kind == "share"].groupby("l_out")["value"].sum(min_count=1)
    # every set of output orders: -1 (all), each order, -2 (those every hidden order reaches: 0..3 for edge l ≤ 3)
    assert set(shares.index) == {COMMON_ORDERS, -1, 0, 1, 2, 3, 4}
    unreachable = unreachable_orders(lmax, TINY_MODEL["lmax_edge"], range(5))  # zero output: no share
    assert list(shares.index[shares.isna()]) == unreachable
    np.testing.assert_allclose(shares.dropna().to_numpy(), 1.0, rtol=1e-4)
    sizes = rows[rows.kind != "feature"]
    np.testing.assert_allclose(turned[turned.kind != "feature"]["value"], sizes["value"], rtol=2e-3, atol=1e-6)
    if lmax:  # the shares are signed parts: not all of one order
        assert (rows[rows.kind == "share"]["value"].abs() < 0.999).any()


def test_unconstrained_output_slots_do_not_count_in_the_probes():
    """An H atom's slots of O-only shells are outside the loss: changing them changes no contribution or share."""
    model, graph = tiny_model(2)
    hidden, contributions = order_contributions(model, graph)
    constrained = constrained_entries(graph, tuple(contributions[0].shape))
    h_atom = int(torch.nonzero(graph["one_hot"][:, 0]).flatten()[0])  # elements sorted: H first
    unused = sorted(set(range(model.irreps_out.dim)) - set(graph["slot"][graph["atom"] == h_atom].tolist()))
    assert unused and not constrained[h_atom, unused].any() and constrained[h_atom].any()
    before = size_rows(model, hidden, contributions, model.irreps_out, constrained)
    changed = {l: c.clone() for l, c in contributions.items()}
    changed[1][h_atom, unused] += 100.0
    changed[2][h_atom, unused] -= 50.0
    after = size_rows(model, hidden, changed, model.irreps_out, constrained)
    assert pd.DataFrame(after).equals(pd.DataFrame(before))


def test_probes_of_stacked_members_equal_each_member_probed_alone():
    from e3hier.training.members import MemberNetworks, member_model, pack_members

    model, graph = tiny_model(1)
    members = [model, member_model(model, 7)]
    stacked = MemberNetworks(members)
    together = probe_rows(stacked.network, to_device(pack_members([graph, graph]), "cpu"), model.irreps_out, members=2)
    for alone, rows in zip(members, together):
        expected = probe_table(alone.eval(), graph)
        np.testing.assert_allclose(pd.DataFrame(rows)["value"], expected["value"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("total", "dense", "most"), [(0, 64, 500), (12, 64, 500), (320, 64, 128), (480_000, 64, 500), (1000, 0, 5)]
)
def test_probe_steps_are_dense_first_then_geometric_within_the_budget(total, dense, most):
    steps = probe_steps(total, dense, most)
    assert steps[0] == 0 and steps[-1] == total and steps == sorted(set(steps)) and len(steps) <= most
    assert steps[: min(dense, total) + 1] == list(range(min(dense, total) + 1))  # every step at first
    if total + 1 <= most:
        assert steps == list(range(total + 1))
    else:
        assert len(steps) >= most - 2  # the budget is used, not left idle by rounding
        later = np.diff(steps[min(dense, total) :])
        assert (np.diff(later) >= -1).all()  # the gaps grow (geometric), up to rounding
        assert later[-1] > 10 * later[0] if total > 100 * most else True
    with pytest.raises(ValueError, match="max_probes"):
        probe_steps(10, 4, 1)

"""Hidden-feature hooks, weight norms, ablation and the hierarchy tables, on small synthetic inputs."""

import numpy as np
import pandas as pd
import torch
from conftest import FIT, TINY_MODEL, synthetic_frame
from e3nn import o3

from e3hier.analysis import learning_curve_slopes, onset_table
from e3hier.features import capture_hidden, feature_norms, mean_squared_norms, weight_norms, zero_hidden_orders
from e3hier.layout import OutputLayout
from e3hier.model import DensityNetwork
from e3hier.samples import load_samples, pack


def tiny_model(lmax, output="full", seed=0):
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, output)
    torch.manual_seed(seed)
    model = DensityNetwork(2, lmax, str(layout.irreps), num_neighbors=4.0, num_nodes=6.0, **TINY_MODEL).eval()
    (sample,) = load_samples(synthetic_frame(1, seed=9), layout, TINY_MODEL)
    return model, pack([sample])


def test_mean_squared_norms_split_irreps_by_l_and_parity():
    irreps = o3.Irreps("2x0e+1x1o+1x2e")
    x = torch.zeros(3, irreps.dim)
    x[:, 0:2] = 1.0  # two scalars, norm² 1 each
    x[:, 2:5] = torch.tensor([0.0, 2.0, 0.0])  # one vector, norm² 4
    x[:, 5:10] = 3.0  # one l=2, norm² 5·9
    norms = mean_squared_norms(x, irreps)
    assert norms == {(0, 1): 1.0, (1, -1): 4.0, (2, 1): 45.0}


def test_hooks_capture_each_hidden_layer_with_its_irreps():
    model, graph = tiny_model(2)
    with capture_hidden(model) as outputs:
        model(graph)
    assert len(outputs) == TINY_MODEL["layers"]
    for out, layer in zip(outputs, model.layers[:-1]):
        assert out.shape[1] == layer.second.irreps_out.dim
    rows = pd.DataFrame(feature_norms(model, graph))
    assert set(rows["l"]) == {0, 1, 2} and (rows["mean_sq_norm"] > 0).all()
    # the hidden features of the last hidden layer of an l_max 2 model include both parities of l = 1
    assert {(1, 1), (1, -1)} <= set(map(tuple, rows[rows.layer == 1][["l", "parity"]].to_numpy()))


def test_weight_norms_cover_every_path_order():
    model, _ = tiny_model(2)
    rows = pd.DataFrame(weight_norms(model))
    assert set(rows["kind"]) == {"edge_tp", "lin2"}
    assert set(rows[rows.kind == "edge_tp"]["l_out"]) == {0, 1, 2, 3, 4}  # output layer reaches l = 4
    assert (rows["rms"] > 0).all()


def test_ablating_nonscalar_channels_of_an_lmax0_model_changes_nothing():
    model, graph = tiny_model(0)
    before = model(graph)
    with zero_hidden_orders(model, [1, 2, 3, 4]):
        after = model(graph)
    assert torch.equal(before, after)


def test_ablation_zeroes_exactly_the_chosen_order():
    model, graph = tiny_model(2)
    with zero_hidden_orders(model, [2]), capture_hidden(model) as outputs:
        ablated = model(graph)
    layer = model.layers[0]
    for l, _, sl, _ in ((ir.l, ir.p, s, m) for (m, ir), s in zip(layer.second.irreps_out, layer.second.irreps_out.slices())):
        block = outputs[0][:, sl]
        assert (block == 0).all() if l == 2 else (block != 0).any()
    assert not torch.equal(ablated, model(graph))


def test_onset_is_first_epoch_below_the_fraction_of_baseline():
    learning = pd.DataFrame({
        "lmax_hidden": 2, "output": "full", "seed": 0, "n_train": 10,
        "epoch": [1, 2, 3, 1, 2, 3], "l": [0, 0, 0, 1, 1, 1],
        "epsilon_l": [4.0, 1.9, 1.0, 3.0, 2.9, 2.8], "baseline_l": [4.0] * 3 + [3.0] * 3,
    })  # fmt: skip
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

"""The model's equivariance in the stored (PySCF m-ordered) basis, and its graph."""

import numpy as np
import pytest
import torch
from conftest import FIT, TINY_MODEL, synthetic_frame
from e3nn import o3

from e3hier.data.conventions import positions_to_e3nn, random_rotation, rotate_coefficients
from e3hier.data.layout import OutputLayout
from e3hier.network.model import DensityNetwork, edge_features, hidden_irreps, neighbour_list
from e3hier.training.evaluation import Predictor, full_prediction
from e3hier.training.samples import load_samples, pack


def test_hidden_irreps_truncate_at_lmax():
    assert str(hidden_irreps(0)) == "125x0e+125x0o"
    assert str(hidden_irreps(2)) == "125x0e+125x0o+40x1e+40x1o+25x2e+25x2o"


def test_output_layout_from_fit_basis():
    full = OutputLayout.from_basis("def2-universal-jfit", ["H", "O"], True, "full")
    assert str(full.irreps) == "12x0e+5x1o+4x2e+2x3o+1x4e"
    assert str(OutputLayout.from_basis("def2-universal-jfit", ["H", "O"], True, "higher").irreps) == "4x2e+2x3o+1x4e"
    assert str(OutputLayout.from_basis("def2-universal-jfit", ["H", "O"], True, "vector").irreps) == "5x1o"


def test_neighbour_list_has_no_self_edges_in_large_graphs():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 6, size=(60, 3))
    src, dst = neighbour_list(pos, 3.5)
    assert not np.any(src == dst)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    expected = {(i, j) for i in range(60) for j in range(60) if i != j and d[i, j] < 3.5}
    assert set(zip(src.tolist(), dst.tolist())) == expected


def rotated_frame(frame, rotation):
    out = frame.copy()
    xyz = out[["x", "y", "z"]].to_numpy() @ rotation.T + np.array([0.4, -0.2, 1.0])
    out[["x", "y", "z"]] = xyz
    return out


@pytest.mark.slow
@pytest.mark.parametrize("output", ["scalar", "vector", "higher", "full"])
@pytest.mark.parametrize("lmax", [0, 2])
def test_predictions_rotate_with_the_dft_wigner_d(output, lmax):
    frame = synthetic_frame(1, seed=5, n_molecules=3)
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, output)
    torch.manual_seed(0)
    model = DensityNetwork(2, lmax, str(layout.irreps), num_neighbors=4.0, num_nodes=9.0, **TINY_MODEL)
    predictor = Predictor(model.eval(), torch.ones(2, layout.irreps.dim), layout)
    rotation = random_rotation(11)
    (sample,) = load_samples(frame, layout, TINY_MODEL)
    (moved,) = load_samples(rotated_frame(frame, rotation), layout, TINY_MODEL)
    sample.reference[:] = 0.0
    moved.reference[:] = 0.0
    before = full_prediction(sample, predictor.predict_targets(sample))
    after = full_prediction(moved, predictor.predict_targets(moved))
    assert np.abs(before).max() > 1e-3  # a non-trivial prediction
    expected = rotate_coefficients(before, sample.l, rotation)
    assert np.abs(after - expected).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("lmax, node_attributes", [(0, "constant"), (1, "one_hot"), (4, "constant"), (4, "one_hot")])
def test_fused_kernels_compute_e3nns_network(lmax, node_attributes, float64_default):
    """``kernels="fused"`` (the default) and ``"split"`` evaluate e3nn's own model: same state dict,
    same outputs and parameter gradients as ``gate_points_2101.Network`` (float64, to rounding)."""
    from e3nn.nn.models.gate_points_2101 import Network

    frame = synthetic_frame(1, seed=3, n_molecules=4)
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, "full")
    (sample,) = load_samples(frame, layout, TINY_MODEL)
    graph = edge_features(sample.positions, TINY_MODEL["max_radius"], TINY_MODEL["number_of_basis"], 3)
    graph["one_hot"] = pack([sample])["one_hot"].double()
    cfg = dict(TINY_MODEL)
    # the study's network has no node attributes: e3nn then uses a constant 1 (0e) per atom
    stock = Network(
        irreps_in="2x0e",
        irreps_hidden=hidden_irreps(lmax, cfg.pop("hidden_multiplicities")),
        irreps_out=layout.irreps,
        irreps_node_attr="2x0e" if node_attributes == "one_hot" else None,
        irreps_edge_attr=o3.Irreps.spherical_harmonics(cfg.pop("lmax_edge")),
        num_neighbors=3.0,
        num_nodes=12.0,
        reduce_output=False,
        **cfg,
    )
    pos = torch.as_tensor(positions_to_e3nn(sample.positions))
    one_hot = graph["one_hot"]
    inputs = {"pos": pos, "x": one_hot, **({"z": one_hot} if node_attributes == "one_hot" else {})}
    reference = stock(inputs)
    reference.pow(2).sum().backward()
    for kernels in ("fused", "split"):
        model = DensityNetwork(
            2,
            lmax,
            str(layout.irreps),
            num_neighbors=3.0,
            num_nodes=12.0,
            kernels=kernels,
            node_attributes=node_attributes,
            **TINY_MODEL,
        )
        model.load_state_dict(stock.state_dict())  # strict: the same parameter names and shapes
        out = model(graph)
        out.pow(2).sum().backward()
        assert torch.allclose(out, reference, rtol=0, atol=1e-12), kernels
        for (name, p), q in zip(model.named_parameters(), stock.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=1e-12), (kernels, name)

"""Device placement without a GPU: every graph a network takes went through ``e3hier.network.devices.to_device``."""

import pandas as pd
import pytest
import torch
from conftest import FIT, TINY_MODEL, TINY_TRAIN, synthetic_frame, train_tiny

from e3hier.data.layout import OutputLayout
from e3hier.network.devices import check_cuda, to_device
from e3hier.network.model import DensityNetwork
from e3hier.training.samples import load_samples, pack
from e3hier.training.train_and_evaluate import run_grid_points

POINT = {"lmax_hidden": 1, "output": "full", "seed": 0, "n_train": "all"}


def tiny_network_and_graph():
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, "full")
    torch.manual_seed(0)
    model = DensityNetwork(2, 1, str(layout.irreps), num_neighbors=4.0, num_nodes=6.0, **TINY_MODEL)
    return model, pack(load_samples(synthetic_frame(2, seed=9), layout, TINY_MODEL))


def test_a_packed_graph_reaches_the_network_only_through_to_device():
    model, graph = tiny_network_and_graph()
    with pytest.raises(RuntimeError, match="without e3hier.network.devices.to_device"):
        model(graph)
    assert model(to_device(graph, "cpu")).shape[0] == 12


def test_a_tensor_on_another_device_is_refused_naming_its_key():
    """The ``meta`` device stands in for a GPU: a tensor left behind is named, before any kernel runs."""
    model, graph = tiny_network_and_graph()
    placed = to_device(graph, "cpu")
    placed["edge_attr"] = placed["edge_attr"].to("meta")
    with pytest.raises(ValueError, match=r"graph\['edge_attr'\] is on meta, the network on cpu"):
        model(placed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails_before_any_data_is_read(tmp_path):
    missing = tmp_path / "absent.parquet"  # never read: the check comes first
    with pytest.raises(RuntimeError, match=r"train.device: 'cuda', but torch.cuda.is_available\(\) is False"):
        run_grid_points(
            [POINT], missing, missing, {}, FIT, TINY_MODEL, dict(TINY_TRAIN, device="cuda"), {}, [tmp_path / "m"]
        )
    check_cuda("cpu")  # no GPU needed for the CPU


@pytest.mark.slow
def test_probes_validation_and_test_of_a_grid_point_and_an_ensemble_take_placed_graphs(synthetic_splits, tmp_path):
    """A grid point and an ensemble of two, end to end: every graph (training batches, probes of the hidden
    features, validation, test splits, ablation) reaches the network through ``to_device``."""
    train = dict(TINY_TRAIN, epochs=1)
    for name, seeds in (("alone", [0]), ("pair", [0, 1])):
        points, dirs = [dict(POINT, seed=s) for s in seeds], [tmp_path / f"{name}{s}" for s in seeds]
        results = train_tiny(synthetic_splits, points, train, dirs)
        for seed, result in zip(seeds, results):
            features = pd.read_parquet(tmp_path / f"{name}{seed}" / "features.parquet")
            assert set(features["step"]) == {0, 1, 2, 3}  # probed at initialisation and after every step
            assert result["summary"]["diverged"] is False

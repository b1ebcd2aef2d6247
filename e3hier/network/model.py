"""The e3nn network of the study: ``gate_points_2101.Network`` fed with exact neighbour lists.

Irreps
------
- node input: one-hot of the elements, ``{n_elements}x0e``;
- node attributes (``model.node_attributes``): ``constant``, the study's (one scalar 1 per atom, ``0e``),
  or ``one_hot`` (the element again; ~35-50 % more parameters in the self-interactions);
- hidden: multiplicities [125, 40, 25, 15, 10] for l = 0..4 in both parities,
  truncated at the grid point's ``lmax_hidden`` (the study's stop at l = 3; the 10 at l = 4 are ours);
- edge attributes: spherical harmonics up to l = 3 times a smooth cutoff;
- output: the density block the grid point predicts (see ``e3hier.data.layout``).

Positions enter in e3nn's frame (y, z, x), so outputs are in the project's
m-ordered layout (``e3hier.data.conventions``).

The tensor products run on fused kernels by default (``DensityNetwork(kernels=...)``; the speed layer
is ``e3hier.network.fused``, which reaches e3nn's internals only through its ``e3nn_internals``): the same
parameters and state-dict keys as e3nn's modules, outputs equal to float rounding, ~4-6× faster
batch-1 training steps on CPU (``benchmarks/``). The fused convolutions run their radial networks once
per undirected pair of atoms (``edge_features``).
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn.models.gate_points_2101 import Network, smooth_cutoff

from e3hier.data.conventions import positions_to_e3nn
from e3hier.network.capacity import hidden_irreps, node_attribute_irreps
from e3hier.network.devices import check_graph, module_device
from e3hier.network.fused.generated_code import e3nn_code_generation, optimise_tensor_products
from e3hier.network.fused.layers import fuse_tensor_products

__all__ = ["MODEL_DEFAULTS", "DensityNetwork", "edge_features", "hidden_irreps", "neighbour_list"]

#: Defaults of ``model.*`` (the study's architecture).
MODEL_DEFAULTS = {
    "hidden_multiplicities": [125, 40, 25, 15, 10],
    "layers": 3,
    "max_radius": 3.5,
    "number_of_basis": 10,
    "radial_layers": 1,
    "radial_neurons": 128,
    "lmax_edge": 3,
    "node_attributes": "constant",
}


def neighbour_list(positions_angstrom: np.ndarray, max_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges (src, dst) between distinct atoms closer than ``max_radius`` (Å), from exact distances."""
    src, dst = neighbor_list("ij", Atoms(positions=positions_angstrom), float(max_radius), self_interaction=False)
    order = np.lexsort((src, dst))
    return src[order].astype(np.int64), dst[order].astype(np.int64)


def edge_features(positions_angstrom: np.ndarray, max_radius: float, number_of_basis: int, lmax_edge: int):
    """The graph of one structure as the network consumes it (computed once and cached).

    Returns ``edge_src``, ``edge_dst`` (long), ``edge_attr`` (smooth cutoff ×
    spherical harmonics, component normalisation) and ``edge_length_embedded``
    (Gaussian basis × √number_of_basis), exactly as ``Network.forward`` builds them; and the
    undirected pairs: ``pair_length_embedded``, one row per pair of atoms (the same numbers as
    both of its directed edges' rows, since a length does not depend on the direction), and
    ``edge_pair``, each edge's row in it. The fused convolutions run their radial networks on the
    pairs (``e3hier.network.fused.layers.FusedConvolution``): half the edges.
    """
    src, dst = neighbour_list(positions_angstrom, max_radius)
    pos = torch.as_tensor(positions_to_e3nn(positions_angstrom), dtype=torch.float64)
    edge_src, edge_dst = torch.as_tensor(src), torch.as_tensor(dst)
    edge_vec = pos[edge_src] - pos[edge_dst]
    edge_sh = o3.spherical_harmonics(
        o3.Irreps.spherical_harmonics(lmax_edge), edge_vec, True, normalization="component"
    )
    edge_length = edge_vec.norm(dim=1)
    embedded = soft_one_hot_linspace(
        edge_length, start=0.0, end=max_radius, number=number_of_basis, basis="gaussian", cutoff=False
    ).mul(number_of_basis**0.5)
    edge_attr = smooth_cutoff(edge_length / max_radius)[:, None] * edge_sh
    pair_key = np.minimum(src, dst) * len(positions_angstrom) + np.maximum(src, dst)
    _, first_edge, edge_pair = np.unique(pair_key, return_index=True, return_inverse=True)
    return {
        "edge_src": edge_src,
        "edge_dst": edge_dst,
        "edge_attr": edge_attr,
        "edge_length_embedded": embedded,
        "edge_pair": torch.as_tensor(edge_pair.reshape(-1).astype(np.int64)),
        "pair_length_embedded": embedded[torch.as_tensor(first_edge)],
    }


class DensityNetwork(Network):
    """``gate_points_2101.Network`` whose graph (edges and edge features) is given, not rebuilt.

    e3nn's fallback ``radius_graph`` uses ``torch.cdist``, whose rounding
    creates spurious self-edges in larger batches; the graph here comes from
    ``edge_features`` instead. Parameters, layers and state-dict keys are the
    parent's. ``kernels`` chooses how the tensor products are evaluated (the
    model and its outputs are the same, up to float rounding, for all three):
    ``"fused"`` (default, ``e3hier.network.fused.layers.fuse_tensor_products``), ``"split"`` (e3nn's
    generated code with ``e3hier.network.fused.generated_code.optimise_tensor_products``) or ``"e3nn"`` (as e3nn
    builds it).

    Parameters
    ----------
    n_elements : int
        Elements of the one-hot node input.
    lmax_hidden : int
        The largest order l of the hidden features (the grid point's).
    irreps_out : str
        The density block the network predicts (``e3hier.data.layout``).
    num_neighbors, num_nodes : float
        e3nn's normalisation constants: mean edges per node and nodes per graph of the training set.
    **model_settings
        ``model.*`` of the config (``MODEL_DEFAULTS``): ``hidden_multiplicities``, ``layers``, ``max_radius``,
        ``number_of_basis``, ``radial_layers``, ``radial_neurons``, ``lmax_edge``, ``node_attributes``.
    kernels : str
        ``"fused"``, ``"split"`` or ``"e3nn"``, as above.
    """

    def __init__(
        self,
        n_elements: int,
        lmax_hidden: int,
        irreps_out: str,
        num_neighbors: float,
        num_nodes: float,
        hidden_multiplicities=MODEL_DEFAULTS["hidden_multiplicities"],
        layers=MODEL_DEFAULTS["layers"],
        max_radius=MODEL_DEFAULTS["max_radius"],
        number_of_basis=MODEL_DEFAULTS["number_of_basis"],
        radial_layers=MODEL_DEFAULTS["radial_layers"],
        radial_neurons=MODEL_DEFAULTS["radial_neurons"],
        lmax_edge=MODEL_DEFAULTS["lmax_edge"],
        node_attributes=MODEL_DEFAULTS["node_attributes"],
        kernels: str = "fused",
    ):
        with e3nn_code_generation(optimized=kernels != "fused"):
            super().__init__(
                irreps_in=o3.Irreps(f"{n_elements}x0e"),
                irreps_hidden=hidden_irreps(lmax_hidden, hidden_multiplicities),
                irreps_out=o3.Irreps(irreps_out),
                irreps_node_attr=node_attribute_irreps(node_attributes, n_elements),
                irreps_edge_attr=o3.Irreps.spherical_harmonics(lmax_edge),
                layers=layers,
                max_radius=max_radius,
                number_of_basis=number_of_basis,
                radial_layers=radial_layers,
                radial_neurons=radial_neurons,
                num_neighbors=num_neighbors,
                num_nodes=num_nodes,
                reduce_output=False,
            )
        self.lmax_edge = lmax_edge
        self.node_attributes = node_attributes
        #: every convolution is fused, so all take the radial input per undirected pair (``edge_inputs``)
        self.radial_on_pairs = False
        if kernels == "fused":
            counts = fuse_tensor_products(self, constant_attributes=node_attributes == "constant")
            self.radial_on_pairs = counts["convolution"] == len(self.layers)
        elif kernels == "split":
            optimise_tensor_products(self)
        elif kernels != "e3nn":
            raise ValueError(f"kernels: {kernels!r} is not one of 'fused', 'split', 'e3nn'")

    def node_attr(self, graph: dict) -> torch.Tensor:
        """The node attributes: the element one-hot, or a constant 1 per atom (the study's)."""
        one_hot = graph["one_hot"]
        return one_hot if self.node_attributes == "one_hot" else one_hot.new_ones(*one_hot.shape[:-1], 1)

    def edge_inputs(self, graph: dict) -> tuple:
        """What every convolution takes besides the node features and attributes: the fused
        convolutions take the radial networks' input per undirected pair and each edge's pair. The graph
        must be on the network's device (``e3hier.network.devices.check_graph``: the forward pass and the probes
        both come here)."""
        check_graph(graph, module_device(self))
        edges = graph["edge_src"], graph["edge_dst"], graph["edge_attr"]
        if self.radial_on_pairs:
            return *edges, graph["pair_length_embedded"], graph["edge_pair"]
        return *edges, graph["edge_length_embedded"]

    def forward(self, graph: dict) -> torch.Tensor:
        """Per-atom output (n_atoms, irreps_out.dim) of a (packed) graph from ``edge_features``."""
        x, node_attr, edges = graph["one_hot"], self.node_attr(graph), self.edge_inputs(graph)
        for layer in self.layers:
            x = layer(x, node_attr, *edges)
        return x

"""K networks of one architecture as one: the stacked parameters of an ensemble (``e3hier.training.ensemble``).

``MemberNetworks`` stacks the members' parameters along a leading member axis and runs the fused kernels once
for all of them (``FusedScalarProduct.forward_members``; the edge products work on the members' edges one after
another); each member's batch is its own, padded to the largest member's nodes and edges by ``pack_members``
(padding nodes carry zeros and no edges, padding edges have zero spherical harmonics, so neither reaches a real
node). ``member_model`` draws a member's initial weights on a clone of the first member's network.
"""

from __future__ import annotations

import torch
from e3nn.nn.models.gate_points_2101 import Convolution

from e3hier.network.devices import HostGraph

GRAPH_EDGE_KEYS = ("edge_attr", "edge_length_embedded")


def clone_structure(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` with parameters of its own and everything else shared (buffers, e3nn's generated
    code, the fused kernels' plans): milliseconds, where building or deep-copying a network takes ~1 s."""
    clone = module.__class__.__new__(module.__class__)
    clone.__dict__ = {key: value.copy() if isinstance(value, dict) else value for key, value in module.__dict__.items()}
    clone._modules = {
        name: clone_structure(child) if child is not None and any(True for _ in child.parameters()) else child
        for name, child in module._modules.items()
    }
    clone._parameters = {
        name: None if p is None else torch.nn.Parameter(p.detach().clone(), p.requires_grad)
        for name, p in module._parameters.items()
    }
    return clone


@torch.no_grad()
def member_model(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The network ``build_model`` makes after ``torch.manual_seed(seed)``, from one already built.

    e3nn draws every parameter from ``torch.randn`` of its shape, in the order of ``parameters()`` (its
    other random numbers come from a generator of its own), so drawing them again reproduces a fresh
    build exactly (``tests/test_ensemble.py``)."""
    clone = clone_structure(model)
    torch.manual_seed(seed)
    for param in clone.parameters():
        param.copy_(torch.randn(param.shape))
    return clone


class MemberNetworks(torch.nn.Module):
    """K networks of one architecture evaluated at once: parameters stacked as (K, ...).

    After construction each member model's parameters are views of its row of the stacked
    parameters, so an update of the stack (the ensemble's optimiser) is an update of every member,
    and loading a member's state dict writes into the stack.
    """

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        self.members = len(models)
        # parameters of its own, the rest shared with member 0 (a deep copy took ~1 s at l_max 4)
        self.network = clone_structure(models[0])
        if any(type(m) is Convolution for m in self.network.modules()):
            raise ValueError("ensemble training needs the fused kernels (model kernels='fused')")
        member_parameters = [dict(m.named_parameters()) for m in models]
        for name, _ in list(self.network.named_parameters()):
            stacked = torch.stack([params[name].detach() for params in member_parameters])
            module_name, _, attribute = name.rpartition(".")
            owner = self.network.get_submodule(module_name) if module_name else self.network
            setattr(owner, attribute, torch.nn.Parameter(stacked))
        stacked = dict(self.network.named_parameters())
        for k, params in enumerate(member_parameters):
            for name, param in params.items():
                param.data = stacked[name].data[k]

    def forward(self, graph: dict) -> torch.Tensor:
        """Outputs (K, nodes, irreps_out.dim) of a ``pack_members`` graph."""
        return self.network(graph)


def pack_members(graphs: list[dict]) -> HostGraph:
    """One graph of K members' packed batches: node tensors (K, max nodes, ·), edge and pair features
    (K, max edges or pairs, ·) padded with zeros, and edge, pair and output-row indices into the members'
    nodes and pairs laid one after another (member k's node i is row k·max nodes + i)."""
    nodes = max(g["one_hot"].shape[0] for g in graphs)
    edges = max(g["edge_src"].shape[0] for g in graphs)

    def padded(tensor, size):
        return torch.nn.functional.pad(tensor, (0, 0, 0, size - tensor.shape[0]))

    pairs = max(g["pair_length_embedded"].shape[0] for g in graphs)
    out = HostGraph(one_hot=torch.stack([padded(g["one_hot"], nodes) for g in graphs]))
    for key in GRAPH_EDGE_KEYS:
        out[key] = torch.stack([padded(g[key], edges) for g in graphs])
    out["pair_length_embedded"] = torch.stack([padded(g["pair_length_embedded"], pairs) for g in graphs])
    # padding edges join a member's first node to itself, with no message (their edge_attr is zero)
    for key, rows in (("edge_src", nodes), ("edge_dst", nodes), ("edge_pair", pairs)):
        out[key] = torch.cat(
            [torch.nn.functional.pad(g[key], (0, edges - len(g[key]))) + k * rows for k, g in enumerate(graphs)]
        )
    out["atom"] = torch.cat([g["atom"] + k * nodes for k, g in enumerate(graphs)])
    out["slot"] = torch.cat([g["slot"] for g in graphs])
    return out

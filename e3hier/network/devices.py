"""Where the network's inputs live: one function moves a packed graph to the network's device, and the
network refuses any other.

``e3hier.training.samples.pack`` (and ``e3hier.training.members.pack_members``) build a ``HostGraph``: its
tensors stay where the samples' tensors are, and its row indices are built on the host. Only ``to_device``
turns it into a ``PlacedGraph``, every tensor on one device; ``DensityNetwork`` checks each graph it is given
(``check_graph``, from ``DensityNetwork.edge_inputs``, which the forward pass and the hidden-feature probes
both call). A graph packed and handed to the network without ``to_device`` therefore fails on the CPU too,
where a forgotten transfer would otherwise go unnoticed until the first CUDA run.
"""

from __future__ import annotations

import torch


class HostGraph(dict):
    """A packed graph before ``to_device``: the network refuses it."""


class PlacedGraph(dict):
    """A packed graph whose tensors are all on ``device`` (made by ``to_device`` only)."""

    device: torch.device


def to_device(graph: dict, device) -> PlacedGraph:
    """``graph`` with every tensor on ``device``: the one place where a network's inputs are moved to it.

    Tensors already there are not copied; others are copied without blocking the host (the copy is
    ordered on the device's stream before the kernels that read it)."""
    device = torch.device(device)
    placed = PlacedGraph({key: value.to(device, non_blocking=True) for key, value in graph.items()})
    placed.device = device
    return placed


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (CPU for a module without any)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def check_graph(graph: dict, device: torch.device) -> None:
    """Refuse a packed graph that did not go through ``to_device``, or a tensor of ``graph`` not on ``device``.

    A plain dict of tensors (e.g. ``e3hier.network.model.edge_features`` of one structure) passes when its tensors
    are on ``device``. ValueError naming the key and both devices, RuntimeError for a ``HostGraph``."""
    if isinstance(graph, HostGraph):
        raise RuntimeError(
            "a packed graph reached the network without e3hier.network.devices.to_device(graph, device): "
            f"its tensors stay where they were packed (keys {sorted(graph)}), the network is on {device}"
        )
    for key, value in graph.items():
        if value.device != device:
            raise ValueError(f"graph[{key!r}] is on {value.device}, the network on {device}: use to_device")


def check_cuda(device_setting: str, key: str = "train.device") -> None:
    """Fail fast (before any data is loaded) when ``device_setting`` asks for CUDA that torch cannot use."""
    if str(device_setting).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"{key}: {device_setting!r}, but torch.cuda.is_available() is False here (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}): run on a GPU node, install a CUDA build of torch "
            f"(docs/cluster.md), or set {key}: cpu"
        )

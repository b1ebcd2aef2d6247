"""Hidden features per order l: the exact split of the output by hidden order, feature sizes, ablation.

The hidden layers are the gated convolutions ``model.layers[:-1]`` of
``gate_points_2101.Network``; each emits features with irreps
``layer.second.irreps_out`` (e.g. ``125x0e+125x0o+40x1e+...``). A feature of
order l and multiplicity u is a (u, 2l+1) block.

Sizes are *per component* (RMS over atoms, channels and the 2l+1 components m), so an order with
more components is not larger for that reason alone. The output convolution is linear in its input
features (self-interaction, linear maps and the edge tensor product; no bias, no nonlinearity), so
its output is exactly the sum of one contribution per hidden order l: the output of the last layer
fed with only that order's channels (``order_contributions``).
"""

from __future__ import annotations

import contextlib

import pandas as pd
import torch


def hidden_layers(model) -> list:
    """The gated (hidden) layers, in order; the last layer (output convolution) is excluded."""
    return list(model.layers[:-1])


def irreps_slices(irreps):
    """Yield ``(l, parity, slice, multiplicity)`` for each (mul, ir) block of a feature vector."""
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        yield ir.l, ir.p, sl, mul


def component_rms(x: torch.Tensor, irreps) -> dict[tuple[int, int], float]:
    """RMS over atoms, channels and components m of ``x``, per (l, parity) of its irreps."""
    sums: dict[tuple[int, int], float] = {}
    counts: dict[tuple[int, int], int] = {}
    for l, p, sl, mul in irreps_slices(irreps):
        if mul == 0:
            continue
        sums[(l, p)] = sums.get((l, p), 0.0) + float(x[:, sl].double().pow(2).sum())
        counts[(l, p)] = counts.get((l, p), 0) + x.shape[0] * (sl.stop - sl.start)
    return {key: (sums[key] / counts[key]) ** 0.5 for key in sums}


def order_mask(irreps, l: int, like: torch.Tensor) -> torch.Tensor:
    """1 on the channels of order ``l`` (both parities), 0 elsewhere."""
    mask = torch.zeros(irreps.dim, dtype=like.dtype, device=like.device)
    for order, _, sl, _ in irreps_slices(irreps):
        if order == l:
            mask[sl] = 1
    return mask


@torch.no_grad()
def order_contributions(model, graph: dict) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
    """The hidden features of every layer and the output split by hidden order.

    Returns ``(hidden, contributions)``: the outputs of the hidden layers, in order, and
    ``{l: output of the last layer fed with only order l of the last hidden features}``;
    the contributions sum to the model's output (the last layer is linear in its input).
    """
    x, node_attr, edges = graph["one_hot"], model.node_attr(graph), model.edge_inputs(graph)
    hidden = []
    for layer in hidden_layers(model):
        x = layer(x, node_attr, *edges)
        hidden.append(x)
    last = model.layers[-1]
    irreps = hidden_layers(model)[-1].second.irreps_out if hidden else last.irreps_in
    orders = sorted({ir.l for _, ir in irreps})
    masks = [order_mask(irreps, l, x) for l in orders]
    if hasattr(last, "forward_masked"):  # the fused convolution: its edge products once for all orders
        outputs = last.forward_masked(x, masks, node_attr, *edges)
    else:
        outputs = [last(x * mask, node_attr, *edges) for mask in masks]
    contributions = dict(zip(orders, outputs))
    return hidden, contributions


def probe_rows(model, graph: dict, irreps_out, members: int | None = None) -> list[dict] | list[list[dict]]:
    """Sizes on a probe graph: ``contribution`` rows (hidden order l → output, per output order
    ``l_out`` and over all of it, ``l_out = -1``) and ``feature`` rows (per layer, l, parity).

    ``members``: ``model`` is the network of K stacked models (``e3hier.ensemble``) and ``graph`` the
    probe graph of each member; one list of rows per member."""
    was_training = model.training
    model.eval()
    hidden, contributions = order_contributions(model, graph)
    model.train(was_training)
    if members is None:
        return size_rows(model, hidden, contributions, irreps_out)
    return [
        size_rows(model, [h[k] for h in hidden], {l: c[k] for l, c in contributions.items()}, irreps_out)
        for k in range(members)
    ]


def size_rows(model, hidden: list, contributions: dict, irreps_out) -> list[dict]:
    """``probe_rows`` of one model from its hidden features and output contributions (nodes, dim)."""
    rows = []
    for index, (layer, out) in enumerate(zip(hidden_layers(model), hidden)):
        for (l, p), value in sorted(component_rms(out, layer.second.irreps_out).items()):
            rows.append({"kind": "feature", "layer": index, "l": l, "parity": p, "l_out": -1, "value": value})
    last = len(hidden)
    for l, part in contributions.items():
        total = float(part.double().pow(2).mean().sqrt())
        rows.append({"kind": "contribution", "layer": last, "l": l, "parity": 0, "l_out": -1, "value": total})
        for (l_out, _), value in sorted(component_rms(part, irreps_out).items()):
            rows.append({"kind": "contribution", "layer": last, "l": l, "parity": 0, "l_out": l_out, "value": value})
    return rows


@contextlib.contextmanager
def zero_hidden_orders(model, orders):
    """Zero the hidden channels of the given orders l (both parities) in every hidden layer's output."""
    orders = set(orders)

    def hook(layer):
        masks = {}

        def zero(mod, inp, out):
            key = (out.device, out.dtype)
            if key not in masks:
                mask = torch.ones(out.shape[-1], dtype=out.dtype, device=out.device)
                for l, _, sl, _ in irreps_slices(layer.second.irreps_out):
                    if l in orders:
                        mask[sl] = 0
                masks[key] = mask
            return out * masks[key]

        return zero

    handles = [layer.register_forward_hook(hook(layer)) for layer in hidden_layers(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


FEATURE_COLUMNS = ["step", "epoch", "kind", "layer", "l", "parity", "l_out", "value"]


def features_table(records: list[dict]) -> pd.DataFrame:
    """``features.parquet`` from the probe records (``{"step", "epoch", "rows"}``), one row per size.

    Columns: ``step`` (optimiser steps done; 0 is the random initialisation), ``epoch``, ``kind``
    (``contribution``: RMS per component of hidden order l's part of the output, over all outputs
    (``l_out`` -1) or one output order; ``feature``: RMS per component of the hidden features of
    ``layer``, order l and ``parity``), ``layer``, ``l``, ``parity``, ``l_out``, ``value``.
    """
    rows = [{"step": r["step"], "epoch": r["epoch"], **row} for r in filter(None, records) for row in r["rows"]]
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)

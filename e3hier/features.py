"""Hidden features per order l: forward hooks that measure them, weight norms per l-path, and ablation.

The hidden layers are the gated convolutions ``model.layers[:-1]`` of
``gate_points_2101.Network``; each emits features with irreps
``layer.second.irreps_out`` (e.g. ``125x0e+125x0o+40x1e+...``). A feature of
order l and multiplicity u is a (u, 2l+1) block; its squared norm sums over m.
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


def mean_squared_norms(x: torch.Tensor, irreps) -> dict[tuple[int, int], float]:
    """Mean over atoms and channels of |x_channel|² (summed over m), per (l, parity)."""
    sums: dict[tuple[int, int], float] = {}
    counts: dict[tuple[int, int], int] = {}
    for l, p, sl, mul in irreps_slices(irreps):
        if mul == 0:
            continue
        block = x[:, sl].reshape(x.shape[0], mul, 2 * l + 1)
        sums[(l, p)] = sums.get((l, p), 0.0) + float(block.pow(2).sum())
        counts[(l, p)] = counts.get((l, p), 0) + x.shape[0] * mul
    return {key: sums[key] / counts[key] for key in sums}


@contextlib.contextmanager
def capture_hidden(model):
    """Record each hidden layer's output during a forward pass: yields a list filled as layers run."""
    outputs: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda mod, inp, out: outputs.append(out.detach())) for layer in hidden_layers(model)]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def feature_norms(model, graph: dict) -> list[dict]:
    """Rows ``layer, l, parity, mean_sq_norm`` of the hidden features on a (packed) probe graph."""
    was_training = model.training
    model.eval()
    with capture_hidden(model) as outputs:
        model(graph)
    model.train(was_training)
    rows = []
    for index, (layer, out) in enumerate(zip(hidden_layers(model), outputs)):
        for (l, p), value in sorted(mean_squared_norms(out, layer.second.irreps_out).items()):
            rows.append({"layer": index, "l": l, "parity": p, "mean_sq_norm": value})
    return rows


@torch.no_grad()
def weight_norms(model) -> list[dict]:
    """RMS weight per l-path of every convolution.

    For the edge tensor product (weights produced per edge by the radial MLP),
    the path's weights are the last radial layer's columns that feed it. For
    ``lin2`` (mixing back to the layer's output) they are the path's own weights.
    Rows: ``layer, kind, l_in, l_filter, l_out, rms``.
    """
    rows = []
    for index, layer in enumerate(model.layers):
        conv = layer.first if hasattr(layer, "first") else layer
        radial_last = list(conv.fc.parameters())[-1]  # (neurons, weight_numel)
        start = 0
        for ins in conv.tp.instructions:
            size = int(torch.tensor(ins.path_shape).prod())
            block = radial_last[:, start : start + size]
            start += size
            rows.append({
                "layer": index, "kind": "edge_tp",
                "l_in": conv.tp.irreps_in1[ins.i_in1].ir.l, "l_filter": conv.tp.irreps_in2[ins.i_in2].ir.l,
                "l_out": conv.tp.irreps_out[ins.i_out].ir.l, "rms": float(block.pow(2).mean().sqrt()),
            })  # fmt: skip
        for _, ins, weight in conv.lin2.weight_views(yield_instruction=True):
            rows.append({
                "layer": index, "kind": "lin2",
                "l_in": conv.lin2.irreps_in1[ins.i_in1].ir.l, "l_filter": 0,
                "l_out": conv.lin2.irreps_out[ins.i_out].ir.l, "rms": float(weight.pow(2).mean().sqrt()),
            })  # fmt: skip
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
                mask = torch.ones(out.shape[1], dtype=out.dtype, device=out.device)
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


def feature_rows(epoch: int, model, probe_graph: dict) -> dict:
    """What the training callback stores for one epoch: feature norms and weight norms."""
    return {"epoch": epoch, "features": feature_norms(model, probe_graph), "weights": weight_norms(model)}


def features_table(records: list[dict]) -> pd.DataFrame:
    """``features.parquet`` from the callback records, one row per measurement.

    Columns: ``epoch``; ``kind`` (``feature``: mean squared norm of hidden
    features; ``edge_tp`` / ``lin2``: RMS weight of an l-path); ``layer``; ``l``
    (order of the feature, or the path's output order); ``parity`` (features;
    0 for weights); ``l_in``, ``l_filter`` (paths; -1 for features); ``value``.
    """
    rows = []
    for record in filter(None, records):
        epoch = record["epoch"]
        for f in record["features"]:
            rows.append((epoch, "feature", f["layer"], f["l"], f["parity"], -1, -1, f["mean_sq_norm"]))
        for w in record["weights"]:
            rows.append((epoch, w["kind"], w["layer"], w["l_out"], 0, w["l_in"], w["l_filter"], w["rms"]))
    return pd.DataFrame(rows, columns=["epoch", "kind", "layer", "l", "parity", "l_in", "l_filter", "value"])

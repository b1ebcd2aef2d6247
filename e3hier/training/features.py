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

import numpy as np
import pandas as pd
import torch

from e3hier.data.layout import common_orders
from e3hier.training.grid import PREFERRED_OUTPUT


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


#: ``l_out`` of the probe rows over every output order of the model.
ALL_ORDERS = -1
#: ``l_out`` of the probe rows over the output orders that every hidden order 0..l_max of the model reaches
#: (``e3hier.data.layout.common_orders``): the part of the output where all hidden orders can compete.
COMMON_ORDERS = -2


def constrained_entries(graph: dict, shape) -> torch.Tensor:
    """True at the output entries (node, column) of the graph's block rows (``graph["atom"]``, ``graph["slot"]``).

    The other entries (an H atom's slots of O-only shells, ``e3hier.data.layout``) are masked out of the loss and the
    density: the network's values there are unconstrained, so no probe measures them. ``shape``: the output's
    (nodes, dim), or (members, nodes, dim) with the members' rows laid one after another (``pack_members``).
    """
    mask = torch.zeros(int(torch.tensor(shape[:-1]).prod()), shape[-1], dtype=torch.bool)
    mask[graph["atom"].cpu(), graph["slot"].cpu()] = True
    return mask.view(*shape)


def probe_rows(model, graph: dict, irreps_out, members: int | None = None) -> list[dict] | list[list[dict]]:
    """Sizes on a probe graph (``size_rows``): ``feature`` rows (per layer, l, parity) and, per hidden order l,
    ``contribution`` and ``share`` rows over the output's constrained entries (``constrained_entries``).

    ``members``: ``model`` is the network of K stacked models (``e3hier.training.ensemble``) and ``graph`` the
    probe graph of each member; one list of rows per member."""
    was_training = model.training
    model.eval()
    hidden, contributions = order_contributions(model, graph)
    model.train(was_training)
    some = next(iter(contributions.values()))
    constrained = constrained_entries(graph, tuple(some.shape)).to(some.device)
    if members is None:
        return size_rows(model, hidden, contributions, irreps_out, constrained)
    return [
        size_rows(
            model,
            [h[k] for h in hidden],
            {l: c[k] for l, c in contributions.items()},
            irreps_out,
            constrained[k],
        )
        for k in range(members)
    ]


def output_order_sets(irreps_out, lmax_hidden: int, lmax_edge: int) -> dict[int, list[int]]:
    """``{l_out: output orders}`` of the probe rows: all of them (``ALL_ORDERS``), each alone, and those that
    every hidden order reaches (``COMMON_ORDERS``; absent when there are none)."""
    orders = sorted({ir.l for _, ir in irreps_out})
    sets = {ALL_ORDERS: orders, **{l: [l] for l in orders}}
    common = common_orders(lmax_hidden, lmax_edge, orders)
    if common:
        sets[COMMON_ORDERS] = common
    return sets


def size_rows(model, hidden: list, contributions: dict, irreps_out, constrained: torch.Tensor) -> list[dict]:
    """``probe_rows`` of one model from its hidden features and output contributions (nodes, dim).

    Over the constrained entries of each set of output orders (``output_order_sets``): ``contribution``, the RMS
    per component of hidden order l's contribution c_l, and ``share``, its additive share ⟨c_l, y⟩/‖y‖² of the
    prediction y = Σ_l c_l (the shares sum to 1 over l; NaN where y is zero there).
    """
    rows = []
    for index, (layer, out) in enumerate(zip(hidden_layers(model), hidden)):
        for (l, p), value in sorted(component_rms(out, layer.second.irreps_out).items()):
            rows.append({"kind": "feature", "layer": index, "l": l, "parity": p, "l_out": ALL_ORDERS, "value": value})
    last = len(hidden)
    column_l = torch.cat([torch.full((ir.dim,), ir.l) for mul, ir in irreps_out for _ in range(mul)])
    column_l = column_l.to(constrained.device)
    parts = {l: part.double() for l, part in contributions.items()}
    prediction = sum(parts.values())
    sets = output_order_sets(irreps_out, max(parts), model.lmax_edge)
    for l_out, orders in sets.items():
        entries = constrained & torch.isin(column_l, torch.as_tensor(orders, device=column_l.device))
        y = prediction[entries]
        norm = float(y @ y)
        for l, part in parts.items():
            c = part[entries]
            rms = float(c.pow(2).mean().sqrt()) if len(c) else float("nan")
            share = float(c @ y) / norm if norm > 0 else float("nan")
            for kind, value in (("contribution", rms), ("share", share)):
                rows.append({"kind": kind, "layer": last, "l": l, "parity": 0, "l_out": l_out, "value": value})
    return rows


#: ``kind`` of the probe rows of the study's own measurement: the density error of each output order.
OUTPUT_EPSILON = "output_epsilon"


def measures_output_epsilon(output: str, capacity: str) -> bool:
    """Whether a model's probes measure ``output_epsilon``: only for the models that finding 2c and the output-order
    figure read (the full output at study capacity, either channel count: ``e3hier.analysis.families
    .hierarchy_models``). Decided by the grid point alone, so adding grid points retrains nothing; the others skip
    the Becke-grid evaluation at every probe, a third of a probe's time."""
    return output == PREFERRED_OUTPUT and capacity == "study"


def output_epsilon_rows(table: pd.DataFrame) -> list[dict]:
    """``output_epsilon`` probe rows of one model from ``e3hier.training.evaluation.evaluate``'s table of the probed
    structures: per output order l, the mean over them of ε_l, the error of the density of order l's functions
    alone against the reference's order-l part, % of N_e (the study's ``ep_per_l``, on Becke grids)."""
    rows = []
    for l in range(5):
        column = f"epsilon_l{l}"
        if column in table and table[column].notna().any():
            value = float(table[column].mean())
            rows.append({"kind": OUTPUT_EPSILON, "layer": -1, "l": l, "parity": 0, "l_out": l, "value": value})
    return rows


#: Default ``analysis.probe_schedule``: every step for the first 64 steps, then geometric, at most 500 probes.
PROBE_SCHEDULE = {"dense_steps": 64, "max_probes": 500}


def probe_steps(total_steps: int, dense_steps: int, max_probes: int) -> list[int]:
    """The optimiser steps after which the hidden features are probed (``analysis.probe_schedule``).

    Every step 0..``dense_steps`` (0 is the random initialisation), then steps spaced geometrically up to
    ``total_steps``, at most ``max_probes`` in all; step 0 and the last step always among them.
    """
    total_steps, dense_steps, max_probes = int(total_steps), int(dense_steps), int(max_probes)
    if max_probes < 2 or dense_steps < 0:
        raise ValueError(
            f"analysis.probe_schedule: max_probes {max_probes} (at least 2: the first and the last step) and "
            f"dense_steps {dense_steps} (at least 0)"
        )
    if total_steps <= 0:
        return [0]
    # every step if there is room for all, else every step up to dense_steps, leaving room for the last
    dense_end = total_steps if total_steps < max_probes else min(dense_steps, max_probes - 2)
    steps = list(range(dense_end + 1))
    room = max_probes - len(steps)
    if dense_end == total_steps or room <= 0:
        return steps
    # geometric from the end of the dense part: rounding merges the first points, so ask for more until the
    # distinct steps fill the room (at most all the steps left)
    wanted, later = room, []
    while True:
        spaced = np.geomspace(max(dense_end, 1), total_steps, wanted + 1)[1:]
        later = sorted({int(round(x)) for x in spaced if round(x) > dense_end} | {total_steps})
        if len(later) >= room or wanted >= total_steps - dense_end:
            break
        wanted += room - len(later)
    if len(later) > room:  # keep the last step, drop the earliest surplus
        later = later[: room - 1] + [total_steps]
    return steps + later


@contextlib.contextmanager
def zero_hidden_orders(model, orders):
    """Zero the hidden channels of the given orders l (both parities) in every hidden layer's output; ``model``:
    one network, or a list of them (the models of one evaluation job)."""
    orders = set(orders)
    models = model if isinstance(model, (list, tuple)) else [model]

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

    handles = [layer.register_forward_hook(hook(layer)) for network in models for layer in hidden_layers(network)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


FEATURE_COLUMNS = ["step", "epoch", "kind", "layer", "l", "parity", "l_out", "value"]


def features_table(records: list[dict]) -> pd.DataFrame:
    """``features.parquet`` from the probe records (``{"step", "epoch", "rows"}``), one row per size.

    Columns: ``step`` (optimiser steps done; 0 is the random initialisation), ``epoch``, ``kind``
    (``contribution``: RMS per component of hidden order l's part c_l of the output; ``share``: its additive
    share ⟨c_l, y⟩/‖y‖² of the prediction y, summing to 1 over l; both over the constrained output entries of
    all output orders (``l_out`` -1), one output order, or those every hidden order reaches (``l_out`` -2);
    ``feature``: RMS per component of the hidden features of ``layer``, order l and ``parity``;
    ``output_epsilon``: ε_l of output order l on the probed structures, ``output_epsilon_rows``), ``layer``,
    ``l``, ``parity``, ``l_out``, ``value``.
    """
    rows = [{"step": r["step"], "epoch": r["epoch"], **row} for r in filter(None, records) for row in r["rows"]]
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)

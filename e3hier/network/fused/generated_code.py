"""Rewrites of the code e3nn generates for its tensor products (``kernels="split"``, and every product
the fused kernels do not take over).

e3nn generates each tensor product's code as an ``fx.GraphModule``; with torch >= 2.10 it runs eagerly
(no TorchScript), so two things of the generated graph cost time in training:

- every instruction takes its weights (and every input irrep its features) as a column slice
  ``t[:, a:b]``. Autograd turns each slice into a zero-filled gradient of the *whole* tensor plus an
  add: for the edge tensor product (per-edge weights, ~100 paths at l_max 4) that was ~1/3 of a
  training step (``aten::fill_`` + ``aten::add_``). One ``torch.split`` into the same pieces has a
  single, concatenating backward.
- outer products built for the general contraction but unused by the specialised code paths stay in
  the graph (TorchScript used to drop them); dead-code elimination removes them.

Both rewrites keep the forward arithmetic bit for bit (the same views, the same kernels).
"""

from __future__ import annotations

import contextlib
import operator
from collections import defaultdict

import torch
from e3nn import o3

from e3hier.network.fused import e3nn_internals


def _column_slice(node):
    """``(source, start, stop)`` when ``node`` is ``source[:, start:stop]``, else None."""
    if node.op != "call_function" or node.target is not operator.getitem:
        return None
    source, index = node.args
    if not (isinstance(source, torch.fx.Node) and isinstance(index, tuple) and len(index) == 2):
        return None
    rows, cols = index
    if rows != slice(None) or not isinstance(cols, slice) or cols.step not in (None, 1):
        return None
    if not (isinstance(cols.start, int) and isinstance(cols.stop, int)):
        return None
    return source, cols.start, cols.stop


def split_column_slices(graph_module: torch.fx.GraphModule, example_inputs) -> int:
    """Replace the column slices of each 2-D tensor of ``graph_module`` by one ``torch.split``.

    Only slices that tile into non-overlapping pieces are rewritten.

    Parameters
    ----------
    graph_module : torch.fx.GraphModule
        e3nn's generated code of one tensor product, rewritten in place.
    example_inputs : tuple
        Inputs of the right shapes (their values do not matter), to find each tensor's width.

    Returns
    -------
    int
        How many tensors were split.
    """
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(graph_module).propagate(*example_inputs)
    graph = graph_module.graph
    groups = defaultdict(list)
    for node in graph.nodes:
        found = _column_slice(node)
        if found is not None:
            groups[found[0]].append((node, found[1], found[2]))
    changed = 0
    for source, items in groups.items():
        meta = source.meta.get("tensor_meta")
        if len(items) < 2 or meta is None or len(meta.shape) != 2:
            continue
        width = int(meta.shape[1])
        cuts = sorted({0, width} | {a for _, a, _ in items} | {b for _, _, b in items})
        if cuts[0] < 0 or cuts[-1] > width:
            continue
        piece_of = {c: i for i, c in enumerate(cuts)}
        if any(piece_of[b] != piece_of[a] + 1 for _, a, b in items):
            continue  # a slice would span several pieces
        sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:])]
        with graph.inserting_after(source):
            pieces = graph.call_function(torch.split, (source, sizes), {"dim": 1})
        for node, a, _ in items:
            with graph.inserting_after(pieces):
                piece = graph.call_function(operator.getitem, (pieces, piece_of[a]))
            node.replace_all_uses_with(piece)
            graph.erase_node(node)
        changed += 1
    graph.lint()
    graph_module.recompile()
    return changed


def optimise_tensor_products(module: torch.nn.Module) -> int:
    """Apply dead-code elimination and ``split_column_slices`` to every e3nn tensor product in ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        Any module; its tensor products' generated code is rewritten in place (parameters, buffers
        and state-dict keys are untouched).

    Returns
    -------
    int
        The number of tensor products rewritten.
    """
    rewritten = 0
    for tp in module.modules():
        if not isinstance(tp, o3.TensorProduct):
            continue
        graph_module = e3nn_internals.generated_code(tp)
        if graph_module is None:
            continue  # e.g. TorchScript-compiled (older torch): left as it is
        numel = tp.weight_numel
        weight = torch.zeros(numel) if tp.shared_weights else torch.zeros(4, numel)
        example = (torch.zeros(4, tp.irreps_in1.dim), torch.zeros(4, tp.irreps_in2.dim), weight)
        graph_module.graph.eliminate_dead_code()
        graph_module.recompile()
        split_column_slices(graph_module, example)
        rewritten += 1
    return rewritten


@contextlib.contextmanager
def e3nn_code_generation(optimized: bool):
    """e3nn's code generation for tensor products, with its einsum optimisation on or off meanwhile.

    The fused kernels replace the generated code of the products they take over, so optimising it
    (``opt_einsum_fx``, ~60 % of building a network: ~1.5-2.5 s per training job) is wasted there.

    Parameters
    ----------
    optimized : bool
        e3nn's ``optimize_einsums`` while the context is open; the previous value is restored after.
    """
    saved = e3nn_internals.optimize_einsums()
    e3nn_internals.set_optimize_einsums(optimized)
    try:
        yield
    finally:
        e3nn_internals.set_optimize_einsums(saved)

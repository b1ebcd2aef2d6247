"""The e3nn network of the study: ``gate_points_2101.Network`` fed with exact neighbour lists.

Irreps
------
- node input: one-hot of the elements, ``{n_elements}x0e``;
- node attributes (``model.node_attributes``): ``constant``, the study's (one scalar 1 per atom, ``0e``),
  or ``one_hot`` (the element again; ~35-50 % more parameters in the self-interactions);
- hidden: multiplicities [125, 40, 25, 15, 10] for l = 0..4 in both parities,
  truncated at the grid point's ``lmax_hidden``;
- edge attributes: spherical harmonics up to l = 3 times a smooth cutoff;
- output: the density block the grid point predicts (see ``e3hier.layout``).

Positions enter in e3nn's frame (y, z, x), so outputs are in the project's
m-ordered layout (``e3hier.conventions``).

The tensor products run on fused kernels by default (``DensityNetwork(kernels=...)``, below): the
same parameters and state-dict keys as e3nn's modules, outputs equal to float rounding, ~2-3× faster
training steps on CPU (``benchmarks/``).
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections import defaultdict

import numpy as np
import e3nn
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import Gate
from e3nn.nn.models.gate_points_2101 import Convolution, Network, smooth_cutoff

from e3hier.capacity import hidden_irreps, node_attribute_irreps
from e3hier.conventions import positions_to_e3nn
from e3hier.scalar_linear import scalar_linear

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
    (Gaussian basis × √number_of_basis), exactly as ``Network.forward`` builds them.
    """
    src, dst = neighbour_list(positions_angstrom, max_radius)
    pos = torch.as_tensor(positions_to_e3nn(positions_angstrom), dtype=torch.float64)
    edge_src, edge_dst = torch.as_tensor(src), torch.as_tensor(dst)
    edge_vec = pos[edge_src] - pos[edge_dst]
    edge_sh = o3.spherical_harmonics(o3.Irreps.spherical_harmonics(lmax_edge), edge_vec, True, normalization="component")
    edge_length = edge_vec.norm(dim=1)
    embedded = soft_one_hot_linspace(
        edge_length, start=0.0, end=max_radius, number=number_of_basis, basis="gaussian", cutoff=False
    ).mul(number_of_basis**0.5)
    edge_attr = smooth_cutoff(edge_length / max_radius)[:, None] * edge_sh
    return {"edge_src": edge_src, "edge_dst": edge_dst, "edge_attr": edge_attr, "edge_length_embedded": embedded}


# ---- faster tensor products (same model, same parameters) ------------------------------------------
#
# ``DensityNetwork(kernels=...)``: "fused" (default) evaluates the convolutions' tensor products with
# ``FusedScalarProduct`` / ``FusedEdgeProduct`` / ``FusedConvolution`` (a few large matrix products
# instead of one small contraction per path; outputs agree with e3nn's to float rounding, ~1e-7);
# "split" keeps e3nn's generated code and only applies the two rewrites below (bit-identical).
#
# e3nn generates each tensor product's code as an ``fx.GraphModule``; with torch >= 2.10 it runs eagerly
# (no TorchScript), so two things of the generated graph cost time in training:
#
# - every instruction takes its weights (and every input irrep its features) as a column slice
#   ``t[:, a:b]``. Autograd turns each slice into a zero-filled gradient of the *whole* tensor plus an
#   add: for the edge tensor product (per-edge weights, ~100 paths at l_max 4) that was ~1/3 of a
#   training step (``aten::fill_`` + ``aten::add_``). One ``torch.split`` into the same pieces has a
#   single, concatenating backward.
# - outer products built for the general contraction but unused by the specialised code paths stay in
#   the graph (TorchScript used to drop them); dead-code elimination removes them.
#
# Both rewrites keep the forward arithmetic bit for bit (the same views, the same kernels).


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

    Only slices that tile into non-overlapping pieces are rewritten. Returns how many tensors were split.
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


def _segment_offsets(irreps: o3.Irreps) -> list[int]:
    offsets = [0]
    for mul_ir in irreps:
        offsets.append(offsets[-1] + mul_ir.dim)
    return offsets


class FusedScalarProduct(o3.FullyConnectedTensorProduct):
    """``FullyConnectedTensorProduct`` whose second input is scalars only (``sc``, ``lin1``, ``lin2``), batched.

    e3nn evaluates one small contraction per instruction (~100 for ``lin2`` at l_max 4). With scalar
    ``x2`` every instruction into output segment ``o`` is ``Σ_uv W[u,v,w] x1[z,u,i] x2[z,v]`` (times its
    path weight / √(2l+1)), so all of them become one matrix product per output segment: the feature
    segments feeding ``o`` are stacked (they are adjacent in sorted irreps) and the weight blocks
    taken from one ``split`` of the flat parameter. Same parameters; outputs agree to float rounding.
    Made by ``fuse_tensor_products`` (class swap of an existing module).
    """

    @staticmethod
    def supports(tp) -> bool:
        return (isinstance(tp, o3.FullyConnectedTensorProduct) and tp.internal_weights and tp.shared_weights
                and all(ir.l == 0 for _, ir in tp.irreps_in2)
                and all(ins.connection_mode == "uvw" and ins.has_weight for ins in tp.instructions))  # fmt: skip

    def _prepare(self) -> None:
        in1, in2, out = self.irreps_in1, self.irreps_in2, self.irreps_out
        off1, off2 = _segment_offsets(in1), _segment_offsets(in2)
        sizes, groups = [], {i: [] for i in range(len(out))}
        for ins in self.instructions:
            size = int(np.prod(ins.path_shape))
            if size:
                groups[ins.i_out].append((ins, len(sizes)))
                sizes.append(size)
        self._sizes = sizes
        self._plan = []
        for i_out, items in groups.items():
            mul_out, ir_out = out[i_out]
            if mul_out == 0:
                continue
            if not items:
                self._plan.append((None, (mul_out, ir_out.dim)))
                continue
            # runs of adjacent x1 segments sharing one x2 segment: one product each
            items.sort(key=lambda t: (t[0].i_in2, t[0].i_in1))
            runs = []
            for ins, piece in items:
                alpha = ins.path_weight / ir_out.dim**0.5
                if runs and runs[-1]["i_in2"] == ins.i_in2 and runs[-1]["i_in1"][-1] + 1 == ins.i_in1:
                    runs[-1]["i_in1"].append(ins.i_in1)
                    runs[-1]["pieces"].append((piece, alpha))
                else:
                    runs.append({"i_in1": [ins.i_in1], "i_in2": ins.i_in2, "pieces": [(piece, alpha)]})
            plan = []
            for run in runs:
                first, last, i_in2 = run["i_in1"][0], run["i_in1"][-1], run["i_in2"]
                mul1 = sum(in1[i].mul for i in run["i_in1"])
                plan.append(((off1[first], off1[last + 1]), (off2[i_in2], off2[i_in2 + 1]), mul1, in2[i_in2].mul,
                             tuple((piece, float(alpha)) for piece, alpha in run["pieces"]),
                             [in1[i].dim for i in run["i_in1"]]))  # fmt: skip
            self._plan.append((plan, (mul_out, ir_out.dim)))
        # x is cut once at every run boundary (slicing it per run would cost a zero-filled gradient each)
        cuts = sorted({0, in1.dim} | {c for plan, _ in self._plan if plan for (a, b), *_ in plan for c in (a, b)})
        self._x_sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:])]
        # per run, derived once: its x pieces, its weight pieces, and its path weights (one scale when
        # they are all equal, else one per input segment); the forward pass only looks them up
        self._plan = [
            (None if plan is None else [
                ((cuts.index(a1), cuts.index(b1)), y_range, mul1, mul2, tuple(piece for piece, _ in blocks),
                 blocks[0][1] if len({alpha for _, alpha in blocks}) == 1 else None,
                 tuple(alpha for _, alpha in blocks), segment_dims)
                for (a1, b1), y_range, mul1, mul2, blocks, segment_dims in plan
            ], out_shape)
            for plan, out_shape in self._plan
        ]  # fmt: skip

    def forward(self, x, y, weight=None):
        weight = self._get_weights(weight)
        if weight.dim() == 2:  # an ensemble (``e3hier.ensemble``): one weight row per member
            return self.forward_members(x, y, weight)
        batch = x.shape[:-1]
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        pieces = torch.split(weight, self._sizes) if self._sizes else ()
        x_pieces = torch.split(x, self._x_sizes, dim=1)
        outputs = []
        for plan, (mul_out, dim) in self._plan:
            if plan is None:
                outputs.append(x.new_zeros(x.shape[0], mul_out * dim))
                continue
            result = None
            for (i, j), (a2, b2), mul1, mul2, weight_pieces, scale, alphas, segment_dims in plan:
                x1 = x_pieces[i] if j == i + 1 else torch.cat(x_pieces[i:j], dim=1)
                # the path weights scale the (small) inputs, so the weight blocks are used in place, unscaled
                y2 = y[:, a2:b2]
                if scale is not None:
                    y2 = y2 * scale
                else:  # one block per input segment of the run, in order
                    segments = torch.split(x1, segment_dims, dim=1)
                    x1 = torch.cat([piece * alpha for piece, alpha in zip(segments, alphas)], dim=1)
                xv = (x1.reshape(-1, mul1, 1, dim) * y2[:, None, :, None]).reshape(-1, mul1 * mul2, dim)
                w = pieces[weight_pieces[0]] if len(weight_pieces) == 1 else torch.cat([pieces[k] for k in weight_pieces])
                term = torch.matmul(xv.transpose(1, 2), w.view(mul1 * mul2, mul_out))  # (z, dim, w)
                result = term if result is None else result + term
            outputs.append(result.transpose(1, 2).reshape(-1, mul_out * dim))
        out = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
        return out.reshape(*batch, out.shape[-1])

    def forward_members(self, x, y, weight):
        """``forward`` of K models at once: inputs (K, nodes, dim), weights (K, weight_numel).

        The same plan as ``forward``; each product becomes one batched product over the members
        (``bmm``: member k's nodes with member k's weight block).
        """
        members, nodes = x.shape[0], x.shape[1]
        pieces = torch.split(weight, self._sizes, dim=1) if self._sizes else ()
        x_pieces = torch.split(x, self._x_sizes, dim=2)
        outputs = []
        for plan, (mul_out, dim) in self._plan:
            if plan is None:
                outputs.append(x.new_zeros(members, nodes, mul_out * dim))
                continue
            result = None
            for (i, j), (a2, b2), mul1, mul2, weight_pieces, scale, alphas, segment_dims in plan:
                x1 = x_pieces[i] if j == i + 1 else torch.cat(x_pieces[i:j], dim=2)
                y2 = y[:, :, a2:b2]
                if scale is not None:
                    y2 = y2 * scale
                else:
                    segments = torch.split(x1, segment_dims, dim=2)
                    x1 = torch.cat([piece * alpha for piece, alpha in zip(segments, alphas)], dim=2)
                xv = (x1.reshape(members, nodes, mul1, 1, dim) * y2[:, :, None, :, None]).reshape(
                    members, nodes, mul1 * mul2, dim
                )
                w = pieces[weight_pieces[0]] if len(weight_pieces) == 1 else torch.cat([pieces[k] for k in weight_pieces], 1)
                xv = xv.transpose(2, 3).reshape(members, nodes * dim, mul1 * mul2)
                term = torch.bmm(xv, w.view(members, mul1 * mul2, mul_out))  # (K, nodes·dim, w)
                result = term if result is None else result + term
            outputs.append(result.view(members, nodes, dim, mul_out).transpose(2, 3).reshape(members, nodes, -1))
        return torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]


class FusedEdgeProduct(o3.TensorProduct):
    """The convolution's edge tensor product (``uvu``, per-edge weights, one filter of each l), batched.

    e3nn evaluates each of its ~100 paths (l_max 4) separately. Here the Clebsch–Gordan coefficients of
    every path are contracted with the edge's spherical harmonics in one matrix product (all input
    segments at once), each input segment (u, l1) is coupled to its paths with one batched product, and
    the per-edge path weights are spread over each path's 2l+1 components by one ``index_select``; one
    column permutation gives e3nn's output layout. Same weights and layout; outputs agree to float
    rounding. Made by ``fuse_tensor_products``.
    """

    @staticmethod
    def supports(tp) -> bool:
        outputs = [ins.i_out for ins in tp.instructions]
        in1 = [ins.i_in1 for ins in tp.instructions]
        return (type(tp) is o3.TensorProduct and not tp.shared_weights and not tp.internal_weights
                and all(mul == 1 for mul, _ in tp.irreps_in2)
                and all(ins.connection_mode == "uvu" and ins.has_weight for ins in tp.instructions)
                and in1 == sorted(in1)  # each input segment's weights are contiguous
                and len(set(outputs)) == len(outputs)
                and set(outputs) >= {i for i, (mul, _) in enumerate(tp.irreps_out) if mul})  # fmt: skip

    def _prepare(self) -> None:
        in1, in2, out = self.irreps_in1, self.irreps_in2, self.irreps_out
        off1, off2, off_out = _segment_offsets(in1), _segment_offsets(in2), _segment_offsets(out)
        by_input = {}
        for ins in self.instructions:
            if int(np.prod(ins.path_shape)):
                by_input.setdefault(ins.i_in1, []).append(ins)
        permutation = np.zeros(out.dim, dtype=np.int64)
        cgs, spread, source, self._plan = [], [], [], []
        position = weight_offset = 0
        for i_in1, items in by_input.items():
            mul, ir1 = in1[i_in1]
            width = sum(out[ins.i_out].ir.dim for ins in items)
            cg = np.zeros((in2.dim, ir1.dim, width))
            path_of_column = np.zeros(width, dtype=np.int64)
            k = 0
            for p, ins in enumerate(items):
                ir2, ir3 = in2[ins.i_in2].ir, out[ins.i_out].ir
                w3j = o3.wigner_3j(ir1.l, ir2.l, ir3.l, dtype=torch.float64).numpy()  # (i, j, k)
                cg[off2[ins.i_in2] : off2[ins.i_in2 + 1], :, k : k + ir3.dim] = ins.path_weight * w3j.transpose(1, 0, 2)
                path_of_column[k : k + ir3.dim] = p
                # output segment i_out is (u, d3) row-major
                u, c = np.meshgrid(np.arange(mul), np.arange(ir3.dim), indexing="ij")
                permutation[off_out[ins.i_out] + u * ir3.dim + c] = position + u * width + k + c
                k += ir3.dim
            cgs.append(cg.reshape(in2.dim, -1))
            # message column (u, k) takes the edge weight of its path p(k) and channel u (e3nn's (p, u) order)
            spread.append(weight_offset + path_of_column[None, :] * mul + np.arange(mul)[:, None])
            source.append(np.full(mul * width, off1[i_in1]))  # the first feature of the input segment
            self._plan.append((i_in1, mul, ir1.dim, width))
            position += mul * width
            weight_offset += mul * len(items)
        dtype = torch.get_default_dtype()
        self._cg_sizes = [cg.shape[1] for cg in cgs]
        self.register_buffer("_fused_cg", torch.as_tensor(np.concatenate(cgs, axis=1), dtype=dtype), persistent=False)
        self.register_buffer("_fused_spread", torch.as_tensor(np.concatenate([s.ravel() for s in spread])),
                             persistent=False)  # fmt: skip
        self.register_buffer("_fused_permutation", torch.as_tensor(permutation), persistent=False)
        #: per message column, a feature of the input segment it comes from (masks of whole segments)
        self.register_buffer("_fused_source", torch.as_tensor(np.concatenate(source)), persistent=False)
        self._x_sizes = [mul_ir.dim for mul_ir in in1]

    def messages(self, x, y, weight) -> torch.Tensor:
        """The output in the fused layout, (z, Σ u·k): ``_fused_permutation`` reorders it into e3nn's."""
        x_pieces = torch.split(x, self._x_sizes, dim=1)
        couplings = torch.split(y @ self._fused_cg, self._cg_sizes, dim=1)  # CG · Y per edge, all segments
        products = [
            torch.bmm(x_pieces[i_in1].reshape(-1, mul, dim), coupling.reshape(-1, dim, width)).reshape(-1, mul * width)
            for (i_in1, mul, dim, width), coupling in zip(self._plan, couplings)
        ]  # (z, u, k) per input segment
        product = torch.cat(products, dim=1) if len(products) > 1 else products[0]
        return product * weight.index_select(1, self._fused_spread)

    def forward(self, x, y, weight=None):
        weight = self._get_weights(weight)
        batch = x.shape[:-1]
        x, y, weight = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]), weight.reshape(-1, weight.shape[-1])
        out = self.messages(x, y, weight).index_select(1, self._fused_permutation)
        return out.reshape(*batch, out.shape[-1])


#: The largest per-edge tensor (edges × message width, elements) an ensemble's convolution makes at once
#: without gradients (16 MiB in float32: half the L3 cache of the machine it was tuned on).
MESSAGE_CHUNK_ELEMENTS = 2**22


class FusedConvolution(Convolution):
    """``gate_points_2101.Convolution`` with a ``FusedEdgeProduct``: the edge messages are summed onto the
    nodes in the fused layout, and only the node sums are permuted into e3nn's
    layout (nodes are ~5× fewer than edges). Same modules and parameters; made by ``fuse_tensor_products``.
    """

    #: Set by ``DensityNetwork`` for constant node attributes (the study's): the attribute is 1 on every
    #: atom, so ``sc``, ``lin1`` and ``lin2`` are linear maps of the features (``e3hier.scalar_linear``).
    constant_attributes = False

    def forward(self, node_input, node_attr, edge_src, edge_dst, edge_attr, edge_length_embedded) -> torch.Tensor:
        weight = self.fc(edge_length_embedded)
        s = self._linear(self.sc, node_input, node_attr)
        x = self._node_sums(self._linear(self.lin1, node_input, node_attr), edge_src, edge_dst, edge_attr, weight)
        return self._combine(s, x, node_input.shape[:-1], node_attr)

    def forward_masked(self, node_input, masks, node_attr, edge_src, edge_dst, edge_attr,
                       edge_length_embedded) -> list[torch.Tensor]:  # fmt: skip
        """``[self(node_input * mask, ...) for mask in masks]``, the edge work done once for all masks.

        Each mask must be constant on every irrep segment of the input (e.g. one hidden order l:
        ``e3hier.features.order_contributions``). ``lin1`` mixes channels of one irrep only, and each
        message column comes from one input segment, so masking the input masks the summed messages
        column by column: the edge products (most of a convolution) run once instead of once per mask.
        """
        weight = self.fc(edge_length_embedded)
        x = self._linear(self.lin1, node_input, node_attr)
        sums = self._node_sums(x, edge_src, edge_dst, edge_attr, weight)
        outputs = []
        for mask in masks:
            masked = node_input * mask
            s = self._linear(self.sc, masked, node_attr)
            outputs.append(self._combine(s, sums * mask[self.tp._fused_source], node_input.shape[:-1], node_attr))
        return outputs

    def _linear(self, product, x, node_attr):
        return scalar_linear(product, x) if self.constant_attributes else product(x, node_attr)

    def _node_sums(self, x, edge_src, edge_dst, edge_attr, weight) -> torch.Tensor:
        """The messages summed on their destination nodes, in the fused layout (all members' nodes, W)."""
        if x.dim() == 2:
            messages = self.tp.messages(x.index_select(0, edge_src), edge_attr, weight)
            # index_add, not scatter_add with an expanded index: same sums, much cheaper backward (index_select)
            return messages.new_zeros(x.shape[0], messages.shape[1]).index_add(0, edge_dst, messages)
        # an ensemble: the members' nodes one after another, edge indices offset to match. Without
        # gradients (probes, validation: many structures per member) the per-edge tensors of all members
        # at once (edges × W, W ~13,000 at l_max 4) would fall out of the caches: members are taken in
        # groups of at most MESSAGE_CHUNK_ELEMENTS per tensor, each group's tensors freed before the next
        # (1.5× faster probes). Training keeps them for the backward pass anyway: one group.
        # Each node's messages are still added in edge order.
        members, edges = edge_attr.shape[0], edge_attr.shape[1]
        width = self.tp._fused_permutation.shape[0]
        group = members if torch.is_grad_enabled() else max(1, MESSAGE_CHUNK_ELEMENTS // max(1, edges * width))
        x = x.flatten(0, 1)
        sums = x.new_zeros(x.shape[0], width)
        for first in range(0, members, group):
            last = min(first + group, members)
            rows = slice(first * edges, last * edges)
            messages = self.tp.messages(x.index_select(0, edge_src[rows]), edge_attr[first:last].flatten(0, 1),
                                        weight[first:last].flatten(0, 1))  # fmt: skip
            sums = sums.index_add(0, edge_dst[rows], messages)
        return sums

    def _combine(self, s, x, nodes, node_attr) -> torch.Tensor:
        """The output from the self-interaction ``s`` and the node sums ``x`` (``_node_sums``)."""
        x = x.index_select(1, self.tp._fused_permutation).div(self.num_neighbors**0.5)
        if len(nodes) == 2:
            x = x.view(*nodes, x.shape[-1])
        x = self._linear(self.lin2, x, node_attr)
        c_s, c_x = math.sin(math.pi / 8), math.cos(math.pi / 8)
        m = self.sc.output_mask
        c_x = (1 - m) + c_x * m
        return c_s * s + c_x * x


class FusedGate(Gate):
    """e3nn's ``Gate`` with the extraction and the gating done at once: one ``split`` of the input into
    scalars, gates and gated features (e3nn copies each segment into zero-filled outputs), e3nn's own
    activations, and one product of the gated features with their gates spread over each irrep's 2l+1
    components (one ``index_select``). Same outputs to float rounding; made by ``fuse_tensor_products``.
    """

    @staticmethod
    def supports(gate) -> bool:
        return type(gate) is Gate

    def _prepare(self) -> None:
        cut = self.sc.cut
        offsets = _segment_offsets(cut.irreps_in)
        ranges = [[(offsets[i], offsets[i + 1]) for i in ins] for ins in cut.instructions]
        cuts = sorted({0, cut.irreps_in.dim} | {c for group in ranges for r in group for c in r})
        self._x_sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:])]
        self._groups = [[cuts.index(a) for a, _ in group] for group in ranges]  # each range is one piece
        gate_index = []
        for mul, ir in self.irreps_gated:
            start = len(gate_index) and gate_index[-1] + 1
            gate_index += [start + u for u in range(mul) for _ in range(ir.dim)]
        self.register_buffer("_gate_index", torch.as_tensor(gate_index, dtype=torch.long), persistent=False)

    def forward(self, features):
        pieces = torch.split(features, self._x_sizes, dim=-1)
        scalars, gates, gated = (
            torch.cat([pieces[i] for i in group], dim=-1) if len(group) > 1
            else pieces[group[0]] if group else features.new_zeros(features.shape[:-1] + (0,))
            for group in self._groups
        )  # fmt: skip
        scalars = self.act_scalars(scalars)
        if not gates.shape[-1]:
            return scalars
        gated = gated * self.act_gates(gates).index_select(-1, self._gate_index)
        return torch.cat([scalars, gated], dim=-1)


def fuse_tensor_products(module: torch.nn.Module) -> dict:
    """Faster, equivalent evaluation of every e3nn tensor product in ``module``.

    ``FusedScalarProduct`` / ``FusedEdgeProduct`` where they apply (the module's class is swapped, so
    parameters, buffers and state-dict keys stay e3nn's; the fused constants are non-persistent buffers),
    ``FusedConvolution`` around a fused edge product and ``FusedGate`` for the gates; every other tensor
    product (the gates' elementwise products, no longer called) gets dead-code elimination and
    ``split_column_slices``.
    Returns how many modules got each treatment.
    """
    counts = {"scalar": 0, "edge": 0, "split": 0, "convolution": 0, "gate": 0}
    for gate in list(module.modules()):
        if FusedGate.supports(gate):
            gate.__class__ = FusedGate
            gate._prepare()
            counts["gate"] += 1
    for tp in list(module.modules()):
        if not isinstance(tp, o3.TensorProduct):
            continue
        if FusedScalarProduct.supports(tp):
            tp.__class__ = FusedScalarProduct
            tp._prepare()
            counts["scalar"] += 1
        elif FusedEdgeProduct.supports(tp):
            tp.__class__ = FusedEdgeProduct
            tp._prepare()
            counts["edge"] += 1
        else:
            counts["split"] += optimise_tensor_products(tp)
    for conv in module.modules():
        if type(conv) is Convolution and isinstance(conv.tp, FusedEdgeProduct):
            conv.__class__ = FusedConvolution
            counts["convolution"] += 1
    return counts


def optimise_tensor_products(module: torch.nn.Module) -> int:
    """Apply dead-code elimination and ``split_column_slices`` to every e3nn tensor product in ``module``.

    Parameters, buffers and state-dict keys are untouched. Returns the number of tensor products rewritten.
    """
    rewritten = 0
    for tp in module.modules():
        graph_module = getattr(tp, "_compiled_main_left_right", None)
        if not isinstance(tp, o3.TensorProduct) or not isinstance(graph_module, torch.fx.GraphModule):
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
    """
    saved = e3nn.get_optimization_defaults()["optimize_einsums"]
    e3nn.set_optimization_defaults(optimize_einsums=optimized)
    try:
        yield
    finally:
        e3nn.set_optimization_defaults(optimize_einsums=saved)


class DensityNetwork(Network):
    """``gate_points_2101.Network`` whose graph (edges and edge features) is given, not rebuilt.

    e3nn's fallback ``radius_graph`` uses ``torch.cdist``, whose rounding
    creates spurious self-edges in larger batches; the graph here comes from
    ``edge_features`` instead. Parameters, layers and state-dict keys are the
    parent's. ``kernels`` chooses how the tensor products are evaluated (the
    model and its outputs are the same, up to float rounding, for all three):
    ``"fused"`` (default, ``fuse_tensor_products``), ``"split"`` (e3nn's
    generated code with ``optimise_tensor_products``) or ``"e3nn"`` (as e3nn builds it).
    """

    def __init__(self, n_elements: int, lmax_hidden: int, irreps_out: str, num_neighbors: float, num_nodes: float,
                 hidden_multiplicities=MODEL_DEFAULTS["hidden_multiplicities"], layers=MODEL_DEFAULTS["layers"],
                 max_radius=MODEL_DEFAULTS["max_radius"], number_of_basis=MODEL_DEFAULTS["number_of_basis"],
                 radial_layers=MODEL_DEFAULTS["radial_layers"], radial_neurons=MODEL_DEFAULTS["radial_neurons"],
                 lmax_edge=MODEL_DEFAULTS["lmax_edge"], node_attributes=MODEL_DEFAULTS["node_attributes"],
                 kernels: str = "fused"):  # fmt: skip
        with e3nn_code_generation(optimized=kernels != "fused"):
            self._build(n_elements, lmax_hidden, irreps_out, num_neighbors, num_nodes, hidden_multiplicities, layers,
                        max_radius, number_of_basis, radial_layers, radial_neurons, lmax_edge, node_attributes)  # fmt: skip
        self.lmax_edge = lmax_edge
        self.node_attributes = node_attributes
        if kernels == "fused":
            fuse_tensor_products(self)
            for conv in self.modules():
                if isinstance(conv, FusedConvolution) and node_attributes == "constant":
                    conv.constant_attributes = all(isinstance(tp, FusedScalarProduct)
                                                   for tp in (conv.sc, conv.lin1, conv.lin2))  # fmt: skip
        elif kernels == "split":
            optimise_tensor_products(self)
        elif kernels != "e3nn":
            raise ValueError(f"kernels: {kernels!r} is not one of 'fused', 'split', 'e3nn'")

    def _build(self, n_elements, lmax_hidden, irreps_out, num_neighbors, num_nodes, hidden_multiplicities, layers,
               max_radius, number_of_basis, radial_layers, radial_neurons, lmax_edge, node_attributes) -> None:  # fmt: skip
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

    def node_attr(self, graph: dict) -> torch.Tensor:
        """The node attributes: the element one-hot, or a constant 1 per atom (the study's)."""
        one_hot = graph["one_hot"]
        return one_hot if self.node_attributes == "one_hot" else one_hot.new_ones(*one_hot.shape[:-1], 1)

    @staticmethod
    def edge_inputs(graph: dict) -> tuple:
        """What every convolution takes besides the node features and attributes."""
        return graph["edge_src"], graph["edge_dst"], graph["edge_attr"], graph["edge_length_embedded"]

    def forward(self, graph: dict) -> torch.Tensor:
        """Per-atom output (n_atoms, irreps_out.dim) of a (packed) graph from ``edge_features``."""
        x, node_attr, edges = graph["one_hot"], self.node_attr(graph), self.edge_inputs(graph)
        for layer in self.layers:
            x = layer(x, node_attr, *edges)
        return x

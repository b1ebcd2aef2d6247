"""The fused edge product: the convolutions' edge tensor product (``uvu``, per-edge weights), batched.

A few large matrix products instead of one small contraction per path; the parameters, buffers, state-dict
keys and output layout are e3nn's, the outputs agree to float rounding (~1e-7). Like the scalar product
(``e3hier.network.fused.scalar_product``) it is made from e3nn's built module by a class change
(``e3hier.network.fused.layers.fuse_tensor_products``).
"""

from __future__ import annotations

import numpy as np
import torch
from e3nn import o3

from e3hier.network.fused.e3nn_internals import product_weights
from e3hier.network.fused.scalar_product import segment_offsets


def edge_groups(members: int, edges: int, pairs: int | None, width: int, elements: int) -> tuple | None:
    """The member groups an ensemble's edge messages are computed in (``EdgeSums``): ``(first edge row, last,
    first pair row, last)`` of each run of members whose per-edge tensors (edges × ``width``) stay within
    ``elements`` (at least one member each), or None where all members fit at once. The members' edges
    (``edges`` rows each) and pairs (``pairs`` each; None: weights per edge) lie one after another."""
    group = max(1, elements // max(1, edges * width))
    if group >= members:
        return None
    pairs = edges if pairs is None else pairs
    return tuple(
        (first * edges, last * edges, first * pairs, last * pairs)
        for first, last in ((f, min(f + group, members)) for f in range(0, members, group))
    )


def group_edges(groups, edge_src, edge_dst, edge_pair):
    """Each member group of ``edge_groups`` (one group of all edges where ``groups`` is None): ``(first edge row,
    last, first pair row, last)`` (None where all), and the group's edge sources, destinations and pair rows, the
    pairs counted from the group's first (its weights' rows)."""
    for e0, e1, p0, p1 in groups or ((None, None, None, None),):
        if e0 is None:
            yield e0, e1, p0, p1, edge_src, edge_dst, edge_pair
        else:
            pair = None if edge_pair is None else edge_pair[e0:e1] - p0
            yield e0, e1, p0, p1, edge_src[e0:e1], edge_dst[e0:e1], pair


def edge_sums(x, weight, y, edge_src, edge_dst, edge_pair, tp, groups=None, keep: list | None = None) -> torch.Tensor:
    """``FusedEdgeProduct.node_sums`` without autograd: the messages summed on their destination rows of a
    (nodes, Σ u·k) tensor, computed in the edge ``groups`` of ``edge_groups`` (None: all edges at once), each
    group's per-edge tensors made and used while they are in the caches.

    Each input segment's products (``_product_pieces``) are weighted into their columns of the messages, so
    the products are never concatenated. ``keep``: a list that gets each group's couplings, spread weights and
    product pieces (``EdgeSums``' backward); without it the products are weighted into the spread weights, in
    place."""
    sums = None
    for e0, e1, p0, p1, src, dst, pair in group_edges(groups, edge_src, edge_dst, edge_pair):
        ys, w = (y, weight) if e0 is None else (y[e0:e1], weight[p0:p1])
        couplings = ys @ tp._fused_cg
        pieces = tp._product_pieces(x.index_select(0, src), couplings)
        # spread over the columns once per pair, then each edge copies its pair's row (a row copy is cheaper
        # than a column gather, and the backward adds the two edges of a pair before its column sums)
        spread = w.index_select(1, tp._fused_spread)
        if pair is not None:
            spread = spread.index_select(0, pair)
        if keep is None:
            messages = spread
            for (a, b), piece in zip(tp._piece_columns, pieces):
                messages[:, a:b].mul_(piece)
        else:
            messages = torch.empty_like(spread)
            compiling = torch.compiler.is_compiling()  # a trace takes no out= of strided columns (train.compile)
            for (a, b), piece in zip(tp._piece_columns, pieces):
                if compiling:
                    messages[:, a:b] = piece * spread[:, a:b]
                else:
                    torch.mul(piece, spread[:, a:b], out=messages[:, a:b])
            keep += [couplings, spread, *pieces]
        if sums is None:
            sums = messages.new_zeros(x.shape[0], messages.shape[1])
        sums.index_add_(0, dst, messages)
    return sums


class EdgeSums(torch.autograd.Function):
    """``FusedEdgeProduct.node_sums`` with a hand-written backward: the gradients of the node features and
    the edge weights only (the edge attributes are data). One node of the autograd graph instead of ~20,
    and the products' gradient is formed once, in place. An ensemble's edges go in groups of members
    (``edge_groups``): its per-edge tensors at once would fall out of the caches (~1.1× slower steps at l_max 4)."""

    @staticmethod
    def forward(ctx, x, weight, y, edge_src, edge_dst, edge_pair, tp, groups=None):
        kept = []
        sums = edge_sums(x, weight, y, edge_src, edge_dst, edge_pair, tp, groups, kept)
        ctx.save_for_backward(edge_src, edge_dst, edge_pair, *kept)
        ctx.tp, ctx.x_shape, ctx.weight_shape, ctx.groups = tp, x.shape, weight.shape, groups
        return sums

    @staticmethod
    def backward(ctx, grad_sums):
        edge_src, edge_dst, edge_pair, *kept = ctx.saved_tensors
        tp = ctx.tp
        per_group = 2 + len(tp._piece_columns)  # couplings, spread, the product pieces
        grad_x = grad_weight = None
        groups = group_edges(ctx.groups, edge_src, edge_dst, edge_pair)
        for index, (e0, _, p0, p1, src, dst, pair) in enumerate(groups):
            couplings, spread, *pieces = kept[per_group * index : per_group * (index + 1)]
            grad = grad_sums.index_select(0, dst)  # each message's gradient
            if ctx.needs_input_grad[0]:
                grad_source = tp._input_gradient(grad * spread, couplings)
                if grad_x is None:
                    grad_x = grad_source.new_zeros(ctx.x_shape)
                grad_x.index_add_(0, src, grad_source)
            if ctx.needs_input_grad[1]:
                for (a, b), piece in zip(tp._piece_columns, pieces):  # the products' columns, in place
                    grad[:, a:b].mul_(piece)
                columns = grad
                if pair is not None:
                    rows = ctx.weight_shape[0] if e0 is None else p1 - p0
                    columns = columns.new_zeros(rows, columns.shape[1]).index_add_(0, pair, columns)
                if grad_weight is None:
                    grad_weight = columns.new_zeros(ctx.weight_shape)
                (grad_weight if e0 is None else grad_weight[p0:p1]).index_add_(1, tp._fused_spread, columns)
        return grad_x, grad_weight, None, None, None, None, None, None


class FusedEdgeProduct(o3.TensorProduct):
    """The convolution's edge tensor product (``uvu``, per-edge weights, one filter of each l), batched.

    e3nn evaluates each of its ~100 paths (l_max 4) separately. Here the Clebsch–Gordan coefficients of
    every path are contracted with the edge's spherical harmonics in one matrix product (all input
    segments at once), each input segment (u, l1) is coupled to its paths with one batched product, and
    the per-edge path weights are spread over each path's 2l+1 components by one ``index_select``; one
    column permutation gives e3nn's output layout. Same weights and layout; outputs agree to float
    rounding. A convolution sums the messages on the nodes with ``node_sums`` (``EdgeSums``: a
    hand-written backward). Made by ``fuse_tensor_products``.
    """

    @staticmethod
    def supports(tp) -> bool:
        outputs = [ins.i_out for ins in tp.instructions]
        in1 = [ins.i_in1 for ins in tp.instructions]
        return (
            type(tp) is o3.TensorProduct
            and not tp.shared_weights
            and not tp.internal_weights
            and all(mul == 1 for mul, _ in tp.irreps_in2)
            and all(ins.connection_mode == "uvu" and ins.has_weight for ins in tp.instructions)
            and in1 == sorted(in1)  # each input segment's weights are contiguous
            and len(set(outputs)) == len(outputs)
            and set(outputs) >= {i for i, (mul, _) in enumerate(tp.irreps_out) if mul}
        )

    def _prepare(self) -> None:
        in1, in2, out = self.irreps_in1, self.irreps_in2, self.irreps_out
        off1, off2, off_out = segment_offsets(in1), segment_offsets(in2), segment_offsets(out)
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
        self.register_buffer(
            "_fused_spread", torch.as_tensor(np.concatenate([s.ravel() for s in spread])), persistent=False
        )
        self.register_buffer("_fused_permutation", torch.as_tensor(permutation), persistent=False)
        #: per message column, a feature of the input segment it comes from (masks of whole segments)
        self.register_buffer("_fused_source", torch.as_tensor(np.concatenate(source)), persistent=False)
        self._x_sizes = [mul_ir.dim for mul_ir in in1]
        ends = np.cumsum([mul * width for _, mul, _, width in self._plan]).tolist()
        #: the columns of each of ``_product_pieces`` in the fused layout
        self._piece_columns = list(zip([0, *ends[:-1]], ends))

    def messages(self, x, y, weight) -> torch.Tensor:
        """The output in the fused layout, (z, Σ u·k): ``_fused_permutation`` reorders it into e3nn's."""
        return self._products(x, y @ self._fused_cg) * weight.index_select(1, self._fused_spread)

    def node_sums(self, x, edge_src, edge_dst, y, weight, edge_pair=None, groups=None) -> torch.Tensor:
        """``messages(x[edge_src], y, weight)`` summed on the rows ``edge_dst`` of a (nodes, Σ u·k) tensor;
        by hand (``EdgeSums``) where only ``x`` and ``weight`` need gradients, as in training, and without
        autograd (``edge_sums``) where nothing does. With ``edge_pair``, ``weight`` has one row per undirected
        pair and each edge takes its pair's row. ``groups``: an ensemble's member groups (``edge_groups``)."""
        if y.requires_grad:
            if edge_pair is not None:
                weight = weight.index_select(0, edge_pair)
            messages = self.messages(x.index_select(0, edge_src), y, weight)
            return messages.new_zeros(x.shape[0], messages.shape[1]).index_add(0, edge_dst, messages)
        if not torch.is_grad_enabled():
            return edge_sums(x, weight, y, edge_src, edge_dst, edge_pair, self, groups)
        return EdgeSums.apply(x, weight, y, edge_src, edge_dst, edge_pair, self, groups)

    def _products(self, x, couplings) -> torch.Tensor:
        """The edge products before their weights, (z, Σ u·k): each input segment (u, i) times its
        couplings (i, k) = CG · Y, per edge."""
        products = self._product_pieces(x, couplings)
        return torch.cat(products, dim=1) if len(products) > 1 else products[0]

    def _product_pieces(self, x, couplings) -> list[torch.Tensor]:
        """``_products`` input segment by input segment, (z, u·k) each: its columns ``_piece_columns``."""
        x_pieces = torch.split(x, self._x_sizes, dim=1)
        couplings = torch.split(couplings, self._cg_sizes, dim=1)
        return [
            (
                # scalar inputs: an outer product per edge, which bmm does as a product with a sum over one term
                (x_pieces[i_in1][:, :, None] * coupling[:, None, :])
                if dim == 1
                else torch.bmm(x_pieces[i_in1].reshape(-1, mul, dim), coupling.reshape(-1, dim, width))
            ).reshape(-1, mul * width)
            for (i_in1, mul, dim, width), coupling in zip(self._plan, couplings)
        ]  # (z, u, k) per input segment

    def _input_gradient(self, grad, couplings) -> torch.Tensor:
        """The gradient of ``_products`` for its input x, from the gradient of its output."""
        edges = grad.shape[0]
        pieces = [None] * len(self._x_sizes)
        position = 0
        for (i_in1, mul, dim, width), coupling in zip(self._plan, torch.split(couplings, self._cg_sizes, dim=1)):
            g = grad[:, position : position + mul * width].view(edges, mul, width)
            if dim == 1:
                pieces[i_in1] = (g * coupling[:, None, :]).sum(2)
            else:
                pieces[i_in1] = torch.bmm(g, coupling.view(edges, dim, width).transpose(1, 2)).view(edges, -1)
            position += mul * width
        pieces = [grad.new_zeros(edges, size) if p is None else p for p, size in zip(pieces, self._x_sizes)]
        return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]

    def forward(self, x, y, weight=None):
        weight = product_weights(self, weight)
        batch = x.shape[:-1]
        x, y, weight = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]), weight.reshape(-1, weight.shape[-1])
        out = self.messages(x, y, weight).index_select(1, self._fused_permutation)
        return out.reshape(*batch, out.shape[-1])

"""The fused scalar product: e3nn's ``FullyConnectedTensorProduct`` with scalars as its second input, batched.

The convolutions' ``sc``, ``lin1`` and ``lin2`` with scalar node attributes are such products. Each is a few
large matrix products instead of one small contraction per path; the parameters, buffers, state-dict keys and
output layout are e3nn's, the outputs agree to float rounding (~1e-7). It is made from e3nn's built module by
``e3hier.network.fused.layers.fuse_tensor_products``, which changes its class: building it anew would run e3nn's
code generation again (~60 % of building a network) and draw fresh weights, where the class change keeps
everything e3nn built. The edge product is ``e3hier.network.fused.edge_product``.
"""

from __future__ import annotations

import numpy as np
import torch
from e3nn import o3

from e3hier.network.fused.e3nn_internals import product_weights


def segment_offsets(irreps: o3.Irreps) -> list[int]:
    """Where each (mul, ir) segment of ``irreps`` starts in a feature vector, and its total dimension last."""
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
        return (
            isinstance(tp, o3.FullyConnectedTensorProduct)
            and tp.internal_weights
            and tp.shared_weights
            and all(ir.l == 0 for _, ir in tp.irreps_in2)
            and all(ins.connection_mode == "uvw" and ins.has_weight for ins in tp.instructions)
        )

    def _prepare(self) -> None:
        in1, in2, out = self.irreps_in1, self.irreps_in2, self.irreps_out
        off1, off2 = segment_offsets(in1), segment_offsets(in2)
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
                plan.append(
                    (
                        (off1[first], off1[last + 1]),
                        (off2[i_in2], off2[i_in2 + 1]),
                        mul1,
                        in2[i_in2].mul,
                        tuple((piece, float(alpha)) for piece, alpha in run["pieces"]),
                        [in1[i].dim for i in run["i_in1"]],
                    )
                )
            self._plan.append((plan, (mul_out, ir_out.dim)))
        # x is cut once at every run boundary (slicing it per run would cost a zero-filled gradient each)
        cuts = sorted({0, in1.dim} | {c for plan, _ in self._plan if plan for (a, b), *_ in plan for c in (a, b)})
        self._x_sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:])]
        # per run, derived once: its x pieces, its weight pieces, and its path weights (one scale when
        # they are all equal, else one per input segment); the forward pass only looks them up
        self._plan = [
            (
                None
                if plan is None
                else [
                    (
                        (cuts.index(a1), cuts.index(b1)),
                        y_range,
                        mul1,
                        mul2,
                        tuple(piece for piece, _ in blocks),
                        blocks[0][1] if len({alpha for _, alpha in blocks}) == 1 else None,
                        tuple(alpha for _, alpha in blocks),
                        segment_dims,
                    )
                    for (a1, b1), y_range, mul1, mul2, blocks, segment_dims in plan
                ],
                out_shape,
            )
            for plan, out_shape in self._plan
        ]

    def forward(self, x, y, weight=None):
        weight = product_weights(self, weight)
        if weight.dim() == 2:  # an ensemble (``e3hier.training.ensemble``): one weight row per member
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
                w = (
                    pieces[weight_pieces[0]]
                    if len(weight_pieces) == 1
                    else torch.cat([pieces[k] for k in weight_pieces])
                )
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
                w = (
                    pieces[weight_pieces[0]]
                    if len(weight_pieces) == 1
                    else torch.cat([pieces[k] for k in weight_pieces], 1)
                )
                xv = xv.transpose(2, 3).reshape(members, nodes * dim, mul1 * mul2)
                term = torch.bmm(xv, w.view(members, mul1 * mul2, mul_out))  # (K, nodes·dim, w)
                result = term if result is None else result + term
            outputs.append(result.view(members, nodes, dim, mul_out).transpose(2, 3).reshape(members, nodes, -1))
        return torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]

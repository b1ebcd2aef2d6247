"""The self-interaction and linear maps of a convolution with constant node attributes, by hand.

With the study's constant node attribute (one scalar 1 per atom), each of a convolution's ``sc``,
``lin1`` and ``lin2`` (``FusedScalarProduct``) is a linear map of the features that mixes the channels
of each irrep and keeps its components m: output segment o is ``Σ_runs α · x_run W_run`` over the
runs of adjacent input segments of o's irrep. The graphs are small (~10 atoms), so a map costs its
number of operations more than its arithmetic. ``ScalarLinear`` therefore gathers the features of
every run at once into rows (node, m) × channel, each column times its path weight α (one
``index_select`` and one product for the whole map), multiplies each run by its weight block (a view
of the flat weight: one ``bmm`` per run), and puts all outputs back into e3nn's (u, m) layout with
one more ``index_select``. The backward is written by hand the same way (two products per run).
Inputs carry a leading member axis (K, nodes, dim), weights (K, numel); one model is K = 1
(``e3hier.training.ensemble`` stacks K models). Two maps of one input (``sc`` and ``lin1``) run as one
(``LinearPlan.stacked``), and a tiny map (the first layer's) as one dense matrix (``LinearPlan.dense``).
"""

from __future__ import annotations

import numpy as np
import torch

#: The largest map (in_dim × out_dim entries) evaluated as one dense matrix (``LinearPlan._dense``).
DENSE_ENTRIES = 16384


class LinearPlan:
    """Index maps and run table of ``ScalarLinear`` for a ``FusedScalarProduct``, derived once.

    The map can take its input with permuted columns (``columns``: input column j of the product is
    column ``columns[j]`` of x) and scaled (``input_scale``), and scale its output (``output_scale``: a
    number, or one per output column, constant on each output segment); these ride on the gather and
    its path weights, so they cost nothing.

    Gathered input columns run after run, each (m, u) within its run, so that a run's slice of a
    node's row reshapes to (m, u): rows (node, m) × channels u. Output columns likewise, output
    segment after output segment, (m, w) within each.
    """

    def __init__(self, product, columns=None, input_scale: float = 1.0, output_scale=None):
        x_offsets = np.cumsum([0, *product._x_sizes])
        w_offsets = np.cumsum([0, *product._sizes])
        self.in_dim, self.numel = int(x_offsets[-1]), int(w_offsets[-1])
        in_columns, in_scale, out_columns = [], [], []
        self.runs = []  # (gathered start, stop, weight start, stop, mul_in, dim, output index)
        self.outputs = []  # (gathered output start, stop, mul_out, dim)
        o_start = 0
        for plan, (mul_out, dim) in product._plan:
            if plan:
                for (first, _), _, mul1, mul2, pieces, scale, alphas, segment_dims in plan:
                    if mul2 != 1:
                        raise ValueError("ScalarLinear needs a single scalar attribute (constant node attributes)")
                    if list(pieces) != list(range(pieces[0], pieces[-1] + 1)):
                        raise ValueError("ScalarLinear needs each run's weight blocks to be adjacent")
                    path_weight = (
                        np.full(mul1, scale) if scale is not None else np.repeat(alphas, np.array(segment_dims) // dim)
                    )
                    output_share = 1.0 if output_scale is None else _segment_value(output_scale, o_start, mul_out * dim)
                    channel_alpha = path_weight * input_scale * output_share
                    start = len(in_columns)
                    for m in range(dim):
                        for u in range(mul1):
                            in_columns.append(int(x_offsets[first]) + u * dim + m)
                            in_scale.append(float(channel_alpha[u]))
                    weights = (int(w_offsets[pieces[0]]), int(w_offsets[pieces[-1] + 1]))
                    self.runs.append((start, len(in_columns), *weights, mul1, dim, len(self.outputs)))
                start = len(out_columns)
                out_columns.extend(o_start + w * dim + m for m in range(dim) for w in range(mul_out))
                self.outputs.append((start, len(out_columns), mul_out, dim))
            o_start += mul_out * dim
        self.out_dim = o_start
        if columns is not None:  # the input arrives with its columns permuted: x_logical[:, j] = x[:, columns[j]]
            in_columns = [int(c) for c in np.asarray(columns)[in_columns]]
        self._derive(in_columns, in_scale, out_columns)

    #: evaluate maps with ``dense`` as their dense matrix (the tests take both ways)
    use_dense = True

    @classmethod
    def stacked(cls, plans: list[LinearPlan]) -> LinearPlan:
        """One map of the same input with the outputs of ``plans`` side by side, and their flat weights
        one after another (``linear_maps``): one gather and one scatter for all of them."""
        plan = cls.__new__(cls)
        plan.in_dim = plans[0].in_dim
        if any(p.in_dim != plan.in_dim for p in plans):
            raise ValueError("LinearPlan.stacked: the maps must take one input")
        plan.numel = plan.out_dim = 0
        plan.runs, plan.outputs = [], []
        in_columns, in_scale, out_columns = [], [], []
        for p in plans:
            gathered, outputs = len(in_columns), len(plan.outputs)
            plan.runs += [
                (a + gathered, b + gathered, wa + plan.numel, wb + plan.numel, mul, dim, o + outputs)
                for a, b, wa, wb, mul, dim, o in p.runs
            ]
            plan.outputs += [(a + len(out_columns), b + len(out_columns), mul, dim) for a, b, mul, dim in p.outputs]
            in_columns += p._cpu["in_columns"].tolist()
            in_scale += p._cpu["in_scale"].tolist()
            out_columns += (p._cpu["out_columns"] + plan.out_dim).tolist()
            plan.numel += p.numel
            plan.out_dim += p.out_dim
        plan._derive(in_columns, in_scale, out_columns)
        return plan

    def _derive(self, in_columns: list, in_scale: list, out_columns: list) -> None:
        """The run order, index maps and flags ``ScalarLinear`` uses, from the gathered columns."""
        covered = sorted((a, b) for _, _, a, b, *_ in self.runs)
        #: every weight belongs to one run, in order: the weight gradient is the runs' blocks one after another
        self.runs_cover_weights = [a for a, _ in covered] == [0] + [b for _, b in covered[:-1]] and (
            not covered or covered[-1][1] == self.numel
        )
        self.weight_order = sorted(range(len(self.runs)), key=lambda i: self.runs[i][2])
        self.run_widths = [b - a for a, b, *_ in self.runs]
        self.output_widths = [b - a for a, b, *_ in self.outputs]
        #: the runs take the weights in order, one block after another: one split gives every run's block
        self.weights_in_run_order = self.runs_cover_weights and self.weight_order == list(range(len(self.runs)))
        self._run_weight_sizes = [b - a for _, _, a, b, *_ in self.runs]
        # e3nn's output columns from the gathered outputs; columns no run reaches read an appended zero
        out_position = np.full(self.out_dim, len(out_columns), dtype=np.int64)
        out_position[out_columns] = np.arange(len(out_columns))
        self.out_complete = len(out_columns) == self.out_dim
        # input columns read by exactly one gathered column get their gradient by one index_select
        counts = np.bincount(np.array(in_columns, dtype=np.int64), minlength=self.in_dim)
        self.in_unique = bool((counts <= 1).all())
        in_position = np.full(self.in_dim, len(in_columns), dtype=np.int64)
        in_position[in_columns] = np.arange(len(in_columns))
        self.in_complete = bool((counts == 1).all())
        self.unit_scale = bool(np.allclose(in_scale, 1.0, rtol=0, atol=0))
        self._cpu = {
            "in_columns": torch.as_tensor(np.array(in_columns, dtype=np.int64)),
            "in_position": torch.as_tensor(in_position),
            "in_scale": torch.as_tensor(np.array(in_scale)),
            "out_columns": torch.as_tensor(np.array(out_columns, dtype=np.int64)),
            "out_position": torch.as_tensor(out_position),
        }
        self._cache: dict = {}
        self._dense(in_columns, in_scale, out_columns)

    def _dense(self, in_columns: list, in_scale: list, out_columns: list) -> None:
        """For a small map (``DENSE_ENTRIES``), its matrix (in_dim × out_dim) as one gather of the flat
        weight (an appended zero where no weight reaches) times the scales: the map is then one matrix
        product, cheaper than the runs' gathers and products when the map is tiny (the first layer's)."""
        self.dense = False
        if self.in_dim * self.out_dim > DENSE_ENTRIES:
            return
        index = np.full((self.in_dim, self.out_dim), self.numel, dtype=np.int64)
        scale = np.zeros((self.in_dim, self.out_dim))
        for start, _, w_start, _, mul_in, dim, output in self.runs:
            o_start, _, mul_out, _ = self.outputs[output]
            for m in range(dim):
                for u in range(mul_in):
                    g = start + m * mul_in + u
                    columns = [out_columns[o_start + m * mul_out + w] for w in range(mul_out)]
                    if (index[in_columns[g], columns] != self.numel).any():
                        return  # two weights on one entry: keep the runs
                    index[in_columns[g], columns] = w_start + u * mul_out + np.arange(mul_out)
                    scale[in_columns[g], columns] = in_scale[g]
        self.dense = True
        self._cpu["dense_index"] = torch.as_tensor(index.ravel())
        self._cpu["dense_scale"] = torch.as_tensor(scale.ravel())

    def run_weights(self, weight: torch.Tensor) -> list:
        """Each run's block of the flat weight (members, its size)."""
        if self.weights_in_run_order:
            return torch.split(weight, self._run_weight_sizes, dim=1) if len(self.runs) > 1 else [weight]
        return [weight[:, a:b] for _, _, a, b, *_ in self.runs]

    def tensors(self, like: torch.Tensor) -> dict:
        """The index maps on ``like``'s device and the scales in its dtype (cached)."""
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = {
                name: value.to(like.device, like.dtype if value.is_floating_point() else None)
                for name, value in self._cpu.items()
            }
        return self._cache[key]


def _segment_value(values, start: int, size: int) -> float:
    """The one value of ``values`` (a number, or one per column) on the columns [start, start + size)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        return float(values)
    segment = values[start : start + size]
    if not np.all(segment == segment[0]):
        raise ValueError("ScalarLinear: an output scale must be constant on each output segment")
    return float(segment[0])


def _gather(x2d: torch.Tensor, columns: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    gathered = x2d.index_select(1, columns)
    return gathered if scale is None else gathered.mul_(scale)


class ScalarLinear(torch.autograd.Function):
    """``FusedScalarProduct`` with a constant scalar attribute 1: forward and backward by hand."""

    @staticmethod
    def forward(ctx, x, weight, plan: LinearPlan):
        ctx.in_shape, ctx.weight_shape, given = x.shape, weight.shape, weight
        if weight.dim() == 1:  # one model: a member axis of one, inside the function (no autograd nodes for it)
            x, weight = x[None], weight[None]
        t = plan.tensors(x)
        members, nodes = x.shape[0], x.shape[1]
        gathered = _gather(x.reshape(members * nodes, -1), t["in_columns"], None if plan.unit_scale else t["in_scale"])
        rows, results = [], [None] * len(plan.outputs)
        for (_, _, _, _, mul_in, dim, output), piece, w in zip(
            plan.runs, torch.split(gathered, plan.run_widths, dim=1), plan.run_weights(weight)
        ):
            r = piece.reshape(members, nodes * dim, mul_in)
            w = w.view(members, mul_in, -1)
            results[output] = torch.bmm(r, w) if results[output] is None else results[output].baddbmm_(r, w)
            rows.append(r)
        parts = [result.view(members * nodes, -1) for result in results]
        if not plan.out_complete:
            parts.append(x.new_zeros(members * nodes, 1))
        out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        ctx.save_for_backward(given, *rows)
        ctx.plan = plan
        return out.index_select(1, t["out_position"]).view(*ctx.in_shape[:-1], plan.out_dim)

    @staticmethod
    def backward(ctx, grad_out):
        (weight, *rows), plan = ctx.saved_tensors, ctx.plan
        weight = weight if weight.dim() == 2 else weight[None]
        t = plan.tensors(grad_out)
        members, nodes = weight.shape[0], ctx.in_shape[-2]
        gathered = grad_out.reshape(members * nodes, -1).index_select(1, t["out_columns"])
        grads = [
            piece.reshape(members, nodes * dim, mul_out)
            for (_, _, mul_out, dim), piece in zip(plan.outputs, torch.split(gathered, plan.output_widths, dim=1))
        ]
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            blocks = [torch.bmm(r.transpose(1, 2), grads[run[6]]).view(members, -1) for run, r in zip(plan.runs, rows)]
            if plan.runs_cover_weights:
                ordered = [blocks[i] for i in plan.weight_order]
                grad_w = torch.cat(ordered, dim=1) if len(ordered) > 1 else ordered[0]
            else:
                grad_w = weight.new_zeros(members, plan.numel)
                for (_, _, w_start, w_stop, *_), block in zip(plan.runs, blocks):
                    grad_w[:, w_start:w_stop] += block
        if ctx.needs_input_grad[0]:
            parts = [
                torch.bmm(grads[output], w.view(members, mul_in, -1).transpose(1, 2)).view(members * nodes, -1)
                for (_, _, _, _, mul_in, _, output), w in zip(plan.runs, plan.run_weights(weight))
            ]
            if not plan.in_complete:
                parts.append(grad_out.new_zeros(members * nodes, 1))
            cols = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            if not plan.unit_scale:
                scale = t["in_scale"] if plan.in_complete else torch.cat([t["in_scale"], t["in_scale"].new_zeros(1)])
                cols = cols.mul_(scale)
            if plan.in_unique:
                grad_x = cols.index_select(1, t["in_position"])
            else:
                grad_x = cols.new_zeros(members * nodes, plan.in_dim).index_add_(
                    1, t["in_columns"], cols[:, : len(t["in_columns"])]
                )
            grad_x = grad_x.view(ctx.in_shape)
        return grad_x, None if grad_w is None else grad_w.view(ctx.weight_shape), None


def linear_maps(plan: LinearPlan, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The map of ``plan`` with the flat ``weight``: (numel,) and ``x`` (nodes, dim) for one model,
    (K, numel) and (K, nodes, dim) for K stacked models."""
    if plan.dense and plan.use_dense:
        t = plan.tensors(x)
        padded = torch.cat([weight, weight.new_zeros(*weight.shape[:-1], 1)], dim=-1)
        matrix = (padded.index_select(-1, t["dense_index"]) * t["dense_scale"]).view(
            *weight.shape[:-1], plan.in_dim, plan.out_dim
        )
        return x @ matrix
    return ScalarLinear.apply(x, weight, plan)


def scalar_linear(product, x: torch.Tensor, plan: LinearPlan | None = None) -> torch.Tensor:
    """``product(x, 1)`` for a ``FusedScalarProduct`` whose attribute is the constant scalar 1; ``x`` is
    (nodes, dim) for one model, (K, nodes, dim) for K stacked models (weights (K, numel)). With ``plan``
    (a ``LinearPlan`` of ``product`` with a column permutation or scales) that map instead."""
    if plan is None:
        plan = product.__dict__.get("_linear_plan")
        if plan is None:
            plan = product._linear_plan = LinearPlan(product)
    return linear_maps(plan, product.weight, x)

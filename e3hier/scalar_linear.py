"""The self-interaction and linear maps of a convolution with constant node attributes, by hand.

With the study's constant node attribute (one scalar 1 per atom), each of a convolution's ``sc``,
``lin1`` and ``lin2`` (``FusedScalarProduct``) is a linear map of the features: output segment o is
``Σ_runs α · x_run W_run`` over the runs of input segments of o's irrep. ``ScalarLinear`` evaluates it
with one matrix product per run and writes the backward by hand (two products per run), so autograd
records one node per map instead of ~10 per run. Inputs carry a leading member axis (K, nodes, dim),
weights (K, numel); one model is K = 1 (``e3hier.ensemble`` stacks K models).
"""

from __future__ import annotations

import torch


class LinearPlan:
    """What ``ScalarLinear`` needs of a ``FusedScalarProduct`` plan, derived once.

    ``runs`` holds, per run: its output segment, the x pieces it reads (``first``, ``stop``), the
    weight pieces it uses, (mul1, dim, mul_out), a scale for the whole run or one per input segment.
    """

    def __init__(self, product):
        self.x_sizes = list(product._x_sizes)
        self.weight_sizes = list(product._sizes)
        self.out_sizes, self.empty_outputs, self.runs = [], set(), []
        for index, (plan, (mul_out, dim)) in enumerate(product._plan):
            self.out_sizes.append(mul_out * dim)
            if plan is None:
                self.empty_outputs.add(index)
                continue
            for (first, stop), _, mul1, mul2, weight_pieces, scale, alphas, segment_dims in plan:
                if mul2 != 1:
                    raise ValueError("ScalarLinear needs a single scalar attribute (constant node attributes)")
                self.runs.append(
                    (index, first, stop, tuple(weight_pieces), mul1, dim, mul_out, scale, alphas, tuple(segment_dims))
                )
        # a run's single path weight scales its weight block (one product for the whole map, on the small
        # weights) instead of its outputs and output gradients (one product per run, on node-sized tensors)
        scales = torch.ones(sum(self.weight_sizes), dtype=torch.float64)
        offsets = [0]
        for size in self.weight_sizes:
            offsets.append(offsets[-1] + size)
        for _, _, _, pieces, _, _, _, scale, _, _ in self.runs:
            for k in pieces:
                scales[offsets[k] : offsets[k + 1]] = 1.0 if scale is None else scale
        self.weight_scale = scales
        self._scale_cache: dict = {}

    def scale(self, weight: torch.Tensor) -> torch.Tensor:
        """``weight_scale`` on ``weight``'s device and dtype (cached)."""
        key = (weight.device, weight.dtype)
        if key not in self._scale_cache:
            self._scale_cache[key] = self.weight_scale.to(weight.device, weight.dtype)
        return self._scale_cache[key]


def _as_rows(x: torch.Tensor, mul: int, dim: int) -> torch.Tensor:
    """(K, n, mul·dim) in e3nn's (u, m) layout → (K, n·dim, mul): one row per node and component m."""
    if dim == 1:  # scalars: already one row per node
        return x
    members, nodes = x.shape[0], x.shape[1]
    return x.reshape(members, nodes, mul, dim).transpose(2, 3).reshape(members, nodes * dim, mul)


def _from_rows(rows: torch.Tensor, nodes: int, dim: int) -> torch.Tensor:
    """The inverse of ``_as_rows``: (K, n·dim, mul) → (K, n, mul·dim)."""
    if dim == 1:
        return rows
    members, mul = rows.shape[0], rows.shape[2]
    return rows.view(members, nodes, dim, mul).transpose(2, 3).reshape(members, nodes, mul * dim)


def _run_input(x_pieces, first, stop, scale, alphas, segment_dims):
    """The run's input features, each input segment times its path weight when they differ."""
    x1 = x_pieces[first] if stop == first + 1 else torch.cat(x_pieces[first:stop], dim=2)
    if scale is None:
        x1 = torch.cat([p * a for p, a in zip(torch.split(x1, segment_dims, dim=2), alphas)], dim=2)
    return x1


def _run_weight(w_pieces, weight_pieces, mul1, mul_out):
    w = w_pieces[weight_pieces[0]] if len(weight_pieces) == 1 else torch.cat([w_pieces[k] for k in weight_pieces], 1)
    return w.view(-1, mul1, mul_out)


class ScalarLinear(torch.autograd.Function):
    """``FusedScalarProduct`` with a constant scalar attribute 1: forward and backward by hand."""

    @staticmethod
    def forward(ctx, x, weight, plan: LinearPlan):
        members, nodes = x.shape[0], x.shape[1]
        x_pieces = torch.split(x, plan.x_sizes, dim=2)
        scaled = weight * plan.scale(weight)
        w_pieces = torch.split(scaled, plan.weight_sizes, dim=1)
        results: dict[int, torch.Tensor] = {}
        for index, first, stop, pieces, mul1, dim, mul_out, scale, alphas, segment_dims in plan.runs:
            rows = _as_rows(_run_input(x_pieces, first, stop, scale, alphas, segment_dims), mul1, dim)
            w = _run_weight(w_pieces, pieces, mul1, mul_out)
            results[index] = torch.bmm(rows, w) if index not in results else results[index].baddbmm_(rows, w)
        outputs = []
        for index, size in enumerate(plan.out_sizes):
            if index in plan.empty_outputs:
                outputs.append(x.new_zeros(members, nodes, size))
            else:
                outputs.append(_from_rows(results[index], nodes, size // results[index].shape[2]))
        ctx.save_for_backward(x, scaled)
        ctx.plan = plan
        return torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors  # the scaled weights
        plan = ctx.plan
        nodes = x.shape[1]
        x_pieces = torch.split(x, plan.x_sizes, dim=2)
        w_pieces = torch.split(weight, plan.weight_sizes, dim=1)
        grad_pieces = torch.split(grad_out, plan.out_sizes, dim=2)
        grad_x = [None] * len(plan.x_sizes)
        grad_w = [None] * len(plan.weight_sizes)
        grad_rows: dict[int, torch.Tensor] = {}
        for index, first, stop, pieces, mul1, dim, mul_out, scale, alphas, segment_dims in plan.runs:
            if index not in grad_rows:
                grad_rows[index] = _as_rows(grad_pieces[index], mul_out, dim)
            g = grad_rows[index]
            w = _run_weight(w_pieces, pieces, mul1, mul_out)
            if ctx.needs_input_grad[1]:
                rows = _as_rows(_run_input(x_pieces, first, stop, scale, alphas, segment_dims), mul1, dim)
                gw = torch.bmm(rows.transpose(1, 2), g).flatten(1)
                for k, part in zip(pieces, torch.split(gw, [plan.weight_sizes[k] for k in pieces], dim=1)):
                    grad_w[k] = part if grad_w[k] is None else grad_w[k] + part
            if ctx.needs_input_grad[0]:
                gx = _from_rows(torch.bmm(g, w.transpose(1, 2)), nodes, dim)
                if scale is None:
                    gx = torch.cat([p * a for p, a in zip(torch.split(gx, segment_dims, dim=2), alphas)], dim=2)
                parts = torch.split(gx, plan.x_sizes[first:stop], dim=2) if stop > first + 1 else (gx,)
                for k, part in zip(range(first, stop), parts):
                    grad_x[k] = part if grad_x[k] is None else grad_x[k] + part
        gx = gw = None
        if ctx.needs_input_grad[0]:
            grad_x = [
                g if g is not None else x.new_zeros(x.shape[0], nodes, size) for g, size in zip(grad_x, plan.x_sizes)
            ]
            gx = torch.cat(grad_x, dim=2) if len(grad_x) > 1 else grad_x[0]
        if ctx.needs_input_grad[1]:
            grad_w = [
                g if g is not None else weight.new_zeros(weight.shape[0], size)
                for g, size in zip(grad_w, plan.weight_sizes)
            ]
            gw = (torch.cat(grad_w, dim=1) if len(grad_w) > 1 else grad_w[0]) * plan.scale(weight)
        return gx, gw, None


def scalar_linear(product, x: torch.Tensor) -> torch.Tensor:
    """``product(x, 1)`` for a ``FusedScalarProduct`` whose attribute is the constant scalar 1; ``x`` is
    (nodes, dim) for one model, (K, nodes, dim) for K stacked models (weights (K, numel))."""
    plan = product.__dict__.get("_linear_plan")
    if plan is None:
        plan = product._linear_plan = LinearPlan(product)
    weight = product.weight
    if weight.dim() == 1:
        return ScalarLinear.apply(x[None], weight[None], plan)[0]
    return ScalarLinear.apply(x, weight, plan)

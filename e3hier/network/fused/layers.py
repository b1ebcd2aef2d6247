"""The convolution and the gate of ``gate_points_2101`` on the fused kernels, and ``fuse_tensor_products``,
which puts a built network on them.

``FusedConvolution`` and ``FusedGate`` are new modules built around the children of the e3nn module
they replace (same names, same order: the same parameters, state-dict keys and initialisation order).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import Gate
from e3nn.nn.models.gate_points_2101 import Convolution

from e3hier.network.fused.e3nn_internals import (
    CONVOLUTION_ATTRIBUTES,
    GATE_ATTRIBUTES,
    activation_runs,
    gate_extract,
    output_mask,
)
from e3hier.network.fused.edge_product import FusedEdgeProduct, edge_groups
from e3hier.network.fused.generated_code import optimise_tensor_products
from e3hier.network.fused.radial import FusedRadialNet
from e3hier.network.fused.scalar_linear import LinearPlan, linear_maps, scalar_linear
from e3hier.network.fused.scalar_product import FusedScalarProduct, segment_offsets

#: The largest per-edge tensor (edges × message width, elements) an ensemble's convolution makes at once
#: without gradients (16 MiB in float32: half the L3 cache of the machine it was tuned on).
MESSAGE_CHUNK_ELEMENTS = 2**22
#: The same in training (gradients on): the forward pass keeps every group's tensors for the backward, which
#: goes through the groups again (2**20 float32 elements, 4 MiB: one member at a time at l_max 4).
TRAINING_CHUNK_ELEMENTS = 2**20


class FusedConvolution(torch.nn.Module):
    """``gate_points_2101.Convolution`` with a ``FusedEdgeProduct``: the edge messages are summed onto the
    nodes in the fused layout, and only the node sums are permuted into e3nn's layout (nodes are ~5×
    fewer than edges).

    Parameters
    ----------
    convolution : Convolution
        e3nn's convolution, whose ``tp`` is a ``FusedEdgeProduct``; its children (``sc``, ``lin1``,
        ``fc``, ``tp``, ``lin2``) become this module's, in the same order (``fc`` on
        ``e3hier.network.fused.radial.FusedRadialNet``).
    constant_attributes : bool
        The node attribute is the constant 1 (the study's): ``sc``, ``lin1`` and ``lin2`` are then
        linear maps of the features (``e3hier.network.fused.scalar_linear``); they must be ``FusedScalarProduct``.
    """

    def __init__(self, convolution: Convolution, constant_attributes: bool = False):
        super().__init__()
        for name, child in convolution.named_children():
            self.add_module(name, child)
        for name in CONVOLUTION_ATTRIBUTES:
            setattr(self, name, getattr(convolution, name))
        if not isinstance(self.tp, FusedEdgeProduct):
            raise TypeError("FusedConvolution needs a FusedEdgeProduct (fuse_tensor_products)")
        if FusedRadialNet.supports(self.fc):
            self.fc = FusedRadialNet(self.fc)
        self.constant_attributes = bool(constant_attributes)
        self._sc_plan = self._lin2_plan = None  # LinearPlans with the combination folded in, made on first use
        self._input_plan = None  # sc and lin1 stacked (``_input_maps``), made on first use
        if constant_attributes and not all(isinstance(p, FusedScalarProduct) for p in (self.sc, self.lin1, self.lin2)):
            raise TypeError("constant_attributes needs FusedScalarProduct for sc, lin1 and lin2")

    def forward(
        self, node_input, node_attr, edge_src, edge_dst, edge_attr, edge_length_embedded, edge_pair=None
    ) -> torch.Tensor:
        """e3nn's ``Convolution.forward``; with ``edge_pair`` (``e3hier.network.model.edge_features``),
        ``edge_length_embedded`` has one row per undirected pair and ``edge_pair`` is each edge's row."""
        # per pair: the edge products take each edge's row when they spread the weights (``EdgeSums``)
        weight = self.fc(edge_length_embedded)
        if self.constant_attributes:
            s, x = self._input_maps(node_input)
        else:
            s = self._self_interaction(node_input, node_attr)
            x = self._linear(self.lin1, node_input, node_attr)
        x = self._node_sums(x, edge_src, edge_dst, edge_attr, weight, edge_pair)
        return self._combine(s, x, node_input.shape[:-1], node_attr)

    def _input_maps(self, x):
        """``_self_interaction`` and ``lin1`` of the features at once (constant attributes): one map of the
        input (one gather, one scatter of it, one gradient) with both outputs side by side."""
        if self._input_plan is None:
            self._input_plan = LinearPlan.stacked([self._sc_linear_plan(), LinearPlan(self.lin1)])
        both = linear_maps(self._input_plan, torch.cat([self.sc.weight, self.lin1.weight], dim=-1), x)
        sc_dim = self._sc_plan.out_dim
        return both.split([sc_dim, self._input_plan.out_dim - sc_dim], dim=-1)

    def forward_masked(
        self, node_input, masks, node_attr, edge_src, edge_dst, edge_attr, edge_length_embedded, edge_pair=None
    ) -> list[torch.Tensor]:
        """``[self(node_input * mask, ...) for mask in masks]``, the edge work done once for all masks.

        Each mask must be constant on every irrep segment of the input (e.g. one hidden order l:
        ``e3hier.training.features.order_contributions``). ``lin1`` mixes channels of one irrep only, and each
        message column comes from one input segment, so masking the input masks the summed messages
        column by column: the edge products (most of a convolution) run once instead of once per mask.
        """
        weight = self.fc(edge_length_embedded)
        x = self._linear(self.lin1, node_input, node_attr)
        sums = self._node_sums(x, edge_src, edge_dst, edge_attr, weight, edge_pair)
        outputs = []
        for mask in masks:
            masked = node_input * mask
            s = self._self_interaction(masked, node_attr)
            outputs.append(self._combine(s, sums * mask[self.tp._fused_source], node_input.shape[:-1], node_attr))
        return outputs

    def _linear(self, product, x, node_attr):
        return scalar_linear(product, x) if self.constant_attributes else product(x, node_attr)

    def _self_interaction(self, x, node_attr):
        """``sc`` of the features; with constant attributes already times its share sin(π/8) (``_combine``)."""
        if not self.constant_attributes:
            return self.sc(x, node_attr)
        return scalar_linear(self.sc, x, self._sc_linear_plan())

    def _sc_linear_plan(self) -> LinearPlan:
        """``sc`` times its share sin(π/8) (``_combine``)."""
        if self._sc_plan is None:
            self._sc_plan = LinearPlan(self.sc, output_scale=self._shares()[0])
        return self._sc_plan

    def _node_sums(self, x, edge_src, edge_dst, edge_attr, weight, edge_pair=None) -> torch.Tensor:
        """The messages summed on their destination nodes, in the fused layout (all members' nodes, W);
        ``weight`` per edge, or per undirected pair with ``edge_pair`` (each edge's row in it): a length
        does not depend on the edge's direction, so the radial networks run on half the edges."""
        if x.dim() == 2:
            return self.tp.node_sums(x, edge_src, edge_dst, edge_attr, weight, edge_pair)
        # an ensemble: the members' nodes one after another, edge indices offset to match. The per-edge tensors
        # of all members at once (edges × W, W ~13,000 at l_max 4) would fall out of the caches: members are
        # taken in groups (``edge_groups``) of at most MESSAGE_CHUNK_ELEMENTS per tensor without gradients
        # (probes, validation: many structures per member; each group's tensors freed before the next: 1.5×
        # faster probes), TRAINING_CHUNK_ELEMENTS with them (the backward keeps every group's, and goes
        # through them group by group too). Each node's messages are still added in edge order.
        members, edges = edge_attr.shape[0], edge_attr.shape[1]
        width = self.tp._fused_permutation.shape[0]
        chunk = TRAINING_CHUNK_ELEMENTS if torch.is_grad_enabled() else MESSAGE_CHUNK_ELEMENTS
        groups = edge_groups(members, edges, weight.shape[1] if edge_pair is not None else None, width, chunk)
        if torch.compiler.is_compiling():  # train.compile: a trace takes the members at once (symbolic sizes)
            groups = None
        return self.tp.node_sums(
            x.flatten(0, 1), edge_src, edge_dst, edge_attr.flatten(0, 1), weight.flatten(0, 1), edge_pair, groups
        )

    def _shares(self):
        """The shares of ``sc`` and ``lin2`` in the output: sin(π/8) and, per output column, cos(π/8) where
        ``sc`` has a path, else 1 (e3nn's ``Convolution``)."""
        m = output_mask(self.sc)
        return math.sin(math.pi / 8), (1 - m) + math.cos(math.pi / 8) * m

    def _combine(self, s, x, nodes, node_attr) -> torch.Tensor:
        """The output from the self-interaction ``s`` (``_self_interaction``) and the node sums ``x``
        (``_node_sums``): ``sin(π/8) sc + cos(π/8) lin2(sums)`` where ``sc`` has a path, else ``lin2(sums)``.
        With constant attributes the permutation into e3nn's layout, the 1/√num_neighbors and these shares
        ride on the linear maps' own gathers (``e3hier.network.fused.scalar_linear.LinearPlan``)."""
        if self.constant_attributes:
            if self._lin2_plan is None:
                self._lin2_plan = LinearPlan(
                    self.lin2,
                    self.tp._fused_permutation.cpu().numpy(),
                    self.num_neighbors**-0.5,
                    self._shares()[1].detach().cpu().double().numpy(),
                )
            if len(nodes) == 2:
                x = x.view(*nodes, x.shape[-1])
            return s + scalar_linear(self.lin2, x, self._lin2_plan)
        c_s, c_x = self._shares()
        x = x.index_select(1, self.tp._fused_permutation).div(self.num_neighbors**0.5)
        if len(nodes) == 2:
            x = x.view(*nodes, x.shape[-1])
        x = self._linear(self.lin2, x, node_attr)
        return c_s * s + c_x * x


class FusedGate(torch.nn.Module):
    """e3nn's ``Gate`` with the extraction and the gating done at once: one ``split`` of the input into
    scalars, gates and gated features (e3nn copies each segment into zero-filled outputs), e3nn's own
    activations, and one product of the gated features with their gates spread over each irrep's 2l+1
    components (one ``index_select``). Same outputs to float rounding.

    Parameters
    ----------
    gate : Gate
        e3nn's gate; its children (``sc``, ``act_scalars``, ``act_gates``, ``mul``) become this module's,
        in the same order, so the state-dict keys stay e3nn's (``mul`` is kept for them, not called).
    """

    @staticmethod
    def supports(gate) -> bool:
        return type(gate) is Gate

    def __init__(self, gate: Gate):
        super().__init__()
        for name, child in gate.named_children():
            self.add_module(name, child)
        for name in GATE_ATTRIBUTES:
            setattr(self, name, getattr(gate, name))
        cut = gate_extract(gate)
        offsets = segment_offsets(cut.irreps_in)
        ranges = [[(offsets[i], offsets[i + 1]) for i in ins] for ins in cut.instructions]
        cuts = sorted({0, cut.irreps_in.dim} | {c for group in ranges for r in group for c in r})
        self._x_sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:])]
        self._groups = [[cuts.index(a) for a, _ in group] for group in ranges]  # each range is one piece
        gate_index = []
        for mul, ir in self.irreps_gated:
            start = len(gate_index) and gate_index[-1] + 1
            gate_index += [start + u for u in range(mul) for _ in range(ir.dim)]
        self.register_buffer("_gate_index", torch.as_tensor(gate_index, dtype=torch.long), persistent=False)
        # the activations as runs of one function each (all the gates are one sigmoid): e3nn applies one per segment
        self._scalar_runs, self._gate_runs = activation_runs(self.act_scalars), activation_runs(self.act_gates)

    def forward(self, features):
        pieces = torch.split(features, self._x_sizes, dim=-1)
        scalars, gates, gated = (
            torch.cat([pieces[i] for i in group], dim=-1)
            if len(group) > 1
            else pieces[group[0]]
            if group
            else features.new_zeros(features.shape[:-1] + (0,))
            for group in self._groups
        )
        scalars = _activate(self.act_scalars, self._scalar_runs, scalars)
        if not gates.shape[-1]:
            return scalars
        gated = gated * _activate(self.act_gates, self._gate_runs, gates).index_select(-1, self._gate_index)
        return torch.cat([scalars, gated], dim=-1)


def _activate(activation, runs, x: torch.Tensor) -> torch.Tensor:
    """``activation(x)`` (e3nn's ``Activation`` on scalars), one function call per run of ``activation_runs``."""
    if runs is None:
        return activation(x)
    parts = []
    for start, stop, f, constant in runs:
        part = f(x if len(runs) == 1 else x[..., start:stop])
        parts.append(part if constant == 1.0 else part * constant)
    return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


def _replace(root: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    """Put ``new`` in the place of ``root``'s submodule ``name`` (the same position among its siblings)."""
    parent_name, _, attribute = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attribute, new)


def fuse_tensor_products(module: torch.nn.Module, constant_attributes: bool = False) -> dict:
    """Faster, equivalent evaluation of every e3nn tensor product in ``module``.

    ``FusedScalarProduct`` / ``FusedEdgeProduct`` where they apply (the product's class is changed, see
    ``e3hier.network.fused.scalar_product``: parameters, buffers and state-dict keys stay e3nn's; the fused
    constants are non-persistent buffers), a ``FusedConvolution`` in the place of each convolution around a
    fused edge product and a ``FusedGate`` in the place of each gate; every other tensor product (the gates'
    elementwise products, no longer called) gets ``generated_code.optimise_tensor_products``.

    Parameters
    ----------
    module : torch.nn.Module
        A network of e3nn modules (``gate_points_2101.Network``), changed in place.
    constant_attributes : bool
        Its node attribute is the constant 1 (``FusedConvolution``).

    Returns
    -------
    dict
        How many modules got each treatment.
    """
    counts = {"scalar": 0, "edge": 0, "split": 0, "convolution": 0, "gate": 0}
    for name, gate in list(module.named_modules()):
        if FusedGate.supports(gate):
            _replace(module, name, FusedGate(gate))
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
    for name, conv in list(module.named_modules()):
        if type(conv) is Convolution and isinstance(conv.tp, FusedEdgeProduct):
            linear = all(isinstance(p, FusedScalarProduct) for p in (conv.sc, conv.lin1, conv.lin2))
            _replace(module, name, FusedConvolution(conv, constant_attributes and linear))
            counts["convolution"] += 1
    return counts

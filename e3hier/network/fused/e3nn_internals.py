"""The one place where the fused kernels reach into e3nn beyond its documented API.

The speed layer (``e3hier.network.fused``: ``scalar_product``, ``edge_product``, ``layers``, ``generated_code``)
reuses e3nn's modules as they are built and evaluates them its own way, so it depends on a few
private attributes of e3nn 0.5-0.6. They are read here and nowhere else: a new e3nn version that
renames one fails ``check_internals`` (``tests/test_e3nn_internals.py``) with the attribute and the
version, instead of an ``AttributeError`` deep inside a training step.
"""

from __future__ import annotations

import e3nn
import torch
from e3nn import o3
from e3nn.nn import Gate
from e3nn.nn.models.gate_points_2101 import Convolution


class E3nnInternalsChanged(RuntimeError):
    """An e3nn internal the fused kernels rely on is missing or changed."""


def generated_code(product: o3.TensorProduct):
    """The ``fx.GraphModule`` e3nn generated for ``product``'s forward pass, or None (e.g. TorchScript)."""
    code = getattr(product, "_compiled_main_left_right", None)
    return code if isinstance(code, torch.fx.GraphModule) else None


def product_weights(product: o3.TensorProduct, weight=None) -> torch.Tensor:
    """The weights ``product`` uses: ``weight`` if given, else its own parameter (e3nn's ``_get_weights``)."""
    return product._get_weights(weight)


def output_mask(product: o3.TensorProduct) -> torch.Tensor:
    """1 on the output components some path of ``product`` reaches, 0 elsewhere (e3nn's buffer)."""
    return product.output_mask


def gate_extract(gate: Gate):
    """The ``Extract`` module that cuts a gate's input into scalars, gates and gated features:
    ``.irreps_in`` and ``.instructions`` (one tuple of input segments per part)."""
    return gate.sc.cut


def activation_runs(activation) -> list[tuple[int, int, object, float]] | None:
    """An ``e3nn.nn.Activation`` on scalars as runs of adjacent segments with one function and one
    normalisation constant: ``(start, stop, f, constant)`` (its output is ``f(x[start:stop]) · constant``
    run after run); None where a segment has no function (non-scalars pass through)."""
    runs, start = [], 0
    for mul, _, act in activation.paths:
        if act is None:
            return None
        f, constant = act.f, float(getattr(act, "cst", 1.0))
        if runs and runs[-1][2] is f and runs[-1][3] == constant:
            runs[-1] = (runs[-1][0], start + mul, f, constant)
        else:
            runs.append((start, start + mul, f, constant))
        start += mul
    return runs


def optimize_einsums() -> bool:
    """Whether e3nn optimises the einsums of the code it generates (``opt_einsum_fx``)."""
    return bool(e3nn.get_optimization_defaults()["optimize_einsums"])


def set_optimize_einsums(value: bool) -> None:
    e3nn.set_optimization_defaults(optimize_einsums=value)


#: Attributes of e3nn's built modules the speed layer reads (the part of its API it relies on).
CONVOLUTION_CHILDREN = ("sc", "lin1", "fc", "tp", "lin2")
CONVOLUTION_ATTRIBUTES = ("irreps_in", "irreps_node_attr", "irreps_edge_attr", "irreps_out", "num_neighbors")
GATE_CHILDREN = ("sc", "act_scalars", "act_gates", "mul")
GATE_ATTRIBUTES = ("irreps_scalars", "irreps_gates", "irreps_gated", "irreps_in", "irreps_out")
INSTRUCTION_FIELDS = ("i_in1", "i_in2", "i_out", "connection_mode", "has_weight", "path_weight", "path_shape")


def _require(owner, name: str, where: str) -> None:
    if not hasattr(owner, name):
        raise E3nnInternalsChanged(
            f"e3nn {e3nn.__version__}: {where} has no attribute {name!r}; the fused kernels (e3hier.fused_*) "
            f"rely on it. Pin e3nn to a tested version (requirements.lock) or use DensityNetwork(kernels='e3nn')."
        )


def check_internals() -> None:
    """Build small e3nn modules and check every internal the fused kernels use; raise ``E3nnInternalsChanged``."""
    linear = o3.FullyConnectedTensorProduct("2x0e+1x1o", "1x0e", "2x0e+1x1o")
    for name in (
        "_get_weights",
        "output_mask",
        "instructions",
        "weight",
        "internal_weights",
        "shared_weights",
        "weight_numel",
    ):
        _require(linear, name, "o3.FullyConnectedTensorProduct")
    for name in INSTRUCTION_FIELDS:
        _require(linear.instructions[0], name, "a tensor product's Instruction")
    _require(linear, "_compiled_main_left_right", "o3.FullyConnectedTensorProduct")  # its generated code
    gate = Gate("1x0e", [torch.tanh], "1x0e", [torch.sigmoid], "1x1o")
    for name in GATE_CHILDREN + GATE_ATTRIBUTES:
        _require(gate, name, "e3nn.nn.Gate")
    _require(gate.sc, "cut", "e3nn.nn.Gate.sc")
    _require(gate.act_gates, "paths", "e3nn.nn.Activation")
    for name in ("f", "cst"):
        _require(gate.act_gates.paths[0][2], name, "e3nn.math.normalize2mom")
    for name in ("irreps_in", "instructions"):
        _require(gate_extract(gate), name, "e3nn.nn.Gate.sc.cut")
    conv = Convolution(
        "1x0e", "1x0e", "1x0e+1x1o", "1x0e", number_of_basis=2, radial_layers=1, radial_neurons=4, num_neighbors=1.0
    )
    for name in CONVOLUTION_CHILDREN + CONVOLUTION_ATTRIBUTES:
        _require(conv, name, "gate_points_2101.Convolution")
    if list(dict(conv.named_children())) != list(CONVOLUTION_CHILDREN):
        raise E3nnInternalsChanged(
            f"e3nn {e3nn.__version__}: gate_points_2101.Convolution's children are "
            f"{list(dict(conv.named_children()))}, not {list(CONVOLUTION_CHILDREN)}"
        )
    for name in ("get_optimization_defaults", "set_optimization_defaults"):
        _require(e3nn, name, "the e3nn package")
    if "optimize_einsums" not in e3nn.get_optimization_defaults():
        raise E3nnInternalsChanged(f"e3nn {e3nn.__version__}: no 'optimize_einsums' optimisation default")

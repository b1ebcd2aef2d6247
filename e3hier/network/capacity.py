"""Parameter counts and the hidden channel counts of each grid point's capacity and channel controls.

Two controls separate *order* (hidden l_max) from other things that change with it:

- ``capacity: matched`` widens every channel count by one factor, so that the model has the parameter
  count of a reference model (the study's model at the largest hidden l_max of the grid) within
  ``MATCH_TOLERANCE``. Widening keeps the study's ratio between orders, so only the number of
  parameters changes, not how they are spread over l.
- ``channels: equal`` gives every order l the same channel count, chosen so the model keeps the
  parameter count of the study's channels at its l_max (or the matched count). A hierarchy that the
  study's falling channel counts (125/40/25/15/10) impose is then not read as learned.

The parameter count is computed from the irreps alone (no e3nn modules are built, which takes seconds);
``tests/test_capacity.py`` checks it against e3nn's ``Network``.
"""

from __future__ import annotations

from e3nn import o3
from e3nn.nn.models.gate_points_2101 import tp_path_exists

#: Matched parameter counts agree with their reference to this relative tolerance.
MATCH_TOLERANCE = 0.05

#: The study's hidden channel counts for l = 0..4 (both parities).
STUDY_MULTIPLICITIES = (125, 40, 25, 15, 10)

CAPACITIES = ("study", "matched")
CHANNELS = ("study", "equal")


def node_attribute_irreps(node_attributes: str, n_elements: int) -> o3.Irreps:
    """``constant`` (the study: one scalar 1 per atom) or ``one_hot`` (the element, ``{n}x0e``)."""
    if node_attributes == "constant":
        return o3.Irreps("0e")
    if node_attributes == "one_hot":
        return o3.Irreps(f"{n_elements}x0e")
    raise ValueError(f"model.node_attributes: {node_attributes!r} is not one of 'constant', 'one_hot'")


def hidden_irreps(lmax_hidden: int, multiplicities=STUDY_MULTIPLICITIES) -> o3.Irreps:
    """``125x0e+125x0o+40x1e+40x1o+...`` truncated at ``lmax_hidden``."""
    if lmax_hidden >= len(multiplicities):
        raise ValueError(
            f"model.hidden_multiplicities: hidden l_max {lmax_hidden} needs {lmax_hidden + 1} values, "
            f"got {list(multiplicities)}"
        )
    return o3.Irreps([(multiplicities[l], (l, p)) for l in range(lmax_hidden + 1) for p in (1, -1)])


def _fully_connected_numel(irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, irreps_out: o3.Irreps) -> int:
    """Weights of an e3nn ``FullyConnectedTensorProduct`` (one ``uvw`` path per allowed triple)."""
    return sum(
        mul1 * mul2 * mul3
        for mul1, ir1 in irreps_in1
        for mul2, ir2 in irreps_in2
        for mul3, ir3 in irreps_out
        if ir3 in ir1 * ir2
    )


def _gate_irreps(irreps_hidden: o3.Irreps, irreps_node: o3.Irreps, irreps_edge: o3.Irreps):
    """(irreps into the gate, irreps out of it), as ``gate_points_2101.Network`` builds each layer."""
    scalars = o3.Irreps(
        [(m, ir) for m, ir in irreps_hidden if ir.l == 0 and tp_path_exists(irreps_node, irreps_edge, ir)]
    )
    gated = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l > 0 and tp_path_exists(irreps_node, irreps_edge, ir)])
    gate_ir = "0e" if tp_path_exists(irreps_node, irreps_edge, "0e") else "0o"
    gates = o3.Irreps([(m, gate_ir) for m, _ in gated])
    return (scalars + gates + gated).simplify(), (scalars + gated).simplify()


def _convolution_numel(irreps_in, irreps_attr, irreps_edge, irreps_out, radial: list[int]) -> int:
    """Weights of one ``gate_points_2101.Convolution``: sc, lin1, the radial network and lin2."""
    mid = o3.Irreps(
        [
            (mul, ir_out)
            for mul, ir_in in irreps_in
            for _, ir_edge in irreps_edge
            for ir_out in ir_in * ir_edge
            if ir_out in irreps_out
        ]
    )
    radial_sizes = radial + [sum(mul for mul, _ in mid)]  # one weight per path and channel (uvu)
    return (
        _fully_connected_numel(irreps_in, irreps_attr, irreps_out)
        + _fully_connected_numel(irreps_in, irreps_attr, irreps_in)
        + sum(a * b for a, b in zip(radial_sizes[:-1], radial_sizes[1:]))
        + _fully_connected_numel(mid.sort()[0], irreps_attr, irreps_out)
    )


def parameter_count(lmax_hidden: int, multiplicities, n_elements: int, irreps_out, model_cfg: dict) -> int:
    """Parameters of ``DensityNetwork`` with these hidden channel counts, from the irreps alone."""
    irreps_attr = node_attribute_irreps(model_cfg.get("node_attributes", "constant"), n_elements)
    irreps_edge = o3.Irreps.spherical_harmonics(model_cfg["lmax_edge"])
    irreps_hidden = hidden_irreps(lmax_hidden, multiplicities)
    radial = [model_cfg["number_of_basis"]] + model_cfg["radial_layers"] * [model_cfg["radial_neurons"]]
    irreps = o3.Irreps(f"{n_elements}x0e")  # the node input is the element one-hot
    total = 0
    for _ in range(model_cfg["layers"]):
        gate_in, gate_out = _gate_irreps(irreps_hidden, irreps, irreps_edge)
        total += _convolution_numel(irreps, irreps_attr, irreps_edge, gate_in, radial)
        irreps = gate_out
    return total + _convolution_numel(irreps, irreps_attr, irreps_edge, o3.Irreps(irreps_out), radial)


def scaled(multiplicities, lmax_hidden: int, factor: float) -> list[int]:
    """Every channel count up to ``lmax_hidden`` times ``factor`` (at least 1)."""
    return [max(1, round(m * factor)) for m in multiplicities[: lmax_hidden + 1]]


def _solve(count_of, target: int, low: float, high: float):
    """The argument of ``count_of`` (increasing) whose count is closest to ``target``, by bisection."""
    for _ in range(40):
        if count_of(high) >= target:
            break
        high *= 2
    else:
        raise ValueError(f"no channel count reaches {target} parameters")
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if count_of(middle) < target else (low, middle)
    return min((low, high), key=lambda x: abs(count_of(x) - target))


def grid_multiplicities(
    lmax_hidden: int, capacity: str, channels: str, reference_lmax: int, n_elements: int, irreps_out, model_cfg: dict
) -> dict:
    """The hidden channel counts of one grid point, and its parameter count and target count.

    ``capacity``: ``study`` keeps the parameter count of the study's channels at this l_max;
    ``matched`` targets that of the study's model at ``reference_lmax``. ``channels``: ``study``
    scales the configured counts; ``equal`` gives every order the same count.
    Returns ``{"multiplicities", "n_params", "target_params"}``; raises if a matched capacity misses
    ``MATCH_TOLERANCE``.
    """
    if capacity not in CAPACITIES or channels not in CHANNELS:
        raise ValueError(f"capacity {capacity!r} / channels {channels!r}: expected one of {CAPACITIES} / {CHANNELS}")
    study = list(model_cfg["hidden_multiplicities"])

    def count(mults):
        return parameter_count(lmax_hidden, mults, n_elements, irreps_out, model_cfg)

    reference = lmax_hidden if capacity == "study" else reference_lmax
    target = parameter_count(reference, study, n_elements, irreps_out, model_cfg)
    if channels == "study" and reference == lmax_hidden:
        mults = study[: lmax_hidden + 1]
    elif channels == "study":
        mults = scaled(study, lmax_hidden, _solve(lambda f: count(scaled(study, lmax_hidden, f)), target, 0.0, 1.0))
    else:
        width = round(_solve(lambda w: count([max(1, round(w))] * (lmax_hidden + 1)), target, 1.0, 2.0))
        mults = [max(1, width)] * (lmax_hidden + 1)
    n_params = count(mults)
    # the equal-channel control keeps its capacity as closely as one integer count allows (tiny test
    # models cannot always meet the tolerance; the default ones are within 2 %)
    if capacity == "matched" and abs(n_params / target - 1) > MATCH_TOLERANCE:
        raise ValueError(
            f"hidden l_max {lmax_hidden}, capacity {capacity}, channels {channels}: {n_params} parameters "
            f"cannot match {target} within {MATCH_TOLERANCE:.0%}"
        )
    return {"multiplicities": mults, "n_params": n_params, "target_params": target}

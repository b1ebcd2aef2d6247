"""The hand-written kernels of the speed layer against the e3nn modules they replace (float64, to rounding):
values and gradients, for one model and for a stack of members (``e3hier.training.ensemble``)."""

import copy

import pytest
import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet

from e3hier.network.capacity import hidden_irreps
from e3hier.network.fused.radial import FusedRadialNet
from e3hier.network.fused.scalar_linear import LinearPlan, linear_maps, scalar_linear
from e3hier.network.fused.scalar_product import FusedScalarProduct


def scalar_products():
    """Self-interactions and linear maps as the study's convolutions have them (constant 1x0e attribute)."""
    hidden = o3.Irreps(hidden_irreps(2, [6, 4, 3]))
    gated = o3.Irreps("6x0e+3x0o+4x1o+2x1e+3x2e") + o3.Irreps("3x0e+2x1o+3x2e")  # unsorted, repeated irreps
    wide = o3.Irreps("2x0o+3x0e+2x0e+4x1o+2x1o+3x1e+2x2o+2x2o+3x2e")  # adjacent segments of one irrep
    cases = [(hidden, hidden), (gated, hidden), (wide, o3.Irreps("5x0e+4x0o+3x1o+2x1e+2x2o+1x2e+2x3o"))]
    for irreps_in, irreps_out in cases:
        torch.manual_seed(0)
        e3nn_tp = o3.FullyConnectedTensorProduct(irreps_in, "0e", irreps_out)
        tp = copy.deepcopy(e3nn_tp)
        tp.__class__ = FusedScalarProduct
        tp._prepare()
        yield e3nn_tp, tp


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("members", [None, 3])
def test_scalar_linear_is_the_scalar_product(members, dense, float64_default, monkeypatch):
    """``scalar_linear(product, x)`` equals e3nn's ``product(x, 1)`` (each member with its own weights): outputs,
    input and weight gradients; an output irrep no input reaches (3o here) is zero. Both ways: the runs, and
    the small maps' dense matrix."""
    monkeypatch.setattr(LinearPlan, "use_dense", dense)
    for e3nn_tp, tp in scalar_products():
        assert LinearPlan(tp).dense  # these maps are small
        torch.manual_seed(1)
        shape = (7,) if members is None else (members, 7)
        x = torch.randn(*shape, tp.irreps_in1.dim, requires_grad=True)
        weight = tp.weight.detach() if members is None else torch.randn(members, tp.weight.numel())
        weight.requires_grad_(True)
        grad = torch.randn(*shape, tp.irreps_out.dim)
        ones = torch.ones(*shape, 1)
        if members is None:
            reference = e3nn_tp(x, ones, weight)
        else:
            reference = torch.stack([e3nn_tp(x[k], ones[k], weight[k]) for k in range(members)])
        (dx, dw) = torch.autograd.grad(reference, (x, weight), grad)
        tp.weight = torch.nn.Parameter(weight.detach().clone())
        out = scalar_linear(tp, x)
        (ex, ew) = torch.autograd.grad(out, (x, tp.weight), grad)
        torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)
        torch.testing.assert_close(ex, dx, rtol=0, atol=1e-12)
        torch.testing.assert_close(ew, dw, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("members", [None, 3])
def test_stacked_linear_maps_are_the_maps(members, dense, float64_default, monkeypatch):
    """``LinearPlan.stacked``: two maps of one input (one with scales, as ``sc`` has its share) as one map,
    outputs side by side, weights one after the other: the same outputs and gradients as two maps."""
    monkeypatch.setattr(LinearPlan, "use_dense", dense)
    products = [tp for _, tp in scalar_products()]
    sc, lin1 = products[0], products[0].__class__.__new__(products[0].__class__)
    lin1.__dict__.update(copy.deepcopy(products[0]).__dict__)
    torch.manual_seed(2)
    lin1.weight = torch.nn.Parameter(torch.randn_like(sc.weight))
    plans = [LinearPlan(sc, output_scale=0.3), LinearPlan(lin1)]
    shape = (7,) if members is None else (members, 7)
    x = torch.randn(*shape, sc.irreps_in1.dim, requires_grad=True)
    weights = [
        (p.weight.detach() if members is None else torch.randn(members, p.weight.numel())).requires_grad_(True)
        for p in (sc, lin1)
    ]
    grad = torch.randn(*shape, sum(p.out_dim for p in plans))
    separate = torch.cat([linear_maps(plan, w, x) for plan, w in zip(plans, weights)], dim=-1)
    expected = torch.autograd.grad(separate, (x, *weights), grad)
    both = linear_maps(LinearPlan.stacked(plans), torch.cat(weights, dim=-1), x)
    got = torch.autograd.grad(both, (x, *weights), grad)
    torch.testing.assert_close(both, separate, rtol=0, atol=1e-12)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hidden_layers", [1, 2])
def test_fused_radial_net_is_e3nns(hidden_layers, float64_default):
    """``FusedRadialNet`` gives e3nn's ``FullyConnectedNet`` outputs and gradients, for one network and for a
    stack of members' weights (each member its own network)."""
    torch.manual_seed(0)
    net = FullyConnectedNet([10] + [16] * hidden_layers + [30], torch.nn.functional.silu)
    fused = FusedRadialNet(net)
    assert [name for name, _ in fused.named_parameters()] == [name for name, _ in net.named_parameters()]
    x = torch.randn(9, 10, requires_grad=True)
    grad = torch.randn(9, 30)
    reference = net(x)
    expected = torch.autograd.grad(reference, (x, *net.parameters()), grad)
    out = fused(x)
    got = torch.autograd.grad(out, (x, *fused.parameters()), grad)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-12)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # members: weights (K, h_in, h_out), inputs (K, edges, h_in)
    weights = [torch.randn(3, *p.shape) for p in net.parameters()]
    xs = torch.randn(3, 9, 10)
    alone = []
    for k in range(3):
        member = copy.deepcopy(net)
        with torch.no_grad():
            for p, w in zip(member.parameters(), weights):
                p.copy_(w[k])
        alone.append(member(xs[k]))
    for layer, w in zip(fused.children(), weights):
        layer.weight = torch.nn.Parameter(w)
    torch.testing.assert_close(fused(xs), torch.stack(alone), rtol=0, atol=1e-12)

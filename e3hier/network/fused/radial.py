"""The convolutions' radial networks (e3nn's ``FullyConnectedNet`` of SiLU layers) with a hand-written backward.

e3nn's layer divides its weight by √fan-in on every call, multiplies the activation by its
normalisation constant and by √variance, and autograd records each of these (on the weights and on
per-edge tensors) twice. Those constants are scalars, so here each one rides on the matrix product
that follows it (the ``alpha`` of ``addmm`` / ``baddbmm``): a layer is one product and one SiLU, its
backward two products and ``silu_backward``. The products of a radial network are a large share of a
training step's arithmetic (edges × hidden × path weights, three times), so its copies matter too.
Same parameters and state-dict keys; outputs agree to float rounding.
"""

from __future__ import annotations

import torch
from e3nn.math import normalize2mom
from e3nn.nn import FullyConnectedNet


def _product(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha · (a @ b)`` in one BLAS call: matrices, or stacks of them (an ensemble's members)."""
    if a.dim() == 2 and b.dim() == 2:
        return torch.addmm(a.new_empty(()), a, b, beta=0, alpha=alpha)
    if a.dim() == 3 and b.dim() == 3:
        return torch.baddbmm(a.new_empty(()), a, b, beta=0, alpha=alpha)
    return torch.matmul(a, b).mul_(alpha)


class RadialNetwork(torch.autograd.Function):
    """``h_{i+1} = silu(alpha_i · h_i W_i)``, output ``alpha_last · h W_last``; forward and backward by hand."""

    @staticmethod
    def forward(ctx, x, alphas: tuple[float, ...], *weights):
        inputs, hidden = [x], []
        h = x
        for w, alpha in zip(weights[:-1], alphas[:-1]):
            z = _product(h, w, alpha)
            hidden.append(z)
            h = torch.nn.functional.silu(z)
            inputs.append(h)
        out = _product(h, weights[-1], alphas[-1])
        ctx.save_for_backward(*inputs, *hidden, *weights)
        ctx.layers, ctx.alphas = len(weights), alphas
        return out

    @staticmethod
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        n = ctx.layers
        inputs, hidden, weights = saved[:n], saved[n : 2 * n - 1], saved[2 * n - 1 :]
        grads = [None] * n
        for i in reversed(range(n)):
            alpha = ctx.alphas[i]
            if ctx.needs_input_grad[2 + i]:
                grads[i] = _product(inputs[i].transpose(-1, -2), grad, alpha)
            if i == 0 and not ctx.needs_input_grad[0]:
                grad = None
                break
            grad = _product(grad, weights[i].transpose(-1, -2), alpha)
            if i > 0:
                grad = torch.ops.aten.silu_backward(grad, hidden[i - 1])
        return grad, None, *grads


class FusedRadialNet(torch.nn.Module):
    """e3nn's ``FullyConnectedNet`` of SiLU hidden layers and a linear output layer, on ``RadialNetwork``.

    Parameters
    ----------
    net : FullyConnectedNet
        The network; its layers (``layer0``, ``layer1``, ...) become this module's, with their weights.
    """

    @staticmethod
    def supports(net) -> bool:
        if type(net) is not FullyConnectedNet:
            return False
        layers = list(net.children())
        silu = torch.nn.functional.silu
        hidden_silu = all(isinstance(layer.act, normalize2mom) and layer.act.f is silu for layer in layers[:-1])
        return len(layers) >= 1 and layers[-1].act is None and hidden_silu

    def __init__(self, net: FullyConnectedNet):
        super().__init__()
        for name, layer in net.named_children():
            self.add_module(name, layer)
        self.hs = list(net.hs)
        alphas, carried = [], 1.0  # carried: the previous activation's constant, applied in this product
        for layer in self.children():
            if layer.act is not None:
                alphas.append(carried / (layer.h_in * layer.var_in) ** 0.5)
                constant = 1.0 if layer.act._is_id else layer.act.cst
                carried = constant * layer.var_out**0.5
            else:
                alphas.append(carried / (layer.h_in * layer.var_in / layer.var_out) ** 0.5)
        self.alphas = tuple(alphas)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return RadialNetwork.apply(x, self.alphas, *(layer.weight for layer in self.children()))

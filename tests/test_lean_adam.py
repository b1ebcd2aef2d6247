"""``LeanAdam`` is ``torch.optim.Adam(fused=True)``: the same parameters and state after every step."""

import copy

import torch

from e3hier.training.lean_adam import LeanAdam


def test_lean_adam_steps_as_adam():
    """Bitwise the same parameters and optimiser state as Adam over steps that take the short path, a step
    with a parameter without gradient (Adam's own path) and a learning rate changed by a scheduler."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    twin = copy.deepcopy(model)
    adam = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
    lean = LeanAdam(twin.parameters(), lr=0.01)
    schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.5) for o in (adam, lean)]
    for step in range(6):
        for net, optimizer in ((model, adam), (twin, lean)):
            optimizer.zero_grad(set_to_none=True)
            torch.manual_seed(step)
            net(torch.randn(4, 5)).pow(2).sum().backward()
            if step == 3:  # a parameter without a gradient this step
                net[2].bias.grad = None
            optimizer.step()
        if step == 2:
            for scheduler in schedulers:
                scheduler.step()
        for a, b in zip(model.parameters(), twin.parameters()):
            assert torch.equal(a, b)
    assert lean._lists is not None  # the short path was taken
    for key, value in adam.state_dict()["state"].items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(value[name], lean.state_dict()["state"][key][name])

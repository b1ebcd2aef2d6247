"""Adam with the fused kernel, stepped without ``torch.optim``'s per-step Python layers.

A batch-1 training step of the study's network takes ~13 ms on one CPU core, and ``Adam.step`` wraps
its one fused kernel in ~0.3 ms of Python (hooks, profiler ranges, the scheduler's step tracking,
regrouping the tensors by device and dtype, state lookups per parameter). ``LeanAdam`` is
``torch.optim.Adam(fused=True)``: the same state (``state_dict`` and checkpoints unchanged), the same
kernel and arguments, so the same updates; once every parameter has its state it calls the kernel
directly on lists kept from the previous step. Anything else (a closure, amsgrad, several parameter
groups, a parameter without a gradient, hooks) takes ``Adam.step``.
"""

from __future__ import annotations

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks


class LeanAdam(torch.optim.Adam):
    """``torch.optim.Adam(params, lr, fused=True)`` with a short path for the common step (module docstring)."""

    def __init__(self, params, lr: float):
        super().__init__(params, lr=lr, fused=True)
        self._lists = None  # (params, exp_avgs, exp_avg_sqs, steps) of the short path

    def _short_path(self):
        """The parameter group, its tensor lists in ``_lists``; or None where ``Adam.step`` must run."""
        if len(self.param_groups) != 1 or self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks:
            return None
        if _global_optimizer_pre_hooks or _global_optimizer_post_hooks:
            return None
        group = self.param_groups[0]
        if group["amsgrad"] or group["capturable"] or group["differentiable"] or group["decoupled_weight_decay"]:
            return None
        params = group["params"]
        if self._lists is None or self._lists[0] is not params or len(self._lists[1]) != len(params):
            states = [self.state.get(p) for p in params]
            if any(not s for s in states) or len({(p.device, p.dtype) for p in params}) != 1:
                return None  # the first step makes the state; one kernel call takes one device and dtype
            self._lists = (
                params,
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["step"] for s in states],
            )
        if any(p.grad is None for p in params):
            return None
        return group

    @torch.no_grad()
    def step(self, closure=None):
        group = None if closure is not None else self._short_path()
        if group is None:
            self._lists = None
            return super().step(closure)
        params, exp_avgs, exp_avg_sqs, steps = self._lists
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params,
            [p.grad for p in params],
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            grad_scale=None,
            found_inf=None,
        )
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return super().zero_grad(set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return None

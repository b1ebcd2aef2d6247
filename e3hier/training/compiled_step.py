"""``train.compile``: the training step's forward pass compiled with ``torch.compile`` (its backward with it).

Off by default. A compiled forward computes the same model (outputs and gradients equal to float rounding,
``tests/test_compiled_step.py``), so the setting is an execution setting like ``train.device``
(``e3hier.training.grid.EXECUTION_SETTINGS``): it enters no fingerprint, and a job resumes under either value.

What it costs and gives, measured on the study's network (batch 1, one CPU thread, 2-core machine under
load; ``benchmarks/compile_step.py``, ``docs/performance.md``): a cold compile takes 2.5 min (l_max 0) to
7 min (an ensemble at l_max 4) per job (the inductor's C++ compilation; less with its on-disk cache warm), and
the compiled CPU step is 1.3× as fast as the eager one at l_max 0 but 0.6–0.8× as fast at l_max 2–4, where the
hand-written kernels (``e3hier.network.fused.edge_product``, ``e3hier.network.fused.scalar_linear``) beat the
generated code. On a GPU a batch-1 step is bound by kernel launches, which compiling merges: check it there
(``benchmarks/gpu_check.py --compile``) and time a job before turning it on.

Graphs of different structures have different node, edge and pair counts: the forward is compiled with
dynamic shapes (``dynamic=True``), once (``compile_counts``: a recompile would compile the frame again). The
first call runs eagerly: the fused kernels make their index plans on first use
(``e3hier.network.fused.scalar_linear.LinearPlan``), which a trace must not do.
"""

from __future__ import annotations

import os
import shutil

import torch

#: ``torch.compile`` arguments: one compilation for every graph size.
COMPILE_OPTIONS = {"dynamic": True}


def compile_enabled(train_cfg: dict) -> bool:
    """Whether ``train.compile`` is on (absent: off)."""
    return bool(train_cfg.get("compile", False))


def check_compile(train_cfg: dict, device) -> None:
    """Fail with a clear message, before any data is loaded, where ``train.compile`` cannot work: no C++
    compiler for the CPU backend, no Triton for CUDA. Nothing to check when the option is off."""
    if not compile_enabled(train_cfg):
        return
    advice = "set train.compile: false (the eager step computes the same model)"
    if not hasattr(torch, "compile"):
        raise RuntimeError(f"train.compile: this torch ({torch.__version__}) has no torch.compile; {advice}")
    if torch.device(device).type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise RuntimeError(f"train.compile on CUDA needs Triton, which this environment lacks; {advice}")
        return
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None and shutil.which("c++") is None:
        raise RuntimeError(
            f"train.compile on the CPU needs a C++ compiler (torch.compile's inductor builds C++ kernels): "
            f"{compiler!r} is not on PATH; install one (e.g. gcc) or {advice}"
        )


class CompiledForward:
    """``function(graph)`` compiled with ``torch.compile`` from its second call on (the first runs eagerly,
    making the kernels' plans). Only training steps call it; validation, probes and evaluation (without
    gradients) stay eager, so they compile nothing."""

    def __init__(self, function):
        self.function = function
        self.compiled = None
        self.calls = 0

    def __call__(self, graph):
        self.calls += 1
        if self.calls == 1:
            return self.function(graph)
        if self.compiled is None:
            self.compiled = torch.compile(self.function, **COMPILE_OPTIONS)
        return self.compiled(graph)


def training_forward(function, train_cfg: dict):
    """The forward pass a training step calls: ``function`` itself, or compiled where ``train.compile`` is on."""
    return CompiledForward(function) if compile_enabled(train_cfg) else function


def compile_counts() -> dict:
    """The process's compilations so far (``torch._dynamo``'s counters): ``frames`` compiled (a recompile, e.g. for a
    shape that the dynamic shapes did not cover, compiles its frame again) and distinct ``graphs``."""
    from torch._dynamo.utils import counters

    return {"frames": int(counters["frames"]["ok"]), "graphs": int(counters["stats"]["unique_graphs"])}

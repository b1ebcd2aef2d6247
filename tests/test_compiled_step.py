"""``train.compile``: a compiled training step trains the same model as the eager one, to float rounding."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIT, TINY_MODEL, TINY_TRAIN, synthetic_frame

from e3hier.data.layout import OutputLayout
from e3hier.network.devices import to_device
from e3hier.training import compiled_step
from e3hier.training.checkpoints import Run
from e3hier.training.compiled_step import CompiledForward, check_compile, compile_counts
from e3hier.training.ensemble import EnsembleTrainer
from e3hier.training.grid import EXECUTION_SETTINGS
from e3hier.training.samples import load_samples, pack
from e3hier.training.trainer import Trainer

#: Losses and per-l losses of compiled and eager steps agree to this (relative): float rounding, compounded
#: over a few Adam steps.
RTOL = 1e-5
LOSS_COLUMNS = ["loss", *(f"loss_l{l}" for l in range(5))]


@pytest.fixture(scope="module")
def mixed_splits():
    """Training structures of 1, 2 and 3 waters (graphs of several sizes) and a validation split."""
    train = pd.concat([synthetic_frame(2, seed, n_molecules=seed) for seed in (1, 2, 3)], ignore_index=True)
    return {"train": train, "val": synthetic_frame(1, 9)}


def trainers(splits, tmp_path, compile_on: bool, seeds=(0,)):
    layout = OutputLayout.from_basis(FIT["fit_auxbasis"], ["H", "O"], True, "full")
    train = load_samples(splits["train"], layout, TINY_MODEL)
    val = load_samples(splits["val"], layout, TINY_MODEL, with_overlap=True, dft_cfg=FIT)
    cfg = dict(TINY_TRAIN, compile=compile_on, batch_size=1)
    name = "compiled" if compile_on else "eager"
    return [
        Trainer(f"{name}-{s}", layout, train, val, 1, s, TINY_MODEL, cfg, tmp_path / f"{name}-{s}.pt") for s in seeds
    ]


def assert_same_epochs(compiled: list[dict], eager: list[dict]) -> None:
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose([a[c] for c in LOSS_COLUMNS], [b[c] for c in LOSS_COLUMNS], rtol=RTOL)


@pytest.mark.slow
def test_compiled_steps_train_the_eager_model(mixed_splits, tmp_path):
    """Three epochs of batch-1 steps on graphs of different sizes (dynamic shapes): the same losses per epoch and
    per l, and the same weights, compiled or not; and one compilation for all graph sizes."""
    (compiled,) = trainers(mixed_splits, tmp_path, True)
    (eager,) = trainers(mixed_splits, tmp_path, False)
    assert isinstance(compiled.step_outputs, CompiledForward) and not isinstance(eager.step_outputs, CompiledForward)
    by_size = {s.n_atoms: s for s in compiled.train}
    assert len(by_size) > 1  # graphs of several sizes: one compilation must cover them
    graphs = [to_device(pack([s]), "cpu") for s in by_size.values()]
    before = compile_counts()
    compiled.step_outputs(graphs[0])  # eager: the kernels' plans
    compiled.step_outputs(graphs[1])  # compiles
    once = compile_counts()
    assert once["frames"] > before["frames"] and once["graphs"] > before["graphs"]
    for graph in graphs:
        compiled.step_outputs(graph)
    assert compile_counts() == once  # no recompile for the other sizes
    rows = {}
    for name, trainer in (("compiled", compiled), ("eager", eager)):
        rows[name] = []
        for epoch in (1, 2, 3):
            rows[name].append(trainer.train_pass(epoch))
            trainer.scheduler.step()
    assert_same_epochs(rows["compiled"], rows["eager"])
    for (name, p), q in zip(compiled.model.named_parameters(), eager.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
    assert compile_counts() == once
    assert compiled.fingerprint == eager.fingerprint  # an execution setting: a checkpoint resumes under either


@pytest.mark.slow
def test_compiled_ensemble_steps_train_the_eager_ensemble(mixed_splits, tmp_path):
    """An ensemble of two seeds: the members' losses compiled or not agree to rounding."""
    rows = {}
    for compile_on in (True, False):
        ensemble = EnsembleTrainer(
            trainers(mixed_splits, tmp_path, compile_on, seeds=(0, 1)), tmp_path / f"e{compile_on}.pt"
        )
        assert isinstance(ensemble.step_outputs, CompiledForward) is compile_on
        runs = [Run() for _ in ensemble.members]  # no probes: no probe records
        rows[compile_on] = [ensemble.train_epoch(epoch, runs)[0] for epoch in (1, 2)]
    for compiled, eager in zip(rows[True], rows[False]):
        assert_same_epochs(compiled, eager)


def test_compile_is_an_execution_setting():
    assert "compile" in EXECUTION_SETTINGS


def test_compile_without_a_compiler_fails_before_any_data_with_advice(monkeypatch):
    check_compile({"compile": False}, "cpu")  # off: nothing is checked
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler.*train.compile: false"):
        check_compile({"compile": True}, "cpu")
    monkeypatch.setattr(compiled_step.torch, "compile", None, raising=False)
    monkeypatch.delattr(compiled_step.torch, "compile")
    with pytest.raises(RuntimeError, match="no torch.compile"):
        check_compile({"compile": True}, "cpu")

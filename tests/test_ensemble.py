"""Seeds trained together (``train.ensemble_size``) keep the result of each seed trained alone."""

import pandas as pd
import pytest
import torch
from conftest import TINY_MODEL, TINY_TRAIN, synthetic_frame, tiny_layout, tiny_train_val, train_tiny
from test_training import EARLY_STOPPING, assert_same_outputs, killed_after_training, stale

from e3hier.network.devices import to_device
from e3hier.network.fused import layers as fused_layers
from e3hier.network.model import DensityNetwork
from e3hier.training import experiment
from e3hier.training.ensemble import EnsembleTrainer
from e3hier.training.grid import block_name, seed_blocks
from e3hier.training.members import MemberNetworks, member_model, pack_members
from e3hier.training.samples import load_samples, pack
from e3hier.training.trainer import Trainer

TIMING = ["structures_per_second", "train_seconds", "wall_seconds"]
POINT = {"lmax_hidden": 1, "output": "full", "seed": 0, "n_train": "all"}


def members_of_three_sizes():
    """Three packed graphs of different sizes (padding in a stack) and three tiny networks of their own seeds."""
    lay = tiny_layout()
    graphs = [
        to_device(pack(load_samples(synthetic_frame(n, seed=n, n_molecules=m), lay, TINY_MODEL)), "cpu")
        for n, m in ((1, 1), (2, 2), (1, 3))
    ]
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(DensityNetwork(2, 2, str(lay.irreps), 3.0, 6.0, **TINY_MODEL))
    return graphs, models


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [None, 1])
def test_members_evaluated_together_equal_each_model_alone(chunk, monkeypatch):
    """Members of different sizes (padding) and their own weights: each output is the model's own.

    ``chunk`` 1: without gradients, each member's edge messages are computed on their own."""
    if chunk is not None:
        monkeypatch.setattr(fused_layers, "MESSAGE_CHUNK_ELEMENTS", chunk)
    graphs, models = members_of_three_sizes()
    alone = [model(graph) for model, graph in zip(models, graphs)]
    with torch.set_grad_enabled(chunk is None):
        together = MemberNetworks(models)(to_device(pack_members(graphs), "cpu"))
    for k, out in enumerate(alone):
        torch.testing.assert_close(together[k, : out.shape[0]], out, rtol=1e-5, atol=1e-6)
    # the members' parameters are views of their rows of the stack: an update of the stack reaches them
    stack = MemberNetworks(models)
    name, stacked = next(iter(stack.network.named_parameters()))
    with torch.no_grad():
        stacked[1].zero_()
    assert dict(models[1].named_parameters())[name].abs().sum() == 0
    assert dict(models[0].named_parameters())[name].abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [None, 1])
def test_members_trained_in_groups_get_each_model_alones_gradients(chunk, monkeypatch):
    """With gradients, an ensemble's edge messages go member by member (``chunk`` 1) or all at once: the
    outputs and every member's parameter gradients are those of the model alone."""
    if chunk is not None:
        monkeypatch.setattr(fused_layers, "TRAINING_CHUNK_ELEMENTS", chunk)
    graphs, models = members_of_three_sizes()
    alone = []
    for model, graph in zip(models, graphs):
        out = model(graph)
        out.pow(2).sum().backward()
        alone.append((out.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}))
    stack = MemberNetworks(models)
    together = stack(to_device(pack_members(graphs), "cpu"))
    sum(together[k, : out.shape[0]].pow(2).sum() for k, (out, _) in enumerate(alone)).backward()
    for k, (out, grads) in enumerate(alone):
        torch.testing.assert_close(together[k, : out.shape[0]], out, rtol=1e-5, atol=1e-6)
        for name, p in stack.network.named_parameters():
            torch.testing.assert_close(p.grad[k], grads[name], rtol=1e-4, atol=1e-6)


def make_trainers(splits, tmp_path, seeds, train_cfg=TINY_TRAIN):
    lay = tiny_layout()
    train, val = tiny_train_val(splits, lay)
    return [Trainer(f"seed-{s}", lay, train, val, 1, s, TINY_MODEL, train_cfg, tmp_path / f"{s}.pt") for s in seeds]


@pytest.mark.slow
def test_seeds_trained_together_equal_seeds_trained_alone(synthetic_splits, tmp_path):
    """Same initialisation, data order and optimiser: the same trajectory up to float rounding."""
    together = train_tiny(
        synthetic_splits, [dict(POINT, seed=s) for s in (3, 5)], TINY_TRAIN, [tmp_path / "a3", tmp_path / "a5"]
    )
    for seed, result in zip((3, 5), together):
        alone = train_tiny(synthetic_splits, dict(POINT, seed=seed), TINY_TRAIN, tmp_path / f"b{seed}")
        a = pd.read_parquet(tmp_path / f"a{seed}" / "metrics.parquet").drop(columns=TIMING)
        b = pd.read_parquet(tmp_path / f"b{seed}" / "metrics.parquet").drop(columns=TIMING)
        pd.testing.assert_frame_equal(a, b, rtol=1e-4)
        state_a = torch.load(tmp_path / f"a{seed}" / "model.pt", weights_only=True)["state_dict"]
        state_b = torch.load(tmp_path / f"b{seed}" / "model.pt", weights_only=True)["state_dict"]
        for key in state_b:
            torch.testing.assert_close(state_a[key], state_b[key], rtol=1e-4, atol=1e-5)
        fa = pd.read_parquet(tmp_path / f"a{seed}" / "features.parquet")
        fb = pd.read_parquet(tmp_path / f"b{seed}" / "features.parquet")
        pd.testing.assert_frame_equal(fa, fb, rtol=1e-3)
        assert result["summary"]["ensemble_size"] == 2 and alone["summary"]["ensemble_size"] == 1
        assert result["summary"]["seed"] == seed
        assert abs(result["summary"]["epsilon_test"] - alone["summary"]["epsilon_test"]) < 1e-4
    # the two seeds really differ: the comparison above is not of one model with itself
    a3 = torch.load(tmp_path / "a3" / "model.pt", weights_only=True)["state_dict"]
    a5 = torch.load(tmp_path / "a5" / "model.pt", weights_only=True)["state_dict"]
    assert any(not torch.allclose(a3[k], a5[k]) for k in a3)
    assert not (tmp_path / "a3" / "ensemble_checkpoint.pt").exists()


@pytest.mark.slow
def test_ensemble_resumes_from_its_checkpoint(synthetic_splits, tmp_path):
    reference = EnsembleTrainer(make_trainers(synthetic_splits, tmp_path / "r", (1, 2)), tmp_path / "ref.pt")
    expected = reference.fit()

    def crash_at_epoch_3(step, epoch, model):  # dies mid-epoch, after the epoch-2 checkpoint
        if epoch == 3:
            raise KeyboardInterrupt("killed")
        return [{"step": step, "epoch": epoch, "rows": []}] * 2

    path = tmp_path / "ensemble.pt"
    with pytest.raises(KeyboardInterrupt):
        EnsembleTrainer(make_trainers(synthetic_splits, tmp_path / "c", (1, 2)), path).fit(crash_at_epoch_3)
    resumed = EnsembleTrainer(make_trainers(synthetic_splits, tmp_path / "d", (1, 2)), path)
    results = resumed.fit()
    for (metrics, best, _), (ref_metrics, ref_best, _) in zip(results, expected):
        assert list(metrics["epoch"]) == [1, 2, 3, 4]
        pd.testing.assert_frame_equal(metrics.drop(columns=TIMING), ref_metrics.drop(columns=TIMING))
        for key, value in ref_best["state"].items():
            assert torch.equal(value, best["state"][key])
    # another set of members does not take this checkpoint
    other = EnsembleTrainer(make_trainers(synthetic_splits, tmp_path / "e", (1, 3)), path)
    assert other.load_checkpoint() is None


def test_seed_blocks_are_defined_by_the_seeds_values():
    assert seed_blocks([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert seed_blocks([0, 1, 2, 3, 4, 5], 2)[:2] == seed_blocks([0, 1, 2, 3, 4], 2)[:2]  # appended
    assert seed_blocks([1, 2, 3], 2) == [[1], [2, 3]]  # seed 0 removed: 2 and 3 keep their block
    assert seed_blocks([3, 1, 2, 0], 2) == seed_blocks([0, 1, 2, 3], 2)  # reordered
    assert seed_blocks([7, 3], 1) == [[3], [7]]
    point = {"lmax_hidden": 2, "output": "full", "capacity": "study", "channels": "study", "seed": 0, "n_train": "all"}
    assert block_name(point, [0, 1]) == "lmax_hidden~2_output~full_capacity~study_channels~study_seed~0-1_n_train~all"


@pytest.mark.parametrize("lmax", [0, 2, 4])
def test_member_model_equals_a_fresh_build_for_its_seed(lmax):
    """A member's weights are drawn again on a clone of the first member: exactly what a build gives."""
    lay = tiny_layout()
    torch.manual_seed(0)
    first = DensityNetwork(2, lmax, str(lay.irreps), 3.0, 6.0, **TINY_MODEL)
    torch.manual_seed(7)
    fresh = DensityNetwork(2, lmax, str(lay.irreps), 3.0, 6.0, **TINY_MODEL)
    member = member_model(first, 7)
    assert list(member.state_dict()) == list(fresh.state_dict())
    for key, value in fresh.state_dict().items():
        assert torch.equal(member.state_dict()[key], value), key
    # its own parameters: the first model is untouched, and a change of the member stays in the member
    assert not torch.equal(next(first.parameters()), next(member.parameters()))
    with torch.no_grad():
        next(member.parameters()).zero_()
    assert next(first.parameters()).abs().sum() > 0
    graph = to_device(pack(load_samples(synthetic_frame(1, seed=1), lay, TINY_MODEL)), "cpu")
    member.load_state_dict(fresh.state_dict())
    torch.testing.assert_close(member(graph), fresh(graph))


@pytest.mark.slow
def test_a_diverging_member_stops_and_the_others_train_on_bit_for_bit(synthetic_splits, tmp_path, monkeypatch):
    """Seed 5's targets turn NaN in its second epoch: it stops, recorded as diverged with its epoch-1 record;
    seed 3 ends exactly (every bit) as in the same ensemble without the divergence."""
    train = dict(TINY_TRAIN, epochs=3)

    def run(folder):
        return train_tiny(
            synthetic_splits,
            [dict(POINT, seed=s) for s in (3, 5)],
            train,
            [tmp_path / folder / "3", tmp_path / folder / "5"],
        )

    reference = run("reference")
    original, calls = Trainer.step_targets, []

    def poisoned(self, sample):  # 6 training structures in batches of 2: call 8 is in epoch 2
        target, l_rows, counts = original(self, sample)
        if self.seed == 5:
            calls.append(sample.structure)
            if len(calls) >= 8:
                target = target * float("nan")
        return target, l_rows, counts

    monkeypatch.setattr(Trainer, "step_targets", poisoned)
    diverged = run("diverged")
    assert [r["summary"]["diverged"] for r in diverged] == [False, True]
    assert diverged[1]["summary"]["diverged_epoch"] == 2 and diverged[0]["summary"]["diverged_epoch"] is None
    metrics = pd.read_parquet(tmp_path / "diverged" / "5" / "metrics.parquet")
    assert list(metrics["epoch"]) == [1] and diverged[1]["summary"]["best_epoch"] == 1
    for name in ("metrics", "eval", "features", "ablation"):
        a = pd.read_parquet(tmp_path / "diverged" / "3" / f"{name}.parquet").drop(columns=TIMING, errors="ignore")
        b = pd.read_parquet(tmp_path / "reference" / "3" / f"{name}.parquet").drop(columns=TIMING, errors="ignore")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    state_a = torch.load(tmp_path / "diverged" / "3" / "model.pt", weights_only=True)["state_dict"]
    state_b = torch.load(tmp_path / "reference" / "3" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(state_a[key], state_b[key]) for key in state_b)
    assert reference[0]["summary"]["epsilon_test"] == diverged[0]["summary"]["epsilon_test"]


def no_epoch_may_run(*args, **kwargs):
    raise AssertionError("a stopped run trained another epoch")


def test_ensemble_killed_after_early_stopping_resumes_to_the_same_outputs(synthetic_splits, tmp_path, monkeypatch):
    """Every member stopped, the checkpoint outlives the kept epoch's validation ε: a rerun trains no further epoch."""
    seeds = (3, 5)

    def grid_points(name):
        dirs = [tmp_path / f"{name}{s}" for s in seeds]
        results = train_tiny(synthetic_splits, [dict(POINT, seed=s) for s in seeds], EARLY_STOPPING, dirs)
        return dirs, [result["summary"] for result in results]

    whole_dirs, whole = grid_points("whole")
    assert all(summary["epochs"] < EARLY_STOPPING["epochs"] for summary in whole)  # every member stopped early
    with monkeypatch.context() as patch:
        patch.setattr(experiment, "validation_row", killed_after_training)
        with pytest.raises(KeyboardInterrupt):
            grid_points("killed")
    with monkeypatch.context() as patch:
        patch.setattr(EnsembleTrainer, "train_epoch", no_epoch_may_run)
        killed_dirs, resumed = grid_points("killed")
    for a_dir, b_dir, a, b in zip(whole_dirs, killed_dirs, whole, resumed):
        assert_same_outputs(a_dir, b_dir, a, b)


def test_ensemble_checkpoint_that_does_not_load_is_discarded_with_a_warning(synthetic_splits, tmp_path, caplog):
    expected = EnsembleTrainer(make_trainers(synthetic_splits, tmp_path / "r", (1, 2)), tmp_path / "ref.pt").fit()
    path = tmp_path / "ensemble.pt"
    EnsembleTrainer(make_trainers(synthetic_splits, tmp_path / "c", (1, 2)), path).fit()  # leaves its checkpoint
    state = torch.load(path, weights_only=True)
    stale(state, "network")
    torch.save(state, path)
    with caplog.at_level("WARNING"):
        results = EnsembleTrainer(make_trainers(synthetic_splits, tmp_path / "d", (1, 2)), path).fit()
    assert "discarded, its state does not load" in caplog.text and str(path) in caplog.text
    for (metrics, _, _), (ref_metrics, _, _) in zip(results, expected):
        pd.testing.assert_frame_equal(metrics.drop(columns=TIMING), ref_metrics.drop(columns=TIMING))

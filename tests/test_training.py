"""Training loop: determinism, resume after a kill, the NaN stop, and the outputs of a grid point."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIT, ROOT, TINY_MODEL, TINY_TRAIN, tiny_layout, tiny_train_val, train_tiny

from e3hier.data import metric
from e3hier.dft.basis import primitive_normalisation
from e3hier.network.devices import to_device
from e3hier.script_imports import code_files
from e3hier.training import experiment
from e3hier.training import trainer as training
from e3hier.training.checkpoints import code_hash, training_code_files
from e3hier.training.evaluation import evaluate, load_predictor
from e3hier.training.features import measures_output_epsilon, probe_steps
from e3hier.training.loop import TrainingDiverged
from e3hier.training.samples import load_samples, pack, shell_scales
from e3hier.training.trainer import Trainer

TIMING = ["structures_per_second", "train_seconds", "wall_seconds"]
POINT = {"lmax_hidden": 1, "output": "full", "seed": 3, "n_train": "all"}


def make_trainer(splits, checkpoint, train_cfg=TINY_TRAIN, output="full", lmax=1):
    layout = tiny_layout(output)
    train, val = tiny_train_val(splits, layout)
    return Trainer("test-point", layout, train, val, lmax, 3, TINY_MODEL, train_cfg, checkpoint)


def test_training_probes_at_the_steps_of_the_probe_schedule(synthetic_splits, tmp_path):
    """analysis.probe_schedule: every step of the first dense_steps, then geometric, within max_probes."""
    layout = tiny_layout("scalar")
    train, val = tiny_train_val(synthetic_splits, layout)
    schedule = {"dense_steps": 2, "max_probes": 6}
    trainer = Trainer("probed", layout, train, val, 0, 3, TINY_MODEL, TINY_TRAIN, tmp_path / "c.pt", None, schedule)
    _, _, probes = trainer.fit(lambda step, epoch, model: {"step": step})
    expected = probe_steps(12, 2, 6)  # 4 epochs × 3 batches
    assert [p["step"] for p in probes] == expected and expected[:3] == [0, 1, 2] and len(expected) == 6


def test_same_config_gives_identical_metrics_and_weights(synthetic_splits, tmp_path):
    a, best_a, _ = make_trainer(synthetic_splits, tmp_path / "a.pt").fit()
    b, best_b, _ = make_trainer(synthetic_splits, tmp_path / "b.pt").fit()
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING))
    for key in best_a["state"]:
        assert torch.equal(best_a["state"][key], best_b["state"][key])
    assert a["loss"].iloc[-1] < a["loss"].iloc[0]  # it learns


@pytest.mark.slow
def test_resume_from_checkpoint_matches_uninterrupted_run(synthetic_splits, tmp_path):
    reference = make_trainer(synthetic_splits, tmp_path / "ref.pt")
    ref_metrics, _, _ = reference.fit()

    def crash_at_epoch_3(step, epoch, model):  # a probe that dies mid-epoch, after the epoch-2 checkpoint
        if epoch == 3:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        make_trainer(synthetic_splits, tmp_path / "ckpt.pt").fit(crash_at_epoch_3)
    resumed = make_trainer(synthetic_splits, tmp_path / "ckpt.pt")
    metrics, _, _ = resumed.fit()
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(metrics.drop(columns=TIMING), ref_metrics.drop(columns=TIMING))
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key])


def weight_probe(step, epoch, model):
    """A probe record of the model's weights (as real probes: floats that change every step)."""
    rows = [{"value": float(p.detach().double().sum())} for p in model.parameters()]
    return {"step": step, "epoch": epoch, "rows": rows}


def test_probes_go_to_a_side_file_and_a_killed_run_resumes_to_the_same_probes(synthetic_splits, tmp_path):
    """Probe records are appended to ``<checkpoint>.probes.jsonl`` as they come; a checkpoint holds only their
    index. Killed mid-epoch after its epoch-2 checkpoint (records of epoch 3 already written), the run resumes,
    cuts the file back and gives the probes of an uninterrupted run."""
    _, _, reference = make_trainer(synthetic_splits, tmp_path / "ref.pt").fit(weight_probe)
    reference = list(reference)
    assert len(reference) == 13  # steps 0..12

    def killed_in_epoch_3(step, epoch, model):
        if epoch == 3 and step == 8:  # steps 7 (epoch 3) written after the epoch-2 checkpoint
            raise KeyboardInterrupt("killed")
        return weight_probe(step, epoch, model)

    path = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        make_trainer(synthetic_splits, path).fit(killed_in_epoch_3)
    trainer = make_trainer(synthetic_splits, path)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 2 and set(state["run"]["callbacks"]) == {"index"}  # no records in the checkpoint
    written = trainer.probe_path.read_text().splitlines()
    assert len(written) == len(state["run"]["callbacks"]["index"]) + 1  # step 7's record, after the checkpoint
    _, _, probes = trainer.fit(weight_probe)
    assert list(probes) == reference


def test_checkpoint_of_other_settings_is_not_resumed(synthetic_splits, tmp_path):
    make_trainer(synthetic_splits, tmp_path / "ckpt.pt").fit()  # leaves its final checkpoint
    other = dict(TINY_TRAIN, lr=0.005)
    metrics, _, _ = make_trainer(synthetic_splits, tmp_path / "ckpt.pt", other).fit()
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    assert metrics["lr"].iloc[0] == 0.005  # trained again: a resumed run would return the finished one's metrics


def test_checkpoint_of_other_data_is_not_resumed(synthetic_splits, tmp_path):
    """Same settings and structure ids, other data (e.g. another dft.xc): the fingerprint's content hash."""
    first, _, _ = make_trainer(synthetic_splits, tmp_path / "ckpt.pt").fit()
    changed = dict(synthetic_splits, val=tmp_path / "val.parquet")
    frame = pd.read_parquet(synthetic_splits["val"])
    frame["coefficient"] *= 1.01
    frame.to_parquet(changed["val"])
    metrics, _, _ = make_trainer(changed, tmp_path / "ckpt.pt").fit()
    assert not np.allclose(metrics["val_l2"], first["val_l2"])


@pytest.mark.slow
def test_corrupted_checkpoint_is_discarded_with_a_warning(synthetic_splits, tmp_path, caplog):
    reference, _, _ = make_trainer(synthetic_splits, tmp_path / "ref.pt").fit()
    path = tmp_path / "ckpt.pt"
    make_trainer(synthetic_splits, path).fit()
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by a full disk
    with caplog.at_level("WARNING"):
        metrics, _, _ = make_trainer(synthetic_splits, path).fit()
    assert "discarded" in caplog.text and str(path) in caplog.text
    pd.testing.assert_frame_equal(metrics.drop(columns=TIMING), reference.drop(columns=TIMING))


def test_validation_without_finite_error_names_grid_point_and_epoch(synthetic_splits, tmp_path):
    trainer = make_trainer(synthetic_splits, tmp_path / "nan-val.pt")
    trainer.val[0].overlap.minus_target = trainer.val[0].overlap.minus_target * np.nan
    with pytest.raises(TrainingDiverged, match=r"grid point test-point: validation L2 error is nan at epoch 1"):
        trainer.fit()


def test_best_epoch_and_early_stopping_follow_the_coefficient_l2(synthetic_splits, tmp_path, monkeypatch):
    """The kept epoch is the lowest val_l2_block, and patience counts from it (no ε on grids is read)."""
    blocks = iter([3.0, 2.0, 5.0, 6.0, 1.0, 0.5])
    monkeypatch.setattr(Trainer, "validate", lambda self: {"val_l2": 9.0, "val_l2_block": next(blocks)})
    trainer = make_trainer(synthetic_splits, tmp_path / "l2.pt", dict(TINY_TRAIN, epochs=6, patience=2))
    metrics, best, _ = trainer.fit()
    assert list(metrics["epoch"]) == [1, 2, 3, 4]  # stopped two epochs after the best
    assert best["epoch"] == 2 and best["l2"] == 2.0 and best["state"] is not None


def test_a_training_job_builds_validation_grids_once_after_training(synthetic_splits, tmp_path, monkeypatch):
    """While a model trains, the only ε collocation is the probed structures' (the per-output-order ε of each
    probe): every epoch is validated in coefficient space; the validation grids are built once, after training,
    for the kept epoch's ε (and the test grids after them)."""
    import e3hier.training.samples as samples_module

    events = []
    build_grid, fit = samples_module.density_grid, Trainer.fit

    def counted_grid(*args, **kwargs):
        events.append("grid")
        return build_grid(*args, **kwargs)

    def logged_fit(self, *args, **kwargs):
        events.append("fit")
        result = fit(self, *args, **kwargs)
        events.append("fitted")
        return result

    monkeypatch.setattr(samples_module, "density_grid", counted_grid)
    monkeypatch.setattr(Trainer, "fit", logged_fit)
    train_tiny(synthetic_splits, POINT, TINY_TRAIN, tmp_path / "full")
    # the 2 probed validation structures; after training the 2 validation structures, then 2 test structures
    assert events == ["grid"] * 2 + ["fit", "fitted"] + ["grid"] * 4
    events.clear()  # a model whose probes measure no output_epsilon builds no probe grids
    train_tiny(synthetic_splits, dict(POINT, output="scalar"), TINY_TRAIN, tmp_path / "scalar")
    assert events == ["fit", "fitted"] + ["grid"] * 4


def test_output_epsilon_is_probed_for_the_full_output_at_study_capacity_only(synthetic_splits, tmp_path, monkeypatch):
    """The per-output-order ε probe (finding 2c) runs only where the analysis reads it (the full output at study
    capacity); it leaves training as it is: a run without it has the same metrics, weights and other probes."""
    assert measures_output_epsilon("full", "study") and not measures_output_epsilon("full", "matched")
    assert not measures_output_epsilon("scalar", "study")
    train_tiny(synthetic_splits, POINT, TINY_TRAIN, tmp_path / "probed")
    monkeypatch.setattr(experiment, "measures_output_epsilon", lambda output, capacity: False)
    train_tiny(synthetic_splits, POINT, TINY_TRAIN, tmp_path / "unprobed")
    probed, unprobed = (pd.read_parquet(tmp_path / run / "features.parquet") for run in ("probed", "unprobed"))
    assert set(probed["kind"]) - set(unprobed["kind"]) == {"output_epsilon"}
    pd.testing.assert_frame_equal(probed[probed["kind"] != "output_epsilon"].reset_index(drop=True), unprobed)
    metrics = [
        pd.read_parquet(tmp_path / run / "metrics.parquet").drop(columns=TIMING) for run in ("probed", "unprobed")
    ]
    pd.testing.assert_frame_equal(*metrics)
    weights = [
        torch.load(tmp_path / run / "model.pt", weights_only=True)["state_dict"] for run in ("probed", "unprobed")
    ]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_nan_loss_stops_naming_grid_point_and_epoch(synthetic_splits, tmp_path):
    trainer = make_trainer(synthetic_splits, tmp_path / "nan.pt")
    trainer.train[0].target[trainer.train[0].rows[0]] = np.nan
    with pytest.raises(TrainingDiverged, match=r"grid point test-point: loss is nan at epoch 1"):
        trainer.fit()


KILL_SCRIPT = """
import sys, json
sys.path.insert(0, {tests!r})
from conftest import TINY_TRAIN, train_tiny
paths = json.loads({paths!r})
train_tiny(paths, {point!r}, dict(TINY_TRAIN, epochs=40, checkpoint_every=1), sys.argv[1])
"""


def run_script(splits, out_dir):
    import json

    paths = json.dumps({k: str(v) for k, v in splits.items()})
    code = KILL_SCRIPT.format(tests=os.path.dirname(__file__), paths=paths, point=POINT)
    return subprocess.Popen([sys.executable, "-c", code, str(out_dir)])


@pytest.mark.slow
def test_killed_job_resumes_to_the_same_final_weights(synthetic_splits, tmp_path):
    """SIGKILL a real training process after a checkpoint, run it again, compare with an uninterrupted run."""
    assert run_script(synthetic_splits, tmp_path / "whole").wait() == 0
    killed = tmp_path / "killed"
    process = run_script(synthetic_splits, killed)
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists():
        assert process.poll() is None, "training ended before a checkpoint was seen"
        assert time.time() < deadline
        time.sleep(0.01)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "model.pt").exists()
    checkpoint_epoch = torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= checkpoint_epoch < 40
    assert run_script(synthetic_splits, killed).wait() == 0
    whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    resumed = torch.load(killed / "model.pt", weights_only=True)
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key])
    a = pd.read_parquet(tmp_path / "whole" / "metrics.parquet").drop(columns=TIMING)
    b = pd.read_parquet(killed / "metrics.parquet").drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("output", ["scalar", "higher"])
def test_grid_point_writes_model_metrics_and_eval(synthetic_splits, tmp_path, output):
    point = dict(POINT, output=output)
    result = train_tiny(synthetic_splits, point, TINY_TRAIN, tmp_path)
    summary = result["summary"]
    assert summary["epochs"] == TINY_TRAIN["epochs"] and summary["n_train"] == 6
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert {"loss", "loss_l0", "val_l2", "val_l2_l0", "val_l2_baseline_l0", "lr", "wall_seconds"} <= set(metrics)
    assert not [c for c in metrics if c.startswith("val_epsilon")]  # no grid during training
    evaluation = pd.read_parquet(tmp_path / "eval.parquet")
    assert len(evaluation) == 2 and {"epsilon", "epsilon_block", "electron_error", "epsilon_l4"} <= set(evaluation)
    if output == "scalar":
        assert np.isclose(evaluation["epsilon_l2"], evaluation["epsilon_baseline_l2"]).all()
    # ε of the block's orders l ≤ L, L = 0..the highest output order: the whole block at the highest
    highest = {"scalar": 0, "higher": 4}[output]
    upto = [f"epsilon_block_upto_l{cap}" for cap in range(highest + 1)]
    assert [c for c in evaluation if c.startswith("epsilon_block_upto_l")] == upto
    np.testing.assert_allclose(evaluation[upto[-1]], evaluation["epsilon_block"], rtol=1e-6)
    if output == "higher":  # no order ≤ 1 in the block; at L = 2 the block's l = 2 functions alone
        assert evaluation[upto[0]].isna().all() and evaluation[upto[1]].isna().all()
        np.testing.assert_allclose(evaluation[upto[2]], evaluation["epsilon_l2"], rtol=1e-6)
    assert {f"val_l2_block_upto_l{cap}" for cap in range(highest + 1)} <= set(metrics)
    assert summary["lmax_output"] == highest
    # kept: the lowest val_l2_block; reported: that model's ε on the validation split's grids
    assert summary["best_epoch"] == int(metrics.loc[metrics["val_l2_block"].idxmin(), "epoch"])
    assert np.isclose(summary["l2_val_best"], metrics["val_l2_block"].min())
    layout = result["trainer"].layout
    val = load_samples(
        pd.read_parquet(synthetic_splits["val"]), layout, TINY_MODEL, with_grid=True, dft_cfg=FIT, grid_level=0
    )
    kept = evaluate(load_predictor(tmp_path / "model.pt"), val)
    assert np.isclose(summary["epsilon_val_best"], kept["epsilon_block"].mean(), rtol=1e-6)
    for c in upto[2 if output == "higher" else 0 :]:
        assert np.isclose(summary[c.replace("epsilon_", "epsilon_test_", 1)], evaluation[c].mean())
        assert np.isclose(summary[c.replace("epsilon_", "epsilon_val_", 1)], kept[c].mean(), rtol=1e-6)
    predictor = load_predictor(tmp_path / "model.pt")
    assert str(predictor.layout.irreps) == str(result["trainer"].layout.irreps)
    assert not (tmp_path / "checkpoint.pt").exists()
    # hidden-feature probes: step 0 (initialisation), every step of the first dense_steps (64), the last step
    features = pd.read_parquet(tmp_path / "features.parquet")
    steps = sorted(set(features["step"]))
    assert steps == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] and summary["steps"] == 12  # 4 epochs × 3 batches
    contributions = features[(features["kind"] == "contribution") & (features["l_out"] == -1)]
    assert sorted(set(contributions["l"])) == [0, 1] and (contributions["value"] > 0).all()
    assert summary["capacity"] == "study" and summary["n_params"] == summary["target_params"]


@pytest.mark.slow
def test_grid_point_without_held_grids_gives_the_same_tables(synthetic_splits, tmp_path, monkeypatch):
    """metric.collocation_cache_mb: 0 streams every ε grid (validation each epoch, test and ablation a
    structure at a time): the tables equal those of a job holding them (float32 sums in another order)."""
    monkeypatch.setattr(metric, "STREAM_BLOCK_POINTS", 500)  # several blocks per grid
    point = dict(POINT, lmax_hidden=2)
    runs = {}
    for name, cache_mb in (("held", 2000), ("streamed", 0)):
        train_tiny(synthetic_splits, point, TINY_TRAIN, tmp_path / name, collocation_cache_mb=cache_mb)
        runs[name] = {
            table: pd.read_parquet(tmp_path / name / f"{table}.parquet") for table in ("metrics", "eval", "ablation")
        }
    assert len(runs["held"]["ablation"]) == 4  # l = 1, 2 zeroed, single and cumulative
    for table in ("metrics", "eval", "ablation"):
        held, streamed = (runs[name][table].drop(columns=TIMING, errors="ignore") for name in ("held", "streamed"))
        pd.testing.assert_frame_equal(held, streamed, rtol=1e-5)


def test_population_scaling_trains_on_the_studys_populations_and_maps_predictions_back(synthetic_splits, tmp_path):
    """``target_scaling: population``: the loss sees target × 2√2 / N(l, α), and every consumer (evaluation,
    the saved model) gets the network's output × N / 2√2, the coefficient-space target."""
    layout = tiny_layout()
    samples = load_samples(pd.read_parquet(synthetic_splits["train"]), layout, TINY_MODEL)
    train_cfg = dict(TINY_TRAIN, target_scaling="population")
    trainer = Trainer("test-point", layout, samples[:4], samples[4:], 1, 3, TINY_MODEL, train_cfg, tmp_path / "c.pt")
    sample = samples[0]
    l, exponent = (
        sample.l[sample.rows],
        pd.read_parquet(synthetic_splits["train"])
        .query("structure == @sample.structure")["exponent"]
        .to_numpy()[sample.rows],
    )
    inverse = primitive_normalisation(l, exponent) / (2 * np.sqrt(2))  # computed here, not read from the table
    np.testing.assert_allclose(trainer.predictor.row_scales(sample).numpy(), inverse, rtol=1e-6)
    seen = trainer.step_targets(sample)[0].double().numpy()
    np.testing.assert_allclose(seen, sample.target[sample.rows] / inverse, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        network = trainer.predictor.scaled_outputs(to_device(pack([sample]), "cpu")).double().numpy()
    np.testing.assert_allclose(trainer.predictor.predict_targets(sample), network * inverse, rtol=1e-6)
    trainer.save_model(tmp_path / "model.pt", {"state": None, "epoch": 0, "l2": float("nan")})
    reloaded = load_predictor(tmp_path / "model.pt")
    np.testing.assert_allclose(reloaded.predict_targets(sample), network * inverse, rtol=1e-6)


def test_population_rms_is_the_studys_weighting_with_outputs_of_unit_size(synthetic_splits):
    """``population_rms``: the populations divided by one number, their RMS over the training set (so the loss
    weighs the coefficients as the study's does, and the targets the network sees have unit RMS)."""
    layout = tiny_layout()
    samples = load_samples(pd.read_parquet(synthetic_splits["train"]), layout, TINY_MODEL)
    population, unit = (shell_scales(samples, layout, s) for s in ("population", "population_rms"))
    ratio = unit / population
    used = np.concatenate([ratio[[layout.elements.index(s.symbols[a]) for a in s.atom], s.slot] for s in samples])
    assert np.allclose(used, used[0]) and not np.isclose(used[0], 1.0)  # one constant, not the identity
    seen = np.concatenate(
        [s.target[s.rows] / unit[[layout.elements.index(s.symbols[a]) for a in s.atom], s.slot] for s in samples]
    )
    assert np.sqrt(np.mean(seen**2)) == pytest.approx(1.0, rel=1e-9)


# lr 0.05, patience 1: the validation ε of POINT rises after epoch 5, so the run stops at epoch 6 of 12
EARLY_STOPPING = dict(TINY_TRAIN, epochs=12, patience=1, lr=0.05)
TABLES = ("metrics", "eval", "features", "ablation")
SUMMARY_TIMING = ("train_seconds", "job_seconds")


def killed_after_training(*args, **kwargs):
    raise KeyboardInterrupt("killed after training, during the kept epoch's validation ε")


def assert_same_outputs(a_dir, b_dir, a_summary, b_summary):
    """Two grid points' outputs are equal except for their clocks."""
    drop = set(SUMMARY_TIMING)
    assert {k: v for k, v in a_summary.items() if k not in drop} == {
        k: v for k, v in b_summary.items() if k not in drop
    }
    for table in TABLES:
        a, b = (pd.read_parquet(d / f"{table}.parquet").drop(columns=TIMING, errors="ignore") for d in (a_dir, b_dir))
        pd.testing.assert_frame_equal(a, b)
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (a_dir, b_dir))
    assert a["best_epoch"] == b["best_epoch"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key])


def test_run_killed_after_early_stopping_resumes_to_the_same_outputs(synthetic_splits, tmp_path, monkeypatch):
    """The checkpoint outlives the kept epoch's validation ε: a rerun of a stopped run trains no further epoch."""

    def grid_point(out_dir):
        return train_tiny(synthetic_splits, [POINT], EARLY_STOPPING, [out_dir])[0]["summary"]

    whole = grid_point(tmp_path / "whole")
    assert whole["epochs"] < EARLY_STOPPING["epochs"]  # stopped early
    with monkeypatch.context() as patch:
        patch.setattr(experiment, "validation_row", killed_after_training)
        with pytest.raises(KeyboardInterrupt):
            grid_point(tmp_path / "killed")
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["run"]["stopped"]
    resumed = grid_point(tmp_path / "killed")
    assert_same_outputs(tmp_path / "whole", tmp_path / "killed", whole, resumed)


def test_code_hash_follows_the_code_a_training_job_runs(tmp_path):
    """The checkpoint's code hash covers the training rule's code inputs: an edit of one changes it."""
    assert set(map(str, training_code_files())) == set(code_files(ROOT / "scripts" / "train.py"))
    package = tmp_path / "e3hier"
    shutil.copytree(ROOT / "e3hier", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_hash(package)
    assert before == code_hash(ROOT / "e3hier")  # a moved checkout keeps its checkpoints
    # figures: not run by a training job; the package's docstring: no code
    for module, changes in (("analysis/figures.py", False), ("__init__.py", False), ("network/model.py", True)):
        (package / module).write_text((package / module).read_text() + "\n# edited\n")
        code_hash.cache_clear()  # one hash per process, as a job sees it
        assert (code_hash(package) != before) == changes, module


def test_checkpoint_of_other_code_is_not_resumed(synthetic_splits, tmp_path, monkeypatch, caplog):
    make_trainer(synthetic_splits, tmp_path / "ckpt.pt").fit()  # leaves its final checkpoint
    monkeypatch.setattr(training, "code_hash", lambda: "edited")
    with caplog.at_level("WARNING"):
        metrics, _, _ = make_trainer(synthetic_splits, tmp_path / "ckpt.pt").fit()
    assert "its fingerprint differs" in caplog.text and list(metrics["epoch"]) == [1, 2, 3, 4]


def stale(state: dict, part: str) -> None:
    """Make the ``part`` of a checkpoint's state unloadable, as code that changed a parameter's shape would."""
    if part == "optimizer":
        state["optimizer"]["param_groups"] = []
    else:
        name = next(iter(state[part]))
        state[part][name] = torch.zeros(3, *state[part][name].shape)


@pytest.mark.parametrize("part", ["model", "optimizer"])
def test_checkpoint_that_does_not_load_is_discarded_with_a_warning(synthetic_splits, tmp_path, caplog, part):
    reference, _, _ = make_trainer(synthetic_splits, tmp_path / "ref.pt").fit()
    path = tmp_path / "ckpt.pt"
    make_trainer(synthetic_splits, path).fit()
    state = torch.load(path, weights_only=True)
    stale(state, part)
    torch.save(state, path)
    with caplog.at_level("WARNING"):
        metrics, _, _ = make_trainer(synthetic_splits, path).fit()
    assert "discarded, its state does not load" in caplog.text and str(path) in caplog.text
    pd.testing.assert_frame_equal(metrics.drop(columns=TIMING), reference.drop(columns=TIMING))


def test_checkpoint_resumes_under_other_execution_settings(synthetic_splits, tmp_path):
    """A job interrupted on one thread resumes on two, on another device setting and checkpoint interval."""
    path = tmp_path / "ckpt.pt"

    def crash_at_epoch_3(step, epoch, model):  # dies mid-epoch, after the epoch-2 checkpoint
        if epoch == 3:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        make_trainer(synthetic_splits, path, dict(TINY_TRAIN, threads=1)).fit(crash_at_epoch_3)
    checkpointed = pd.DataFrame(torch.load(path, weights_only=True)["run"]["metrics"])
    elsewhere = dict(TINY_TRAIN, threads=2, device="auto", checkpoint_every=3)
    metrics, _, _ = make_trainer(synthetic_splits, path, elsewhere).fit()
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(metrics.iloc[:2], checkpointed)  # resumed: epochs 1-2 with their clocks

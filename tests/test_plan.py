"""The cost plan (e3hier.plan): scaling-law fits, the DAG's job counts, ensembles, and the study-tier check."""

import math

import numpy as np
import pandas as pd
import pytest

from e3hier import plan as P
from tests.workflow_helpers import ROOT, TINY

#: The scaling laws the plan must keep (docs/plan.md): family → features its time law grows with.
EXPECTED_TIME_FEATURES = {
    "dft": {"atoms", "basis_per_atom", "grid_per_atom"},
    "train": {"step_work", "forward_work", "n_params", "lmax_plus_1", "test_grid", "val_grid"},
    "structure": {"md_work"},
    "dataset": {"split_functions"},
    "structure_manifest": {"n_structures"},
    "models_table": {"n_models_read"},
    "analysis": {"n_models_read"},
    "figure": {"n_models_read"},
}


@pytest.fixture(scope="module")
def calibration():
    return P.load_calibration()


@pytest.fixture(scope="module")
def validation_calibration():
    """The tiny and default runs only: what the study-tier check is calibrated on."""
    return P.load_calibration(P.default_calibration_paths(P.VALIDATION_CALIBRATION))


@pytest.fixture(scope="module")
def tiny_dry_run():
    """One dry run of the tiny config (a few seconds), shared by the DAG tests."""
    files = [ROOT / "config.yaml", TINY]
    return files, P.dry_run_text(files)


# --- fitting ------------------------------------------------------------------------------------------
def test_fit_recovers_a_power_law_with_start_up():
    n = np.array([20.0, 40, 60, 80, 120, 200])
    g = np.array([1.0, 2, 1, 2, 1, 2])
    table = pd.DataFrame({"n": n, "g": g, "seconds": 2.0 + 1e-4 * n**2.6 * g**0.7})
    fitted = P.fit_law(table, P.Law("seconds", (("n", 3.0, True), ("g", 1.0, True))))
    assert fitted.exponents["n"] == pytest.approx(2.6, abs=1e-3)
    assert fitted.exponents["g"] == pytest.approx(0.7, abs=1e-3)
    assert fitted.base == pytest.approx(2.0, rel=1e-3)
    assert set(fitted.fitted) == {"n", "g"}


def test_one_size_keeps_the_physical_exponent():
    table = pd.DataFrame({"n": [50.0, 50.0, 50.0], "seconds": [3.0, 3.3, 2.7]})
    fitted = P.fit_law(table, P.Law("seconds", (("n", 3.0, True),)))
    assert fitted.fitted == [] and fitted.exponents["n"] == 3.0
    assert fitted.base == 0.0  # no sizes to tell start-up from work: the geometric mean
    assert fitted.predict(pd.DataFrame({"n": [50.0]}))[0] == pytest.approx((3.0 * 3.3 * 2.7) ** (1 / 3))
    assert fitted.predict(pd.DataFrame({"n": [100.0]}))[0] == pytest.approx(8 * (3.0 * 3.3 * 2.7) ** (1 / 3))


def test_two_sizes_fit_no_more_than_they_can():
    # two sizes and an intercept: the exponent is not identifiable, so it stays physical
    table = pd.DataFrame({"n": [10.0, 10, 40, 40], "seconds": [3.0, 3.2, 9.0, 9.4]})
    fitted = P.fit_law(table, P.Law("seconds", (("n", 1.0, True),)))
    assert fitted.fitted == [] and fitted.exponents["n"] == 1.0
    assert fitted.predict(table) == pytest.approx([3.1, 3.1, 9.2, 9.2], rel=0.05)


def test_memory_law_bounds_every_calibration_job():
    table = pd.DataFrame({"x": [1.0, 2, 3, 4], "max_rss": [110.0, 230, 290, 420]})
    fitted = P.fit_memory_law(table, P.Law("max_rss", (("x", 1.0, False),)))
    assert np.all(fitted.predict(table) >= table["max_rss"] - 1e-9)


def test_a_new_calibration_table_beside_the_old_ones_keeps_their_jobs(tmp_path):
    """A table summarised by the current code has ``held_overlap`` (the fit overlaps a train job holds); the shipped
    ones predate it. Read together (``--add-calibration``), the old train jobs still calibrate the memory law (their
    missing overlap is 0) instead of all being dropped."""
    old = P.default_calibration_paths(P.VALIDATION_CALIBRATION)  # tiny and default: before the overlaps
    assert "held_overlap" not in P.read_calibration(old)
    new = pd.read_csv(P.CALIBRATION_DIR / "paper-dft.tsv", sep="\t").assign(held_overlap=np.nan)
    new.to_csv(tmp_path / "mine.tsv", sep="\t", index=False)
    with_new = P.load_calibration([*old, tmp_path / "mine.tsv"])
    assert with_new.memory["train"].n_jobs == P.load_calibration(old).memory["train"].n_jobs > 0


# --- the laws the plan keeps -------------------------------------------------------------------------
@pytest.mark.parametrize("family", sorted(EXPECTED_TIME_FEATURES))
def test_scaling_law_is_kept(family):
    features = {feature[0] for law in P.TIME_LAWS[family] for feature in law.features}
    missing = EXPECTED_TIME_FEATURES[family] - features
    assert not missing, f"{family}: scaling law(s) on {missing} dropped"


def _train_row(config, **changes):
    """Features of the default config's first l_max-2 full-output model, with ``train``/``structures`` changes."""
    config = {**config, "train": {**config["train"], **changes.get("train", {})}}
    if "splits" in changes:
        wc = {**config["structures"]["water_clusters"], "splits": changes["splits"]}
        config["structures"] = {**config["structures"], "water_clusters": wc}
    point = {
        "lmax_hidden": "2",
        "output": "full",
        "capacity": "study",
        "channels": "study",
        "seed": "0",
        "n_train": "all",
    }
    row = P.train_features(point, config, P.structure_table(config))
    return pd.DataFrame([{**row, "family": "train", "rule": "train", "threads": 1, "gpu": 0, "n_models": 1}])


@pytest.mark.slow
def test_training_cost_follows_epochs_structures_and_test_set(calibration):
    config = P.load_config([ROOT / "config.yaml"])
    seconds = lambda row: P.predict_jobs(row, calibration)["seconds"].iloc[0]  # noqa: E731
    base = seconds(_train_row(config))
    epochs = seconds(_train_row(config, train={"epochs": 2 * config["train"]["epochs"]}))
    splits = config["structures"]["water_clusters"]["splits"]
    more_train = seconds(_train_row(config, splits={**splits, "train": {**splits["train"], "count": 64}}))
    more_test = seconds(_train_row(config, splits={**splits, "test": {**splits["test"], "count": 60}}))
    batch_1 = seconds(_train_row(config, train={"batch_size": 1}))
    for changed in (epochs, more_train, more_test, batch_1):
        assert changed > 1.15 * base
    assert epochs < 2 * base and more_train < 2 * base  # start-up and evaluation do not scale with them


def test_dft_cost_grows_with_atoms_basis_and_grid(calibration):
    law = calibration.time["dft"][0]
    row = pd.DataFrame({"atoms": [9.0], "basis_per_atom": [8.0], "grid_per_atom": [6500.0], "scf_digits": [10.0]})
    base = law.predict(row)[0]
    assert law.predict(row.assign(atoms=18.0))[0] > 4 * base  # at least quadratic in the cluster size
    assert law.predict(row.assign(basis_per_atom=16.0))[0] > 2 * base  # fitted on the paper-basis probe
    assert law.predict(row.assign(grid_per_atom=13000.0))[0] > 1.2 * base
    assert set(law.fitted) == {"atoms", "basis_per_atom", "grid_per_atom"}


# --- the DAG -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_job_counts_equal_the_dag(tiny_dry_run):
    files, text = tiny_dry_run
    jobs = P.parse_dry_run(text)
    config = P.load_config(files)
    calibration = P.load_calibration()
    per_job = P.predict_jobs(P.job_features(jobs, config), calibration)
    table = P.rule_table(per_job)
    assert table["jobs"].to_dict() == P.job_counts(text)  # Snakemake's own "Job stats"
    from e3hier.training.grid import training_grid

    assert table.loc["train", "jobs"] == table.loc["train", "models"] == len(training_grid(config["train"]))
    assert (per_job.loc[per_job["rule"] != "all", "core_hours"] > 0).all()
    dft = per_job[per_job["rule"] == "dft"]
    assert (dft["mem_mb"] == dft["mem_mb_requested"]).all()  # the dft rule's own mem_mb estimate


def test_committed_calibration_has_the_current_features(tiny_dry_run):
    """benchmarks/calibration/tiny.tsv holds the features the planner computes today (else re-summarise)."""
    files, text = tiny_dry_run
    features = P.job_features(P.parse_dry_run(text), P.load_config(files)).set_index("job")
    committed = pd.read_csv(P.CALIBRATION_DIR / "tiny.tsv", sep="\t").set_index("job")
    columns = [
        "md_work",
        "n_basis",
        "grid_per_atom",
        "split_functions",
        "step_work",
        "n_params",
        "test_grid",
        "val_grid",
        "n_models_read",
    ]  # not held_grid: the committed runs held their validation grids, today's jobs a test chunk only
    common = committed.index.intersection(features.index)
    assert len(common) == len(committed)
    pd.testing.assert_frame_equal(
        features.loc[common, columns], committed.loc[common, columns], rtol=1e-4, check_dtype=False
    )


ENSEMBLE_DRY_RUN = """
rule train_ensemble_k2:
    input: results/dataset/train.parquet
    output: results/models/lmax_hidden~2_output~full_capacity~study_channels~study_seed~0_n_train~all/model.pt, results/models/lmax_hidden~2_output~full_capacity~study_channels~study_seed~1_n_train~all/model.pt
    jobid: 7
    wildcards: lmax_hidden=2, output=full, capacity=study, channels=study, seeds=0-1, n_train=all
    threads: 2
    resources: tmpdir=/tmp, mem_mb=4000, gpu=1
rule train:
    output: results/models/lmax_hidden~2_output~full_capacity~study_channels~study_seed~2_n_train~all/model.pt
    jobid: 8
    wildcards: lmax_hidden=2, output=full, capacity=study, channels=study, seed=2, n_train=all
    resources: tmpdir=/tmp, mem_mb=4000
"""  # noqa: E501 (Snakemake prints a job's outputs on one line)


GROUPED_DRY_RUN = """
[Sun Nov 29 10:24:56 2026] Group job dft (jobs in lexicogr. order):

    [Sun Nov 29 10:24:56 2026]
    rule dft:
        input: results/structures/w2_train_0000.xyz
        output: results/dft/w2_train_0000.parquet, results/dft/w2_train_0000.json
        jobid: 14
        wildcards: structure=w2_train_0000
        threads: 4
        resources: tmpdir=/tmp, mem_mb=257, mem=257 MB, runtime=30
    [Sun Nov 29 10:24:56 2026]
    rule dft:
        output: results/dft/w2_val_0001.parquet, results/dft/w2_val_0001.json
        jobid: 22
        wildcards: structure=w2_val_0001
        threads: 4
        resources: tmpdir=/tmp, mem_mb=300, runtime=30
[Sun Nov 29 10:24:56 2026]
localrule all:
    input: results/dft/w2_val_0001.json
    jobid: 0
"""


def test_jobs_inside_group_jobs_are_parsed():
    """A profile's ``groups:`` print their jobs indented (profiles/slurm groups the dft jobs)."""
    jobs = P.parse_dry_run(GROUPED_DRY_RUN)
    assert jobs["rule"].tolist() == ["dft", "dft", "all"]
    assert jobs["threads"].tolist() == [4, 4, 1]
    assert jobs["mem_mb"].tolist()[:2] == [257.0, 300.0] and jobs["runtime_min"].tolist()[:2] == [30.0, 30.0]
    assert jobs["wildcards"].iloc[1] == {"structure": "w2_val_0001"}


def test_threads_cost_core_hours_for_training_only(calibration):
    """Training does not thread (its threads are held: core-hours = wall × threads); other rules scale ideally."""
    config = P.load_config([ROOT / "config.yaml"])
    row = _train_row(config)
    one, four = (P.predict_jobs(row.assign(threads=n), calibration) for n in (1, 4))
    assert four["seconds"].iloc[0] == pytest.approx(one["seconds"].iloc[0])
    assert four["core_hours"].iloc[0] == pytest.approx(4 * one["core_hours"].iloc[0])
    dft = pd.DataFrame(
        {
            "family": ["dft"],
            "rule": ["dft"],
            "atoms": [9.0],
            "basis_per_atom": [8.0],
            "grid_per_atom": [6500.0],
            "scf_digits": [10.0],
            "gpu": [0],
            "dft_mem_mb": [700.0],
        }
    )
    one, four = (P.predict_jobs(dft.assign(threads=n), calibration) for n in (1, 4))
    assert four["core_hours"].iloc[0] == pytest.approx(one["core_hours"].iloc[0])
    assert four["mem_mb"].iloc[0] == 700.0


def test_compiled_training_jobs_add_the_compile_time(calibration):
    """``train.compile``: every training job gains ``COMPILE_SECONDS`` (CPU work: not shortened on a GPU); the
    steps' cost is unchanged."""
    config = P.load_config([ROOT / "config.yaml"])
    row = _train_row(config)
    plain = P.predict_jobs(row, calibration)
    for gpu in (0, 1):
        compiled = P.predict_jobs(row.assign(gpu=gpu), calibration, gpu_speedup=4.0, compile_seconds=P.COMPILE_SECONDS)
        eager = P.predict_jobs(row.assign(gpu=gpu), calibration, gpu_speedup=4.0)
        assert compiled["seconds"].iloc[0] == pytest.approx(eager["seconds"].iloc[0] + P.COMPILE_SECONDS)
    assert plain["seconds"].iloc[0] == pytest.approx(
        P.predict_jobs(row, calibration, compile_seconds=0.0)["seconds"].iloc[0]
    )


def test_ensemble_jobs_count_their_models(calibration):
    jobs = P.parse_dry_run(ENSEMBLE_DRY_RUN)
    assert list(jobs["points"].map(len)) == [2, 1]
    assert list(jobs["threads"]) == [2, 1] and list(jobs["gpu"]) == [1, 0]
    config = P.load_config([ROOT / "config.yaml"])
    features = P.job_features(jobs, config)
    per_job = P.predict_jobs(features, calibration, gpu_speedup=1.0)
    single = per_job["seconds"].iloc[1]
    assert per_job["family"].tolist() == ["train", "train"]
    assert per_job["seconds"].iloc[0] == pytest.approx(2 * single * P.ENSEMBLE_COST_FACTOR_GPU)  # on a GPU
    assert per_job["core_hours"].iloc[0] == pytest.approx(2 * per_job["seconds"].iloc[0] / 3600)
    assert per_job["gpu_hours"].iloc[0] == pytest.approx(per_job["seconds"].iloc[0] / 3600)
    assert P.rule_table(per_job).loc["train_ensemble_k2", "models"] == 2
    # on the CPU, part by part: K × one model's part × its measured factor; the job's seconds their sum
    on_cpu = P.predict_jobs(features.assign(gpu=0), calibration)
    alone = P.predict_jobs(features.assign(gpu=0, n_models=1), calibration)
    parts = list(P.ENSEMBLE_PART_COST_CPU)
    for part, factor in P.ENSEMBLE_PART_COST_CPU.items():
        assert on_cpu[part].iloc[0] == pytest.approx(2 * factor * alone[part].iloc[0])
    assert on_cpu["seconds"].iloc[0] == pytest.approx(on_cpu[parts].iloc[0].sum())
    assert on_cpu["seconds"].iloc[1] == pytest.approx(alone["seconds"].iloc[1])  # one model: unchanged


# --- validation: the study tier ----------------------------------------------------------------------
def test_plan_predicts_the_study_tier_within_35_percent(validation_calibration):
    """Calibrated on the tiny and default runs only, the plan of the study tier's jobs (their committed
    features) against the study run's measured core-hours (Σ s × threads, DFT: Σ wall_seconds)."""
    assert validation_calibration.sources == ["default", "tiny"]
    study = pd.read_csv(P.VALIDATION_RUN, sep="\t")
    table = P.validate_on(study, validation_calibration)
    assert table.loc["train", "jobs"] == 125 and table.loc["dft", "jobs"] == 88
    assert table.loc["total", "measured_core_h"] == pytest.approx(1.735, abs=0.002)
    assert 0.65 <= table.loc["total", "ratio"] <= 1.35, table.to_string()
    assert math.isfinite(table.loc["total", "predicted_core_h"])


def test_plan_predicts_the_paper_pilot_within_35_percent(calibration):
    """``make plan``'s calibration (tiny, default, paper-dft) against ``make paper-pilot`` on a fresh clone
    (benchmarks/calibration/validation/paper-pilot.tsv, 2026-12-02): aug-cc-pVTZ DFT of W3–W8 and CPU ensembles of
    5 seeds, neither of which the calibration saw. The total, the DFT and the training are each within ±35 %."""
    assert calibration.sources == ["default", "paper-dft", "tiny"]
    pilot = pd.read_csv(P.CALIBRATION_DIR / "validation" / "paper-pilot.tsv", sep="\t")
    table = P.validate_on(pilot, calibration)
    assert table.loc["train_ensemble_seeds_0_1_2_3_4", "jobs"] == 6 and table.loc["dft", "jobs"] == 9
    for rule in ("total", "dft", "train_ensemble_seeds_0_1_2_3_4"):
        assert 0.65 <= table.loc[rule, "ratio"] <= 1.35, table.to_string()


def test_validate_command(capsys):
    assert P.main(["--validate"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "train" in out and "calibration: default, tiny" in out

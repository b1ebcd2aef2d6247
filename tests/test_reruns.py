"""Incremental reruns: each change plans exactly the jobs that depend on it (on a finished tiny run)."""

import shutil

import pytest
from workflow_helpers import planned_jobs, snakemake

# runs the tiny workflow (minutes): not in `make test-fast`
pytestmark = pytest.mark.slow

UPSTREAM = {"structure", "structure_manifest", "dft", "free_atom", "dataset"}


@pytest.fixture
def run(tiny_workflow_run, tmp_path):
    """A private copy of the finished tiny run and its workflow, so each test edits freely."""
    shutil.copytree(tiny_workflow_run, tmp_path / "copy", symlinks=True)
    base = tmp_path / "copy"

    def plan(overrides=None):
        return planned_jobs(
            snakemake(base / "run", "-n", overrides=overrides, snakefile=base / "workflow" / "Snakefile")
        )

    plan.workflow = base / "workflow"
    return plan


def figure_rules(jobs):
    return {rule for rule in jobs if rule.startswith("figure_")}


def test_second_dry_run_plans_nothing(run):
    assert run() == {}


# the tiny grid: l_max {0, 2} × outputs {scalar, full} × seeds {0, 1}, the full output's matched-capacity
# l_max 0 and its equal-channel l_max 2, for both seeds: 8 + 2 + 2 models
TINY_MODELS = 12


def test_changing_epochs_retrains_but_keeps_dft(run):
    jobs = run({"train": {"epochs": 2}})
    assert jobs["train"] == TINY_MODELS and "models_table" in jobs and "analysis" in jobs
    assert not UPSTREAM & set(jobs)


def test_adding_lmax_trains_only_the_new_models(run):
    jobs = run({"train": {"lmax_hidden": [0, 1, 2]}})
    assert jobs["train"] == 6  # lmax 1 × outputs {scalar, full} × 2 seeds, and its matched-capacity full output
    assert not UPSTREAM & set(jobs)
    assert {"models_table", "analysis"} <= set(jobs)


def test_adding_a_larger_lmax_retrains_the_matched_models_too(run):
    jobs = run({"train": {"lmax_hidden": [0, 2, 3]}})
    # l_max 3 × 2 outputs × 2 seeds, matched l_max 0 and 2 (new reference), equal channels at l_max 3
    assert jobs["train"] == 4 + 4 + 2


def test_changing_the_basis_redoes_dft_and_everything_after(run):
    jobs = run({"dft": {"basis": "def2-svp"}})
    assert jobs["dft"] == 9 and jobs["free_atom"] == 2 and jobs["dataset"] == 4 and jobs["train"] == TINY_MODELS
    assert "structure" not in jobs and "structure_manifest" not in jobs


def test_adding_structures_generates_only_the_new_ones(run):
    jobs = run({"structures": {"water_clusters": {"splits": {"train": {"count": 5}}}}})
    assert jobs["structure"] == 1 and jobs["dft"] == 1  # w2_train_0004; the other 9 are kept
    assert jobs["dataset"] == 1 and "structure_manifest" in jobs and "free_atom" not in jobs


def test_changing_the_md_settings_regenerates_every_generated_structure(run):
    jobs = run({"structures": {"water_clusters": {"md_steps": 10}}})
    # the 7 generated (train, val, test_large), not the test split's 2 XYZ files (tests/configs/tiny-mixed.yaml)
    assert jobs["structure"] == 7 and jobs["dft"] == 7 and jobs["dataset"] == 3


def test_adding_a_test_file_evaluates_every_model_and_trains_none(run, tmp_path):
    """Mixed sources (generated train and val, XYZ test files): a new test file is one structure, its DFT, the test
    dataset and each model's evaluation; the test splits are no input of training."""
    folder = run.workflow.parent / "run" / "tests" / "data" / "tiny_test_xyz"
    count, comment, *atoms = (folder / "dimer_1.xyz").read_text().splitlines()
    moved = []
    for k, line in enumerate(atoms):  # the second water 0.3 Å further away: a new geometry
        element, x, y, z = line.split()
        moved.append(f"{element} {float(x) + 0.3 * (k >= 3):.9f} {y} {z}")
    (folder / "dimer_2.xyz").write_text("\n".join([count, comment, *moved]) + "\n")
    jobs = run()
    assert "train" not in jobs and not any(rule.startswith("train_ensemble") for rule in jobs)
    assert jobs["structure"] == 1 and jobs["dft"] == 1 and jobs["dataset"] == 1 and "free_atom" not in jobs
    assert jobs["evaluate"] == TINY_MODELS and {"models_table", "analysis"} <= set(jobs)


def test_editing_a_figure_script_redraws_only_figures(run):
    script = run.workflow / "scripts" / "figure.py"
    script.write_text(script.read_text() + "\n# edited\n")
    jobs = run()
    assert figure_rules(jobs) and set(jobs) - {"all"} == figure_rules(jobs)


def edit(module):
    """Append a comment to a module of the workflow's copy of the package (a newer file, new content)."""
    module.write_text(module.read_text() + "\n# edited\n")


def test_editing_the_figures_module_redraws_only_figures(run):
    edit(run.workflow / "e3hier" / "analysis" / "figures.py")
    jobs = run()
    assert figure_rules(jobs) and set(jobs) - {"all"} == figure_rules(jobs)


def test_editing_the_model_retrains_and_redoes_everything_after(run):
    edit(run.workflow / "e3hier" / "network" / "model.py")
    jobs = run()
    assert jobs["train"] == TINY_MODELS and {"models_table", "analysis", "density_slice"} <= set(jobs)
    assert figure_rules(jobs) and not UPSTREAM & set(jobs)


def test_editing_the_dft_redoes_dft_and_everything_after(run):
    edit(run.workflow / "e3hier" / "dft" / "scf.py")
    jobs = run()
    assert jobs["dft"] == 9 and jobs["free_atom"] == 2 and jobs["dataset"] == 4 and jobs["train"] == TINY_MODELS
    assert "structure" not in jobs and "structure_manifest" not in jobs


def training_jobs(jobs) -> dict:
    return {rule: n for rule, n in jobs.items() if rule == "train" or rule.startswith("train_ensemble")}


@pytest.mark.parametrize(
    "seeds, retrained",
    [
        ([0, 1], {}),  # training the tiny run's seeds as one block of 2 instead: the same models
        ([1], {}),  # seed 0 removed: seed 1 keeps its model
        ([1, 0], {}),  # reordered
        ([0, 1, 2], {"train_ensemble_seeds_2": TINY_MODELS // 2}),  # appended: only the new seed's models
    ],
)
def test_editing_the_seed_list_retrains_only_models_that_did_not_exist(run, seeds, retrained):
    jobs = run({"train": {"ensemble_size": 2, "seed": seeds}})
    assert training_jobs(jobs) == retrained
    assert not UPSTREAM & set(jobs)


def test_changing_an_analysis_option_does_not_retrain(run):
    jobs = run({"analysis": {"onset_fraction": 0.3}})
    assert "analysis" in jobs
    assert "train" not in jobs and not UPSTREAM & set(jobs)


def test_execution_settings_rerun_nothing(run):
    """Moving a finished study to a GPU, other threads, checkpoint interval, ε-grid cache or distance check."""
    train = {"device": "cuda", "threads": 2, "checkpoint_every": 1}
    checks = {"structures": {"min_distance_angstrom": 0.4}, "metric": {"collocation_cache_mb": 100}}
    assert run({"train": train, **checks}) == {}


def test_predicting_your_own_structures_runs_only_the_predict_jobs(run):
    """The predict block (e3hier.predict through the rule): adding structures to it trains and redoes nothing else;
    with predict.reference the DFT rule runs on them (predict_structure and predict_dft, one job per structure)."""
    (run.workflow.parent / "run" / "mine.xyz").write_text(
        "3\nw\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n"
    )
    jobs = run({"predict": {"structures": ["mine.xyz"], "reference": True}})
    assert jobs == {"predict_structure": 1, "predict_dft": 1, "predict": 1, "all": 1}
    assert run({"predict": {"structures": ["mine.xyz"]}}) == {"predict": 1, "all": 1}

"""The workflow end to end on the tiny config, and its handling of bad input."""

import json
import shutil

import pandas as pd
import pytest
from workflow_helpers import ROOT, snakemake

from e3hier.io import read_parquet_metadata

# runs the tiny workflow (minutes): not in `make test-fast`
pytestmark = pytest.mark.slow

WATER_XYZ = "3\nwater\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n"


@pytest.fixture(scope="session")
def tiny_run(tiny_workflow_run):
    """The working directory of the shared, finished tiny run."""
    return tiny_workflow_run / "run"


def test_tiny_pipeline_produces_every_contracted_output(tiny_run):
    results = tiny_run / "results"
    ids = [p.stem for p in (results / "structures").glob("*.xyz")]
    assert len(ids) == 9  # 4 train + 2 val + 2 test + 1 test_large
    manifest = pd.read_csv(results / "structures" / "manifest.tsv", sep="\t")
    assert sorted(manifest["structure"]) == sorted(ids)
    assert manifest.groupby("split").size().to_dict() == {"test": 2, "test_large": 1, "train": 4, "val": 2}
    assert set(manifest["n_atoms"]) == {6, 9} and list(manifest.columns) == ["structure", "split", "n_atoms", "formula"]
    table = pd.read_parquet(results / "dft" / f"{sorted(ids)[0]}.parquet")
    assert {"atom", "element", "l", "m", "exponent", "coefficient"} <= set(table)
    summary = json.loads((results / "dft" / f"{sorted(ids)[0]}.json").read_text())
    for key in (
        "energy_hartree",
        "converged",
        "scf_cycles",
        "n_electrons",
        "fitted_electrons",
        "fit_error_percent",
        "settings",
        "versions",
        "wall_seconds",
    ):
        assert key in summary
    assert summary["fit_error_percent"] < 2.0
    dataset = pd.read_parquet(results / "dataset" / "train.parquet")
    assert dataset["structure"].nunique() == 4
    assert (dataset["target"] == dataset["coefficient"] - dataset["reference"]).all()
    assert read_parquet_metadata(results / "dataset" / "train.parquet")["dft"]["basis"] == "cc-pvdz"
    models = pd.read_parquet(results / "tables" / "models.parquet")
    assert len(models) == 12  # lmax {0, 2} × outputs {scalar, full} × seeds {0, 1}, plus 2 × 2 control models
    for column in (
        "lmax_hidden",
        "output",
        "seed",
        "n_train",
        "n_params",
        "epsilon_test",
        "epsilon_test_block",
        "epsilon_test_l0",
        "epsilon_test_l4",
        "epsilon_val_best",
        "epochs",
        "train_seconds",
        "reachable_lmax",
        "epsilon_test_reachable",
        "epsilon_val_reachable",
    ):
        assert column in models
    assert models["epsilon_test_reachable"].notna().all() and models["epsilon_val_reachable"].notna().all()
    assert (models["epsilon_test"] < models["epsilon_test_baseline"] * 2).all()


def test_generated_structures_are_byte_identical_across_runs(tiny_run, tmp_path):
    snakemake(tmp_path, "results/structures/manifest.tsv")  # every structure, one job each, and the table
    for path in (tiny_run / "results" / "structures").glob("*"):
        assert path.read_bytes() == (tmp_path / "results" / "structures" / path.name).read_bytes()


def test_lint_is_clean():
    result = snakemake(ROOT, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def xyz_config(tmp_path, files: dict, **dft):
    """An override that reads ``files`` (name → text) as the train split of an xyz source."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for name, text in files.items():
        (data / name).write_text(text)
    return {
        "structures": {"source": "xyz", "xyz": {"train": [str(data / "*.xyz")], "val": [], "test": []}},
        "dft": dft,
    }


def assert_failed_with(result, *needles):
    assert result.returncode != 0
    text = result.stdout + result.stderr
    for needle in needles:
        assert needle in text, f"{needle!r} not in output:\n{text[-3000:]}"


def test_malformed_xyz_fails_naming_the_file_and_line(tmp_path):
    override = xyz_config(tmp_path, {"bad.xyz": "3\nwater\nO 0 0 0\nH 0.96 abc 0\nH 0 0.96 0\n"})
    result = snakemake(tmp_path, "results/dataset/train.parquet", overrides=override, check=False)
    assert_failed_with(result, "bad.xyz", "line 4")
    assert not (tmp_path / "results").exists()


def test_close_atoms_fail_naming_the_structure(tmp_path):
    override = xyz_config(tmp_path, {"close.xyz": "3\nw\nO 0 0 0\nH 0.3 0 0\nH 0 0.96 0\n"})
    result = snakemake(tmp_path, "results/dataset/train.parquet", overrides=override, check=False)
    assert_failed_with(result, "close", "0.3")
    assert not list((tmp_path / "results").rglob("*.xyz"))


def test_element_missing_from_basis_fails_naming_structure_and_element(tmp_path):
    override = xyz_config(tmp_path, {"radon.xyz": "3\nr\nRn 0 0 0\nH 0 0 3.0\nH 0 3.0 0\n"})
    result = snakemake(tmp_path, "results/dft/radon.parquet", overrides=override, check=False)
    assert_failed_with(result, "structure radon", "'Rn'")
    assert not (tmp_path / "results" / "dft" / "radon.parquet").exists()


def test_unconverged_scf_errors_or_is_skipped(tmp_path):
    files = {"water.xyz": WATER_XYZ, "water2.xyz": WATER_XYZ.replace("0.1173", "0.1200")}
    failing = xyz_config(tmp_path, files, max_cycle=1, on_failure="error")
    result = snakemake(tmp_path, "results/dft/water.json", overrides=failing, check=False)
    assert_failed_with(result, "structure water", "did not converge")
    assert not (tmp_path / "results" / "dft" / "water.json").exists()

    skipping = xyz_config(tmp_path, files, max_cycle=1, on_failure="skip")
    snakemake(tmp_path, "results/dft/water.json", "results/dft/water2.json", overrides=skipping)
    assert json.loads((tmp_path / "results" / "dft" / "water.json").read_text())["skipped"] is True
    # every training structure skipped: the dataset stops the run, naming the split and the structures
    result = snakemake(tmp_path, "results/dataset/train.parquet", overrides=skipping, check=False)
    assert_failed_with(result, "split 'train': DFT skipped every structure (water, water2")
    assert not (tmp_path / "results" / "dataset" / "train.parquet").exists()


def test_invalid_config_value_names_the_key(tmp_path):
    result = snakemake(tmp_path, "-n", overrides={"dft": {"grid": {"radial_scheme": "spline"}}}, check=False)
    assert_failed_with(result, "radial_scheme", "spline")
    assert not (tmp_path / "results").exists()


def test_analysis_tables_figures_and_report(tiny_workflow_run):
    results = tiny_workflow_run / "run" / "results"
    for name in (
        "hierarchy",
        "ablation",
        "features",
        "learning",
        "transfer",
        "density_slice",
        "findings",
        "lmax_gains",
        "evaluation",
        "contributions",
    ):
        assert len(pd.read_parquet(results / "tables" / f"{name}.parquet")) > 0, name
    findings = pd.read_parquet(results / "tables" / "findings.parquet")
    assert list(findings["finding"]) == [
        "1a",
        "1b",
        "2a",
        "2a-share",
        "2b",
        "2b-features",
        "2c",
        "3",
        "3-all",
        "3-1to2",
    ]
    assert set(findings["verdict"]) <= {"supported", "not_supported", "absent", "inconclusive"}
    models = pd.read_parquet(results / "tables" / "models.parquet")
    assert set(models["capacity"]) == {"study", "matched"} and set(models["channels"]) == {"study", "equal"}
    assert (results / "tables" / "findings.html").read_text().count("<tr") == 11  # the header and 10 findings
    ablation = pd.read_parquet(results / "tables" / "ablation.parquet")
    assert set(ablation["lmax_hidden"]) == {2} and set(ablation["zeroed_l"]) == {1, 2}
    for figure in (
        "findings",
        "epsilon_vs_lmax",
        "learning_curves",
        "hierarchy",
        "hidden_features",
        "ablation",
        "density",
        "transfer",
    ):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000
        assert (results / "figures" / f"{figure}.pdf").exists()
    snakemake(
        tiny_workflow_run / "run",
        "--report",
        "results/report.html",
        snakefile=tiny_workflow_run / "workflow" / "Snakefile",
    )
    report = (results / "report.html").read_text(errors="ignore")
    assert "epsilon_vs_lmax.png" in report and "findings.html" in report


def test_a_degenerate_grid_gives_every_figure_and_the_report(tiny_workflow_run, tmp_path):
    """One l_max (0: nothing to ablate), one output, one seed, no controls, one training size: every figure
    is drawn (an empty one says why) and the report is made."""
    shutil.copytree(tiny_workflow_run, tmp_path / "copy", symlinks=True)
    run, snakefile = tmp_path / "copy" / "run", tmp_path / "copy" / "workflow" / "Snakefile"
    degenerate = {
        "train": {"lmax_hidden": [0], "output": ["full"], "seed": [0], "matched_capacity": [], "equal_channels": []}
    }
    snakemake(run, overrides=degenerate, snakefile=snakefile)
    snakemake(run, "--report", "results/report.html", overrides=degenerate, snakefile=snakefile)
    for figure in ("findings", "epsilon_vs_lmax", "hierarchy", "hidden_features", "ablation", "density"):
        assert (run / "results" / "figures" / f"{figure}.png").stat().st_size > 5_000, figure
    assert "ablation.png" in (run / "results" / "report.html").read_text(errors="ignore")


def test_an_empty_figure_says_why():
    from e3hier.analysis.hierarchy_figures import ablation_heatmap

    empty = pd.DataFrame(columns=["lmax_hidden", "output", "capacity", "channels", "mode", "zeroed_l", "delta_epsilon"])
    fig = ablation_heatmap(empty, 0)
    assert "nothing to show" in fig.axes[0].texts[0].get_text()

"""Use what was trained: a model's bundle applied to new structures, cube files (e3hier.predict), on the tiny run."""

import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

from e3hier.predict import predictions
from e3hier.predict.__main__ import main
from e3hier.predict.bundle import load_bundle, model_path
from e3hier.predict.cube import density_at
from e3hier.predict.predictions import predict, predict_structure, read_structures
from e3hier.predict.structures import fit_molecule

# trains the tiny workflow (minutes): not in `make test-fast`
pytestmark = pytest.mark.slow

POINT = "lmax_hidden~2_output~full_capacity~study_channels~study_seed~0_n_train~all"
WATER = "3\nwater\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n"


def yaml_config(workflow):
    """config.yaml with tests/configs/tiny.yaml merged over it (their dft and metric blocks)."""
    from e3hier.config import load_config

    return load_config([workflow / "config.yaml", workflow / "tests" / "configs" / "tiny.yaml"])


@pytest.fixture
def model(tiny_workflow_run):
    return tiny_workflow_run / "run" / "results" / "models" / POINT / "model.pt"


def edited_bundle(model, tmp_path, edit):
    payload = torch.load(model, weights_only=True)
    edit(payload)
    torch.save(payload, tmp_path / "model.pt")
    return tmp_path / "model.pt"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p["config"]["layout_counts"].update({"0": 99}), "output layout"),
        (lambda p: p["bundle"].update(format=0), "bundle format 0"),
        (lambda p: p.pop("bundle"), "without a bundle"),
        (lambda p: p["state_dict"].popitem(), "weights do not fit"),
    ],
)
def test_a_changed_or_stale_bundle_is_refused(model, tmp_path, edit, message):
    load_bundle(model)  # the bundle as written loads
    with pytest.raises(ValueError, match=message):
        load_bundle(edited_bundle(model, tmp_path, edit))


def test_a_damaged_bundle_is_refused(model, tmp_path):
    (tmp_path / "model.pt").write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable model bundle"):
        load_bundle(tmp_path / "model.pt")


def test_an_element_the_model_never_saw_is_refused_by_name(model, tmp_path):
    (tmp_path / "ammonia.xyz").write_text("4\nNH3\nN 0 0 0\nH 1.0 0 0\nH 0 1.0 0\nH 0 0 1.0\n")
    with pytest.raises(ValueError, match=r"ammonia\.xyz: element\(s\) \['N'\] .*not in the model's training data"):
        read_structures([tmp_path / "ammonia.xyz"], load_bundle(model))


def test_a_charge_the_model_was_not_trained_on_is_refused(model, tmp_path):
    (tmp_path / "cation.xyz").write_text("3\ncharge=1 multiplicity=2\n" + WATER.split("\n", 2)[2])
    with pytest.raises(ValueError, match=r"cation\.xyz: structure 'cation' has charge \+1, .* trained on charge \+0"):
        read_structures([tmp_path / "cation.xyz"], load_bundle(model))


def test_rotating_the_input_rotates_the_predicted_density(model):
    bundle = load_bundle(model)
    water = Atoms("OH2", positions=[[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
    rotation = Rotation.from_euler("zyx", [0.7, -0.4, 1.9])
    turned = water.copy()
    turned.positions = rotation.apply(water.positions)
    points = np.random.default_rng(0).normal(scale=1.5, size=(200, 3))  # bohr, around the molecule
    densities = []
    for atoms, at in ((water, points), (turned, rotation.apply(points))):
        rows, auxmol = predict_structure(bundle, "w", atoms)
        by_ao = np.zeros(len(rows))
        by_ao[rows["ao_index"].to_numpy()] = rows["coefficient"]
        densities.append(density_at(auxmol, by_ao, at))
    assert np.abs(densities[1] - densities[0]).max() <= 1e-4 * np.abs(densities[0]).max()
    assert fit_molecule(["O"], [[0, 0, 0]], bundle.fit_auxbasis, bundle.decontract).nao_nr() > 0


def test_predict_writes_cubes_that_hold_the_electrons_and_the_dft_reference(tiny_workflow_run, tmp_path, monkeypatch):
    """A grid-point name of the finished run, a new molecule and a test structure of the run, with --reference:
    the predicted and DFT cubes integrate alike (the cube grid's error, which the free atoms measure), the DFT
    coefficients are those of the run's DFT table, and ε is the project's."""
    run = tiny_workflow_run / "run"
    (tmp_path / "water.xyz").write_text(WATER)
    workflow = tiny_workflow_run / "workflow"
    args = [POINT, str(tmp_path / "water.xyz"), str(run / "results" / "structures" / "dimer_0.xyz")]
    configs = [str(workflow / "config.yaml"), str(workflow / "tests" / "configs" / "tiny.yaml")]
    table = main(
        [*args, "--results", str(run / "results"), "--out", str(tmp_path / "out"), "--reference"]
        + [
            "--configfile",
            *configs,
        ]
    ).set_index("structure")
    for sid, row in table.iterrows():
        assert abs(row["electrons_coefficients"] - row["n_electrons"]) < 0.05 * row["n_electrons"], sid
        grid_error = abs(row["cube_error_free_atoms"])
        assert abs(row["electrons_cube"] - row["electrons_cube_dft"]) < grid_error + 0.05 * row["n_electrons"], sid
        assert abs(row["electrons_cube_dft"] - row["n_electrons"]) < 2 * grid_error + 0.01, sid
        assert 0 < row["epsilon"] < 100
        for kind in ("", ".dft", ".difference"):
            assert (tmp_path / "out" / f"{sid}{kind}.cube").stat().st_size > 100_000
    predicted = pd.read_parquet(tmp_path / "out" / "dimer_0.parquet")
    dft = pd.read_parquet(run / "results" / "dft" / "dimer_0.parquet")
    assert list(predicted.columns) == list(dft.columns)
    assert (predicted[["atom", "l", "shell", "m"]].to_numpy() == dft[["atom", "l", "shell", "m"]].to_numpy()).all()
    evaluation = pd.read_parquet(run / "results" / "models" / POINT / "eval.parquet").set_index("structure")
    # the same model on the same test structure: the run's ε (its grid level) and the command's agree
    assert table.loc["dimer_0", "epsilon"] == pytest.approx(evaluation.loc["dimer_0", "epsilon"], rel=1e-3)
    # the workflow's way (predict.reference): the DFT rule's table of the structure instead of a DFT run here
    config = {key: yaml_config(workflow)[key] for key in ("dft", "metric")}
    monkeypatch.setattr(predictions, "reference_density", lambda *a, **k: pytest.fail("a DFT ran in the job"))
    from_rule = predict(
        load_bundle(model_path(POINT, run / "results")), [run / "results" / "structures" / "dimer_0.xyz"],
        tmp_path / "rule", 0.3, 2.0, config, references={"dimer_0": run / "results" / "dft" / "dimer_0.parquet"},
    )  # fmt: skip
    assert from_rule["epsilon"].iloc[0] == pytest.approx(table.loc["dimer_0", "epsilon"], rel=1e-5)

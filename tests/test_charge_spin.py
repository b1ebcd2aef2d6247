"""Charge and spin after the DFT: the dataset records them, ε divides by the real electron count, and a
training job (or the workflow, before any job) refuses structures of different charges."""

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from conftest import FIT, TINY_MODEL, TINY_TRAIN, WATER, synthetic_frame, tiny_layout, train_tiny
from workflow_helpers import snakemake

from e3hier.data.dataset import structure_rows
from e3hier.dft.basis import ao_population_factors, build_mol, fit_basis, function_table, make_auxmol
from e3hier.training.samples import check_single_charge, load_samples, structure_charges

POINT = {"lmax_hidden": 1, "output": "full", "seed": 0, "n_train": "all"}


def with_charge(frame: pd.DataFrame, charge: int, structures=None) -> pd.DataFrame:
    """``frame`` with ``structures`` (default: all) given ``charge``: Σ Z − charge electrons."""
    frame = frame.copy()
    rows = frame["structure"].isin(structures if structures is not None else set(frame["structure"]))
    frame.loc[rows, "n_electrons"] -= charge
    return frame


# --- dataset rows -----------------------------------------------------------------


@pytest.fixture(scope="module")
def water_table():
    """A water's fit-function table with made-up coefficients, and free-atom references of its s functions."""
    symbols, pos = WATER
    auxmol = make_auxmol(build_mol(symbols, pos, "cc-pvdz"), fit_basis(FIT["fit_auxbasis"], symbols, True))
    table = function_table(auxmol)
    table["integral"] = 0.0
    table["coefficient"] = 0.1
    table["population_factor"] = ao_population_factors(auxmol)[table["ao_index"].to_numpy()]
    references = table[table["l"] == 0].drop_duplicates(["element", "l", "shell", "m"])[["element", "l", "shell", "m"]]
    return table, references.assign(reference=0.05)


def test_dataset_rows_record_charge_multiplicity_and_electrons(water_table):
    table, references = water_table
    symbols, pos = WATER
    cation = Atoms(symbols, positions=pos, info={"charge": 1, "multiplicity": 2})
    rows = structure_rows("h2o_plus", cation, table, references, 9, charge=1, multiplicity=2)
    assert set(rows["n_electrons"]) == {9} and set(rows["charge"]) == {1} and set(rows["multiplicity"]) == {2}
    assert structure_charges(rows).to_dict() == {"h2o_plus": 1}
    neutral = structure_rows("h2o", Atoms(symbols, positions=pos), table, references, 10)
    assert (set(neutral["charge"]), set(neutral["multiplicity"])) == ({0}, {1})


def test_dataset_rows_carry_the_population_factor_and_refuse_a_dft_table_without_it(water_table):
    table, references = water_table
    symbols, pos = WATER
    rows = structure_rows("h2o", Atoms(symbols, positions=pos), table, references, 10)
    np.testing.assert_array_equal(rows["population_factor"], table["population_factor"])
    with pytest.raises(ValueError, match=r"structure h2o: its DFT table has no population_factor column"):
        structure_rows("h2o", Atoms(symbols, positions=pos), table.drop(columns="population_factor"), references, 10)


def test_dft_result_of_another_charge_than_the_structure_file_is_refused(water_table):
    table, references = water_table
    symbols, pos = WATER
    cation = Atoms(symbols, positions=pos, info={"charge": 1, "multiplicity": 2})
    with pytest.raises(
        ValueError,
        match=r"structure h2o_plus: the DFT result has charge 0, multiplicity 1 and 10 "
        r"electrons, the structure file charge 1, multiplicity 2 and 9 electrons",
    ):
        structure_rows("h2o_plus", cation, table, references, 10)


# --- training ---------------------------------------------------------------------


def test_structure_charges_and_one_charge_per_training_job():
    frame = synthetic_frame(3, seed=5)
    ids = list(dict.fromkeys(frame["structure"]))
    assert structure_charges(frame).to_dict() == dict.fromkeys(ids, 0)
    assert check_single_charge({"train": frame, "val": frame}) == 0
    assert check_single_charge({"train": with_charge(frame, 1)}) == 1  # one charge, if not zero, is fine
    assert check_single_charge({"train": frame.iloc[:0]}) is None
    mixed = with_charge(frame, -1, ids[1:2])
    with pytest.raises(
        ValueError,
        match=rf"different charges \(charge -1: {ids[1]} \(split train\), "
        rf"charge \+0: {ids[0]} \(split train\)\).*no charge input",
    ):
        check_single_charge({"train": mixed})


@pytest.mark.slow
def test_training_job_refuses_mixed_charges_before_training(synthetic_splits, tmp_path):
    val = with_charge(pd.read_parquet(synthetic_splits["val"]), 1)
    val.to_parquet(tmp_path / "val_cations.parquet")
    with pytest.raises(ValueError, match=r"charge \+0: .*\(split train\), charge \+1: .*\(split val\)"):
        train_tiny(dict(synthetic_splits, val=tmp_path / "val_cations.parquet"), POINT, TINY_TRAIN, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_evaluate_job_refuses_a_test_split_of_another_charge_than_the_models(synthetic_splits, tmp_path):
    """The test splits are the evaluate job's: it refuses structures of a charge the models (their bundle) were not
    trained on, before any evaluation."""
    from e3hier.training.held_out import evaluate_grid_points

    test = with_charge(pd.read_parquet(synthetic_splits["test"]), 1)
    test.to_parquet(tmp_path / "test_cations.parquet")
    train_tiny(synthetic_splits, POINT, TINY_TRAIN, tmp_path / "out")
    with pytest.raises(ValueError, match=r"charge \+0: the models' .*\(split train\), charge \+1: .*\(split test\)"):
        evaluate_grid_points([tmp_path / "out"], {"test": tmp_path / "test_cations.parquet"}, FIT, {"grid_level": 0})


def test_epsilon_divides_by_the_datasets_electron_count():
    frame = with_charge(synthetic_frame(1, seed=6), 1)  # a water dimer cation: 19 electrons
    layout = tiny_layout()
    [sample] = load_samples(frame, layout, TINY_MODEL, with_grid=True, dft_cfg=FIT, grid_level=0)
    assert sample.n_electrons == 19 and sample.grid.n_electrons == 19


# --- the workflow, before any job ------------------------------------------------

WATER_XYZ = "3\n{comment}\nO 0.0 0.0 0.1173\nH 0.0 0.7572 -0.4692\nH 0.0 -0.7572 -0.4692\n"
OH_XYZ = "2\n{comment}\nO 0.0 0.0 0.0\nH 0.0 0.0 0.97\n"


@pytest.mark.parametrize(
    "files, needles",
    [
        ({"train/oh.xyz": OH_XYZ.format(comment="OH radical")}, ["train/oh.xyz", "9 electrons", "multiplicity=1"]),
        ({"train/box.xyz": WATER_XYZ.format(comment='Lattice="9 0 0 0 9 0 0 0 9"')}, ["train/box.xyz", "periodic"]),
        (
            {
                "train/water.xyz": WATER_XYZ.format(comment=""),
                "test/h2o_plus.xyz": WATER_XYZ.format(comment="charge=1 multiplicity=2"),
            },
            ["different charges", "charge +1: 1 (first h2o_plus)", "no charge input"],
        ),
    ],
    ids=["parity", "periodic", "mixed_charges"],
)
def test_workflow_refuses_bad_charge_spin_or_periodic_input_before_any_job(tmp_path, files, needles):
    data = tmp_path / "data"
    for name, text in files.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(text)
    xyz = {
        split: [str(data / split / "*.xyz")] if (data / split).exists() else [] for split in ("train", "val", "test")
    }
    result = snakemake(tmp_path / "work", "-n", overrides={"structures": {"source": "xyz", "xyz": xyz}}, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    for needle in needles:
        assert needle in text, f"{needle!r} not in output:\n{text[-3000:]}"
    assert not (tmp_path / "work" / "results").exists()

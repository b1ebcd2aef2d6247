"""Training set-ups that would fail late or silently are refused before any job, naming the key."""

import copy

import pandas as pd
import pytest
import yaml
from conftest import ROOT
from workflow_helpers import snakemake

from e3hier.training.grid import EXECUTION_SETTINGS
from e3hier.workflow.rules import check_training_config, per_model_train_settings

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
CONFIG["analysis"]["probe_structures"] = 2  # GOOD's validation split


def manifest(**splits):
    """{id: {"split", "symbols"}} with ``splits[name]`` = list of element lists."""
    return {
        f"{name}_{k}": {"split": name, "symbols": symbols, "recipe": {}}
        for name, structures in splits.items()
        for k, symbols in enumerate(structures)
    }


WATER = ["O", "H", "H"]
GOOD = manifest(train=[WATER] * 4, val=[WATER] * 2, test=[WATER] * 2, test_large=[WATER])


def config(**train):
    cfg = copy.deepcopy(CONFIG)
    cfg["train"].update(train)
    return cfg


def test_a_consistent_setup_passes():
    check_training_config(config(), GOOD)


@pytest.mark.parametrize(
    "cfg, structures, needles",
    [
        (config(val_split="validation"), GOOD, ["train.val_split", "'validation'", "val (2)"]),
        (config(test_splits=["test", "tset"]), GOOD, ["train.test_splits", "'tset'"]),
        (config(), manifest(train=[WATER] * 4, val=[WATER] * 2, test=[WATER]), ["train.test_splits", "'test_large'"]),
        (config(), manifest(val=[WATER], test=[WATER], test_large=[WATER]), ["the training split", "'train'"]),
        (config(n_train=[2, 10, "all"]), GOOD, ["train.n_train", "[10]", "(4 structures)"]),
        (config(n_train=["all", 4]), GOOD, ["train.n_train", "['all', 4]", "same 4-structure training split"]),
        (config(n_train=["all", 3]), GOOD, []),
        (config(lmax_hidden=[0, 4]), GOOD, []),  # the default multiplicities go to l = 4
        (
            config(test_splits=["test"]),
            manifest(train=[WATER] * 4, val=[WATER], test=[WATER + ["N"]]),
            ["train.test_splits", "'test'", "['N']"],
        ),
    ],
)
def test_mistakes_are_named(cfg, structures, needles):
    if not needles:
        check_training_config(cfg, structures)
        return
    with pytest.raises(ValueError) as error:
        check_training_config(cfg, structures)
    for needle in needles:
        assert needle in str(error.value)


def test_too_few_multiplicities_are_named():
    cfg = config(lmax_hidden=[0, 3])
    cfg["model"]["hidden_multiplicities"] = [16, 8]
    with pytest.raises(ValueError, match=r"model.hidden_multiplicities: 2 entries .*lmax_hidden goes to 3"):
        check_training_config(cfg, GOOD)


@pytest.mark.slow
def test_a_typo_in_a_split_name_stops_the_run_before_any_job(tmp_path):
    result = snakemake(
        tmp_path,
        "-n",
        configfiles=[ROOT / "tests" / "configs" / "tiny.yaml"],
        overrides={"train": {"val_split": "vall"}},
        check=False,
    )
    assert result.returncode != 0 and "train.val_split" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "train, needles",
    [
        ({"val_split": "test"}, ["train.val_split", "'test'", "also in train.test_splits"]),
        ({"val_split": "test_large"}, ["train.val_split", "'test_large'"]),
        ({"val_split": "train"}, ["train.val_split", "'train' is the training split"]),
        ({"test_splits": ["test", "train"]}, ["train.test_splits", "holds the training split 'train'"]),
        ({"test_splits": ["val"]}, ["train.val_split", "'val' is also in train.test_splits ['val']"]),
        ({"test_splits": []}, ["train.test_splits: [] names no split"]),
    ],
)
def test_splits_with_contradicting_roles_are_refused(train, needles):
    from e3hier.workflow.config_checks import check_config

    with pytest.raises(ValueError) as error:
        check_config(config(**train), GOOD)
    for needle in needles:
        assert needle in str(error.value)


def test_the_default_config_passes_the_parse_time_checks():
    from e3hier.workflow.config_checks import check_config, check_training_plan

    check_config(config(), GOOD)
    check_training_plan(config(), GOOD)


def test_an_empty_or_repeated_list_is_refused_by_the_schema():
    import jsonschema

    schema = yaml.safe_load((ROOT / "e3hier" / "schemas" / "config.schema.yaml").read_text())
    for train in ({"test_splits": []}, {"test_splits": ["test", "test"]}, {"val_split": ""}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config(**train), schema)
    jsonschema.validate(config(), schema)


def test_an_unknown_functional_is_refused_with_its_name():
    from e3hier.workflow.config_checks import check_config

    cfg = config()
    cfg["dft"]["xc"] = "PBEX0"
    with pytest.raises(ValueError, match=r"dft.xc: 'PBEX0' is not a functional PySCF knows"):
        check_config(cfg, GOOD)


def test_an_unknown_density_fitting_basis_is_refused_with_its_name():
    from e3hier.workflow.rules import check_basis_coverage

    dft = {**CONFIG["dft"], "scf_auxbasis": "cc-pvdz-jkfitt"}
    with pytest.raises(ValueError, match=r"structure train_0: dft.scf_auxbasis 'cc-pvdz-jkfitt' has no functions"):
        check_basis_coverage(GOOD, dft)


@pytest.mark.parametrize(
    "lmax_hidden, lmax_edge, output, needle",
    [
        ([0], 0, ["vector"], "train.output 'vector' (orders l = [1]"),
        ([0, 2], 1, ["higher"], "cannot be reached at train.lmax_hidden [0] with model.lmax_edge 1"),
        ([0, 2], 0, ["scalar", "vector", "full"], "'vector'"),
    ],
)
def test_a_block_no_order_can_reach_is_refused(lmax_hidden, lmax_edge, output, needle):
    from e3hier.workflow.config_checks import check_training_plan

    cfg = config(lmax_hidden=lmax_hidden, output=output, matched_capacity=[], equal_channels=[])
    cfg["model"]["lmax_edge"] = lmax_edge
    with pytest.raises(ValueError) as error:
        check_training_plan(cfg, GOOD)
    assert needle in str(error.value)
    cfg["model"]["lmax_edge"] = 2  # higher (l ≥ 2) is reached in part at l_max 0: trained, the rest flagged
    check_training_plan(cfg, GOOD)


def test_a_density_plane_structure_past_the_first_test_split_is_refused():
    from e3hier.workflow.config_checks import check_training_plan

    cfg = config(test_splits=["test_large", "test"])
    cfg["analysis"]["density_plane_structure"] = 1
    with pytest.raises(ValueError, match=r"density_plane_structure: 1 is past the 1 structures of split 'test_large'"):
        check_training_plan(cfg, GOOD)
    cfg["train"]["test_splits"] = ["test", "test_large"]
    check_training_plan(cfg, GOOD)


@pytest.mark.slow
def test_a_test_split_as_validation_split_stops_the_run_while_it_is_read(tmp_path):
    result = snakemake(
        tmp_path,
        "-n",
        "results/dataset/train.parquet",
        configfiles=[ROOT / "tests" / "configs" / "tiny.yaml"],
        overrides={"train": {"val_split": "test"}},
        check=False,
    )
    assert result.returncode != 0
    assert "train.val_split: 'test' is also in train.test_splits" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_the_ablation_runs_on_the_first_test_split_whatever_its_name(monkeypatch):
    """No split named ``test`` is required: the ablation takes the first of ``train.test_splits``."""
    import contextlib
    from types import SimpleNamespace

    import pandas as pd

    from e3hier.training import held_out
    from e3hier.training.evaluation import L_COLUMNS

    monkeypatch.setattr(held_out, "zero_hidden_orders", lambda model, orders: contextlib.nullcontext())
    grid = SimpleNamespace(collocation_bytes=1, hold=lambda: None, release=lambda: None)

    def evaluate_models(samples):
        row = {"epsilon": 1.0, **{f"epsilon_l{l}": 0.5 for l in L_COLUMNS}}
        return [pd.DataFrame([row] * len(samples), columns=list(row))]

    paths = {"holdout": "a.parquet", "large": "b.parquet"}
    evaluations, ablations = held_out.evaluate_test_splits(
        evaluate_models, None, paths, lambda path: [SimpleNamespace(grid=grid)], 2, 10
    )
    assert list(evaluations[0]["split"]) == ["holdout", "large"]
    assert len(ablations[0]) == len(held_out.ablation_variants(2)) == 4


def test_population_scaling_of_a_contracted_fit_basis_is_refused():
    cfg = config(target_scaling="population")
    check_training_config(cfg, GOOD)
    cfg["dft"]["decontract"] = False
    with pytest.raises(ValueError, match=r"train.target_scaling: population needs dft.decontract: true"):
        check_training_config(cfg, GOOD)


def test_execution_settings_are_no_training_params():
    """How a job runs (device, threads, checkpoint interval) is read from the config, not passed as a param."""
    settings = per_model_train_settings(CONFIG["train"])
    assert not set(EXECUTION_SETTINGS) & set(settings) and {"epochs", "lr", "dtype"} <= set(settings)


def test_more_probed_structures_than_the_validation_split_are_refused():
    cfg = config()
    cfg["analysis"]["probe_structures"] = 3
    with pytest.raises(ValueError, match=r"analysis.probe_structures: 3 probed structures, .*'val' has 2"):
        check_training_config(cfg, GOOD)


def test_a_size_that_dft_skipping_made_the_whole_split_is_refused_before_training():
    from e3hier.training.experiment import training_subset

    frame = pd.DataFrame({"structure": ["a", "a", "b", "c"]})  # 4 planned, one skipped by DFT: 3 left
    assert training_subset(frame, "2", ["all", 2])["structure"].nunique() == 2
    with pytest.raises(ValueError, match=r"train.n_train: \['all', 3\] are all the whole 3-structure"):
        training_subset(frame, "3", ["all", 3])
    with pytest.raises(ValueError, match="the whole 3-structure"):
        training_subset(frame, "all", ["all", 3])

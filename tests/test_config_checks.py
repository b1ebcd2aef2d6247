"""Training set-ups that would fail late or silently are refused before any job, naming the key."""

import copy

import pytest
import yaml
from conftest import ROOT
from workflow_helpers import snakemake

from e3hier.grid import EXECUTION_SETTINGS
from e3hier.workflow import check_training_config, per_model_train_settings

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


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


def test_execution_settings_are_no_training_params():
    """How a job runs (device, threads, checkpoint interval) is read from the config, not passed as a param."""
    settings = per_model_train_settings(CONFIG["train"])
    assert not set(EXECUTION_SETTINGS) & set(settings) and {"epochs", "lr", "dtype"} <= set(settings)

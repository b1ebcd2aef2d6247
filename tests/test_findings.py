"""The verdict rule, the intervals and the findings table on synthetic numbers."""

import numpy as np
import pandas as pd
import pytest

from e3hier.findings import FINDING_COLUMNS, contributions, findings_table, lmax_gains, switch_on_steps
from e3hier.grid import training_grid
from e3hier.statistics import t_interval, verdict


def test_t_interval_of_known_values():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.303: half width 4.303 / sqrt(3)
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 / 3**0.5, rel=1e-6) and mean - low == high - mean
    assert np.isnan(t_interval([1.0])[1])


@pytest.mark.parametrize("direction", [1, -1])
def test_a_clear_effect_is_supported_and_its_opposite_not_supported(direction):
    rng = np.random.default_rng(0)
    effect = direction * (0.5 + 0.05 * rng.normal(size=5))
    assert verdict(*t_interval(effect)[1:], direction) == "supported"
    assert verdict(*t_interval(-effect)[1:], direction) == "not_supported"


def test_pure_noise_is_inconclusive():
    rng = np.random.default_rng(1)
    verdicts = [verdict(*t_interval(rng.normal(size=5))[1:], +1) for _ in range(200)]
    # a 95 % interval excludes the true 0 in about 5 % of draws, half of them on each side
    assert verdicts.count("inconclusive") >= 180
    assert verdict(float("nan"), float("nan"), 1) == "inconclusive"


def synthetic_models(gain_by_output: dict, noise: float, seeds=range(5), rng=None, val_gain_by_output=None):
    """A models table whose test ε falls with l_max by a given relative gain per output (validation ε by
    ``val_gain_by_output``, or like the test ε)."""
    rng = rng or np.random.default_rng(2)
    val_gain_by_output = val_gain_by_output or gain_by_output
    rows = []
    for output, gain in gain_by_output.items():
        for seed in seeds:
            base = 1.0 + 0.1 * rng.normal()
            for lmax in range(3):
                eps = base * (1 - gain * min(lmax, 2) / 2) * (1 + noise * rng.normal())
                val = base * (1 - val_gain_by_output[output] * min(lmax, 2) / 2) * (1 + noise * rng.normal())
                for capacity in ("study", "matched") if output == "full" and lmax < 2 else ("study",):
                    rows.append(
                        {
                            "lmax_hidden": lmax,
                            "output": output,
                            "capacity": capacity,
                            "channels": "study",
                            "seed": seed,
                            "n_train": 32,
                            "epsilon_test_block": eps,
                            "epsilon_val_best": val,
                            "n_params": 1000,
                        }
                    )
    return pd.DataFrame(rows)


def synthetic_probes(falls: float, seeds=range(5)) -> pd.DataFrame:
    """Probe rows whose trained contributions fall with l as exp(-falls·l) and switch on at step 10·(l+1)."""
    rows = []
    for channels in ("study", "equal"):
        for seed in seeds:
            for step in range(0, 101, 5):
                for l in range(3):
                    final = np.exp(-falls * l) * (1 + 0.01 * seed)
                    value = 0.01 + final * min(1.0, step / (10 * (l + 1)))
                    rows.append(
                        {
                            "lmax_hidden": 2,
                            "output": "full",
                            "capacity": "study",
                            "channels": channels,
                            "seed": seed,
                            "n_train": 32,
                            "step": step,
                            "epoch": 1,
                            "kind": "contribution",
                            "layer": 2,
                            "l": l,
                            "parity": 0,
                            "l_out": -1,
                            "value": value,
                        }
                    )
    return pd.DataFrame(rows)


def synthetic_contributions(falls: float, seeds=range(5)) -> pd.DataFrame:
    """The contributions table of ``synthetic_probes``."""
    return contributions(synthetic_probes(falls, seeds))


def test_findings_table_gives_supported_verdicts_for_clear_synthetic_effects():
    models = synthetic_models({"full": 0.3, "scalar": 0.05, "vector": 0.4, "higher": 0.5}, noise=0.01)
    table = findings_table(models, synthetic_contributions(falls=0.8))
    assert list(table.columns) == FINDING_COLUMNS
    assert list(table["finding"]) == ["1a", "1b", "2a", "2b", "3"]
    assert dict(zip(table["finding"], table["verdict"])) == {
        "1a": "supported",
        "1b": "supported",
        "2a": "supported",
        "2b": "supported",
        "3": "supported",
    }
    assert (table["n_seeds"] == 5).all()
    assert table.set_index("finding").loc["1a", "estimate"] == pytest.approx(0.3, abs=0.02)


def test_findings_table_is_not_supported_or_inconclusive_when_the_data_say_so():
    # the output that gains most on validation (vector) gains least on test: finding 3 does not replicate
    test_gains = {"full": -0.3, "scalar": 0.5, "vector": 0.1, "higher": 0.3}
    val_gains = {"full": -0.3, "scalar": 0.1, "vector": 0.5, "higher": 0.3}
    models = synthetic_models(test_gains, noise=0.01, val_gain_by_output=val_gains)
    table = findings_table(models, synthetic_contributions(falls=0.0)).set_index("finding")
    assert table.loc["1a", "verdict"] == "not_supported" and table.loc["3", "verdict"] == "not_supported"
    assert "vector output, which gains most on validation" in table.loc["3", "claim"]
    noisy = synthetic_models(
        {"full": 0.0, "scalar": 0.0, "vector": 0.0, "higher": 0.0}, noise=0.2, rng=np.random.default_rng(5)
    )
    table = findings_table(noisy, synthetic_contributions(0.5)).set_index("finding")
    assert table.loc["1a", "verdict"] == "inconclusive" and table.loc["3", "verdict"] == "inconclusive"


def test_switch_on_step_is_the_first_probe_at_90_percent_of_the_final_value():
    steps = switch_on_steps(synthetic_contributions(0.5).query("channels == 'study' and seed == 0"))
    # value = 0.01 + final·min(1, step / (10(l+1))): 90 % of (final + 0.01) is reached at step ≈ 9(l+1)
    assert list(steps["switch_on_step"]) == [10.0, 20.0, 30.0]


def test_lmax_gains_pairs_by_seed_and_puts_the_reference_into_the_matched_family():
    models = synthetic_models({"full": 0.3}, noise=0.0)
    gains = lmax_gains(models)
    matched = gains[(gains["capacity"] == "matched")]
    assert sorted(matched["lmax_hidden"]) == [0, 1, 2]
    assert matched.set_index("lmax_hidden").loc[2, "gain"] == pytest.approx(0.3)


def test_training_grid_adds_the_controls_at_the_largest_size():
    cfg = {
        "lmax_hidden": [0, 2, 4],
        "output": ["scalar", "full"],
        "seed": [0, 1],
        "n_train": [8, "all"],
        "matched_capacity": ["full"],
        "equal_channels": ["full"],
    }
    grid = training_grid(cfg)
    assert len(grid) == 3 * 2 * 2 * 2 + 2 * 2 + 2
    matched = grid[grid["capacity"] == "matched"]
    assert sorted(set(matched["lmax_hidden"])) == [0, 2] and set(matched["n_train"]) == {"all"}
    equal = grid[grid["channels"] == "equal"]
    assert set(equal["lmax_hidden"]) == {4} and set(equal["output"]) == {"full"}
    assert not grid.duplicated().any()


def test_readme_blocks_are_replaced_from_the_tables(tmp_path):
    from e3hier.findings_report import epsilon_markdown, findings_markdown, main

    models = synthetic_models({"full": 0.3, "scalar": 0.05, "vector": 0.4, "higher": 0.5}, noise=0.01)
    findings = findings_table(models, synthetic_contributions(falls=0.8))
    findings.to_parquet(tmp_path / "findings.parquet")
    lmax_gains(models).to_parquet(tmp_path / "lmax_gains.parquet")
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- findings:begin -->\nold\n<!-- findings:end -->\n"
        "<!-- epsilon:begin -->\nold\n<!-- epsilon:end -->\nend\n"
    )
    main([str(readme), str(tmp_path)])
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert findings_markdown(findings) in text and "| 1a | supported |" in text
    assert epsilon_markdown(lmax_gains(models)) in text and "full, matched capacity" in text

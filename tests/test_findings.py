"""The verdict rule, the intervals and the findings table on synthetic numbers."""

import numpy as np
import pandas as pd
import pytest

from e3hier.analysis.findings import FINDING_COLUMNS, contributions, findings_table, leave_one_seed_out
from e3hier.analysis.gains import lmax_gains
from e3hier.analysis.hierarchy_findings import COMMON_ORDERS, MOVE_FLOOR, settling_step
from e3hier.analysis.statistics import paired_bootstrap, t_interval, verdict
from e3hier.training.grid import training_grid

OUTPUTS = ("full", "scalar", "vector", "higher")
ROWS = ["1a", "1b", "2a", "2a-share", "2b", "2b-features", "2c", "3", "3-all", "3-1to2"]
GRID = ["lmax_hidden", "output", "capacity", "channels", "seed", "n_train"]


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


def test_a_zero_width_interval_is_inconclusive():
    assert verdict(0.3, 0.3, +1) == "inconclusive"
    assert verdict(*t_interval([0.1, 0.1, 0.1])[1:], +1) == "inconclusive"


def gains_by_lmax(gain) -> dict:
    """{l_max: relative gain over l_max 0}: a dict as given, or a number reached at l_max 2 (half at 1)."""
    return gain if isinstance(gain, dict) else {0: 0.0, 1: gain / 2, 2: gain}


def synthetic_tables(test_gain: dict, val_gain=None, seeds=range(5), n_structures=8, noise=0.01, spread=0.1, rng=0):
    """(models, evaluation): errors that fall with l_max by a given relative gain per output (validation by
    ``val_gain``, or like the test); ``spread``: a per-seed factor shared by all the seed's models; every test
    structure has its own difficulty, shared by all models."""
    rng = np.random.default_rng(rng)
    val_gain = val_gain or test_gain
    difficulty = np.exp(0.3 * rng.normal(size=n_structures))
    models, evaluation = [], []
    for output in test_gain:
        test, valid = gains_by_lmax(test_gain[output]), gains_by_lmax(val_gain[output])
        for seed in seeds:
            base = np.exp(spread * rng.normal())
            for lmax in test:
                for capacity in ("study", "matched") if output == "full" and lmax < max(test) else ("study",):
                    point = dict(zip(GRID, (lmax, output, capacity, "study", seed, 32)))
                    eps = base * difficulty * (1 - test[lmax]) * (1 + noise * rng.normal(size=n_structures))
                    val = base * (1 - valid[lmax]) * (1 + noise * rng.normal())
                    for j, e in enumerate(eps):
                        evaluation.append({**point, "split": "test", "structure": f"s{j}", "epsilon_reachable": e})
                    models.append(
                        {
                            **point,
                            "reachable_lmax": 3,
                            "epsilon_test_block": eps.mean(),
                            "epsilon_val_reachable": val,
                            "epsilon_val_best": val,
                            "n_params": 1000,
                        }
                    )
    evaluation = pd.DataFrame(evaluation)
    evaluation["epsilon_block"] = evaluation["epsilon_reachable"]
    return pd.DataFrame(models), evaluation


STEPS = [*range(11), 20, 50, 100, 200, 500, 1000]


def synthetic_probes(initial_fall: float, final_fall: float, tau_growth: float = 2.0, seeds=range(5)) -> pd.DataFrame:
    """Probe rows of the largest-l_max full-output models: order l moves from exp(-initial_fall·l) at step 0 to
    exp(-final_fall·l) with time constant 10·tau_growth**l (settling step 23·tau_growth**l); contributions (over
    the commonly reachable and all output orders), shares, two hidden layers' features of both parities, and the
    ε of output order l (``output_epsilon``), falling with the same time constant."""
    rows = []
    for channels in ("study", "equal"):
        for seed in seeds:
            point = dict(zip(GRID, (2, "full", "study", channels, seed, 32)))
            for step in STEPS:
                jitter = 1 + 0.02 * seed
                value = {
                    l: np.exp(-initial_fall * l)
                    + (np.exp(-final_fall * jitter * l) - np.exp(-initial_fall * l))
                    * (1 - np.exp(-step / (10 * jitter * tau_growth**l)))
                    for l in range(3)
                }
                for l, v in value.items():
                    common = {**point, "step": step, "epoch": 1, "l": l, "value": v}
                    for l_out in (-1, COMMON_ORDERS):
                        rows.append({**common, "kind": "contribution", "layer": 2, "parity": 0, "l_out": l_out})
                    share = {"kind": "share", "layer": 2, "parity": 0, "l_out": COMMON_ORDERS}
                    rows.append({**common, **share, "value": v / sum(value.values())})
                    for layer in (0, 1):
                        for parity in (1, -1):
                            rows.append({**common, "kind": "feature", "layer": layer, "parity": parity, "l_out": -1})
                    # the output order l's ε falls by 80 % with the same time constant as hidden order l moves
                    epsilon = 10 * (1 - 0.8 * (1 - np.exp(-step / (10 * jitter * tau_growth**l))))
                    output = {"kind": "output_epsilon", "layer": -1, "parity": 0, "l_out": l, "value": epsilon}
                    rows.append({**common, **output})
    return pd.DataFrame(rows)


def verdicts(table: pd.DataFrame) -> dict:
    return dict(zip(table["finding"], table["verdict"]))


def test_findings_table_gives_supported_verdicts_for_clear_synthetic_effects():
    models, evaluation = synthetic_tables({"full": 0.3, "scalar": 0.05, "vector": 0.4, "higher": 0.5})
    table = findings_table(models, evaluation, synthetic_probes(initial_fall=0.5, final_fall=1.5), "test")
    assert list(table.columns) == FINDING_COLUMNS and list(table["finding"]) == ROWS
    assert verdicts(table) == dict.fromkeys(ROWS, "supported")
    assert (table["n_seeds"] == 5).all()
    assert list(table["n_structures"].fillna(0)) == [8, 8, 0, 0, 0, 0, 0, 8, 8, 8]
    assert table.set_index("finding").loc["1a", "estimate"] == pytest.approx(0.3, abs=0.02)
    assert "l_max 2 for 5 seeds" in table.set_index("finding").loc["1a", "claim"]
    assert table["interval"].str.contains("bootstrap").tolist() == [True, True] + [False] * 5 + [True] * 3


def test_every_row_can_be_not_supported():
    # l_max > 0 is worse; the output that gains most on validation (vector) gains least on test; the
    # contributions fall less steeply after training than at initialisation; lower orders settle later
    models, evaluation = synthetic_tables(
        {"full": -0.3, "scalar": 0.5, "vector": 0.1, "higher": 0.3},
        val_gain={"full": -0.3, "scalar": 0.1, "vector": 0.5, "higher": 0.3},
    )
    table = findings_table(models, evaluation, synthetic_probes(1.5, 0.5, tau_growth=0.5), "test")
    assert verdicts(table) == dict.fromkeys(ROWS, "not_supported")
    assert "vector − scalar for 5 seeds" in table.set_index("finding").loc["3", "claim"]


def test_2a_subtracts_the_initial_slope():
    # contributions fall with l already at step 0, and less steeply after training: not a learnt hierarchy
    models, evaluation = synthetic_tables({o: 0.3 for o in OUTPUTS})
    table = findings_table(models, evaluation, synthetic_probes(initial_fall=1.5, final_fall=1.0), "test")
    assert verdicts(table)["2a"] == "not_supported" and verdicts(table)["2a-share"] == "not_supported"


def test_settling_step_works_on_a_shrinking_series_and_interpolates():
    steps = [0, 10, 20, 40]
    # shrinks from 2 to 1: 90 % of the change is 0.9, reached between 10 (moved 0.5) and 20 (moved 1.0)
    assert settling_step(steps, [2.0, 1.5, 1.0, 1.0]) == pytest.approx(18.0)
    assert settling_step(steps, [1.0, 1.5, 2.0, 2.0]) == pytest.approx(18.0)
    assert np.isnan(settling_step(steps, [1.0, 1.01, 1.02, 1.0 + MOVE_FLOOR / 2]))


def test_2b_is_supported_when_shrinking_higher_orders_settle_later():
    # every order shrinks from 3 to exp(-l) (final below initial): "90 % of the final value" is met at step 0
    models, evaluation = synthetic_tables({o: 0.3 for o in OUTPUTS})
    probes = synthetic_probes(initial_fall=0.0, final_fall=1.0)
    initial = probes["step"] == 0
    probes.loc[initial, "value"] = np.where(probes.loc[initial, "kind"] == "share", 1 / 3, 3.0)
    table = findings_table(models, evaluation, probes, "test")
    assert verdicts(table)["2b"] == "supported" and verdicts(table)["2b-features"] == "supported"


def test_pairing_by_seed_removes_the_seeds_shared_noise():
    # a small gain under a large per-seed factor: only a paired comparison sees it
    models, evaluation = synthetic_tables({o: 0.05 for o in OUTPUTS}, spread=0.5, noise=0.002)
    table = findings_table(models, evaluation, synthetic_probes(0.5, 1.5), "test")
    assert verdicts(table)["1a"] == "supported"


def test_the_best_lmax_is_chosen_on_validation_not_on_test():
    # l_max 1 gains on test, l_max 2 loses; validation prefers l_max 2, which then decides 1a and 1b
    test = {"full": {0: 0.0, 1: 0.3, 2: -0.2}} | {o: 0.3 for o in OUTPUTS[1:]}
    val = {"full": {0: 0.0, 1: 0.1, 2: 0.4}} | {o: 0.3 for o in OUTPUTS[1:]}
    models, evaluation = synthetic_tables(test, val_gain=val)
    table = findings_table(models, evaluation, synthetic_probes(0.5, 1.5), "test")
    assert verdicts(table)["1a"] == "not_supported" and verdicts(table)["1b"] == "not_supported"


def test_each_seed_is_chosen_for_on_the_other_seeds():
    validation = pd.DataFrame({1: [1.0, 2.0, 2.0], 2: [2.0, 1.0, 1.0]}, index=[0, 1, 2])
    # seed 0's own validation favours l_max 1, the other seeds' l_max 2; seed 1's others are split, 1.5 each
    assert leave_one_seed_out(validation, lambda mean: int(mean.idxmin())) == {0: 2, 1: 1, 2: 1}


def test_zero_variance_is_inconclusive():
    models, evaluation = synthetic_tables({o: 0.3 for o in OUTPUTS}, noise=0.0, spread=0.0)
    evaluation["epsilon_reachable"] = evaluation.groupby(GRID)["epsilon_reachable"].transform("mean")
    table = findings_table(models, evaluation, synthetic_probes(0.5, 1.5), "test")
    assert verdicts(table)["1a"] == "inconclusive"


def test_a_gain_carried_by_one_test_structure_is_not_supported():
    models, evaluation = synthetic_tables({o: 0.0 for o in OUTPUTS}, n_structures=10, noise=0.001)
    # l_max > 0 is 1 % worse on nine structures and 5x better on one, for every seed alike
    better = (evaluation["lmax_hidden"] > 0) & (evaluation["structure"] == "s0")
    evaluation.loc[evaluation["lmax_hidden"] > 0, "epsilon_reachable"] *= np.where(better, 0.2, 1.01)[
        evaluation["lmax_hidden"] > 0
    ]
    table = findings_table(models, evaluation, synthetic_probes(0.5, 1.5), "test").set_index("finding")
    assert table.loc["1a", "estimate"] > 0 and table.loc["1a", "verdict"] == "inconclusive"


def test_paired_bootstrap_is_reproducible_and_covers_the_mean():
    rng = np.random.default_rng(3)
    errors = 1 + 0.1 * rng.normal(size=(5, 20, 2))
    first = paired_bootstrap(errors, lambda m: m[..., 1] - m[..., 0])
    assert first == paired_bootstrap(errors, lambda m: m[..., 1] - m[..., 0])
    assert first[1] < first[0] < first[2]


def test_lmax_gains_pairs_by_seed_and_puts_the_reference_into_the_matched_family():
    models, _ = synthetic_tables({"full": 0.3}, noise=0.0)
    gains = lmax_gains(models)
    matched = gains[(gains["capacity"] == "matched")]
    assert sorted(matched["lmax_hidden"]) == [0, 1, 2]
    assert matched.set_index("lmax_hidden").loc[2, "gain"] == pytest.approx(0.3)


def test_contributions_table_keeps_the_whole_output_rows():
    table = contributions(synthetic_probes(0.5, 1.5))
    assert set(table["l"]) == {0, 1, 2} and np.allclose(table.groupby(GRID + ["step"])["share"].sum(), 1.0)


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


def test_the_markdown_tables_show_every_row_and_family(tmp_path):
    from e3hier.analysis.findings_report import epsilon_markdown, findings_markdown

    models, evaluation = synthetic_tables({"full": 0.3, "scalar": 0.05, "vector": 0.4, "higher": 0.5})
    findings = findings_table(models, evaluation, synthetic_probes(0.5, 1.5), "test")
    text = findings_markdown(findings)
    assert "| 1a | supported |" in text and len(text.splitlines()) == 2 + len(findings)
    assert "full, matched capacity" in epsilon_markdown(lmax_gains(models))


def test_evaluation_table_takes_each_models_reachable_orders():
    from e3hier.analysis.tables import evaluation_table

    point = dict(zip(GRID, (0, "full", "study", "study", 0, 32)))
    evaluations = pd.DataFrame(
        [{**point, "split": "test", "structure": "a", "epsilon_block_upto_l2": 1.0, "epsilon_block_upto_l3": 2.0}]
    )
    models = pd.DataFrame([{**point, "reachable_lmax": 3}])
    assert evaluation_table(evaluations, models)["epsilon_reachable"].tolist() == [2.0]
    with pytest.raises(ValueError, match="epsilon_block_upto_l4"):
        evaluation_table(evaluations, models.assign(reachable_lmax=4))


# --- the data the findings report on (issue 31) ---------------------------------------------------------
def test_findings_use_the_first_test_split_by_name_and_never_another():
    models, evaluation = synthetic_tables({"full": 0.3, "scalar": 0.05, "vector": 0.4, "higher": 0.5})
    holdout = evaluation.assign(split="holdout")
    transfer = evaluation.assign(split="holdout_large", structure=evaluation["structure"] + "_large")
    both = pd.concat([holdout, transfer], ignore_index=True)
    table = findings_table(models, both, synthetic_probes(0.5, 1.5), "holdout").set_index("finding")
    assert table.loc["1a", "n_structures"] == 8  # the transfer split is not pooled in
    with pytest.raises(ValueError, match="no rows of the test split 'test'"):
        findings_table(models, both, synthetic_probes(0.5, 1.5), "test")


def test_a_diverged_member_drops_its_seed_not_every_structure():
    from e3hier.analysis.findings import error_cube

    models, evaluation = synthetic_tables({"full": 0.3}, n_structures=6)
    broken = (evaluation["seed"] == 3) & (evaluation["lmax_hidden"] == 2)
    evaluation.loc[broken, "epsilon_reachable"] = np.nan
    cube, seeds = error_cube(evaluation, "epsilon_reachable", {s: [("full", 0), ("full", 2)] for s in range(5)})
    assert cube.shape == (4, 6, 2) and seeds == [0, 1, 2, 4]


def test_diverged_models_enter_no_statistic_and_are_listed():
    models, evaluation = synthetic_tables({"full": 0.3, "scalar": 0.05, "vector": 0.4, "higher": 0.5})
    diverged = (models["seed"] == 1) & (models["output"] == "full") & (models["lmax_hidden"] == 2)
    models["diverged"] = diverged
    flag = models[GRID + ["diverged"]]
    evaluation = evaluation.merge(flag, on=GRID)
    table = findings_table(models, evaluation, synthetic_probes(0.5, 1.5), "test").set_index("finding")
    assert table.loc["1a", "n_seeds"] == 4 and table.loc["1a", "diverged_seeds"] == "1"
    assert table.loc["3", "n_seeds"] == 5 and table.loc["3", "diverged_seeds"] == ""
    assert (lmax_gains(models[~diverged]).query("output == 'full' and lmax_hidden == 2")["n_seeds"] == 4).all()


def test_a_test_split_that_dft_left_empty_stops_the_run_naming_it(tmp_path):
    from e3hier.data.dataset import assemble_split
    from e3hier.io import write_json

    entries = []
    for name in ("w3_test_0000", "w3_test_0001"):
        write_json(tmp_path / f"{name}.json", {"skipped": True})
        entries.append((name, None, tmp_path / f"{name}.parquet", tmp_path / f"{name}.json"))
    frame, skipped = assemble_split(entries, pd.DataFrame(), required=False, split="test_large")
    assert frame.empty and skipped == ["w3_test_0000", "w3_test_0001"]  # a split no model needs may be empty
    with pytest.raises(ValueError, match=r"split 'test': DFT skipped every structure \(w3_test_0000, w3_test_0001"):
        assemble_split(entries, pd.DataFrame(), required=True, split="test")


# --- verdicts that can say "absent", and power (issue 28) ---------------------------------------------------
def test_an_interval_inside_the_margin_is_absent_whatever_its_sign():
    assert verdict(-0.02, 0.03, +1, margin=0.05) == "absent"
    assert verdict(0.01, 0.04, +1, margin=0.05) == "absent"  # excludes 0, but smaller than what matters
    assert verdict(-0.02, 0.06, +1, margin=0.05) == "inconclusive"  # reaches past δ
    assert verdict(0.06, 0.2, +1, margin=0.05) == "supported"
    assert verdict(-0.02, 0.03, +1) == "inconclusive"  # no margin: never absent
    assert verdict(0.01, 0.01, +1, margin=0.05) == "inconclusive"  # zero width: no evidence


def test_minimum_detectable_effect_against_the_closed_form():
    from e3hier.analysis.statistics import minimum_detectable_effect

    # n = 10, SD 1: (t(0.975, 9) + t(0.8, 9)) / sqrt(10), from printed t tables
    assert minimum_detectable_effect(1.0, 10) == pytest.approx((2.262157 + 0.883404) / 10**0.5, rel=1e-5)
    # large n: the normal approximation (1.959964 + 0.841621) SD / sqrt(n)
    assert minimum_detectable_effect(2.0, 10_000) == pytest.approx(2 * 2.801585 / 100, rel=1e-3)
    assert np.isnan(minimum_detectable_effect(1.0, 1))


def test_seeds_to_decide_reaches_the_estimate_or_the_margin():
    from e3hier.analysis.statistics import minimum_detectable_effect, seeds_to_decide

    sd = 0.32  # 2b on the study tier: per-seed SD of about 0.32 (its t interval over 5 seeds)
    n = int(seeds_to_decide(0.31, sd, margin=0.1))
    assert minimum_detectable_effect(sd, n) <= 0.31 < minimum_detectable_effect(sd, n - 1)
    # an estimate of 0 with SD 0.1 and δ 0.1: the half width t(0.975, n-1)·0.1/√n falls below 0.1 at n = 7
    assert seeds_to_decide(0.0, 0.1, margin=0.1) == 7


def test_2c_sees_output_orders_that_settle_at_step_two_to_the_l():
    from e3hier.analysis.hierarchy_findings import output_order_rows, settling_slopes

    rows = []
    steps = np.unique(np.geomspace(1, 4096, 60).round())
    for seed in range(5):
        point = dict(zip(GRID, (2, "full", "study", "study", seed, 32)))
        for l in range(5):
            # ε_l falls to a floor, 90 % of the way by step 2^l (time constant 2^l / ln 10), each seed a bit later
            values = 1 + 9 * np.exp(-np.log(10) * np.concatenate([[0], steps]) / (2.0**l * (1 + 0.05 * seed)))
            for step, value in zip(np.concatenate([[0], steps]), values):
                rows.append({**point, "step": step, "epoch": 1, "kind": "output_epsilon", "layer": -1, "l": l,
                             "parity": 0, "l_out": l, "value": value})  # fmt: skip
    slopes = settling_slopes(output_order_rows(pd.DataFrame(rows)))
    assert np.allclose(slopes, np.log(2), atol=0.05)  # settling step ~2^l: slope ln 2 per order
    table = findings_table(*synthetic_tables({"full": 0.3}), pd.DataFrame(rows), "test").set_index("finding")
    assert table.loc["2c", "verdict"] == "supported" and table.loc["2c", "estimate"] == pytest.approx(np.log(2), 0.05)


def test_the_schema_declares_the_same_margins_as_the_code():
    import yaml
    from conftest import ROOT

    from e3hier.analysis.findings import EQUIVALENCE

    schema = yaml.safe_load((ROOT / "e3hier" / "schemas" / "config.schema.yaml").read_text())
    margins = schema["properties"]["analysis"]["properties"]["equivalence"]["properties"]
    assert {finding: spec["default"] for finding, spec in margins.items()} == EQUIVALENCE

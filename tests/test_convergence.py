"""Whether the hierarchy experiment's models finished learning (e3hier.analysis.convergence)."""

import json

import numpy as np
import pandas as pd
import pytest

from e3hier.analysis import convergence as C


def test_the_change_over_the_last_fifth_compares_the_last_epoch_with_one_a_fifth_back():
    val = np.linspace(2.0, 1.0, 30)  # 30 epochs: the last fifth is 6 epochs back
    assert C.change_last_fifth(val) == pytest.approx((1.0 - val[-7]) / val[-7])
    assert C.change_last_fifth([1.0, 0.5]) == pytest.approx(-0.5)  # at least one epoch back
    assert np.isnan(C.change_last_fifth([1.0]))


@pytest.mark.parametrize(
    "best, change, expected",
    [
        (20, -0.30, (True, True)),  # kept before the last epoch: later epochs did not improve it
        (30, -0.019, (False, True)),  # still improving, by less than 2 % over the last fifth
        (30, -0.021, (False, False)),
        (30, float("nan"), (False, False)),
    ],
)
def test_a_model_settled_when_its_kept_epoch_is_not_the_last_or_its_error_is_flat(best, change, expected):
    assert C.is_settled(best, 30, change) == expected


def test_the_table_reads_each_trained_model_and_leaves_out_diverged_ones(tmp_path):
    for name, best, val, diverged in (("a", 10, np.linspace(2, 1, 10), False), ("b", 3, [1.0, 0.9], True)):
        folder = tmp_path / "models" / name
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"best_epoch": best, "diverged": diverged}))
        pd.DataFrame({"epoch": np.arange(1, len(val) + 1), "val_l2": val}).to_parquet(folder / "metrics.parquet")
    table = C.convergence_table(tmp_path, "draw 0")
    assert table["name"].tolist() == ["a"] and not table["settled"].iloc[0]
    summary = C.convergence_summary(table)
    assert summary[["models", "kept_before_last", "settled", "epochs"]].values.tolist() == [[1, 0, 0, 10]]

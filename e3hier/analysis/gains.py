"""The mean test ε of each model family and l_max, and its gain over l_max 0 (``results/tables/lmax_gains.parquet``).

A family is the models of one output, capacity, channel rule and training size; the gain is paired by seed
(t intervals over seeds, ``e3hier.analysis.statistics.t_interval``). The verdicts are ``e3hier.analysis.findings``.
"""

from __future__ import annotations

import pandas as pd

from e3hier.analysis.families import matched_family
from e3hier.analysis.statistics import t_interval

#: The models table's test ε of ``lmax_gains`` (the predicted block; for the full output, the whole density).
ERROR = "epsilon_test_block"


def paired_gains(family: pd.DataFrame, lmax_from: int, lmax_to: int) -> pd.Series:
    """Per seed: 1 - ε(lmax_to) / ε(lmax_from) of the models table's ``ERROR``, over the seeds that have both."""
    by = family.pivot_table(index="seed", columns="lmax_hidden", values=ERROR, aggfunc="mean")
    if lmax_from not in by or lmax_to not in by:
        return pd.Series(dtype=float)
    return (1 - by[lmax_to] / by[lmax_from]).dropna()


def lmax_gains(models: pd.DataFrame) -> pd.DataFrame:
    """Per model family (output, capacity, channels, training size) and l_max: mean test ε of the block
    with its interval, and the paired relative gain over l_max 0 with its interval."""
    rows = []
    keys = ["output", "capacity", "channels", "n_train"]
    families = [(key, g) for key, g in models.groupby(keys)]
    for output in models["output"].unique():  # the matched family includes its reference model
        family = matched_family(models, output)
        if family["capacity"].eq("matched").any():
            families = [(k, g) for k, g in families if not (k[0] == output and k[1] == "matched")]
            families.append(((output, "matched", "study", family["n_train"].max()), family))
    for key, family in families:
        for lmax, group in family.groupby("lmax_hidden"):
            mean, low, high = t_interval(group[ERROR])
            gain, gain_low, gain_high = t_interval(paired_gains(family, 0, lmax)) if lmax else (0.0, 0.0, 0.0)
            rows.append(
                {
                    **dict(zip(keys, key)),
                    "lmax_hidden": lmax,
                    "n_seeds": group["seed"].nunique(),
                    "n_params": float(group["n_params"].mean()),
                    "epsilon": mean,
                    "epsilon_ci_low": low,
                    "epsilon_ci_high": high,
                    "gain": gain,
                    "gain_ci_low": gain_low,
                    "gain_ci_high": gain_high,
                }
            )
    return pd.DataFrame(rows)

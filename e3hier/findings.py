"""The study's findings as numbers: one row per claim, with a statistic over seeds, its interval and a verdict.

Every statistic is computed per seed on models that share the data, the splits and the initial-weight
seed (paired), then summarised by ``e3hier.statistics.t_interval``; the verdict is
``e3hier.statistics.verdict``. Errors are the test ε of the predicted block (``epsilon_test_block``:
for the full output, the whole density). Where a claim picks "the best l_max", it picks it on the mean
*validation* ε, so the test error that measures the claim did not choose it.

- 1a: full output, study capacity: relative ε gain from l_max 0 to the best l_max > 0 (> 0 if it holds).
- 1b: the same with every l_max at the parameter count of the largest (``capacity: matched``).
- 2a: slope over hidden order l of log(per-component RMS of order l's contribution to the output), after
  training minus at initialisation, in the equal-channel control (< 0 if contributions fall with l more
  steeply than initialisation and channel counts make them).
- 2b: slope over l of the optimiser steps at which order l's contribution first reaches 90 % of its
  final value (> 0 if higher orders switch on later).
- 3: relative ε gain from l_max 0 to 2 of the output order (scalar, vector, higher) that gains most on
  validation minus that of the one that gains least (> 0 if the difference seen on validation holds on
  the test structures, i.e. the gain differs between output orders).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from e3hier.statistics import t_interval, verdict

FINDING_COLUMNS = ["finding", "claim", "statistic", "estimate", "ci_low", "ci_high", "n_seeds", "verdict"]
ERROR = "epsilon_test_block"
#: A hidden order has "switched on" when its contribution first reaches this fraction of its final value.
SWITCH_ON_FRACTION = 0.9


def study_models(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the study's grid, without its controls (capacity and channels ``study``)."""
    if "capacity" not in frame:
        return frame
    return frame[(frame["capacity"] == "study") & (frame["channels"] == "study")]


def largest_training_set(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the largest training size (the controls are trained at that size only)."""
    return frame[frame["n_train"] == frame["n_train"].max()] if len(frame) else frame


def study_family(models: pd.DataFrame, output: str = "full") -> pd.DataFrame:
    """The study's models of one output (study capacity and channels), at the largest training size."""
    return largest_training_set(study_models(models[models["output"] == output]))


def matched_family(models: pd.DataFrame, output: str = "full") -> pd.DataFrame:
    """Capacity-matched models of one output, with the study's model at the reference (largest) l_max,
    which is its own match."""
    study = study_family(models, output)
    matched = models[(models["output"] == output) & (models["capacity"] == "matched") & (models["channels"] == "study")]
    if matched.empty or study.empty:
        return matched
    reference = study[study["lmax_hidden"] == study["lmax_hidden"].max()]
    return pd.concat([matched, reference], ignore_index=True)


def best_lmax(family: pd.DataFrame) -> int | None:
    """The l_max > 0 with the lowest mean validation ε (None if there is none)."""
    above = family[family["lmax_hidden"] > 0]
    if above.empty:
        return None
    return int(above.groupby("lmax_hidden")["epsilon_val_best"].mean().idxmin())


def paired_gains(family: pd.DataFrame, lmax_from: int, lmax_to: int) -> pd.Series:
    """Per seed: 1 - ε(lmax_to) / ε(lmax_from), over the seeds that have both."""
    by = family.pivot_table(index="seed", columns="lmax_hidden", values=ERROR, aggfunc="mean")
    if lmax_from not in by or lmax_to not in by:
        return pd.Series(dtype=float)
    return (1 - by[lmax_to] / by[lmax_from]).dropna()


def finding_row(finding: str, claim: str, statistic: str, per_seed, direction: int) -> dict:
    """One verdict-table row from the per-seed values of a statistic."""
    values = np.asarray(list(per_seed), dtype=float)
    estimate, low, high = t_interval(values)
    return {
        "finding": finding,
        "claim": claim,
        "statistic": statistic,
        "estimate": estimate,
        "ci_low": low,
        "ci_high": high,
        "n_seeds": int(np.isfinite(values).sum()),
        "verdict": verdict(low, high, direction),
    }


def lmax_gain_row(finding: str, family: pd.DataFrame, capacity: str) -> dict:
    best = best_lmax(family)
    gains = paired_gains(family, 0, best) if best is not None else []
    return finding_row(
        finding,
        f"Full output, {capacity} capacity: the best hidden l_max > 0 (l_max {best}, chosen on validation ε) "
        "has a lower test ε than l_max 0.",
        f"relative test ε gain 1 - ε(l_max {best}) / ε(l_max 0), paired by seed",
        gains,
        +1,
    )


def contributions(features: pd.DataFrame) -> pd.DataFrame:
    """Per model and probe step: each hidden order's contribution to the whole output (RMS per
    component) and its share of their sum."""
    rows = features[(features["kind"] == "contribution") & (features["l_out"] == -1)]
    keys = [c for c in features.columns if c not in ("kind", "layer", "l", "parity", "l_out", "value", "epoch")]
    table = rows[keys + ["epoch", "l", "value"]].rename(columns={"value": "rms"}).copy()
    table["share"] = table["rms"] / table.groupby(keys)["rms"].transform("sum")
    return table.reset_index(drop=True)


def hierarchy_models(frame: pd.DataFrame, channels: str, output: str = "full") -> pd.DataFrame:
    """Rows (probes or contributions) of the models that measure finding 2: one output at study capacity,
    the given channels, the largest training size and the largest l_max."""
    part = frame[(frame["output"] == output) & (frame["capacity"] == "study") & (frame["channels"] == channels)]
    part = largest_training_set(part)
    return part[part["lmax_hidden"] == part["lmax_hidden"].max()] if len(part) else part


def _slope(x, y) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 and len(set(x[ok])) >= 2 else math.nan


def contribution_slopes(model: pd.DataFrame) -> pd.DataFrame:
    """Per seed: slope of log contribution over l at initialisation (step 0) and after training (last step)."""
    rows = []
    for seed, group in model.groupby("seed"):
        first, last = group[group["step"] == group["step"].min()], group[group["step"] == group["step"].max()]
        rows.append(
            {
                "seed": seed,
                "initial": _slope(first["l"], np.log(first["rms"])),
                "trained": _slope(last["l"], np.log(last["rms"])),
            }
        )
    return pd.DataFrame(rows, columns=["seed", "initial", "trained"])


def switch_on_steps(model: pd.DataFrame, fraction: float = SWITCH_ON_FRACTION) -> pd.DataFrame:
    """Per seed and order l: the first probe step at which the contribution reaches ``fraction`` of its
    value at the last step."""
    rows = []
    for (seed, l), group in model.groupby(["seed", "l"]):
        group = group.sort_values("step")
        final = group["rms"].iloc[-1]
        reached = group[group["rms"] >= fraction * final]
        rows.append({"seed": seed, "l": l, "switch_on_step": float(reached["step"].iloc[0])})
    return pd.DataFrame(rows, columns=["seed", "l", "switch_on_step"])


def output_gain_contrast(models: pd.DataFrame, lmax_to: int = 2) -> tuple[pd.Series, int | None, tuple]:
    """Per seed: the test gain (l_max 0 → ``lmax_to``) of the output order that gains most on *validation*
    minus that of the one that gains least (scalar, vector and higher outputs).

    Choosing the pair on validation ε keeps the choice out of the test numbers, so the interval of the
    test contrast is not biased by it (a largest-minus-smallest contrast chosen on the test data would
    always look > 0). ``lmax_to`` falls back to the nearest l_max > 0 of the grid. Returns the per-seed
    contrast, the l_max used and the (most, least) pair.
    """
    empty = pd.Series(dtype=float)
    available = sorted(set(models["lmax_hidden"]) - {0})
    if not available or 0 not in set(models["lmax_hidden"]):
        return empty, None, ()
    lmax_to = min(available, key=lambda l: (abs(l - lmax_to), l))
    families = {o: study_family(models, o) for o in ("scalar", "vector", "higher")}
    if any(f.empty or not {0, lmax_to} <= set(f["lmax_hidden"]) for f in families.values()):
        return empty, lmax_to, ()
    validation = {}
    for output, family in families.items():
        by_lmax = family.groupby("lmax_hidden")["epsilon_val_best"].mean()
        validation[output] = 1 - by_lmax[lmax_to] / by_lmax[0]
    most, least = max(validation, key=validation.get), min(validation, key=validation.get)
    gains = pd.DataFrame({o: paired_gains(families[o], 0, lmax_to) for o in (most, least)}).dropna()
    return gains[most] - gains[least], lmax_to, (most, least)


def findings_table(models: pd.DataFrame, contribution: pd.DataFrame) -> pd.DataFrame:
    """The verdict table (``results/tables/findings.parquet``): rows 1a, 1b, 2a, 2b, 3, from the models
    table and the per-order contributions (``contributions``)."""
    rows = [
        lmax_gain_row("1a", study_family(models), "study"),
        lmax_gain_row("1b", matched_family(models), "matched"),
    ]
    equal = hierarchy_models(contribution, "equal") if len(contribution) else contribution
    control = "equal-channel" if len(equal) else "study-channel (no equal-channel control in this grid)"
    if not len(equal) and len(contribution):
        equal = hierarchy_models(contribution, "study")
    slopes = contribution_slopes(equal) if len(equal) else pd.DataFrame(columns=["trained", "initial"])
    rows.append(
        finding_row(
            "2a",
            f"The per-component contribution of hidden order l to the output falls with l more steeply after "
            f"training than at initialisation, in the {control} model (full output, largest l_max).",
            "slope of log contribution over l, trained minus initial, paired by seed",
            slopes["trained"] - slopes["initial"],
            -1,
        )
    )
    study = hierarchy_models(contribution, "study") if len(contribution) else contribution
    switch = switch_on_steps(study) if len(study) else pd.DataFrame(columns=["seed", "l", "switch_on_step"])
    per_seed = [_slope(g["l"], g["switch_on_step"]) for _, g in switch.groupby("seed")]
    rows.append(
        finding_row(
            "2b",
            f"Hidden orders switch on in order of l: higher orders reach {SWITCH_ON_FRACTION:.0%} of their final "
            "contribution later (study model, full output, largest l_max).",
            f"slope over l of the optimiser step reaching {SWITCH_ON_FRACTION:.0%} of the final contribution",
            per_seed,
            +1,
        )
    )
    contrast, lmax_to, pair = output_gain_contrast(models)
    most, least = pair or ("?", "?")
    rows.append(
        finding_row(
            "3",
            f"The gain from hidden l_max 0 to {lmax_to} differs between output orders (scalar, vector, higher): "
            f"the {most} output, which gains most on validation, gains more on test than the {least} output, "
            "which gains least.",
            f"relative test ε gain (l_max 0 → {lmax_to}) of the {most} minus the {least} output, paired by seed "
            "(pair chosen on validation ε)",
            contrast,
            +1,
        )
    )
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


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

"""The study's findings as numbers: one row per claim, with a statistic, its interval and a verdict.

Every statistic is computed per seed on models that share the data, the splits and the initial-weight seed
(paired); the verdict is ``e3hier.analysis.statistics.verdict``. Findings 1 and 3 are measured on test structures:
their interval (``e3hier.analysis.statistics.covering_interval``) also covers the draw of those structures (a paired
bootstrap over seeds × test structures, from the per-(model, structure) errors of the evaluation table);
finding 2 (probes, no test structures) has the t interval over seeds. Where a claim picks something (the best
l_max, the pair of output orders), each seed's pick is made on the *other* seeds' mean validation ε
(leave-one-seed-out), so neither that seed's test error nor its own validation error picked it.

Errors are on the output orders that every hidden l_max of the grid can reach (l ≤ ``reachable_lmax`` =
min(grid l_max) + ``model.lmax_edge``): ``epsilon_reachable`` per test structure, ``epsilon_val_reachable``
for validation. Row ``3-all`` keeps the study's literal version on every output order of the block.

- 1a: full output, study capacity: relative ε gain from l_max 0 to the best l_max > 0 (> 0 if it holds).
- 1b: the same with every l_max at the parameter count of the largest (``capacity: matched``).
- 2a, 2a-share, 2b, 2b-features: the hierarchy over hidden orders l (``e3hier.analysis.hierarchy_findings``).
- 3: relative ε gain from l_max 0 to 2 of the output order (scalar, vector, higher) that gains most on
  validation minus that of the one that gains least (> 0 if the difference seen on validation holds on the
  test structures, i.e. the gain differs between output orders); ``3-all`` on every output order, ``3-1to2``
  from l_max 1 to 2 on every output order (a sensitivity check without the scalar-only hidden network, from
  which every output order is reachable).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from e3hier.analysis.families import (
    diverged_seeds,
    hierarchy_models,
    largest_training_set,
    matched_family,
    on_test_split,
    study_family,
    study_models,
    trained,
)
from e3hier.analysis.hierarchy_findings import contributions, hierarchy_specs
from e3hier.analysis.statistics import (
    BOOTSTRAP_INTERVAL,
    T_INTERVAL,
    covering_interval,
    minimum_detectable_effect,
    seeds_to_decide,
    t_interval,
    verdict,
)

__all__ = [
    "FINDING_COLUMNS",
    "contributions",
    "findings_table",
    "hierarchy_models",
    "largest_training_set",
    "matched_family",
    "study_family",
    "study_models",
]

FINDING_COLUMNS = [
    "finding",
    "claim",
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "n_seeds",
    "n_structures",
    "diverged_seeds",
    "interval",
    "verdict",
    "delta",
    "mde",
    "seeds_to_decide",
    "sd_seeds",
    "direction",
]
#: The pre-declared equivalence margin δ of each row (``analysis.equivalence``'s defaults; docs/study.md says why
#: each size): relative ε gains and their contrasts 0.05 (5 % of ε); slopes over l per order: log RMS 0.1 (a
#: factor 1.1 per order), share 0.02, log settling step 0.1 (1.1 times later per order).
EQUIVALENCE = {
    "1a": 0.05,
    "1b": 0.05,
    "2a": 0.1,
    "2a-share": 0.02,
    "2b": 0.1,
    "2b-features": 0.1,
    "2c": 0.1,
    "3": 0.05,
    "3-all": 0.05,
    "3-1to2": 0.05,
}
#: The single-order outputs whose gains finding 3 contrasts.
OUTPUT_ORDERS = ("scalar", "vector", "higher")
#: The columns of the models table the findings need beyond the grid columns.
MODEL_COLUMNS = ("reachable_lmax", "epsilon_val_reachable", "epsilon_val_best")


@dataclass(frozen=True)
class Measure:
    """Which error a finding is measured on: ``test``, a column of the evaluation table (per test structure),
    and ``val``, the models table's validation ε at the kept epoch."""

    test: str
    val: str


REACHABLE = Measure("epsilon_reachable", "epsilon_val_reachable")
ALL_ORDERS = Measure("epsilon_block", "epsilon_val_best")


def gain(means):
    """Per seed: 1 - ε(second model) / ε(first model), from mean errors of shape (..., seeds, 2)."""
    return 1 - means[..., 1] / means[..., 0]


def gain_contrast(means):
    """Per seed: the gain of models 0 → 1 minus the gain of models 2 → 3 (shape (..., seeds, 4))."""
    return gain(means[..., :2]) - gain(means[..., 2:])


def leave_one_seed_out(validation: pd.DataFrame, choose) -> dict:
    """Per seed (rows of ``validation``, a seed × option table of validation ε): ``choose`` applied to the
    mean over the *other* seeds (a Series over the options); seeds without another seed, or where ``choose``
    returns None, get no choice."""
    choices = {}
    for seed in validation.index:
        others = validation.drop(index=seed).mean()
        choice = choose(others.dropna()) if len(validation) > 1 else None
        if choice is not None:
            choices[seed] = choice
    return choices


def best_lmax_choices(family: pd.DataFrame, val: str) -> dict:
    """Per seed: the l_max > 0 with the lowest mean validation ε over the other seeds."""
    above = family[family["lmax_hidden"] > 0]
    table = above.pivot_table(index="seed", columns="lmax_hidden", values=val, aggfunc="mean")
    return leave_one_seed_out(table, lambda mean: int(mean.idxmin()) if len(mean) else None)


def pair_choices(models: pd.DataFrame, val: str, lmax_from: int, lmax_to: int) -> dict:
    """Per seed: (most, least), the output orders whose gain ``lmax_from`` → ``lmax_to`` is largest and smallest
    on the other seeds' mean validation ε."""
    family = pd.concat([study_family(models, o) for o in OUTPUT_ORDERS])
    table = family.pivot_table(index="seed", columns=["output", "lmax_hidden"], values=val, aggfunc="mean")

    def choose(mean: pd.Series):
        gains = {
            o: 1 - mean[(o, lmax_to)] / mean[(o, lmax_from)]
            for o in OUTPUT_ORDERS
            if (o, lmax_to) in mean and (o, lmax_from) in mean
        }
        return (max(gains, key=gains.get), min(gains, key=gains.get)) if len(gains) >= 2 else None

    return leave_one_seed_out(table, choose) if len(table) else {}


def error_cube(test: pd.DataFrame, column: str, keys_by_seed: dict) -> tuple[np.ndarray, list]:
    """The (seeds, structures, models) errors ``column`` of each seed's models, keyed (output, l_max), on the
    test structures that every one of them has; and the seeds kept.

    A seed is kept only with every one of its models and a finite error of each on every test structure: a seed
    with a missing or broken model (NaN outputs: a member that diverged) is dropped whole, so that it cannot
    shrink the structures of every other seed."""
    if not len(test) or not keys_by_seed:
        return np.empty((0, 0, 0)), []
    # dropna=False: a NaN error stays a NaN cell (pandas would drop the row, hiding the broken model)
    wide = test.pivot_table(index=["seed", "structure"], columns=["output", "lmax_hidden"], values=column, dropna=False)
    blocks = {
        seed: wide.loc[seed, list(keys)]
        for seed, keys in sorted(keys_by_seed.items())
        if seed in wide.index.get_level_values("seed") and all(k in wide.columns for k in keys)
    }
    blocks = {seed: block for seed, block in blocks.items() if np.isfinite(block.to_numpy(dtype=float)).all()}
    if not blocks:
        return np.empty((0, 0, 0)), []
    shared = sorted(set.intersection(*(set(b.index) for b in blocks.values())))
    return np.stack([b.loc[shared].to_numpy(dtype=float) for b in blocks.values()]), list(blocks)


def verdict_row(finding, claim, statistic, interval, direction, n_structures, method, per_seed) -> dict:
    """One verdict-table row: a statistic's (estimate, low, high) ``interval``, its ``direction`` and the
    ``per_seed`` values its power is judged on (``finish_rows`` adds the margin, the verdict and the power);
    ``n_seeds`` and ``n_structures`` count what entered the statistic."""
    estimate, low, high = interval
    values = np.asarray(list(per_seed), dtype=float)
    values = values[np.isfinite(values)]
    return {
        "finding": finding,
        "claim": claim,
        "statistic": statistic,
        "estimate": estimate,
        "ci_low": low,
        "ci_high": high,
        "n_seeds": len(values),
        "n_structures": n_structures,
        "diverged_seeds": "",
        "interval": method,
        "direction": direction,
        "sd_seeds": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
    }


def bootstrap_row(finding: str, claim: str, statistic: str, cube: np.ndarray, function, direction: int) -> dict:
    """One verdict-table row of a statistic of per-(model, structure) errors (``covering_interval``)."""
    interval = covering_interval(cube, function) if cube.size else (math.nan,) * 3
    per_seed = function(cube.mean(axis=1)) if cube.size else []
    return verdict_row(finding, claim, statistic, interval, direction, int(cube.shape[1]), BOOTSTRAP_INTERVAL, per_seed)


def t_row(finding: str, claim: str, statistic: str, per_seed, direction: int) -> dict:
    """One verdict-table row from the per-seed values of a statistic (t interval over seeds)."""
    values = np.asarray(list(per_seed), dtype=float)
    return verdict_row(finding, claim, statistic, t_interval(values), direction, pd.NA, T_INTERVAL, values)


def finish_rows(table: pd.DataFrame, equivalence: dict) -> pd.DataFrame:
    """Each row's equivalence margin δ (``equivalence[finding]``, pre-declared in ``analysis.equivalence``), its
    verdict (``statistics.verdict``), the minimum detectable effect of its seeds (``mde``) and, for an
    inconclusive row, the seeds that would decide it at the same spread (``seeds_to_decide``)."""
    missing = sorted(set(table["finding"]) - set(equivalence))
    if missing:
        raise ValueError(f"analysis.equivalence: no margin for finding(s) {missing}")
    table = table.copy()
    table["delta"] = table["finding"].map(equivalence).astype(float)
    table["verdict"] = [verdict(r.ci_low, r.ci_high, r.direction, r.delta) for r in table.itertuples(index=False)]
    table["mde"] = [minimum_detectable_effect(r.sd_seeds, r.n_seeds) for r in table.itertuples(index=False)]
    table["seeds_to_decide"] = [
        seeds_to_decide(r.estimate, r.sd_seeds, r.delta) if r.verdict == "inconclusive" else math.nan
        for r in table.itertuples(index=False)
    ]
    return table


def _counted(choices) -> str:
    return ", ".join(f"{c} for {n} seed{'s' * (n > 1)}" for c, n in sorted(Counter(choices).items())) or "none"


def lmax_gain_row(finding: str, models: pd.DataFrame, test: pd.DataFrame, capacity: str, reachable: int) -> dict:
    """1a or 1b: the full output's gain from l_max 0 to each seed's best l_max > 0 (``best_lmax_choices``)."""
    choices = best_lmax_choices(models, REACHABLE.val)
    cube, seeds = error_cube(test, REACHABLE.test, {s: [("full", 0), ("full", b)] for s, b in choices.items()})
    picked = _counted(f"l_max {choices[s]}" for s in seeds)
    return bootstrap_row(
        finding,
        f"Full output, {capacity} capacity: the best hidden l_max > 0 has a lower test ε than l_max 0, on the "
        f"output orders l ≤ {reachable} that every hidden l_max reaches (best l_max chosen per seed on the other "
        f"seeds' validation ε: {picked}).",
        "relative test ε gain 1 - ε(best l_max) / ε(l_max 0), paired by seed and test structure",
        cube,
        gain,
        +1,
    )


def output_contrast_row(finding, models, test, measure, lmax_from, lmax_to, scope, note="") -> dict:
    """3, 3-all, 3-1to2: the test gain ``lmax_from`` → ``lmax_to`` of the output order that gains most on the
    other seeds' validation ε minus that of the one that gains least (``pair_choices``)."""
    choices = pair_choices(models, measure.val, lmax_from, lmax_to)
    keys = {s: [(m, lmax_from), (m, lmax_to), (w, lmax_from), (w, lmax_to)] for s, (m, w) in choices.items()}
    families = pd.concat([study_family(test, o) for o in OUTPUT_ORDERS]) if len(test) else test
    cube, seeds = error_cube(families, measure.test, keys)
    pairs = _counted(f"{choices[s][0]} − {choices[s][1]}" for s in seeds)
    return bootstrap_row(
        finding,
        f"The gain from hidden l_max {lmax_from} to {lmax_to} differs between output orders (scalar, vector, "
        f"higher), {scope}: for each seed, the output that gains most on the other seeds' validation ε gains more "
        f"on test than the one that gains least (pairs: {pairs}).{note}",
        f"relative test ε gain (l_max {lmax_from} → {lmax_to}) of the most minus the least gaining output, paired "
        "by seed and test structure (pair chosen on the other seeds' validation ε)",
        cube,
        gain_contrast,
        +1,
    )


def findings_table(
    models: pd.DataFrame,
    evaluation: pd.DataFrame,
    features: pd.DataFrame,
    test_split: str,
    equivalence: dict | None = None,
) -> pd.DataFrame:
    """The verdict table (``results/tables/findings.parquet``): rows 1a, 1b, 2a, 2a-share, 2b, 2b-features, 3,
    3-all, 3-1to2.

    Parameters
    ----------
    models : pandas.DataFrame
        The models table (``results/tables/models.parquet``).
    evaluation : pandas.DataFrame
        Every model's ``eval.parquet`` with its grid columns and ``epsilon_reachable``
        (``e3hier.analysis.tables.evaluation_table``).
    features : pandas.DataFrame
        Every model's probes with their grid columns (``results/tables/features.parquet``).
    test_split : str
        The first of ``train.test_splits``: the split of the models table's test ε, and the only one used here.
    equivalence : dict, optional
        ``analysis.equivalence``: the margin δ of each row (default ``EQUIVALENCE``; ``finish_rows``).

    A model that diverged (``diverged``) enters no statistic: each row's ``n_seeds`` counts the seeds used, and
    ``diverged_seeds`` lists the seeds left out because a model of the row's family diverged.
    """
    missing = [c for c in MODEL_COLUMNS if c not in models]
    if missing:
        raise ValueError(f"models table: no column {missing} (written by training: rerun the train jobs)")
    if REACHABLE.test not in evaluation:
        raise ValueError(f"evaluation table: no column {REACHABLE.test!r} (e3hier.analysis.tables.evaluation_table)")
    everything = models
    models, test, features = trained(models), trained(on_test_split(evaluation, test_split)), trained(features)
    full = study_family(models)
    reachable = int(full["reachable_lmax"].min()) if len(full) else int(models["reachable_lmax"].max())
    lowest = int(models["lmax_hidden"].min())
    scope = f"on each output's orders that every hidden l_max reaches (l ≤ {reachable}: l_max {lowest} + lmax_edge)"
    rows = [
        lmax_gain_row("1a", study_family(models), study_family(test), "study", reachable),
        lmax_gain_row("1b", matched_family(models), matched_family(test), "matched", reachable),
    ]
    rows += [t_row(**spec) for spec in hierarchy_specs(features)]
    grid = sorted(set(models["lmax_hidden"]))
    lmax_to = min([l for l in grid if l > 0] or [2], key=lambda l: (abs(l - 2), l))
    artefact = (
        " Artefact of this literal version: hidden l_max 0 reaches output orders up to model.lmax_edge only (the "
        "study's edge harmonics stop at l = 3, so an l = 4 output cannot be reached from hidden l_max 0): part of "
        "the gain is orders that l_max 0 cannot produce at all."
    )
    absent = "" if {1, 2} <= set(grid) else " (l_max 1 and 2 are not both in this grid)"
    rows += [
        output_contrast_row("3", models, test, REACHABLE, 0, lmax_to, scope),
        output_contrast_row("3-all", models, test, ALL_ORDERS, 0, lmax_to, "on every output order", artefact),
        output_contrast_row(
            "3-1to2", models, test, ALL_ORDERS, 1, 2, "on every output order (all reachable from l_max 1)", absent
        ),
    ]
    table = finish_rows(pd.DataFrame(rows), {**EQUIVALENCE, **(equivalence or {})})[FINDING_COLUMNS]
    table["n_structures"] = table["n_structures"].astype("Int64")
    table["diverged_seeds"] = [
        "/".join(map(str, diverged_seeds(family_of(finding, everything)))) for finding in table["finding"]
    ]
    return table


def family_of(finding: str, models: pd.DataFrame) -> pd.DataFrame:
    """The models table's rows of the models a finding row uses (its seeds' diverged models are reported)."""
    if finding == "1a":
        return study_family(models)
    if finding == "1b":
        return matched_family(models)
    if finding.startswith("2"):
        return pd.concat([hierarchy_models(models, "study"), hierarchy_models(models, "equal")])
    return pd.concat([study_family(models, o) for o in OUTPUT_ORDERS])

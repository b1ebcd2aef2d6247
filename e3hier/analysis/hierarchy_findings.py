"""Finding 2 as per-seed statistics: the hierarchy of hidden orders l, from the probes (``features.parquet``).

The study's abstract claims that the networks learn "a hierarchy of features by l during training,
reminiscent of a multipole expansion". This project's sharper reading has two parts, each measured two ways:

- 2a (the size falls with l, beyond what initialisation and channel counts make): the slope over hidden order
  l of log(RMS per component of order l's contribution), after training minus at initialisation (step 0),
  in the equal-channel control; and ``2a-share``, which does not rest on RMS: the slope over l of order l's
  additive share ⟨c_l, y⟩/‖y‖² of the prediction y (the shares sum to 1 over l, so a share can be negative
  and no logarithm is taken), trained minus initial. Both are claimed < 0.
- 2b (higher orders settle later): the settling step of a series x(t) is the first step, linearly
  interpolated between probes, at which |x(t) - x(0)| >= ``SETTLE_FRACTION`` |x(T) - x(0)| (T: the last
  probe); it works whether x grows or shrinks. A series whose total relative change |x(T) - x(0)| / |x(0)| is
  below ``MOVE_FLOOR`` is excluded (its settling step would time noise). The statistic is the slope over l of
  log(settling step): probes are log-spaced and a delay that multiplies (order l settles k times later than
  order l - 1) is a straight line in log steps, whatever the number of steps or the learning rate. Claimed
  > 0. ``2b`` uses the contributions, ``2b-features`` the last hidden layer's features (the layer whose
  orders the contributions split; its two parities are averaged in log), both in the study model.
- 2c (the study's own measurement: low output orders are learned first): the slope over *output* order l of
  log settling step of ε_l, the density error of order l's functions alone (% of N_e) on the probed validation
  structures at each probe step, with 2b's settling rule. Claimed > 0. An order the model cannot reach does not
  move and falls under ``MOVE_FLOOR``.

Contributions and shares are over the output orders that every hidden order of the model can reach
(``l_out == COMMON_ORDERS``), so an order is not judged on outputs it cannot produce.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from e3hier.analysis.families import hierarchy_models
from e3hier.training.features import OUTPUT_EPSILON

#: ``l_out`` of the probe rows over the output orders that every hidden order of the model can reach
#: (the value of ``e3hier.training.features.COMMON_ORDERS``).
COMMON_ORDERS = -2
#: ``l_out`` of the probe rows over the whole output.
ALL_ORDERS = -1
#: A series has settled when it has made this fraction of its change from step 0 to the last probe.
SETTLE_FRACTION = 0.9
#: Pre-declared floor: a series whose relative change |x(T) - x(0)| / |x(0)| is below it is excluded from 2b.
MOVE_FLOOR = 0.05
STUDY_CLAIM = (
    'The study (abstract): the networks learn "a hierarchy of features by l during training, reminiscent of a '
    'multipole expansion". Sharper reading tested here: '
)


def contributions(features: pd.DataFrame) -> pd.DataFrame:
    """Per model and probe step: each hidden order's contribution to the whole output (RMS per
    component) and its share of their sum (the ``contributions`` table of the hierarchy figure)."""
    rows = features[(features["kind"] == "contribution") & (features["l_out"] == ALL_ORDERS)]
    keys = [c for c in features.columns if c not in ("kind", "layer", "l", "parity", "l_out", "value", "epoch")]
    table = rows[keys + ["epoch", "l", "value"]].rename(columns={"value": "rms"}).copy()
    table["share"] = table["rms"] / table.groupby(keys)["rms"].transform("sum")
    return table.reset_index(drop=True)


def _slope(x, y) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 and len(set(x[ok])) >= 2 else math.nan


def probe_rows(features: pd.DataFrame, kind: str, channels: str) -> pd.DataFrame:
    """The ``kind`` rows of the hierarchy model (``hierarchy_models``) with ``channels``: for contributions and
    shares those over the commonly reachable output orders, for features those of the last hidden layer."""
    part = hierarchy_models(features, channels) if len(features) else features
    part = part[part["kind"] == kind] if len(part) else part
    if not len(part):
        return part
    if kind == "feature":
        return part[part["layer"] == part["layer"].max()]
    return part[part["l_out"] == COMMON_ORDERS]


def initial_and_trained_slopes(rows: pd.DataFrame, transform=np.log) -> pd.DataFrame:
    """Per seed: slope over l of ``transform(value)`` at initialisation (the first probe, step 0) and after
    training (the last probe)."""
    out = []
    for seed, group in rows.groupby("seed") if len(rows) else ():
        by_l = group.groupby(["step", "l"])["value"].mean()
        first, last = by_l.loc[group["step"].min()], by_l.loc[group["step"].max()]
        out.append(
            {
                "seed": seed,
                "initial": _slope(first.index, transform(first.to_numpy())),
                "trained": _slope(last.index, transform(last.to_numpy())),
            }
        )
    return pd.DataFrame(out, columns=["seed", "initial", "trained"])


def settling_step(steps, values, fraction: float = SETTLE_FRACTION, floor: float = MOVE_FLOOR) -> float:
    """The first step, linearly interpolated between probes, at which ``|x - x[0]|`` reaches ``fraction`` of
    ``|x[-1] - x[0]|`` (``steps`` ascending); NaN when the relative change is below ``floor``."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    total = abs(values[-1] - values[0])
    if not math.isfinite(total) or total == 0 or total < floor * abs(values[0]):
        return math.nan
    moved = np.abs(values - values[0])
    i = int(np.argmax(moved >= fraction * total))  # >= 1: moved[0] = 0 < fraction * total
    before = moved[i - 1]
    return float(steps[i - 1] + (fraction * total - before) / (moved[i] - before) * (steps[i] - steps[i - 1]))


def settling_steps(rows: pd.DataFrame, fraction: float = SETTLE_FRACTION, floor: float = MOVE_FLOOR) -> pd.DataFrame:
    """Per seed, order l and parity: ``settling_step`` of the probe value (NaN for a series below ``floor``)."""
    out = []
    for (seed, l, parity), group in rows.groupby(["seed", "l", "parity"]) if len(rows) else ():
        series = group.groupby("step")["value"].mean()
        step = settling_step(series.index, series.to_numpy(), fraction, floor)
        out.append({"seed": seed, "l": l, "parity": parity, "settling_step": step})
    return pd.DataFrame(out, columns=["seed", "l", "parity", "settling_step"])


def settling_slopes(rows: pd.DataFrame) -> pd.Series:
    """Per seed: slope over l of log settling step (parities averaged in log; excluded series left out)."""
    steps = settling_steps(rows)
    steps["log_step"] = np.log(steps["settling_step"])
    by_l = steps.groupby(["seed", "l"])["log_step"].mean().reset_index()
    return pd.Series({seed: _slope(g["l"], g["log_step"]) for seed, g in by_l.groupby("seed")}, dtype=float)


def output_order_rows(features: pd.DataFrame) -> pd.DataFrame:
    """The ``output_epsilon`` probe rows (ε_l of each output order l on the probed structures) of the study model,
    full output, largest l_max (``hierarchy_models``)."""
    part = hierarchy_models(features, "study") if len(features) else features
    return part[part["kind"] == OUTPUT_EPSILON] if len(part) else part


def hierarchy_specs(features: pd.DataFrame) -> list[dict]:
    """Rows 2a, 2a-share, 2b, 2b-features and 2c as ``finding``, ``claim``, ``statistic``, ``per_seed`` (the
    per-seed values) and ``direction``."""
    channels, control = "equal", "equal-channel control"
    if not len(probe_rows(features, "contribution", "equal")):
        channels, control = "study", "study's channels (no equal-channel control in this grid)"
    where = f"{control}, full output, largest l_max"
    common = "on the output orders every hidden order can reach"
    size = initial_and_trained_slopes(probe_rows(features, "contribution", channels))
    share = initial_and_trained_slopes(probe_rows(features, "share", channels), transform=lambda v: v)
    change = f"{SETTLE_FRACTION:.0%} of their change from initialisation (orders changing < {MOVE_FLOOR:.0%} excluded)"
    return [
        {
            "finding": "2a",
            "claim": STUDY_CLAIM + f"the per-component contribution of hidden order l to the output ({common}) "
            f"falls with l more steeply after training than at initialisation ({where}).",
            "statistic": "slope over l of log RMS contribution, trained minus initial (step 0), per seed",
            "per_seed": size["trained"] - size["initial"],
            "direction": -1,
        },
        {
            "finding": "2a-share",
            "claim": STUDY_CLAIM + f"hidden order l's additive share of the prediction ({common}) falls with l "
            f"more steeply after training than at initialisation ({where}); no RMS involved.",
            "statistic": "slope over l of the share ⟨c_l, y⟩/‖y‖², trained minus initial (step 0), per seed",
            "per_seed": share["trained"] - share["initial"],
            "direction": -1,
        },
        {
            "finding": "2b",
            "claim": STUDY_CLAIM + f"higher hidden orders settle later: order l's contribution ({common}) "
            f"makes {change.replace('their', 'its')} at a later step (study model, full output, largest l_max).",
            "statistic": "slope over l of log settling step of the contribution, per seed",
            "per_seed": settling_slopes(probe_rows(features, "contribution", "study")),
            "direction": +1,
        },
        {
            "finding": "2b-features",
            "claim": STUDY_CLAIM + f"higher orders of the last hidden layer's features make {change} at a later "
            "step (study model, full output, largest l_max).",
            "statistic": "slope over l of log settling step of the last hidden layer's RMS feature (parities "
            "averaged in log), per seed",
            "per_seed": settling_slopes(probe_rows(features, "feature", "study")),
            "direction": +1,
        },
        {
            "finding": "2c",
            "claim": "The study's own measurement (its training script logs the test ε of each output order l "
            f"per epoch): low output orders are learned first; the density error of output order l makes {change} "
            "at a later step for higher l (study model, full output, largest l_max; ε_l on the probed validation "
            "structures, Becke grids).",
            "statistic": "slope over output order l of log settling step of ε_l, per seed",
            "per_seed": settling_slopes(output_order_rows(features)),
            "direction": +1,
        },
    ]

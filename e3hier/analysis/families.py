"""Which models measure which finding: selections of rows by the grid columns (``lmax_hidden``, ``output``,
``capacity``, ``channels``, ``seed``, ``n_train``), for the models table, the evaluation table and the probes
alike."""

from __future__ import annotations

import pandas as pd


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


def hierarchy_models(frame: pd.DataFrame, channels: str, output: str = "full") -> pd.DataFrame:
    """Rows (probes or contributions) of the models that measure finding 2: one output at study capacity,
    the given channels, the largest training size and the largest l_max."""
    part = frame[(frame["output"] == output) & (frame["capacity"] == "study") & (frame["channels"] == channels)]
    part = largest_training_set(part)
    return part[part["lmax_hidden"] == part["lmax_hidden"].max()] if len(part) else part


def on_test_split(evaluation: pd.DataFrame, split: str) -> pd.DataFrame:
    """The evaluation rows of the test split ``split`` (the first of ``train.test_splits``, whatever its name: the
    split of the models table's ``epsilon_test*``). No rows is an error: another split is never substituted."""
    test = evaluation[evaluation["split"] == split]
    if test.empty:
        found = sorted(set(evaluation["split"])) if "split" in evaluation else []
        raise ValueError(
            f"evaluation table: no rows of the test split {split!r} (the first of train.test_splits; splits found: "
            f"{found}); the findings are measured on that split only"
        )
    return test


def trained(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of models that did not diverge (``diverged`` False or absent): a diverged ensemble member's
    record ends at its last good epoch, and it enters no statistic as if trained."""
    return frame[~frame["diverged"].fillna(False).astype(bool)] if "diverged" in frame else frame


def diverged_seeds(frame: pd.DataFrame) -> list[int]:
    """The seeds of the rows of diverged models (``trained``'s complement), sorted."""
    if "diverged" not in frame or frame.empty:
        return []
    return sorted(int(s) for s in frame.loc[frame["diverged"].fillna(False).astype(bool), "seed"].unique())

"""The study's figures (seaborn). Each function takes tables and returns a matplotlib Figure.

Colours: orders l always use ``L_PALETTE``; hidden l_max uses ``LMAX_PALETTE``;
output orders use ``OUTPUT_PALETTE`` — the same in every figure. Lines are means over seeds; every
band is the 95 % Student-t interval of that mean (``e3hier.analysis.statistics.errorbar``).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from e3hier.analysis.findings import matched_family, study_models  # noqa: E402
from e3hier.analysis.statistics import errorbar  # noqa: E402
from e3hier.io import atomic_path  # noqa: E402

OUTPUT_ORDER = ["scalar", "vector", "higher", "full"]
L_PALETTE = dict(zip(range(5), sns.color_palette("colorblind", 5)))
LMAX_PALETTE = dict(zip(range(5), sns.color_palette("viridis", 5)))
OUTPUT_PALETTE = dict(zip(OUTPUT_ORDER, sns.color_palette("Set2", 4)))
EPSILON_LABEL = "density error ε (%)"
L2_LABEL = "L2 density error 100·‖Δρ‖/‖ρ‖ (%)"
VERDICT_PALETTE = {"supported": "#1b9e77", "not_supported": "#d95f02", "absent": "#e6ab02", "inconclusive": "#7570b3"}

sns.set_theme(context="paper", style="whitegrid")


def save_figure(fig, png_path, pdf_path=None, dpi: int = 150) -> None:
    """Write PNG (and PDF) atomically, then close the figure."""
    for path, kwargs in ((png_path, {"dpi": dpi}), (pdf_path, {})):
        if path is None:
            continue
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], bbox_inches="tight", **kwargs)
    plt.close(fig)


def nothing_to_show(title: str, reason: str):
    """A figure that says why it is empty: every figure of a grid the schema accepts is drawn, a degenerate
    one (one l_max, one output, one seed, no controls) too."""
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, f"nothing to show:\n{reason}", ha="center", va="center", wrap=True)
    ax.set_title(title)
    return fig


def outputs_present(frame: pd.DataFrame) -> list[str]:
    return [o for o in OUTPUT_ORDER if o in set(frame["output"])]


def epsilon_vs_lmax(models: pd.DataFrame):
    """Test ε against hidden l_max, one line per output order (mean over seeds, 95 % t band).

    Left: ε of the whole density (outside its block a model leaves the free-atom reference).
    Right: ε of the predicted block alone, the number that compares output orders; the dashed line is
    the full output at matched capacity (every l_max at the parameter count of the largest). An open
    marker flags a model with an output order it cannot reach (l > l_max + lmax_edge: exactly the
    free-atom reference there).
    """
    study = study_models(models)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), layout="constrained")
    for ax, column, title in (
        (axes[0], "epsilon_test", "whole density"),
        (axes[1], "epsilon_test_block", "predicted block"),
    ):
        sns.lineplot(
            data=study,
            x="lmax_hidden",
            y=column,
            hue="output",
            hue_order=outputs_present(study),
            palette=OUTPUT_PALETTE,
            marker="o",
            errorbar=errorbar,
            ax=ax,
        )
        ax.set(
            xlabel="hidden l_max",
            ylabel=f"test {EPSILON_LABEL}",
            yscale="log",
            title=title,
            xticks=sorted(models["lmax_hidden"].unique()),
        )
        if "unreachable_l" in study:
            flagged = study[study["unreachable_l"].fillna("").astype(str) != ""]
            means = flagged.groupby(["output", "lmax_hidden", "unreachable_l"], as_index=False)[column].mean()
            for _, row in means.iterrows():
                ax.plot(
                    row["lmax_hidden"],
                    row[column],
                    marker="o",
                    markersize=11,
                    markerfacecolor="none",
                    markeredgecolor="black",
                    linestyle="none",
                )
                ax.annotate(
                    f"l={row['unreachable_l']} unreachable",
                    (row["lmax_hidden"], row[column]),
                    fontsize=6,
                    xytext=(6, -2),
                    textcoords="offset points",
                )
    matched = matched_family(models) if "capacity" in models else models.iloc[:0]
    if matched["capacity"].eq("matched").any():
        sns.lineplot(
            data=matched,
            x="lmax_hidden",
            y="epsilon_test_block",
            color=OUTPUT_PALETTE["full"],
            linestyle="--",
            marker="s",
            errorbar=errorbar,
            ax=axes[1],
            label="full, matched capacity",
        )
    for ax in axes:
        ax.legend(title="output", fontsize=7)
    axes[0].axhline(models["epsilon_test_baseline"].mean(), color="grey", linestyle="--", linewidth=1)
    axes[0].annotate(
        "free-atom baseline",
        (0, models["epsilon_test_baseline"].mean()),
        fontsize=7,
        color="grey",
        xytext=(2, 3),
        textcoords="offset points",
    )
    return fig


def line_grid(data: pd.DataFrame, x: str, y: str, hue: str, labels: tuple[str, str], logx: bool = False, **relplot):
    """A seaborn line grid on log axes (y; x too with ``logx``): means over seeds with 95 % t bands, facets and
    styles as ``relplot`` (``sns.relplot``'s arguments, e.g. ``col``, ``palette``, ``height``); ``labels``: x, y."""
    grid = sns.relplot(data=data, x=x, y=y, hue=hue, kind="line", errorbar=errorbar, **relplot)
    grid.set(**({"xscale": "log"} if logx else {}), yscale="log")
    grid.set_axis_labels(*labels)
    return grid


def learning_curves(metrics: pd.DataFrame):
    """Validation L2 error (coefficient space, ``val_l2``) against epoch, one panel per output order, one colour per
    hidden l_max (study grid)."""
    metrics = study_models(metrics)
    labels = ("epoch", f"validation {L2_LABEL}")
    grid = line_grid(
        metrics,
        "epoch",
        "val_l2",
        "lmax_hidden",
        labels,
        palette=LMAX_PALETTE,
        col="output",
        col_order=outputs_present(metrics),
        height=2.6,
        aspect=1.0,
        facet_kws={"sharey": False},
    )
    grid.legend.set_title("hidden l_max")
    return grid.figure


def findings(table: pd.DataFrame):
    """The verdict table as a forest plot: each claim's statistic with its 95 % t interval over seeds,
    coloured by verdict; the dotted line is the null (0)."""
    fig, axes = plt.subplots(len(table), 1, figsize=(6.5, 1.0 * len(table) + 0.6), layout="constrained", squeeze=False)
    for ax, (_, row) in zip(axes[:, 0], table.iterrows()):
        colour = VERDICT_PALETTE.get(row["verdict"], "grey")
        low, high = row["ci_low"], row["ci_high"]
        if np.isfinite(low) and np.isfinite(high):
            ax.errorbar(
                row["estimate"],
                0,
                xerr=[[row["estimate"] - low], [high - row["estimate"]]],
                fmt="o",
                color=colour,
                capsize=4,
            )
        else:
            ax.plot(row["estimate"], 0, "o", color=colour)
        ax.axvline(0, color="grey", linestyle=":")
        ax.set_yticks([])
        ax.set_title(
            f"{row['finding']}: {row['verdict']} (n = {row['n_seeds']} seeds) — {row['statistic']}",
            fontsize=7,
            loc="left",
        )
    return fig


def data_efficiency(models: pd.DataFrame):
    """Test ε against training-set size (log-log), one panel per output order, one colour per l_max."""
    models = study_models(models)
    labels = ("training structures", f"test {EPSILON_LABEL}")
    return line_grid(
        models,
        "n_train",
        "epsilon_test",
        "lmax_hidden",
        labels,
        logx=True,
        palette=LMAX_PALETTE,
        col="output",
        col_order=outputs_present(models),
        marker="o",
        height=2.6,
    ).figure


def transfer(table: pd.DataFrame):
    """Mean ε per test split against hidden l_max: the larger clusters measure transfer."""
    table = study_models(table)
    return line_grid(
        table,
        "lmax_hidden",
        "epsilon",
        "output",
        ("hidden l_max", EPSILON_LABEL),
        hue_order=outputs_present(table),
        palette=OUTPUT_PALETTE,
        col="split",
        marker="o",
        height=2.8,
    ).figure

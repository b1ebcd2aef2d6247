"""The study's figures (seaborn). Each function takes tables and returns a matplotlib Figure.

Colours: orders l always use ``L_PALETTE``; hidden l_max uses ``LMAX_PALETTE``;
output orders use ``OUTPUT_PALETTE`` — the same in every figure.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from e3hier.io import atomic_path  # noqa: E402

OUTPUT_ORDER = ["scalar", "vector", "higher", "full"]
L_PALETTE = dict(zip(range(5), sns.color_palette("colorblind", 5)))
LMAX_PALETTE = dict(zip(range(5), sns.color_palette("viridis", 5)))
OUTPUT_PALETTE = dict(zip(OUTPUT_ORDER, sns.color_palette("Set2", 4)))
EPSILON_LABEL = "density error ε (%)"

sns.set_theme(context="paper", style="whitegrid")


def save_figure(fig, png_path, pdf_path=None, dpi: int = 150) -> None:
    """Write PNG (and PDF) atomically, then close the figure."""
    for path, kwargs in ((png_path, {"dpi": dpi}), (pdf_path, {})):
        if path is None:
            continue
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], bbox_inches="tight", **kwargs)
    plt.close(fig)


def outputs_present(frame: pd.DataFrame) -> list[str]:
    return [o for o in OUTPUT_ORDER if o in set(frame["output"])]


def epsilon_vs_lmax(models: pd.DataFrame):
    """Test ε against hidden l_max, one line per output order; the band spans the seeds.

    Left: ε of the whole density (outside its block a model leaves the free-atom reference).
    Right: ε of the predicted block alone, the number that compares output orders.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), layout="constrained")
    for ax, column, title in ((axes[0], "epsilon_test", "whole density"), (axes[1], "epsilon_test_block", "predicted block")):
        sns.lineplot(data=models, x="lmax_hidden", y=column, hue="output", hue_order=outputs_present(models),
                     palette=OUTPUT_PALETTE, marker="o", errorbar=("pi", 100), ax=ax)  # fmt: skip
        ax.set(xlabel="hidden l_max", ylabel=f"test {EPSILON_LABEL}", yscale="log", title=title,
               xticks=sorted(models["lmax_hidden"].unique()))  # fmt: skip
        ax.legend(title="output", fontsize=7)
    axes[0].axhline(models["epsilon_test_baseline"].mean(), color="grey", linestyle="--", linewidth=1)
    axes[0].annotate("free-atom baseline", (0, models["epsilon_test_baseline"].mean()), fontsize=7, color="grey",
                     xytext=(2, 3), textcoords="offset points")  # fmt: skip
    return fig


def learning_curves(metrics: pd.DataFrame):
    """Validation ε against epoch, one panel per output order, one colour per hidden l_max."""
    grid = sns.relplot(data=metrics, x="epoch", y="val_epsilon", hue="lmax_hidden", palette=LMAX_PALETTE,
                       col="output", col_order=outputs_present(metrics), kind="line", errorbar=("pi", 100),
                       height=2.6, aspect=1.0, facet_kws={"sharey": False})  # fmt: skip
    grid.set(yscale="log")
    grid.set_axis_labels("epoch", f"validation {EPSILON_LABEL}")
    grid.legend.set_title("hidden l_max")
    return grid.figure


def hierarchy(learning: pd.DataFrame, features: pd.DataFrame, lmax: int, output: str = "full"):
    """ε_l / baseline_l and hidden-feature norm per l against epoch, for one model family (log scales)."""
    pick = (learning["lmax_hidden"] == lmax) & (learning["output"] == output)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained")
    sns.lineplot(data=learning[pick], x="epoch", y="ratio", hue="l", palette=L_PALETTE, errorbar=("pi", 100), ax=left)
    left.set(yscale="log", ylabel="ε_l / free-atom ε_l (validation)", title=f"error per output order l")
    left.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    feats = features[(features["kind"] == "feature") & (features["lmax_hidden"] == lmax) & (features["output"] == output)]
    per_l = feats.groupby(["seed", "epoch", "l"], as_index=False)["value"].mean()
    sns.lineplot(data=per_l, x="epoch", y="value", hue="l", palette=L_PALETTE, errorbar=("pi", 100), ax=right)
    right.set(yscale="log", ylabel="mean squared hidden-feature norm", title="hidden features per order l")
    fig.suptitle(f"{output} output, hidden l_max = {lmax}")
    return fig


def ablation_heatmap(ablation: pd.DataFrame, lmax: int):
    """Δε (test, %) when the hidden channels of one order l are zeroed in every layer, per output order."""
    single = ablation[(ablation["mode"] == "single") & (ablation["lmax_hidden"] == lmax)]
    table = single.groupby(["zeroed_l", "output"])["delta_epsilon"].mean().unstack("output")
    table = table.reindex(columns=[o for o in OUTPUT_ORDER if o in table.columns])
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    sns.heatmap(table, annot=True, fmt=".2f", cmap="rocket_r", cbar_kws={"label": "Δε (%)"}, ax=ax)
    ax.set(xlabel="output order", ylabel="zeroed hidden order l", title=f"ablation, hidden l_max = {lmax}")
    return fig


def density_planes(planes: pd.DataFrame, labels: list[str]):
    """DFT density and predictions on a plane (log colour scale), and prediction − DFT (symmetric scale)."""
    n = len(labels)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 6.4), squeeze=False, layout="constrained")
    pivot = {lab: g.pivot(index="v", columns="u", values="density") for lab, g in planes.groupby("label")}
    reference = pivot[labels[0]]
    extent = [reference.columns.min(), reference.columns.max(), reference.index.min(), reference.index.max()]
    vmax = float(reference.to_numpy().max())
    differences = [pivot[lab] - reference for lab in labels[1:]]
    dmax = max(float(np.abs(d.to_numpy()).max()) for d in differences) if differences else 1.0
    for k, lab in enumerate(labels):
        ax = axes[0, k]
        image = ax.imshow(np.clip(pivot[lab].to_numpy(), 1e-4, None), origin="lower", extent=extent, cmap="mako",
                          norm=matplotlib.colors.LogNorm(vmin=1e-4, vmax=vmax))  # fmt: skip
        ax.set(title=f"ρ: {lab}", xlabel="u (Å)", ylabel="v (Å)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="e/bohr³")
        ax = axes[1, k]
        if k == 0:
            ax.axis("off")
            continue
        image = ax.imshow(differences[k - 1].to_numpy(), origin="lower", extent=extent, cmap="RdBu_r", vmin=-dmax, vmax=dmax)
        ax.set(title=f"{lab} − DFT", xlabel="u (Å)", ylabel="v (Å)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="e/bohr³")
    return fig


def data_efficiency(models: pd.DataFrame):
    """Test ε against training-set size (log-log), one panel per output order, one colour per l_max."""
    grid = sns.relplot(data=models, x="n_train", y="epsilon_test", hue="lmax_hidden", palette=LMAX_PALETTE,
                       col="output", col_order=outputs_present(models), kind="line", marker="o",
                       errorbar=("pi", 100), height=2.6)  # fmt: skip
    grid.set(xscale="log", yscale="log")
    grid.set_axis_labels("training structures", f"test {EPSILON_LABEL}")
    return grid.figure


def transfer(table: pd.DataFrame):
    """Mean ε per test split against hidden l_max: the larger clusters measure transfer."""
    grid = sns.relplot(data=table, x="lmax_hidden", y="epsilon", hue="output", hue_order=outputs_present(table),
                       palette=OUTPUT_PALETTE, col="split", kind="line", marker="o", errorbar=("pi", 100),
                       height=2.8)  # fmt: skip
    grid.set(yscale="log")
    grid.set_axis_labels("hidden l_max", EPSILON_LABEL)
    return grid.figure

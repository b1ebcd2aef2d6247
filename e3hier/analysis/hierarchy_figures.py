"""The figures of the hierarchy (finding 2): contributions of each hidden order l to the output, hidden-feature
sizes during training, the ablation of hidden orders, and the predicted densities on a plane.

Same conventions as ``e3hier.analysis.figures`` (its palettes, labels and intervals).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on a cluster node

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from e3hier.analysis.figures import (  # noqa: E402
    L_PALETTE,
    OUTPUT_ORDER,
    VERDICT_PALETTE,
    line_grid,
    nothing_to_show,
)
from e3hier.analysis.findings import hierarchy_models, study_family, study_models  # noqa: E402
from e3hier.analysis.statistics import errorbar  # noqa: E402
from e3hier.training.features import OUTPUT_EPSILON  # noqa: E402


def hierarchy(contributions: pd.DataFrame, models: pd.DataFrame, output: str = "full"):
    """Finding 2: each hidden order's share of the output against optimiser step (step 0: random
    initialisation), mean over seeds with 95 % t bands, for the study's channels and the equal-channel
    control at the largest l_max; right, the size of the target itself per output order l, as stored
    and as the loss sees it (``train.target_scaling``), so a hierarchy that only mirrors the target or
    the loss weighting shows as such."""
    part = pd.concat([hierarchy_models(contributions, channels, output) for channels in ("study", "equal")])
    lmax = int(part["lmax_hidden"].max())
    panels = [c for c in ("study", "equal") if (part["channels"] == c).any()]
    fig, axes = plt.subplots(
        1,
        len(panels) + 1,
        figsize=(3.6 * (len(panels) + 1), 3.4),
        layout="constrained",
        gridspec_kw={"width_ratios": [1.3] * len(panels) + [1]},
    )
    for ax, channels in zip(axes, panels):
        data = part[part["channels"] == channels]
        sns.lineplot(data=data, x="step", y="share", hue="l", palette=L_PALETTE, errorbar=errorbar, ax=ax)
        mults = models[
            (models["output"] == output)
            & (models["lmax_hidden"] == lmax)
            & (models["capacity"] == "study")
            & (models["channels"] == channels)
        ]["hidden_multiplicities"]
        ax.set(
            xlabel="optimiser step",
            ylabel="share of the output (RMS per component)",
            title=f"{channels} channels ({mults.iloc[0] if len(mults) else '?'})",
        )
        ax.legend(title="hidden l", fontsize=7)
    family = study_family(models, output)
    family = family[family["lmax_hidden"] == lmax]
    sizes = []
    for l in range(5):
        for column, label in ((f"target_rms_l{l}", "target"), (f"loss_target_rms_l{l}", "as the loss sees it")):
            if column in family and family[column].notna().any():
                sizes.append({"output l": l, "rms": float(family[column].mean()), "kind": label})
    ax = axes[-1]
    if sizes:
        sns.barplot(data=pd.DataFrame(sizes), x="output l", y="rms", hue="kind", ax=ax, palette="Greys")
    ax.set(yscale="log", ylabel="target RMS per component", title="size of the target per l")
    fig.suptitle(f"hidden-order contributions, {output} output, hidden l_max = {lmax}")
    return fig


def hidden_features(features: pd.DataFrame, output: str = "full"):
    """RMS per component of the hidden features against optimiser step, per layer (columns) and parity
    (rows), one colour per order l; study model at the largest l_max, mean over seeds with 95 % t bands."""
    part = hierarchy_models(features[features["kind"] == "feature"], "study", output).copy()
    part["parity"] = part["parity"].map({1: "even", -1: "odd"})
    labels = ("optimiser step", "feature RMS per component")
    grid = line_grid(
        part, "step", "value", "l", labels, palette=L_PALETTE, col="layer", row="parity", height=2.4, aspect=1.1
    )
    return grid.figure


def output_orders(features: pd.DataFrame, output: str = "full"):
    """Finding 2c: ε of each output order l on the probed structures against optimiser step (the study's
    per-order curves), study model at the largest l_max, mean over seeds with 95 % t bands."""
    part = hierarchy_models(features[features["kind"] == OUTPUT_EPSILON], "study", output)
    title = f"density error per output order, {output} output"
    if part.empty:
        return nothing_to_show(title, "no per-order ε was probed (models trained before it was recorded)")
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    data = part.assign(plotted_step=part["step"].clip(lower=0.5))  # step 0 (initialisation) on the log axis
    sns.lineplot(data=data, x="plotted_step", y="value", hue="l", palette=L_PALETTE, errorbar=errorbar, ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="optimiser step (0 drawn at 0.5)", ylabel="ε_l (% of N_e)")
    ax.set_title(f"{title}, hidden l_max = {int(part['lmax_hidden'].max())}")
    ax.legend(title="output l", fontsize=7)
    return fig


def ablation_heatmap(ablation: pd.DataFrame, lmax: int):
    """Δε (test, %) when the hidden channels of one order l are zeroed in every layer, per output order
    (study models, mean over seeds)."""
    ablation = study_models(ablation)
    single = ablation[(ablation["mode"] == "single") & (ablation["lmax_hidden"] == lmax)]
    table = single.groupby(["zeroed_l", "output"])["delta_epsilon"].mean().unstack("output")
    table = table.reindex(columns=[o for o in OUTPUT_ORDER if o in table.columns])
    title = f"ablation, hidden l_max = {lmax}"
    if table.empty:
        return nothing_to_show(title, f"hidden l_max {lmax} has no order l ≥ 1 to zero")
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    sns.heatmap(table, annot=True, fmt=".2f", cmap="rocket_r", cbar_kws={"label": "Δε (%)"}, ax=ax)
    ax.set(xlabel="output order", ylabel="zeroed hidden order l", title=title)
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
        image = ax.imshow(
            np.clip(pivot[lab].to_numpy(), 1e-4, None),
            origin="lower",
            extent=extent,
            cmap="mako",
            norm=matplotlib.colors.LogNorm(vmin=1e-4, vmax=vmax),
        )
        ax.set(title=f"ρ: {lab}", xlabel="u (Å)", ylabel="v (Å)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="e/bohr³")
        ax = axes[1, k]
        if k == 0:
            ax.axis("off")
            continue
        image = ax.imshow(
            differences[k - 1].to_numpy(), origin="lower", extent=extent, cmap="RdBu_r", vmin=-dmax, vmax=dmax
        )
        ax.set(title=f"{lab} − DFT", xlabel="u (Å)", ylabel="v (Å)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="e/bohr³")
    return fig


def findings_by_run(by_run: pd.DataFrame, findings: tuple[str, ...]):
    """Finding 2's rows side by side on each run of the hierarchy experiment (draws, loss weightings): each run's
    estimate with its 95 % interval, coloured by verdict; the shaded band is the row's equivalence margin ±δ
    (``absent`` when the interval lies inside it), the dotted line the null."""
    rows = [f for f in findings if (by_run["finding"] == f).any()]
    runs = list(dict.fromkeys(by_run["draw"]))
    fig, axes = plt.subplots(len(rows), 1, figsize=(6.5, 0.45 * len(runs) * len(rows) + 1.2), layout="constrained")
    for ax, finding in zip(np.atleast_1d(axes), rows):
        part = by_run[by_run["finding"] == finding].set_index("draw")
        delta = float(part["delta"].iloc[0])
        ax.axvspan(-delta, delta, color="grey", alpha=0.15, linewidth=0)
        ax.axvline(0, color="grey", linestyle=":")
        for y, run in enumerate(runs):
            if run not in part.index:
                continue
            row = part.loc[run]
            colour = VERDICT_PALETTE.get(row["verdict"], "grey")
            low, high = row["ci_low"], row["ci_high"]
            xerr = [[row["estimate"] - low], [high - row["estimate"]]] if np.isfinite([low, high]).all() else None
            ax.errorbar(row["estimate"], y, xerr=xerr, fmt="o", color=colour, capsize=3)
            ax.annotate(row["verdict"], (1.0, y), xycoords=("axes fraction", "data"), fontsize=6, color=colour)
        ax.set_yticks(range(len(runs)), runs, fontsize=6)
        ax.set_ylim(-0.6, len(runs) - 0.4)
        ax.invert_yaxis()
        ax.set_title(f"{finding}: {part['statistic'].iloc[0]}", fontsize=7, loc="left")
    return fig

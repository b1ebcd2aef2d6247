"""The loss-convergence benchmark as a committed snapshot: tables, figure and the rule that picks the paper's loss.

    python -m benchmarks.loss_convergence_report [RUN_DIR ...] [--out docs/results/loss_convergence]

reads ``epochs.csv`` and ``final.csv`` of each run folder of ``python -m benchmarks.loss_convergence`` (default: every
folder under ``results/benchmarks/loss_convergence/``) and writes, under ``--out``:

- ``final.csv``: one row per loss, hidden l_max and seed at its kept epoch: test ε in total, per output order l and
  per shell class (tight, diffuse), the kept epoch;
- ``summary.csv``: per loss and l_max, mean ± SD over seeds of those, the mean kept epoch, and how much the mean test
  ε changed over the last fifth of the epochs;
- ``epochs.csv``: test ε per loss, l_max, seed and epoch (what the figure draws);
- ``decision.json``: the rule of ``config.paper.yaml``'s loss (``choose_loss``) applied to ``summary.csv``;
- ``test_epsilon.png``: test ε against epoch, log-log, one line per loss (mean, band: min-max over seeds), one panel
  per l_max.

``python -m e3hier.analysis.docs_numbers write`` then renders the ``loss-convergence`` blocks of the docs from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.common import ROOT  # noqa: E402
from e3hier.analysis.convergence import change_last_fifth  # noqa: E402
from e3hier.io import atomic_path, write_text  # noqa: E402
from e3hier.run_record import commit  # noqa: E402

RUNS = ROOT / "results" / "benchmarks" / "loss_convergence"
OUT = ROOT / "docs" / "results" / "loss_convergence"
#: The rule of ``config.paper.yaml``'s loss, written before the run: the study's ``population`` if its mean test ε
#: is within this factor of ``global_rms``'s at every l_max measured, else ``population_rms`` if that is, else
#: ``global_rms`` (a listed deviation).
WITHIN = 1.25
LOSSES = ("population", "population_rms", "global_rms")
MEASURES = ["test_epsilon", *(f"test_epsilon_l{l}" for l in range(5)), "test_epsilon_tight", "test_epsilon_diffuse"]


def read_runs(folders) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-epoch rows, final rows) of every run folder."""
    epochs = pd.concat([pd.read_csv(Path(f) / "epochs.csv") for f in folders], ignore_index=True)
    final = pd.concat([pd.read_csv(Path(f) / "final.csv") for f in folders], ignore_index=True)
    return epochs, final


def last_fifth_change(epochs: pd.DataFrame) -> pd.Series:
    """Per loss and l_max: the relative change of the mean test ε over seeds across the last fifth of the epochs."""
    mean = epochs.groupby(["loss", "lmax_hidden", "epoch"])["test_epsilon"].mean().reset_index()

    def change(group):  # the hierarchy experiment's convergence measure (e3hier.analysis.convergence)
        return change_last_fifth(group.sort_values("epoch")["test_epsilon"].to_numpy())

    return mean.groupby(["loss", "lmax_hidden"]).apply(change, include_groups=False).rename("change_last_fifth")


def summary_table(epochs: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """Per loss and l_max: mean and SD over seeds of ``MEASURES`` at the kept epoch, kept epochs, seeds, the change
    over the last fifth, and the ratio of the mean test ε to ``global_rms``'s at the same l_max."""
    groups = final.groupby(["loss", "lmax_hidden"])
    table = groups[MEASURES].mean().add_suffix("_mean").join(groups["test_epsilon"].std().rename("test_epsilon_sd"))
    table = table.join(groups["kept_epoch"].agg(["mean", "min", "max"]).add_prefix("kept_epoch_"))
    table = table.join(groups["seed"].nunique().rename("seeds")).join(groups["epochs"].max())
    table = table.join(groups["n_train"].first()).join(last_fifth_change(epochs)).reset_index()
    reference = table[table["loss"] == "global_rms"].set_index("lmax_hidden")["test_epsilon_mean"]
    table["ratio_to_global_rms"] = table["test_epsilon_mean"] / table["lmax_hidden"].map(reference)
    table["loss"] = pd.Categorical(table["loss"], LOSSES, ordered=True)
    return table.sort_values(["lmax_hidden", "loss"]).reset_index(drop=True)


def choose_loss(summary: pd.DataFrame, within: float = WITHIN) -> dict:
    """The rule (``WITHIN``): the first of ``population``, ``population_rms`` whose mean test ε is within ``within`` ×
    ``global_rms``'s at every l_max measured, else ``global_rms``; with each ratio."""
    ratios = {
        loss: {int(r.lmax_hidden): float(r.ratio_to_global_rms) for r in rows.itertuples()}
        for loss, rows in summary.groupby("loss", observed=True)
    }
    # every l_max measured, and within (a NaN ratio, no global_rms at that l_max, is not within)
    chosen = next(
        (loss for loss in LOSSES[:2] if ratios.get(loss) and all(r <= within for r in ratios[loss].values())), None
    )
    return {"within": within, "ratios": ratios, "chosen": chosen or "global_rms"}


def figure(epochs: pd.DataFrame, path: Path) -> None:
    """Test ε against epoch (log-log), one line per loss (mean over seeds; band: min to max), a panel per l_max."""
    lmaxes = sorted(epochs["lmax_hidden"].unique())
    fig, axes = plt.subplots(1, len(lmaxes), figsize=(3.8 * len(lmaxes), 3.4), squeeze=False, layout="constrained")
    colours = dict(zip(LOSSES, ("#d95f02", "#7570b3", "#1b9e77")))
    for ax, lmax in zip(axes[0], lmaxes):
        part = epochs[epochs["lmax_hidden"] == lmax]
        for loss, rows in part.groupby("loss"):
            by_epoch = rows.groupby("epoch")["test_epsilon"]
            mean, low, high = by_epoch.mean(), by_epoch.min(), by_epoch.max()
            ax.plot(mean.index, mean.to_numpy(), label=loss, color=colours.get(loss))
            ax.fill_between(mean.index, low.to_numpy(), high.to_numpy(), alpha=0.2, color=colours.get(loss))
        ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="test ε (%)", title=f"hidden l_max {lmax}")
        ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_snapshot(folders, out: Path) -> dict:
    epochs, final = read_runs(folders)
    summary = summary_table(epochs, final)
    decision = choose_loss(summary)
    decision["run"] = {
        "command": "python -m benchmarks.loss_convergence",
        "commit": commit(),
        "n_train": int(final["n_train"].iloc[0]),
        "epochs": int(final["epochs"].max()),
        "seeds": sorted(int(s) for s in final["seed"].unique()),
        "wall_minutes": round(float(final.groupby(["loss", "lmax_hidden"])["job_seconds"].first().sum()) / 60, 1),
    }
    columns = ["loss", "lmax_hidden", "seed", "epoch", "test_epsilon", "val_l2_block"]
    for name, frame in (("final", final), ("summary", summary), ("epochs", epochs[columns])):
        with atomic_path(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    write_text(out / "decision.json", json.dumps(decision, indent=1) + "\n")
    figure(epochs, out / "test_epsilon.png")
    return decision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loss_convergence_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("runs", nargs="*", type=Path, help=f"run folders (default: every folder under {RUNS})")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    folders = args.runs or sorted(p for p in RUNS.iterdir() if (p / "final.csv").is_file())
    if not folders:
        raise SystemExit(
            f"benchmarks.loss_convergence_report: no run under {RUNS} (python -m benchmarks.loss_convergence)"
        )
    print(json.dumps(write_snapshot(folders, args.out), indent=1))


if __name__ == "__main__":
    main()

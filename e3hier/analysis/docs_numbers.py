"""Numbers in the README and the docs: written from a committed snapshot of a run's tables, never typed.

Two steps, both run by ``make study``:

- ``python -m e3hier.analysis.docs_numbers snapshot RESULTS [RESULTS ...]`` copies what the prose quotes from
  each draw's ``results/`` folder (the first is draw 0, whose run record must be a finished ``make study``:
  ``e3hier.run_record``) into ``docs/results/``, all or nothing: ``findings_by_draw.csv``,
  ``lmax_gains.csv`` (draw 0), ``run.json`` (the record's commit and config files, the wall time, the counts of
  structures that entered and of models, the free-atom baseline), draw 0's figures (``figures/``) and the
  hierarchy experiment's verdicts and convergence (``hierarchy_by_run.csv``, ``hierarchy_convergence.csv``: draw 0's
  ``results/tables/hierarchy_*.parquet``, written by ``make study``), its figure by run and two figures of its
  draw 0 run (``HIERARCHY_FIGURES``).
- ``python -m e3hier.analysis.docs_numbers write`` rewrites every generated block of ``README.md`` and ``docs/*.md``
  (``<!-- name:begin -->`` … ``<!-- name:end -->``) from ``docs/results/``; each block's first line names
  the commit and the config files of the run.

``tests/test_docs_numbers.py`` checks that every block in the docs equals what the snapshot gives.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from e3hier import run_record
from e3hier.analysis.families import study_family, trained
from e3hier.analysis.findings_report import _count, _number, _seeds_to_decide, epsilon_markdown, findings_markdown
from e3hier.io import atomic_path, current_umask, fsync_path, write_text

ROOT = Path(__file__).resolve().parents[2]
#: Where the snapshot lives (committed).
SNAPSHOT = ROOT / "docs" / "results"
#: The figures the docs show (``docs/results/figures/``), copied from draw 0's ``results/figures/`` with the snapshot.
FIGURES = ("findings", "epsilon_vs_lmax", "hierarchy", "hidden_features", "output_orders", "ablation", "density")
#: The hierarchy experiment's tables (draw 0's ``results/tables/``): its verdicts by run, its models' convergence.
HIERARCHY_TABLES = ("hierarchy_by_run", "hierarchy_convergence")
#: Figures of the hierarchy experiment's draw 0 run (``make study``'s ``results/hierarchy/draw_0/``), by the name
#: the snapshot gives them: its 16 seeds' contributions and per-order errors over training.
HIERARCHY_FIGURES = {
    "hierarchy_experiment": "hierarchy/draw_0/results/figures/hierarchy.png",
    "hierarchy_experiment_output_orders": "hierarchy/draw_0/results/figures/output_orders.png",
}
#: Files and folders of the snapshot folder that the snapshot does not write (its README, the loss-convergence
#: benchmark's own snapshot): kept as they are.
KEPT = ("README.md", "loss_convergence")
#: The files whose generated blocks ``write`` rewrites.
DOCUMENTS = ("README.md", "docs/*.md")
BLOCK = re.compile(r"<!-- ([a-z0-9-]+):begin -->\n(.*?)<!-- \1:end -->", re.S)


# --- the snapshot ------------------------------------------------------------------------------------
def structure_counts(results: Path) -> dict[str, int]:
    """Per split: the structures that entered the run (``results/dataset/``; those DFT skipped are not counted)."""
    counts = {}
    for path in sorted((results / "dataset").glob("*.parquet")):
        counts[path.stem] = int(pd.read_parquet(path, columns=["structure"])["structure"].nunique())
    return counts


def run_facts(results: Path, record: dict) -> dict:
    """What the prose says about a run besides its verdicts: counts, the baseline, the wall time; the commit
    and the config files come from the run's own record (``e3hier.run_record``)."""
    models = pd.read_parquet(results / "tables" / "models.parquet")
    full = trained(study_family(models))
    started, finished = record["started"], record["finished"]
    return {
        "commit": record["commit"],
        "configs": record["configs"],
        "wall_minutes": round((finished - started) / 60, 1),
        "structures": structure_counts(results),
        "models": len(models),
        "diverged_models": int(len(models) - len(trained(models))),
        "seeds": int(models["seed"].nunique()),
        "lmax_hidden": sorted(int(v) for v in models["lmax_hidden"].unique()),
        "target_scaling": sorted(models["target_scaling"].unique().tolist()),
        "baseline_percent": float(full["epsilon_test_baseline"].mean()) if len(full) else float("nan"),
    }


def snapshot(results: list[Path], run: str = "study", out: Path = SNAPSHOT) -> None:
    """Copy the quoted tables and figures of each draw's ``results`` folder (draw 0 first) into ``out``, all or
    nothing: everything is written to a folder beside ``out`` and swapped in whole. Draw 0's run record
    (``e3hier.run_record``) must be a finished ``run``; every table and figure must exist."""
    from e3hier.analysis.convergence import convergence_summary
    from e3hier.analysis.draws import findings_by_draw
    from e3hier.analysis.figures import save_figure
    from e3hier.analysis.hierarchy_figures import findings_by_run

    record = run_record.expect(results[0], run)
    hierarchy = {name: results[0] / "tables" / f"{name}.parquet" for name in HIERARCHY_TABLES}
    figures = [results[0] / "figures" / f"{name}.png" for name in FIGURES]
    hierarchy_figures = {name: results[0] / path for name, path in HIERARCHY_FIGURES.items()}
    needed = [
        *figures,
        *hierarchy_figures.values(),
        *(r / "tables" / "findings.parquet" for r in results),
        *hierarchy.values(),
        results[0] / "tables" / "lmax_gains.parquet",
    ]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise SystemExit(f"e3hier.analysis.docs_numbers: missing {', '.join(missing)} (run that draw first)")
    tables = {f"draw {k}": pd.read_parquet(r / "tables" / "findings.parquet") for k, r in enumerate(results)}
    facts = run_facts(results[0], record)  # before anything is written: it may fail
    by_run = pd.read_parquet(hierarchy["hierarchy_by_run"])
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, frame in (
            ("findings_by_draw", findings_by_draw(tables)),
            ("lmax_gains", pd.read_parquet(needed[-1])),
            ("hierarchy_by_run", by_run),
            ("hierarchy_convergence", convergence_summary(pd.read_parquet(hierarchy["hierarchy_convergence"]))),
        ):
            with atomic_path(staging / f"{name}.csv") as tmp:
                frame.to_csv(tmp, index=False, float_format="%.6g")
        write_text(staging / "run.json", json.dumps(facts, indent=1) + "\n")
        (staging / "figures").mkdir()
        for figure in figures:  # the figures come from the same run as the numbers
            shutil.copyfile(figure, staging / "figures" / figure.name)
        for name, figure in hierarchy_figures.items():
            shutil.copyfile(figure, staging / "figures" / f"{name}.png")
        save_figure(findings_by_run(by_run, HIERARCHY_FINDINGS), staging / "figures" / "hierarchy_by_run.png")
        for keep in KEPT:  # what the snapshot does not make (its README, another benchmark's snapshot) stays
            if (out / keep).is_dir():
                shutil.copytree(out / keep, staging / keep)
            elif (out / keep).exists():
                shutil.copyfile(out / keep, staging / keep)
        os.chmod(staging, 0o777 & ~current_umask())
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        staging.rename(out)
        fsync_path(out.parent, folder=True)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- the blocks --------------------------------------------------------------------------------------
#: The loss-convergence benchmark's snapshot (``benchmarks/loss_convergence_report.py``), beside the study's.
LOSS_CONVERGENCE = "loss_convergence"


def load(snapshot_dir: Path = SNAPSHOT) -> dict:
    data = {
        "findings": pd.read_csv(snapshot_dir / "findings_by_draw.csv"),
        "lmax_gains": pd.read_csv(snapshot_dir / "lmax_gains.csv"),
        "run": json.loads((snapshot_dir / "run.json").read_text()),
    }
    for name in HIERARCHY_TABLES:  # absent from a snapshot made before the hierarchy experiment
        if (snapshot_dir / f"{name}.csv").is_file():
            data[name] = pd.read_csv(snapshot_dir / f"{name}.csv")
    losses = snapshot_dir / LOSS_CONVERGENCE
    if (losses / "summary.csv").is_file():
        data["loss_summary"] = pd.read_csv(losses / "summary.csv")
        data["loss_decision"] = json.loads((losses / "decision.json").read_text())
    return data


def markdown_table(header: list[str], aligns: str, rows: list[list]) -> list[str]:
    """A Markdown table's lines: ``header``, an alignment row (``aligns``: one ``l`` or ``r`` per column), ``rows``."""
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in aligns)
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.3g} ± {sd:.2g}"


def loss_convergence_markdown(summary: pd.DataFrame, decision: dict) -> str:
    """Per hidden l_max and loss: final test ε (mean ± SD over seeds), its ratio to ``global_rms``'s, the kept epoch
    and the change over the last fifth of the epochs; then the rule's choice."""
    lines = markdown_table(
        ["hidden l_max", "loss", "test ε (%)", "× global_rms", "kept epoch: mean [min, max]", "last fifth"],
        "rlrrrr",
        [
            [
                r.lmax_hidden,
                r.loss,
                _mean_sd(r.test_epsilon_mean, r.test_epsilon_sd),
                f"{r.ratio_to_global_rms:.2f}",
                f"{r.kept_epoch_mean:.0f} [{r.kept_epoch_min}, {r.kept_epoch_max}]",
                f"{100 * r.change_last_fifth:+.1f} %",
            ]
            for r in summary.itertuples(index=False)
        ],
    )
    ratios = "; ".join(
        f"{loss}: " + ", ".join(f"{float(v):.2f} at l_max {k}" for k, v in by_lmax.items())
        for loss, by_lmax in decision["ratios"].items()
        if loss != "global_rms"
    )
    lines += [
        "",
        f"Rule (written before the run): the study's `population` if its mean test ε is within {decision['within']}× "
        f"`global_rms`'s at every l_max, else `population_rms` if that is, else `global_rms`. Ratios: {ratios}. "
        f"**Chosen: `{decision['chosen']}`.**",
    ]
    return "\n".join(lines) + "\n"


def loss_split_markdown(summary: pd.DataFrame) -> str:
    """Per hidden l_max and loss: the final test ε of the error of each shell class and each output order alone."""
    orders = [c for c in (f"test_epsilon_l{l}_mean" for l in range(5)) if c in summary]
    lines = [
        "| hidden l_max | loss | tight shells | diffuse shells | " + " | ".join(f"l = {c[14]}" for c in orders) + " |",
        "|---:|---|---:|---:|" + "---:|" * len(orders),
    ]
    for _, r in summary.iterrows():
        cells = [f"{r['test_epsilon_tight_mean']:.3g}", f"{r['test_epsilon_diffuse_mean']:.3g}"]
        cells += [f"{r[c]:.3g}" for c in orders]
        lines.append(f"| {r['lmax_hidden']} | {r['loss']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def loss_stamp(decision: dict) -> str:
    run = decision["run"]
    return (
        f"<!-- generated by `python -m e3hier.analysis.docs_numbers write` from docs/results/{LOSS_CONVERGENCE}/ "
        f"(`{run['command']}`, snapshot at commit {run['commit']}: {run['n_train']} training structures, "
        f"{run['epochs']} epochs, seeds {run['seeds']}, {run['wall_minutes']} min of ensemble jobs) -->\n"
    )


def _interval(row) -> str:
    if not np.isfinite(row["estimate"]):
        return "n/a"
    return f"{row['estimate']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def draws_markdown(findings: pd.DataFrame) -> str:
    """One row per finding: its verdict and estimate [95 % interval] on each draw, and whether it replicates."""
    draws = list(dict.fromkeys(findings["draw"]))
    lines = ["| finding | " + " | ".join(draws) + " | replicated |", "|---|" + "---|" * (len(draws) + 1)]
    for finding, rows in findings.groupby("finding", sort=False):
        by_draw = {row["draw"]: f"{row['verdict']}, {_interval(row)}" for _, row in rows.iterrows()}
        replicated = "yes" if rows["replicated"].all() else "no"
        lines.append(f"| {finding} | " + " | ".join(by_draw.get(d, "–") for d in draws) + f" | {replicated} |")
    return "\n".join(lines) + "\n"


#: The rows of the verdict table on finding 2 (the hierarchy experiment's question).
HIERARCHY_FINDINGS = ("2a", "2a-share", "2b", "2b-features", "2c")


def hierarchy_markdown(by_run: pd.DataFrame) -> str:
    """Finding 2's rows on each run of the hierarchy experiment: verdict, estimate [95 % interval], δ, MDE, seeds."""
    runs = list(dict.fromkeys(by_run["draw"]))
    rows = []
    for finding in HIERARCHY_FINDINGS:
        for run in runs:
            row = by_run[(by_run["finding"] == finding) & (by_run["draw"] == run)]
            if row.empty:
                continue
            r = row.iloc[0]
            diverged = r.get("diverged_seeds")  # "3/7" (a CSV reads "3" back as a number), or empty
            diverged = 0 if pd.isna(diverged) or diverged == "" else len(str(diverged).split("/"))
            rows.append(
                [
                    finding,
                    run,
                    r["verdict"],
                    _interval(r),
                    _number(r["delta"]),
                    _number(r["mde"]),
                    f"{_count(r['n_seeds'])} ({diverged})",
                    _seeds_to_decide(r["verdict"], r["seeds_to_decide"]),
                ]
            )
    header = ["finding", "run", "verdict", "estimate [95 % CI]", "δ", "MDE", "seeds (diverged)", "seeds to decide"]
    return "\n".join(markdown_table(header, "llllrrrr", rows)) + "\n"


#: What each row of finding 2 claims, in a few words (the verdict table's ``claim`` says it in full).
HIERARCHY_CLAIMS = {
    "2a": "higher hidden orders contribute less after training than at initialisation",
    "2a-share": "the same, on each hidden order's additive share of the prediction",
    "2b": "higher hidden orders' contributions settle later",
    "2b-features": "higher orders of the last hidden layer's features settle later",
    "2c": "low output orders are learned first (the study's per-order error)",
}


def title_claim_markdown(by_run: pd.DataFrame) -> str:
    """Finding 2 in words: per row, its claim and its verdict on each run of the hierarchy experiment, runs with one
    verdict named together."""
    lines = []
    for finding in HIERARCHY_FINDINGS:
        rows = by_run[by_run["finding"] == finding]
        if rows.empty:
            continue
        runs_by_verdict = rows.groupby("verdict", sort=False)["draw"].agg(list)
        # run names in code spans: a name may hold a comma ("draw 0, population_rms")
        verdicts = "; ".join(
            f"**{verdict}** on {', '.join(f'`{run}`' for run in runs)}" for verdict, runs in runs_by_verdict.items()
        )
        lines.append(f"- {finding}, {HIERARCHY_CLAIMS[finding]}: {verdicts}.")
    return "\n".join(lines) + "\n"


def hierarchy_convergence_markdown(summary: pd.DataFrame) -> str:
    """Per run of the hierarchy experiment: how many models kept an epoch before the last, how many settled."""
    lines = markdown_table(
        ["run", "models", "epochs", "kept epoch before the last", "settled", "median change of val. L2, last fifth"],
        "lrrrrr",
        [
            [r.run, r.models, r.epochs, r.kept_before_last, r.settled, f"{100 * r.median_change_last_fifth:+.2f} %"]
            for r in summary.itertuples(index=False)
        ],
    )
    return "\n".join(lines) + "\n"


def run_markdown(run: dict) -> str:
    """The run in one paragraph: configs, structures, models, scaling, wall time, free-atom baseline."""
    splits = ", ".join(f"{n} {split}" for split, n in run["structures"].items())
    wall = f"{run['wall_minutes']:.0f} min of wall time" if run.get("wall_minutes") else "wall time not recorded"
    return (
        f"`make study` ({' '.join(run['configs'])}): {splits} structures (draw 0); hidden l_max "
        f"{run['lmax_hidden'][0]}–{run['lmax_hidden'][-1]}, {run['seeds']} seeds, {run['models']} models per draw, "
        f"target scaling {', '.join(run['target_scaling'])}; {wall} in all (both draws, then the hierarchy "
        f"experiment). Free-atom baseline of the full output: ε = {run['baseline_percent']:.3g} % on the test "
        "structures of draw 0.\n"
    )


def stamp(run: dict) -> str:
    return (
        f"<!-- generated by `python -m e3hier.analysis.docs_numbers write` from docs/results/ (commit {run['commit']}; "
        f"{' '.join(run['configs'])}) -->\n"
    )


#: Every generated block, by name: what it holds, from the snapshot.
BLOCKS = {
    "findings": lambda s: findings_markdown(s["findings"][s["findings"]["draw"] == "draw 0"]),
    "draws": lambda s: draws_markdown(s["findings"]),
    "epsilon": lambda s: epsilon_markdown(s["lmax_gains"]),
    "study-run": lambda s: run_markdown(s["run"]),
    "hierarchy": lambda s: hierarchy_markdown(_needs(s, "hierarchy_by_run")),
    "hierarchy-convergence": lambda s: hierarchy_convergence_markdown(_needs(s, "hierarchy_convergence")),
    "title-claim": lambda s: title_claim_markdown(_needs(s, "hierarchy_by_run")),
}


def _needs(data: dict, name: str) -> pd.DataFrame:
    if name not in data:
        raise KeyError(f"no docs/results/{name}.csv: the snapshot predates the hierarchy experiment (run make study)")
    return data[name]


#: The blocks of the loss-convergence benchmark: stamped with its own run.
LOSS_BLOCKS = {
    "loss-convergence": lambda s: loss_convergence_markdown(s["loss_summary"], s["loss_decision"]),
    "loss-split": lambda s: loss_split_markdown(s["loss_summary"]),
}


def render(name: str, data: dict) -> str:
    if name in LOSS_BLOCKS:
        if "loss_summary" not in data:
            raise KeyError(f"block {name!r}: no docs/results/{LOSS_CONVERGENCE}/ snapshot")
        return loss_stamp(data["loss_decision"]) + LOSS_BLOCKS[name](data)
    if name not in BLOCKS:
        raise KeyError(f"unknown generated block {name!r}; e3hier.analysis.docs_numbers.BLOCKS has {sorted(BLOCKS)}")
    return stamp(data["run"]) + BLOCKS[name](data)


def rewrite(text: str, data: dict) -> str:
    """``text`` with every generated block rendered anew."""
    return BLOCK.sub(lambda m: f"<!-- {m[1]}:begin -->\n{render(m[1], data)}<!-- {m[1]}:end -->", text)


def documents(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in DOCUMENTS for p in root.glob(pattern)})


def write(root: Path = ROOT, snapshot_dir: Path = SNAPSHOT) -> list[Path]:
    """Rewrite the generated blocks of every document; returns the files that changed."""
    data, changed = load(snapshot_dir), []
    for doc in documents(root):
        text = doc.read_text()
        new = rewrite(text, data)
        if new != text:
            write_text(doc, new)
            changed.append(doc)
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e3hier.analysis.docs_numbers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="copy a finished run's quoted tables into docs/results/")
    snap.add_argument("results", nargs="+", type=Path, help="each draw's results/ folder, draw 0 first")
    snap.add_argument("--run", default="study", help="the make target draw 0's run record must name")
    sub.add_parser("write", help="rewrite the generated blocks of README.md and docs/*.md from docs/results/")
    args = parser.parse_args(argv)
    if args.command == "snapshot":
        snapshot(args.results, args.run)
    else:
        for doc in write():
            print(f"e3hier.analysis.docs_numbers: rewrote {doc.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

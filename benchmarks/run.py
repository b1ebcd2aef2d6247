"""Run the e3hier benchmarks (``make bench``) and write ``results/benchmarks/summary.json``.

    python benchmarks/run.py [--only workflow dft epsilon training ensemble]

See ``benchmarks/README.md``. Each headline number sits beside the raw timings it came from
(all repetitions and their medians). Timings on a shared machine are noisy: compare ratios
measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

ALL = ("workflow", "dft", "epsilon", "training", "ensemble")
GOALS = {
    "epsilon_eval_speedup": (">=", 50.0),
    "epsilon_grid_electron_error": ("<", 1e-3),
    "dft_overhead_ratio": ("<=", 1.10),
    "dag_dry_run_seconds": ("<=", 20.0),
    "noop_rerun_seconds": ("<=", 10.0),
}


def machine() -> dict:
    import torch

    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def goal_met(value, rule) -> bool:
    op, target = rule
    return {"<=": value <= target, ">=": value >= target, "<": value < target}[op]


def table(summary: dict) -> str:
    rows = []
    if "train" in summary:
        for key, r in summary["train"]["per_lmax"].items():
            rate = r["structures_per_second"]
            eps = r["val_epsilon_after"]
            rows.append(
                (
                    f"training {key}: structures/s project | e3nn kernels | batch 1 | baseline",
                    f"{rate['project']['median']:.2f} | {rate['project_e3nn_kernels']['median']:.2f} | "
                    f"{rate['project_batch1']['median']:.2f} | {rate['baseline']['median']:.2f}",
                    "",
                )
            )
            rows.append(
                (
                    f"speedup {key}: batch {r['batch_size']} | batch 1 (kernels alone {r['kernel_speedup']:.1f}×)",
                    f"{r['speedup']:.1f}× | {r['speedup_batch1']:.1f}×",
                    "",
                )
            )
            rows.append(
                (
                    f"val ε after {eps['seen_structures']} structures, mean of {len(eps['seeds'])} seeds: "
                    f"batch {r['batch_size']} | batch 1 | baseline",
                    f"{eps['project']:.2f} | {eps['project_batch1']:.2f} | {eps['baseline']:.2f} %",
                    "",
                )
            )
            goal = r["goal"]
            rows.append(
                (
                    f"train_speedup {key} (fastest at equal or better ε: {goal['variant']})",
                    f"{goal['speedup']:.1f}×",
                    f"goal >= {goal['target']:g}: {'met' if goal['met'] else 'NOT met'}",
                )
            )
            same = r["val_epsilon_same_optimizer_steps"]
            rows.append(
                (
                    f"val ε at {same['baseline_optimizer_steps']} optimizer steps: project ({same['epochs']} "
                    f"epochs, {same['project_train_seconds']:.1f} s) | "
                    f"baseline ({same['baseline_train_seconds']:.1f} s)",
                    f"{same['project_epsilon']:.2f} | {same['baseline_epsilon']:.2f} %",
                    "",
                )
            )
    for key, r in summary.get("ensemble", {}).get("per_lmax", {}).items():
        rows.append(
            (
                f"ensemble_speedup {key}: models per core-hour, K = {r['members']} in one job vs separate jobs",
                f"{r['speedup']:.2f}×",
                f"goal >= {r['goal']['target']:g}: {'met' if r['goal']['met'] else 'NOT met'}",
            )
        )
        rows.append(
            (
                "  test ε of each seed, together vs alone: max relative difference",
                f"{r['epsilon_max_relative_difference']:.1e}",
                "",
            )
        )
    for key, unit in (
        ("epsilon_eval_speedup", "×"),
        ("epsilon_grid_electron_error", " e"),
        ("dft_overhead_ratio", ""),
        ("dag_dry_run_seconds", " s"),
        ("noop_rerun_seconds", " s"),
    ):
        if key in summary:
            value = summary[key]
            text = f"{value:.3g}{unit}"
            op, target = GOALS[key]
            rows.append((key, text, f"goal {op} {target:g}: {'met' if goal_met(value, GOALS[key]) else 'NOT met'}"))
    width = max(len(r[0]) for r in rows) if rows else 10
    return "\n".join(f"{a:<{width}}  {b:>28}  {c}" for a, b, c in rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    common.OUT.mkdir(parents=True, exist_ok=True)
    path = common.OUT / "summary.json"
    summary: dict = {}
    if set(args.only) != set(ALL) and path.exists():  # a partial run updates the last summary
        summary = json.loads(path.read_text())
    summary["machine_at_start"] = machine()
    summary["benchmarks_run"] = list(args.only)

    if "workflow" in args.only:  # first: it builds the small finished run the training data comes from
        from benchmarks import workflow

        result = workflow.run()
        summary["dag_dry_run_seconds"] = result["dag"]["seconds"]["median"]
        summary["dag_dry_run"] = result["dag"]
        summary["noop_rerun_seconds"] = result["noop"]["seconds"]["median"]
        summary["noop_rerun"] = result["noop"]
    if "dft" in args.only or "epsilon" in args.only:
        from benchmarks import dft_overhead

        if "dft" in args.only or not (dft_overhead.WORK / "trimer.parquet").exists():
            result = dft_overhead.run()
            summary["dft_overhead_ratio"] = result["ratio"]
            summary["dft_overhead"] = result
    if "epsilon" in args.only:
        from benchmarks import dft_overhead, epsilon

        result = epsilon.run(dft_overhead.WORK / "trimer.parquet", dft_overhead.trimer_xyz())
        summary["epsilon_eval_speedup"] = result["speedup"]
        summary["epsilon_grid_electron_error"] = result["electron_error"]["grid_float32"]
        summary["epsilon_eval"] = result
    if "training" in args.only:
        from benchmarks import training

        result = training.run()
        summary["train_speedup"] = {key: r["goal"]["speedup"] for key, r in result["per_lmax"].items()}
        summary["train"] = result
    if "ensemble" in args.only:
        from benchmarks import ensemble

        result = ensemble.run()
        summary["ensemble_speedup"] = {key: r["speedup"] for key, r in result["per_lmax"].items()}
        summary["ensemble"] = result

    summary["goals"] = {
        key: {"rule": " ".join(map(str, rule)), "value": summary[key], "met": goal_met(summary[key], rule)}
        for key, rule in GOALS.items()
        if key in summary
    }
    if "train" in summary:
        summary["goals"]["train_speedup"] = {key: r["goal"] for key, r in summary["train"]["per_lmax"].items()}
    if "ensemble" in summary:
        summary["goals"]["ensemble_speedup"] = {key: r["goal"] for key, r in summary["ensemble"]["per_lmax"].items()}
    summary["machine_at_end"] = machine()
    summary["total_seconds"] = time.perf_counter() - start
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=float) + "\n")
    print()
    print(table(summary))
    print(f"\n{path.relative_to(ROOT)} written in {summary['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

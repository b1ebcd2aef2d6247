"""The record of the run a ``results/`` folder holds: which make target, config files and commit made it, and when.

``make reproduce`` and ``make study`` share ``results/`` (the study's structures extend the default's, so its
DFT is reused). Each writes ``results/run.json`` when it starts, so the folder always says which run its tables
come from, and ``e3hier.analysis.docs_numbers snapshot`` refuses a folder whose record is not the study's:

    python -m e3hier.run_record start RESULTS RUN CONFIG [CONFIG ...]
    python -m e3hier.run_record finish RESULTS
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from e3hier.io import write_json

ROOT = Path(__file__).resolve().parents[1]
#: The record's file name under a results folder.
RECORD = "run.json"


def commit(root: Path = ROOT) -> str:
    """The checked-out commit (short hash, ``+dirty`` when the tree has changes besides the docs, which the
    snapshot itself rewrites)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    status = ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs", ":!README.md"]
    dirty = subprocess.run(status, cwd=root, capture_output=True)
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def start(results: Path, run: str, configs: list[str]) -> dict:
    """Write the record of a run starting now in ``results`` (replacing any earlier run's)."""
    record = {"run": run, "configs": list(configs), "commit": commit(), "started": time.time(), "finished": None}
    write_json(Path(results) / RECORD, record)
    return record


def finish(results: Path) -> dict:
    """Stamp the record of ``results`` with the end time of its run."""
    record = read(results)
    record["finished"] = time.time()
    write_json(Path(results) / RECORD, record)
    return record


def read(results: Path) -> dict:
    """The record of ``results``; an error naming the file when there is none."""
    path = Path(results) / RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run record (written when `make reproduce` or `make study` starts)")
    return json.loads(path.read_text())


def expect(results: Path, run: str) -> dict:
    """The record of ``results``, which must be a finished ``run``; an error naming both otherwise."""
    record = read(results)
    if record.get("run") != run:
        raise ValueError(
            f"{Path(results) / RECORD}: the tables come from `make {record.get('run')}` "
            f"({' '.join(record.get('configs', []))}), not from `make {run}`"
        )
    if not record.get("finished"):
        raise ValueError(f"{Path(results) / RECORD}: `make {run}` started at {record['started']} has not finished")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e3hier.run_record", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    begin = sub.add_parser("start", help="record a run starting in RESULTS")
    begin.add_argument("results", type=Path)
    begin.add_argument("run", help="the make target (reproduce, study)")
    begin.add_argument("configs", nargs="+", help="its config files, in merge order")
    end = sub.add_parser("finish", help="stamp the run of RESULTS as finished")
    end.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    if args.command == "start":
        start(args.results, args.run, args.configs)
    else:
        finish(args.results)


if __name__ == "__main__":
    main()

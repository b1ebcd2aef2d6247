"""Verdicts on more than one draw of the data: ``python -m e3hier.analysis.draws OUT TABLES [TABLES ...]``.

A verdict's interval covers the seeds and the test structures of one draw of the structures
(``e3hier.analysis.statistics``). Whether a claim holds for *this* draw or for water clusters in general is a
question about the draw, so the study tier draws its structures twice (``make study``: the second draw,
``config.study-draw1.yaml``, runs in its own working directory) and shows every verdict on each.

``findings_by_draw`` stacks the draws' verdict tables; a claim is ``replicated`` when every draw gives it
the same decisive verdict (``supported``, ``not_supported`` or ``absent``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from e3hier.io import write_parquet

#: The verdicts that decide a claim (an ``inconclusive`` draw replicates nothing).
DECISIVE = ("supported", "not_supported", "absent")


def findings_by_draw(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per finding and draw, with ``replicated`` per finding.

    Parameters
    ----------
    tables
        ``{draw name: verdict table}`` (``results/tables/findings.parquet`` of each draw's run).
    """
    if len(tables) < 1:
        raise ValueError("findings_by_draw needs the verdict table of at least one draw")
    stacked = pd.concat([table.assign(draw=name) for name, table in tables.items()], ignore_index=True)
    verdicts = stacked.groupby("finding")["verdict"]
    agreed = verdicts.transform(lambda v: v.nunique() == 1 and v.iloc[0] in DECISIVE)
    complete = stacked.groupby("finding")["draw"].transform("nunique") == len(tables)
    stacked["replicated"] = agreed & complete
    return stacked[["finding", "draw", *[c for c in stacked.columns if c not in ("finding", "draw")]]]


def main(argv: list[str] | None = None) -> None:
    """``python -m e3hier.analysis.draws OUT TABLES... [--names NAME...]``: each ``TABLES`` folder holds one draw's (or
    run's) ``findings.parquet``; named ``draw 0``, ``draw 1``, ... by position unless ``--names`` gives one each."""
    parser = argparse.ArgumentParser(prog="python -m e3hier.analysis.draws", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the stacked table (Parquet)")
    parser.add_argument("tables", nargs="+", type=Path, help="each draw's tables folder")
    parser.add_argument("--names", nargs="+", help="one name per folder (default: draw 0, draw 1, ...)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    names = args.names or [f"draw {k}" for k in range(len(args.tables))]
    if len(names) != len(args.tables):
        parser.error(f"--names: {len(names)} names for {len(args.tables)} tables folders")
    missing = [str(f / "findings.parquet") for f in args.tables if not (f / "findings.parquet").is_file()]
    if missing:
        raise SystemExit(f"e3hier.analysis.draws: no verdict table at {', '.join(missing)} (run that draw first)")
    tables = {name: pd.read_parquet(f / "findings.parquet") for name, f in zip(names, args.tables)}
    write_parquet(args.out, findings_by_draw(tables))


if __name__ == "__main__":
    main()

"""Verdicts on more than one draw of the data: ``python -m e3hier.analysis.draws OUT TABLES [TABLES ...]``.

A verdict's interval covers the seeds and the test structures of one draw of the structures
(``e3hier.analysis.statistics``). Whether a claim holds for *this* draw or for water clusters in general is a
question about the draw, so the study tier draws its structures twice (``make study``: the second draw,
``config.study-draw1.yaml``, runs in its own working directory) and shows every verdict on each.

``findings_by_draw`` stacks the draws' verdict tables; a claim is ``replicated`` when every draw gives it
the same decisive verdict (``supported``, ``not_supported`` or ``absent``).
"""

from __future__ import annotations

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
    """``python -m e3hier.analysis.draws OUT TABLES...``: each ``TABLES`` folder holds one draw's ``findings.parquet``;
    the draws are named by their position (``draw 0``, ``draw 1``, ...)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        raise SystemExit("usage: python -m e3hier.analysis.draws OUT.parquet TABLES_DIR [TABLES_DIR ...]")
    out, folders = Path(args[0]), [Path(a) for a in args[1:]]
    missing = [str(f / "findings.parquet") for f in folders if not (f / "findings.parquet").is_file()]
    if missing:
        raise SystemExit(f"e3hier.analysis.draws: no verdict table at {', '.join(missing)} (run that draw first)")
    tables = {f"draw {k}": pd.read_parquet(f / "findings.parquet") for k, f in enumerate(folders)}
    write_parquet(out, findings_by_draw(tables))


if __name__ == "__main__":
    main()

"""The findings as text: the verdict table in Markdown and HTML, and the ε table (the README's blocks are
written from them by ``e3hier.analysis.docs_numbers``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e3hier.analysis.findings import largest_training_set
from e3hier.analysis.statistics import MAX_SEEDS

#: The verdict table's columns as the report shows them.
REPORT_COLUMNS = [
    "finding",
    "verdict",
    "claim",
    "statistic",
    "estimate",
    "95 % CI",
    "δ",
    "MDE",
    "seeds to decide",
    "interval",
    "n_seeds",
    "n_structures",
]


def _number(value) -> str:
    return "n/a" if pd.isna(value) or not np.isfinite(value) else f"{value:.3g}"


def _count(value, missing: str = "n/a") -> str:
    return missing if pd.isna(value) else str(int(value))


def _seeds_to_decide(verdict: str, seeds) -> str:
    """The seeds an ``inconclusive`` row needs (none found up to ``MAX_SEEDS``: "> MAX_SEEDS"); "–" otherwise."""
    return "–" if verdict != "inconclusive" else _count(seeds, f"> {MAX_SEEDS}")


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    for column in ("estimate", "ci_low", "ci_high"):
        out[column] = out[column].map(_number)
    out["95 % CI"] = "[" + out["ci_low"] + ", " + out["ci_high"] + "]"
    out["n_structures"] = out["n_structures"].map(_count)
    out["δ"] = out["delta"].map(_number) if "delta" in out else "n/a"
    out["MDE"] = out["mde"].map(_number) if "mde" in out else "n/a"
    if "seeds_to_decide" in out:
        out["seeds to decide"] = [_seeds_to_decide(v, n) for v, n in zip(out["verdict"], out["seeds_to_decide"])]
    else:  # a table from before the power columns
        out["seeds to decide"] = "n/a"
    return out[REPORT_COLUMNS]


def findings_markdown(table: pd.DataFrame) -> str:
    """The verdict table as a Markdown table (what the README shows).

    Parameters
    ----------
    table : pandas.DataFrame
        ``findings.findings_table``'s rows.
    """
    out = _formatted(table)
    lines = ["| " + " | ".join(out.columns) + " |", "|" + "---|" * len(out.columns)]
    lines += ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in out.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def findings_html(table: pd.DataFrame) -> str:
    """The verdict table as a standalone HTML page (the report's first item).

    Parameters
    ----------
    table : pandas.DataFrame
        ``findings.findings_table``'s rows.
    """
    body = _formatted(table).to_html(index=False, border=0, justify="left")
    style = "body{font-family:sans-serif;font-size:13px}td,th{padding:4px 8px;vertical-align:top;text-align:left}"
    rule = (
        "Interval (column interval): findings measured on test structures: the union of the 95 % Student-t "
        "interval over seeds and a paired percentile bootstrap over seeds × test structures; the others: the 95 % "
        "Student-t interval over seeds of a per-seed (paired) statistic. Verdict: absent if the interval lies "
        "inside (−δ, +δ), the row's pre-declared equivalence margin (analysis.equivalence); else supported if it "
        "excludes 0 in the claimed direction, not_supported if it excludes 0 in the other direction, inconclusive "
        "otherwise (also when the interval has zero width). MDE: the smallest effect the row's seeds detect with "
        "80 % power at two-sided 5 %, from their spread; seeds to decide: for an inconclusive row, the seeds that "
        "would give a decisive verdict at that spread if the estimate held."
    )
    return f"<html><head><meta charset='utf-8'><style>{style}</style></head><body>{body}<p>{rule}</p></body></html>\n"


def epsilon_markdown(gains: pd.DataFrame) -> str:
    """Test ε of the predicted block per hidden l_max (rows) and model family (columns): mean [95 % t interval].

    Parameters
    ----------
    gains : pandas.DataFrame
        ``gains.lmax_gains``' rows.
    """
    gains = largest_training_set(gains)
    order = {"scalar": 0, "vector": 1, "higher": 2, "full": 3}
    families = sorted(
        {(o, c, ch) for o, c, ch in gains[["output", "capacity", "channels"]].itertuples(index=False)},
        key=lambda f: (f[1] != "study", f[2] != "study", order.get(f[0], 9)),
    )
    names = [
        o if (c, ch) == ("study", "study") else f"{o}, {c} capacity" if ch == "study" else f"{o}, {ch} channels"
        for o, c, ch in families
    ]
    lines = ["| hidden l_max | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for lmax in sorted(gains["lmax_hidden"].unique()):
        cells = []
        for family in families:
            row = gains[
                (gains["output"] == family[0])
                & (gains["capacity"] == family[1])
                & (gains["channels"] == family[2])
                & (gains["lmax_hidden"] == lmax)
            ]
            cells.append(
                ""
                if row.empty
                else f"{row['epsilon'].iloc[0]:.3f} "
                f"[{row['epsilon_ci_low'].iloc[0]:.3f}, {row['epsilon_ci_high'].iloc[0]:.3f}]"
            )
        lines.append(f"| {lmax} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""Verdicts shown on each draw of the data (e3hier.analysis.draws)."""

import pandas as pd
import pytest

from e3hier.analysis.draws import findings_by_draw, main


def verdicts(**by_finding):
    return pd.DataFrame(
        {
            "finding": list(by_finding),
            "estimate": 0.1,
            "ci_low": 0.0,
            "ci_high": 0.2,
            "verdict": list(by_finding.values()),
        }
    )


def test_a_claim_is_replicated_only_when_every_draw_decides_it_the_same_way():
    table = findings_by_draw(
        {
            "draw 0": verdicts(a="supported", b="supported", c="inconclusive", d="not_supported"),
            "draw 1": verdicts(a="supported", b="inconclusive", c="inconclusive", d="not_supported"),
        }
    )
    replicated = table.groupby("finding")["replicated"].first()
    assert replicated.to_dict() == {"a": True, "b": False, "c": False, "d": True}
    assert len(table) == 8 and set(table["draw"]) == {"draw 0", "draw 1"}


def test_a_finding_missing_from_one_draw_is_not_replicated():
    table = findings_by_draw({"draw 0": verdicts(a="supported", b="supported"), "draw 1": verdicts(a="supported")})
    assert not table.loc[table["finding"] == "b", "replicated"].any()


def test_the_command_names_a_missing_draw(tmp_path):
    (tmp_path / "d0").mkdir()
    verdicts(a="supported").to_parquet(tmp_path / "d0" / "findings.parquet")
    with pytest.raises(SystemExit, match="d1/findings.parquet"):
        main([str(tmp_path / "out.parquet"), str(tmp_path / "d0"), str(tmp_path / "d1")])
    main([str(tmp_path / "out.parquet"), str(tmp_path / "d0"), str(tmp_path / "d0")])
    assert pd.read_parquet(tmp_path / "out.parquet")["replicated"].all()

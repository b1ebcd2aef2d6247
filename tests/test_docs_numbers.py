"""Numbers in the README and the docs come from the committed snapshot of a run's tables
(e3hier.analysis.docs_numbers)."""

import json

import pandas as pd
import pytest

from e3hier.analysis import docs_numbers as D


def fake_snapshot(folder, estimate=0.3):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for draw in ("draw 0", "draw 1"):
        rows.append(
            {
                "finding": "1a",
                "draw": draw,
                "claim": "c",
                "statistic": "s",
                "estimate": estimate,
                "ci_low": 0.1,
                "ci_high": 0.5,
                "interval": "t",
                "n_seeds": 5,
                "n_structures": 12,
                "verdict": "supported",
                "replicated": True,
            }
        )
    pd.DataFrame(rows).to_csv(folder / "findings_by_draw.csv", index=False)
    pd.DataFrame(
        [
            {
                "output": "full",
                "capacity": "study",
                "channels": "study",
                "n_train": "all",
                "lmax_hidden": 0,
                "epsilon": 0.7,
                "epsilon_ci_low": 0.6,
                "epsilon_ci_high": 0.8,
            }
        ]
    ).to_csv(folder / "lmax_gains.csv", index=False)
    run = {
        "commit": "abc1234",
        "configs": ["config.yaml", "config.study.yaml"],
        "wall_minutes": 80.0,
        "structures": {"test": 12, "train": 64},
        "models": 125,
        "seeds": 5,
        "lmax_hidden": [0, 4],
        "target_scaling": ["population"],
        "baseline_percent": 11.9,
    }
    (folder / "run.json").write_text(json.dumps(run))


def test_blocks_are_rewritten_from_the_snapshot_and_stamped(tmp_path):
    fake_snapshot(tmp_path / "snap")
    doc = tmp_path / "README.md"
    doc.write_text(
        "a\n<!-- draws:begin -->\nold 0.99\n<!-- draws:end -->\nb\n<!-- study-run:begin -->\n<!-- study-run:end -->\n"
    )
    assert D.write(tmp_path, tmp_path / "snap") == [doc]
    text = doc.read_text()
    assert "old" not in text and text.startswith("a\n") and "\nb\n" in text
    assert "| 1a | supported, 0.3 [0.1, 0.5] | supported, 0.3 [0.1, 0.5] | yes |" in text
    assert "commit abc1234; config.yaml config.study.yaml" in text and "ε = 11.9 %" in text
    assert D.write(tmp_path, tmp_path / "snap") == []  # already current


def test_a_changed_number_in_the_tables_changes_the_block(tmp_path):
    fake_snapshot(tmp_path / "snap")
    doc = tmp_path / "README.md"
    doc.write_text("<!-- draws:begin -->\n<!-- draws:end -->\n")
    D.write(tmp_path, tmp_path / "snap")
    fake_snapshot(tmp_path / "snap", estimate=0.25)
    assert D.write(tmp_path, tmp_path / "snap") == [doc] and "0.25 [0.1, 0.5]" in doc.read_text()


def test_an_unknown_block_is_refused(tmp_path):
    fake_snapshot(tmp_path / "snap")
    (tmp_path / "README.md").write_text("<!-- typo:begin -->\n<!-- typo:end -->\n")
    with pytest.raises(KeyError, match="typo"):
        D.write(tmp_path, tmp_path / "snap")


def test_every_generated_block_of_the_docs_equals_the_committed_snapshot():
    """README.md and docs/*.md quote a run only through generated blocks, and each equals what docs/results/ gives
    (after a new `make study`, commit docs/results/ with the rewritten blocks)."""
    data = D.load()
    names = set()
    for doc in D.documents():
        text = doc.read_text()
        names |= {match[1] for match in D.BLOCK.finditer(text)}
        assert D.rewrite(text, data) == text, (
            f"{doc.name}: stale blocks; run `python -m e3hier.analysis.docs_numbers write`"
        )
    assert names == set(D.BLOCKS) | set(D.LOSS_BLOCKS), f"blocks used in the docs: {sorted(names)}"


def hierarchy_row(run, estimate=-0.05):
    interval = {"estimate": estimate, "ci_low": estimate - 0.03, "ci_high": estimate + 0.03, "delta": 0.1}
    return {"finding": "2a", "draw": run, "statistic": "slope", "verdict": "absent", **interval, "mde": 0.08,
            "n_seeds": 16, "seeds_to_decide": float("nan"), "diverged_seeds": "3"}  # fmt: skip


def fake_results(folder, run="study", finished=True, figures=D.FIGURES, hierarchy=True):
    """A results folder as a finished run leaves it: verdicts, gains, models, datasets (one test structure
    skipped by DFT: not in the dataset), figures and the run record."""
    from e3hier import run_record

    (folder / "tables").mkdir(parents=True)
    (folder / "figures").mkdir()
    (folder / "dataset").mkdir()
    row = {"finding": "1a", "claim": "c", "statistic": "s", "estimate": 0.3, "ci_low": 0.1, "ci_high": 0.5}
    pd.DataFrame([{**row, "n_seeds": 5, "n_structures": 2, "interval": "t", "verdict": "supported"}]).to_parquet(
        folder / "tables" / "findings.parquet"
    )
    pd.DataFrame([{"output": "full", "lmax_hidden": 0, "epsilon": 0.7}]).to_parquet(
        folder / "tables" / "lmax_gains.parquet"
    )
    model = {"output": "full", "capacity": "study", "channels": "study", "seed": 0, "lmax_hidden": 0, "n_train": 4}
    pd.DataFrame([{**model, "target_scaling": "global_rms", "epsilon_test_baseline": 12.0}]).to_parquet(
        folder / "tables" / "models.parquet"
    )
    pd.DataFrame({"structure": ["a", "a", "b"]}).to_parquet(folder / "dataset" / "test.parquet")
    if hierarchy:  # make study's hierarchy experiment: its verdicts by run and its models' convergence
        pd.DataFrame([hierarchy_row(run) for run in ("draw 0", "draw 0, population_rms")]).to_parquet(
            folder / "tables" / "hierarchy_by_run.parquet"
        )
        pd.DataFrame(
            {
                "run": ["draw 0"] * 3,
                "name": ["a", "b", "c"],
                "epochs": 30,
                "best_epoch": [30, 30, 22],
                "change_last_fifth": [-0.01, -0.05, -0.001],
                "kept_before_last": [False, False, True],
                "settled": [True, False, True],
            }
        ).to_parquet(folder / "tables" / "hierarchy_convergence.parquet")
    for name in figures:
        (folder / "figures" / f"{name}.png").write_bytes(b"png " + name.encode())
    for path in D.HIERARCHY_FIGURES.values() if hierarchy else ():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(b"png " + path.encode())
    run_record.start(folder, run, ["config.yaml", "config.study.yaml"])
    if finished:
        run_record.finish(folder)
    return folder


def test_snapshot_takes_the_runs_own_record_and_counts_what_entered(tmp_path):
    results, out = fake_results(tmp_path / "results"), tmp_path / "snap"
    D.snapshot([results, results], out=out)
    run = json.loads((out / "run.json").read_text())
    assert run["configs"] == ["config.yaml", "config.study.yaml"] and run["structures"] == {"test": 2}
    assert (out / "figures" / "density.png").read_bytes() == b"png density"
    assert (out / "figures" / "hierarchy_by_run.png").read_bytes()[:4] == b"\x89PNG"  # drawn from the table
    convergence = pd.read_csv(out / "hierarchy_convergence.csv").iloc[0]
    assert (convergence["models"], convergence["kept_before_last"], convergence["settled"]) == (3, 1, 2)
    block = D.render("hierarchy", D.load(out))
    assert "| 2a | draw 0, population_rms | absent | -0.05 [-0.08, -0.02] | 0.1 | 0.08 | 16 (1) | – |" in block
    assert "| draw 0 | 3 | 30 | 1 | 2 | -1.00 % |" in D.render("hierarchy-convergence", D.load(out))
    words = "- 2a, higher hidden orders contribute less after training than at initialisation: **absent** on `draw 0`, "
    assert words + "`draw 0, population_rms`." in D.render("title-claim", D.load(out))


@pytest.mark.parametrize(
    "broken, message",
    [
        ({"run": "reproduce"}, "not from `make study`"),
        ({"finished": False}, "has not finished"),
        ({"figures": D.FIGURES[:-1]}, "density.png"),
        ({"hierarchy": False}, "hierarchy_by_run.parquet"),
    ],
)
def test_a_snapshot_of_another_or_partial_run_is_refused_and_leaves_the_old_one(tmp_path, broken, message):
    good, out = fake_results(tmp_path / "good"), tmp_path / "snap"
    D.snapshot([good], out=out)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = fake_results(tmp_path / "bad", **broken)
    with pytest.raises((ValueError, SystemExit), match=message):
        D.snapshot([bad], out=out)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_snapshot_keeps_the_loss_convergence_snapshot_beside_it(tmp_path):
    out = tmp_path / "snap"
    (out / D.LOSS_CONVERGENCE).mkdir(parents=True)
    (out / D.LOSS_CONVERGENCE / "summary.csv").write_text("kept")
    D.snapshot([fake_results(tmp_path / "results")], out=out)
    assert (out / D.LOSS_CONVERGENCE / "summary.csv").read_text() == "kept"


def test_a_snapshot_that_fails_midway_writes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "snap"
    D.snapshot([fake_results(tmp_path / "good")], out=out)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    newer = fake_results(tmp_path / "newer")
    monkeypatch.setattr(D.shutil, "copyfile", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        D.snapshot([newer], out=out)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good", "newer", "snap"]  # no staging folder left


def test_the_loss_rule_takes_the_first_loss_within_the_factor_at_every_lmax():
    from benchmarks.loss_convergence_report import choose_loss

    def summary(population, population_rms):
        rows = []
        for lmax, (p, r) in enumerate(zip(population, population_rms)):
            rows += [
                {"loss": "population", "lmax_hidden": lmax, "ratio_to_global_rms": p},
                {"loss": "population_rms", "lmax_hidden": lmax, "ratio_to_global_rms": r},
                {"loss": "global_rms", "lmax_hidden": lmax, "ratio_to_global_rms": 1.0},
            ]
        return pd.DataFrame(rows)

    assert choose_loss(summary([1.2, 1.1], [3, 3]))["chosen"] == "population"
    assert choose_loss(summary([1.2, 1.3], [1.0, 1.25]))["chosen"] == "population_rms"  # 1.3 at l_max 1
    assert choose_loss(summary([1.2, float("nan")], [2, 1]))["chosen"] == "global_rms"  # no global_rms at l_max 1


def test_the_paper_config_follows_the_loss_measurement():
    """config.paper.yaml's loss is what the rule chose on the committed loss-convergence snapshot."""
    import yaml

    decision = json.loads((D.SNAPSHOT / D.LOSS_CONVERGENCE / "decision.json").read_text())
    paper = yaml.safe_load((D.ROOT / "config.paper.yaml").read_text())
    assert paper["train"]["target_scaling"] == decision["chosen"]

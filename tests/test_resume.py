"""A run killed with SIGKILL on its whole process group, at any moment, finishes with the same command."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import copy_workflow

# runs the tiny workflow (minutes): not in `make test-fast`
pytestmark = pytest.mark.slow

TIMING = ["train_seconds", "job_seconds"]


def start(workflow: Path, workdir: Path) -> subprocess.Popen:
    """``make reproduce``'s command (``python -m e3hier.resume``) on the tiny config, in its own process group."""
    files = [workflow / "config.yaml", workflow / "tests" / "configs" / "tiny.yaml"]
    cmd = [
        sys.executable,
        "-m",
        "e3hier.resume",
        "-s",
        workflow / "Snakefile",
        "-d",
        workdir,
        "--configfile",
        *files,
        "--cores",
        "2",
    ]
    return subprocess.Popen(
        list(map(str, cmd)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=workflow
    )


def kill_when(process: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL the run's whole process group as soon as ``ready()`` holds (it must not finish first)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the run finished before the moment of the kill"
        assert time.monotonic() < deadline, "timed out waiting for the moment of the kill"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_run_continues_to_the_same_models(tiny_workflow_run, tmp_path):
    workflow = copy_workflow(tmp_path / "workflow").parent
    run = tmp_path / "run"
    results = run / "results"

    def training_mid_epoch():
        logs = list((results / "logs" / "train").glob("*.log")) if (results / "logs" / "train").is_dir() else []
        return any("epoch" in log.read_text(errors="ignore") for log in logs)

    moments = [
        ("DFT", lambda: len(list((results / "dft").glob("*.json"))) >= 2),
        ("training", training_mid_epoch),
        ("figures", lambda: any((results / "figures").glob("*.png"))),
    ]
    for _, ready in moments:
        kill_when(start(workflow, run), ready)
        assert any((run / ".snakemake" / "locks").iterdir())  # the killed run's lock is left behind
    final = start(workflow, run)
    assert final.wait(timeout=900) == 0
    expected = pd.read_parquet(tiny_workflow_run / "run" / "results" / "tables" / "models.parquet")
    got = pd.read_parquet(results / "tables" / "models.parquet")
    pd.testing.assert_frame_equal(got.drop(columns=TIMING), expected.drop(columns=TIMING), rtol=1e-6)
    assert (results / "tables" / "findings.html").exists()
    assert not list(results.rglob(".*.tmp"))

"""A run killed with SIGKILL on its whole process group, at any moment, finishes with the same command."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import copy_workflow

TIMING = ["train_seconds", "job_seconds"]


def start(workflow: Path, workdir: Path) -> subprocess.Popen:
    """``make reproduce``'s command (``python -m e3hier.workflow.resume``) on the tiny config, in its own process
    group."""
    files = [workflow / "config.yaml", workflow / "tests" / "configs" / "tiny.yaml"]
    cmd = [
        sys.executable,
        "-m",
        "e3hier.workflow.resume",
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


@pytest.mark.slow  # runs the tiny workflow (minutes): not in `make test-fast`
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


class Exec(Exception):
    """Raised by the stand-in of ``os.execv``: the wrapper got to running Snakemake."""


@pytest.fixture
def wrapper(tmp_path, monkeypatch):
    """``e3hier.workflow.resume.main`` in ``tmp_path/run`` with Snakemake replaced: returns (calls of ``--unlock``, the
    final command) or the exit status, and the folder."""
    from e3hier.workflow import resume

    workdir = tmp_path / "run"
    (workdir / resume.SNAKEMAKE_LOCKS).mkdir(parents=True)
    unlocks = []
    monkeypatch.setattr(resume.subprocess, "run", lambda cmd, **kw: unlocks.append(cmd))

    def execv(path, argv):
        raise Exec(argv)

    monkeypatch.setattr(resume.os, "execv", execv)

    def run(*argv):
        try:
            return resume.main(["-d", str(workdir), *argv])
        except Exec as done:
            return unlocks, done.args[0]

    return run, workdir


def lock_left(workdir, record=None):
    """A Snakemake lock as a run leaves it, with ``record`` as the wrapper's record of its holder."""
    from e3hier.workflow import resume

    (workdir / resume.SNAKEMAKE_LOCKS / "0.input.lock").write_text("results/x\n")
    if record is not None:
        (workdir / resume.RUN_LOCK).write_text(json.dumps(record) + "\n")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "."),
        (["-d", "a"], "a"),
        (["-da"], "a"),
        (["--directory", "a/b", "--cores", "2"], "a/b"),
        (["--directory=a"], "a"),
        (["--cores", "2", "--dry-run"], "."),
    ],
)
def test_the_working_directory_is_read_from_every_spelling(tmp_path, argv, expected):
    from e3hier.workflow.resume import working_directory

    assert working_directory(argv, tmp_path) == (tmp_path / expected).resolve()


def test_a_dead_run_of_this_host_is_unlocked_and_its_incomplete_jobs_redone(wrapper):
    from e3hier.workflow import resume

    run, workdir = wrapper
    lock_left(workdir, {**resume.holder_record(dead_pid()), "start": "1"})
    unlocks, final = run("--cores", "1")
    assert len(unlocks) == 1 and unlocks[0][-1] == "--unlock" and final[-1] == "--rerun-incomplete"
    assert json.loads((workdir / resume.RUN_LOCK).read_text())["pid"] == os.getpid()  # the new holder


@pytest.mark.parametrize(
    "record, needle",
    [
        (None, "no run of e3hier.workflow.resume recorded it"),  # a plain `snakemake` run records nothing
        ({"host": "login2", "boot_id": "x", "pid": 1, "start": "1"}, "host 'login2'"),
        ("alive", "is alive"),
        ("earlier boot", "not this host and boot"),
    ],
)
def test_a_lock_whose_holder_may_live_is_refused_with_the_manual_command(wrapper, capsys, record, needle):
    from e3hier.workflow import resume

    run, workdir = wrapper
    if record == "alive":
        record = resume.holder_record(os.getppid())
    elif record == "earlier boot":
        record = {**resume.holder_record(dead_pid()), "boot_id": "an-earlier-boot"}
    lock_left(workdir, record)
    assert run("--cores", "1") == 1
    err = capsys.readouterr().err
    assert needle in err and f"snakemake -d {workdir} --cores 1 --unlock" in err
    assert any((workdir / resume.SNAKEMAKE_LOCKS).iterdir())


def test_a_live_snakemake_process_in_the_folder_keeps_its_lock(wrapper, capsys):
    """A plain run's Snakemake (or a job of it) that still works in the folder, though the recorded holder died."""
    from e3hier.workflow import resume

    run, workdir = wrapper
    lock_left(workdir, resume.holder_record(dead_pid()))
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "snakemake"], cwd=workdir)
    cmdline = Path(f"/proc/{plain.pid}/cmdline")
    for _ in range(500):  # Popen can return before the kernel shows the new program's arguments
        if b"snakemake" in cmdline.read_bytes():
            break
        time.sleep(0.01)
    try:
        assert run("--cores", "1") == 1
    finally:
        plain.kill()
        plain.wait()
    assert f"Snakemake process(es) [{plain.pid}]" in capsys.readouterr().err


def test_a_file_system_without_flock_runs_snakemake_without_the_recovery(wrapper, monkeypatch, capsys):
    import errno

    from e3hier.workflow import resume

    def no_flock(handle, flags):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(resume.fcntl, "flock", no_flock)
    run, workdir = wrapper
    lock_left(workdir)
    unlocks, final = run("--cores", "1")
    assert not unlocks and "--rerun-incomplete" not in final
    assert "without the automatic recovery" in capsys.readouterr().err


def test_an_active_wrapped_run_is_refused(wrapper, capsys):
    import fcntl

    from e3hier.workflow import resume

    run, workdir = wrapper
    with open(workdir / resume.RUN_LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run("--cores", "1") == 1
    assert "another run of this workflow is active" in capsys.readouterr().err

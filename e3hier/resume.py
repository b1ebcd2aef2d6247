"""Run Snakemake so that a killed run continues: ``python -m e3hier.resume [snakemake arguments]``.

A run killed hard (SIGKILL, a lost terminal, an out-of-memory kill) leaves Snakemake's directory lock
behind and its unfinished outputs marked incomplete, and the next run stops on both until someone types
``--unlock`` and ``--rerun-incomplete``. This wrapper (what ``make reproduce`` and ``make study`` run) holds
an ``flock`` on ``.snakemake/e3hier.lock`` for as long as Snakemake runs: the kernel releases it when the
process dies, however it dies. So a held flock means another run is active (refused, as Snakemake would),
and a lock left without it is stale: it is released with ``--unlock`` before the run, which is given
``--rerun-incomplete`` (finished outputs are kept; an interrupted training job resumes from its checkpoint).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

#: The flock that marks an active run of this working directory.
RUN_LOCK = Path(".snakemake") / "e3hier.lock"
#: Snakemake's directory locks (left behind by a killed run).
SNAKEMAKE_LOCKS = Path(".snakemake") / "locks"


def working_directory(argv: list[str]) -> Path:
    """Snakemake's working directory: ``-d``/``--directory`` if given, else the current one."""
    for flag in ("-d", "--directory"):
        if flag in argv[:-1]:
            return Path(argv[argv.index(flag) + 1])
    return Path.cwd()


def stale_locks(workdir: Path) -> bool:
    locks = workdir / SNAKEMAKE_LOCKS
    return locks.is_dir() and any(locks.iterdir())


def main(argv: list[str]) -> int:
    workdir = working_directory(argv)
    (workdir / RUN_LOCK).parent.mkdir(parents=True, exist_ok=True)
    handle = open(workdir / RUN_LOCK, "w")  # noqa: SIM115  # not an output: the run lock, held open
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(
            f"another run of this workflow is active here (it holds {RUN_LOCK}); wait for it to finish", file=sys.stderr
        )
        return 1
    command = [sys.executable, "-m", "snakemake", *argv]
    if stale_locks(workdir):  # no run holds the flock: the lock is a killed run's
        print("e3hier: releasing the lock of an interrupted run (snakemake --unlock)", file=sys.stderr)
        subprocess.run([*command, "--unlock"], check=True, stdout=subprocess.DEVNULL)
    os.set_inheritable(handle.fileno(), True)  # Snakemake keeps the flock until it exits
    os.execv(sys.executable, [*command, "--rerun-incomplete"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

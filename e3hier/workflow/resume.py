"""Run Snakemake so that a killed run continues: ``python -m e3hier.workflow.resume [snakemake arguments]``.

A run killed hard (SIGKILL, a lost terminal, an out-of-memory kill) leaves Snakemake's directory lock
behind and its unfinished outputs marked incomplete, and the next run stops on both until someone types
``--unlock`` and ``--rerun-incomplete``. This wrapper (what ``make reproduce`` and ``make study`` run) holds
an ``flock`` on ``.snakemake/e3hier.lock`` for as long as Snakemake runs (the kernel releases it when the
process dies, however it dies) and records in that file who holds it: host, boot id, pid and the pid's start
time. So a held flock means another wrapped run is active (refused, as Snakemake would).

A Snakemake lock is released (``--unlock``, then ``--rerun-incomplete``: finished outputs are kept, an
interrupted training job resumes from its checkpoint) only when its holder is known to be dead: the record
names this host and boot, its pid is gone (or now another process), and no Snakemake process of this host
works in the folder. Anything else (a plain ``snakemake`` run, which records nothing; a run of another host
on a shared file system; an earlier boot) is refused with the manual command, since unlocking a live run
and adding ``--rerun-incomplete`` deletes its running jobs' outputs. Where the file system has no ``flock``,
Snakemake runs without the recovery, and the message says so.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

#: The flock that marks an active run of this working directory, and the record of its holder.
RUN_LOCK = Path(".snakemake") / "e3hier.lock"
#: Snakemake's directory locks (left behind by a killed run).
SNAKEMAKE_LOCKS = Path(".snakemake") / "locks"
#: The kernel's id of this boot: a pid of an earlier boot says nothing about the processes of this one.
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
#: Snakemake's options that name its working directory.
DIRECTORY_FLAGS = ("-d", "--directory")


def working_directory(argv: list[str], cwd=None) -> Path:
    """Snakemake's working directory: ``-d X``, ``-dX``, ``--directory X`` or ``--directory=X`` if given (the
    last wins, as in argparse), relative to ``cwd`` (default: the current folder); else ``cwd``."""
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    found = None
    for k, arg in enumerate(argv):
        if arg in DIRECTORY_FLAGS and k + 1 < len(argv):
            found = argv[k + 1]
        elif arg.startswith("--directory="):
            found = arg.split("=", 1)[1]
        elif arg.startswith("-d") and not arg.startswith("--") and len(arg) > 2:
            found = arg[2:]
    return (cwd / found).resolve() if found else cwd.resolve()


def boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot, field 22 of ``/proc/PID/stat``), None if it is gone:
    tells a live process from a later one that reuses its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command name, which may hold spaces


def holder_record(pid: int | None = None) -> dict:
    """Who holds the run lock: this process (``exec`` keeps the pid for Snakemake)."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "boot_id": boot_id(), "pid": pid, "start": process_start(pid)}


def pid_alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` is a live process of this host, and the recorded one (same start time, where known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return start is None or process_start(pid) in (None, start)


def snakemake_processes(workdir: Path) -> list[int]:
    """Pids of this host's Snakemake processes (runs and their jobs) working in ``workdir``, other than this
    one; processes whose folder cannot be read (other users') are left out."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        names = [k for k, arg in enumerate(argv) if Path(arg).name == "snakemake" or arg == "snakemake"]
        if names and int(entry.name) != os.getpid() and working_directory(argv[names[0] + 1 :], cwd) == workdir:
            found.append(int(entry.name))
    return sorted(found)


def stale_locks(workdir: Path) -> bool:
    locks = workdir / SNAKEMAKE_LOCKS
    return locks.is_dir() and any(locks.iterdir())


def read_record(text: str) -> dict | None:
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def why_not_stale(record: dict | None, workdir: Path) -> str | None:
    """None if Snakemake's lock in ``workdir`` is known to be a dead run's, else why it may be a live one's."""
    if record is None:
        return f"no run of e3hier.workflow.resume recorded it in {RUN_LOCK} (a plain snakemake run?)"
    here = holder_record()
    if record.get("host") != here["host"] or record.get("boot_id") != here["boot_id"] or here["boot_id"] is None:
        return f"it was taken on host {record.get('host')!r} (boot {record.get('boot_id')}), not this host and boot"
    if pid_alive(record["pid"], record.get("start")):
        return f"its run, pid {record['pid']}, is alive"
    others = snakemake_processes(workdir)
    if others:
        return f"Snakemake process(es) {others} of this host work in {workdir}"
    return None


def manual_unlock(argv: list[str]) -> str:
    return shlex.join(["snakemake", *argv, "--unlock"])


def main(argv: list[str]) -> int:
    workdir = working_directory(argv)
    lock_path = workdir / RUN_LOCK
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # "a+": the previous holder's record is read before it is replaced
    handle = open(lock_path, "a+")  # noqa: SIM115  # not an output: the run lock, held open while Snakemake runs
    command = [sys.executable, "-m", "snakemake", *argv]
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        print(
            f"another run of this workflow is active in {workdir} (it holds {lock_path}: {handle.read().strip()}); "
            "wait for it to finish",
            file=sys.stderr,
        )
        return 1
    except OSError as error:  # a file system without flock (some network file systems): no recovery
        print(
            f"e3hier: cannot lock {lock_path} ({error.strerror}): running Snakemake without the automatic recovery "
            f"of an interrupted run; if it reports a locked directory and no run is active, run "
            f"`{manual_unlock(argv)}`, then add --rerun-incomplete",
            file=sys.stderr,
        )
        handle.close()
        os.execv(sys.executable, command)
    handle.seek(0)
    previous = read_record(handle.read())
    if stale_locks(workdir):
        reason = why_not_stale(previous, workdir)
        if reason is not None:
            print(
                f"e3hier: {workdir / SNAKEMAKE_LOCKS} is locked and not known to be stale: {reason}. If no run is "
                f"active in this folder (on any host), release it with `{manual_unlock(argv)}` and run again",
                file=sys.stderr,
            )
            return 1
        print(
            f"e3hier: releasing the lock of interrupted run pid {previous['pid']} (snakemake --unlock)", file=sys.stderr
        )
        subprocess.run([*command, "--unlock"], check=True, stdout=subprocess.DEVNULL)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(holder_record()) + "\n")
    handle.flush()
    os.set_inheritable(handle.fileno(), True)  # Snakemake keeps the flock until it exits
    os.execv(sys.executable, [*command, "--rerun-incomplete"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

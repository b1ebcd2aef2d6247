"""CPU seconds of every script job of a running Snakemake workflow, polled from /proc (psutil).

Calibration helper of the cost plan (docs/plan.md). On a shared machine a job's wall time (the
``benchmark:`` file's ``s``) grows with whatever else runs; the CPU time the job's process consumed
does not. Snakemake's own ``cpu_time`` is sampled every 30 s after a job's first 30 s and loses the
CPU of the last interval, so this polls every ``--interval`` seconds instead.

    python benchmarks/calibration/cpu_monitor.py RUN_DIR OUT.tsv &   # then run the workflow in RUN_DIR

It stops when ``RUN_DIR/.cpu_monitor.stop`` appears and writes one row per job process: the job's
log file (unique per job, read from the pickled job in Snakemake's temporary script), the script,
CPU seconds (user + system, all threads), wall seconds (process lifetime) and the largest RSS seen (MB;
the dft rule has no benchmark file, so this is its only measured peak).
"""

import argparse
import re
import time
from pathlib import Path

import psutil

LOG_PATH = re.compile(rb"results/logs/[A-Za-z0-9_.~/\-]+?\.log")


def job_log(script: Path) -> str:
    """The job's log path, from the pickled ``snakemake`` object in its temporary script."""
    match = LOG_PATH.search(script.read_bytes())
    return match.group(0).decode() if match else ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args()
    run_dir = Path(args.run_dir).resolve()
    marker = str(run_dir / ".snakemake" / "scripts")
    stop = run_dir / ".cpu_monitor.stop"
    seen: dict[tuple, dict] = {}  # (pid, start): a pid is reused by later jobs
    while not stop.exists():
        for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
            cmd = proc.info["cmdline"] or []
            script = next((c for c in cmd if c.startswith(marker)), None)
            if script is None:
                continue
            try:
                times = proc.cpu_times()
                key = (proc.pid, proc.info["create_time"])
                record = seen.get(key)
                if record is None:
                    record = seen[key] = {
                        "log": job_log(Path(script)),
                        "script": Path(script).name,
                        "start": proc.info["create_time"],
                    }
                record["cpu_s"] = times.user + times.system
                record["max_rss_mb"] = max(record.get("max_rss_mb", 0.0), proc.memory_info().rss / 1e6)
                record["last"] = time.time()
            except (psutil.Error, OSError):
                continue
        time.sleep(args.interval)
    with open(args.out, "w") as out:
        out.write("log\tscript\tcpu_s\twall_s\tmax_rss_mb\n")
        for record in seen.values():
            if "cpu_s" in record and record["log"]:
                out.write(
                    f"{record['log']}\t{record['script']}\t{record['cpu_s']:.3f}\t"
                    f"{record['last'] - record['start']:.3f}\t{record['max_rss_mb']:.1f}\n"
                )


if __name__ == "__main__":
    main()

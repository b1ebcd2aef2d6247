"""The Slurm and workstation profiles (profiles/), the Slurm one on a real, local Slurm cluster.

`test_tiny_pipeline_through_slurm` starts a one-node Slurm cluster on this machine
(munged, slurmctld, slurmd from Debian's `munge` and `slurm-wlm`; .ci/run installs them),
runs the tiny config through `--profile profiles/slurm` and compares the models table
with that of a plain local run. It is skipped only where Slurm is not installed.

The cluster is private to the test session: its own munge key and socket, its own
slurm.conf (found through SLURM_CONF), free ports, state in a temporary directory;
nothing is written under /etc or /run. One detail needs a shim: inside a job, the
plugin's jobstep executor removes every SLURM_* variable, SLURM_CONF included, before
it calls `srun`; a real cluster's srun then reads /etc/slurm/slurm.conf, ours would
find nothing. A two-line `srun` wrapper first on PATH sets SLURM_CONF again.
"""

import concurrent.futures
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, TINY, snakemake

from e3hier.plan import snakemake_command
from e3hier.training.grid import training_grid
from e3hier.workflow import slurm_nodes

PROFILE = ROOT / "profiles" / "slurm"
WORKSTATION = ROOT / "profiles" / "workstation"
TARGET = "results/tables/models.parquet"
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
PARTITION = "e3hier"


def which(name):
    return shutil.which(name, path=SBIN_PATH)


def run(cmd, env=None, check=True, timeout=60):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def memory_mb():
    with open("/proc/meminfo") as meminfo:
        kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read()).group(1))
    return kib // 1024


class LocalSlurm:
    """A one-node Slurm cluster in ``base``: munged, slurmctld and slurmd, started and stopped."""

    def __init__(self, base: Path):
        self.base = base
        self.cpus = len(os.sched_getaffinity(0))
        self.node = socket.gethostname().split(".")[0]
        self.conf = base / "slurm.conf"
        self.munge_socket = base / "munge" / "munge.socket"
        self.bin = base / "bin"
        self.pidfiles = [base / "slurmd.pid", base / "slurmctld.pid", base / "munge" / "munged.pid"]

    @property
    def env(self):
        """Environment for Slurm clients, and for Snakemake (sbatch passes it on: --export=ALL)."""
        env = dict(os.environ)
        # the venv's python/snakemake for the jobs, then the srun shim
        env["PATH"] = os.pathsep.join([str(self.bin), str(Path(sys.executable).parent), SBIN_PATH])
        env["SLURM_CONF"] = str(self.conf)
        for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_")) and v != "SLURM_CONF"]:
            del env[var]  # e.g. when the tests themselves run inside a Slurm job
        return env

    def start(self):
        base = self.base
        base.chmod(0o755)  # munged insists that everyone may traverse to its socket
        for sub, mode in [
            ("munge", 0o755),
            ("key", 0o700),
            ("state", 0o700),
            ("spool", 0o755),
            ("log", 0o755),
            ("bin", 0o755),
        ]:
            (base / sub).mkdir(mode=mode)
        key = base / "key" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        run(
            [
                which("munged"),
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                "--num-threads=2",
                f"--log-file={base / 'munge' / 'munged.log'}",
                f"--pid-file={base / 'munge' / 'munged.pid'}",
                f"--seed-file={base / 'munge' / 'munged.seed'}",
            ]
        )

        ctld_port, slurmd_port = free_ports(2)
        # RealMemory a bit below the machine's; config_overrides lets a small CI machine
        # still accept the jobs' memory requests (4 GB for training; the tiny jobs need far less)
        real_memory = max(int(memory_mb() * 0.9), 9000)
        self.conf.write_text(
            f"""\
ClusterName=e3hiertest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={base / "state"}
SlurmdSpoolDir={base / "spool"}
SlurmctldPidFile={base / "slurmctld.pid"}
SlurmdPidFile={base / "slurmd.pid"}
SlurmctldLogFile={base / "log" / "slurmctld.log"}
SlurmdLogFile={base / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={real_memory} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        )
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{which("srun")}" "$@"\n')
        srun.chmod(0o755)

        run([which("slurmctld"), "-f", str(self.conf)], env=self.env)
        run([which("slurmd"), "-f", str(self.conf), "-N", self.node], env=self.env)
        deadline = time.time() + 90
        while time.time() < deadline:
            state = run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(1)
        raise RuntimeError(f"the Slurm node did not become idle (state {state!r}):\n{self.logs()}")

    def squeue(self):
        out = run(["squeue", "--states=all", "--noheader", "--format=%i|%j|%T"], env=self.env).stdout
        return [line.split("|") for line in out.splitlines() if line.strip()]

    def logs(self, chars=3000):
        texts = []
        for path in sorted((self.base / "log").glob("*.log")) + [self.base / "munge" / "munged.log"]:
            if path.exists():
                texts.append(f"--- {path.name}\n{path.read_text()[-chars:]}")
        return "\n".join(texts)

    def stop(self):
        if self.conf.exists():
            run(["scancel", f"--user={getpass.getuser()}"], env=self.env, check=False, timeout=30)
        for pidfile in self.pidfiles:
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


@pytest.fixture(scope="session")
def slurm_cluster():
    if which("slurmctld") is None:
        pytest.skip("Slurm is not installed (no slurmctld): apt-get install slurm-wlm munge, as .ci/run does")
    assert os.geteuid() == 0, "the local Slurm cluster runs slurmd as root: run this test as root"
    cluster = LocalSlurm(Path(tempfile.mkdtemp(prefix="e3hier-slurm-")))

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")  # so that the daemons are stopped below

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def merged_config() -> dict:
    """config.yaml with tiny.yaml merged over it, as Snakemake merges config files."""

    def merge(base, extra):
        for key, value in extra.items():
            base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
        return base

    return merge(yaml.safe_load((ROOT / "config.yaml").read_text()), yaml.safe_load(TINY.read_text()))


def tiny_command(workdir, profile, *args, configfiles=()) -> list[str]:
    """Snakemake on config.yaml + tiny.yaml (+ ``configfiles``) with a profile's settings, then ``args``."""
    files = [ROOT / "config.yaml", TINY, *configfiles]
    return snakemake_command(ROOT / "Snakefile", workdir, "--configfile", *files, "--profile", profile, *args)


def models_without_timings(workdir: Path) -> pd.DataFrame:
    table = pd.read_parquet(workdir / TARGET)
    table = table[[c for c in table.columns if "seconds" not in c]]
    return table.sort_values(["output", "capacity", "channels", "lmax_hidden", "seed", "n_train"], ignore_index=True)


@pytest.mark.slow
def test_tiny_pipeline_through_slurm(slurm_cluster, tmp_path):
    # the reference: a plain local run, alongside (the Slurm run mostly waits on polling)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        local = pool.submit(snakemake, tmp_path / "local", TARGET)

        workdir = tmp_path / "slurm"
        workdir.mkdir()
        cmd = tiny_command(
            workdir,
            PROFILE,
            # the site settings a user gives: our partition; no account (no accounting here).
            # This replaces the profile's default-resources, placeholders included.
            "--default-resources",
            f"slurm_partition={PARTITION}",
            # at most the node's CPUs per job: caps dft's 4 threads, sizes the dft group job
            "--cores",
            slurm_cluster.cpus,
            "--slurm-status-command",
            "squeue",  # no slurmdbd here, so no sacct
            "--slurm-init-seconds-before-status-checks",
            "2",
            "--seconds-between-status-checks",
            "2",
            "--slurm-keep-successful-logs",
            "--retries",
            "0",
            TARGET,
        )
        start = time.time()
        result = subprocess.run(cmd, capture_output=True, text=True, env=slurm_cluster.env, timeout=1500)
        seconds = time.time() - start
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"snakemake via Slurm failed:\n{output[-6000:]}\n{slurm_cluster.logs()}"
        local.result()
    finally:
        pool.shutdown(wait=False)  # on failure, stop the cluster now, not after the local run

    # every job went through sbatch: one Slurm job per rule job, one for all the DFT jobs, one for all the structures
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    logs = workdir / ".snakemake" / "slurm_logs"
    # logs are in .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log, group_<group>…/<jobid>.log
    by_kind = {}
    for log in logs.rglob("*.log"):
        kind = log.relative_to(logs).parts[0]
        group = next((g for g in ("group_dft", "group_structures") if kind.startswith(g)), kind)
        by_kind.setdefault(group, []).append(log)
    counts = {kind: len(files) for kind, files in by_kind.items()}
    config = merged_config()
    splits = config["structures"]["water_clusters"]["splits"]
    n_structures = sum(split["count"] for split in splits.values())  # tiny: 9
    n_models = len(training_grid(config["train"]))  # the study's grid and its controls
    per_group = yaml.safe_load((PROFILE / "config.yaml").read_text())["group-components"]
    assert n_structures <= min(per_group["dft"], per_group["structures"])  # all DFT jobs share one Slurm job, ditto
    assert counts == {
        "group_structures": 1,
        "rule_free_atom": 2,
        "group_dft": 1,
        "rule_dataset": len(splits),  # H, O
        "rule_train": n_models,
        "rule_evaluate": n_models,
        "rule_models_table": 1,
    }, counts
    assert len(submitted) == sum(counts.values())
    group_log = by_kind["group_dft"][0].read_text()
    assert f"{n_structures} of {n_structures} steps (100%) done" in group_log
    assert "--executor slurm-jobstep" in group_log
    # and Slurm ran them: squeue still lists them (MinJobAge=600), all COMPLETED
    jobs = {jobid: state for jobid, _, state in slurm_cluster.squeue()}
    assert {jobs.get(jobid) for jobid in submitted} == {"COMPLETED"}, jobs

    # the same models, numbers included, as the local run. Not to the last bit: the profile
    # runs PySCF with min(4, CPUs) threads (dft: 4, capped by --cores), the local run with 1,
    # and OpenMP sums then differ by ~1e-9 in the fitted coefficients, ~1e-7 relative in ε.
    slurm_models = models_without_timings(workdir)
    local_models = models_without_timings(tmp_path / "local")
    assert len(slurm_models) == n_models
    floats = slurm_models.select_dtypes("float").columns
    pd.testing.assert_frame_equal(
        slurm_models.drop(columns=floats), local_models.drop(columns=floats), check_exact=True
    )
    pd.testing.assert_frame_equal(slurm_models[floats], local_models[floats], check_exact=False, rtol=1e-5)
    print(f"\nSlurm run: {seconds:.0f} s, {len(submitted)} sbatch submissions")


@pytest.mark.slow
def test_cores_beyond_the_nodes_fail_at_start_up_naming_the_partition(slurm_cluster, tmp_path):
    """The profile's `cores` above the node's CPUs: Slurm would queue the group jobs forever (PartitionConfig);
    the workflow stops before its first sbatch and says which --cores fits."""
    cpus = slurm_cluster.cpus
    before = slurm_cluster.squeue()  # the session's cluster lists finished jobs of other tests for 600 s
    cmd = tiny_command(
        tmp_path,
        PROFILE,
        "--default-resources",
        f"slurm_partition={PARTITION}",
        "--cores",
        cpus + 2,
        "--slurm-status-command",
        "squeue",
        TARGET,
    )
    result = subprocess.run(cmd, capture_output=True, text=True, env=slurm_cluster.env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for needle in (
        f"partition '{PARTITION}': its largest node has {cpus} CPUs",
        f"dft ({cpus + 2})",
        f"structure ({cpus + 2})",
        "PartitionConfig",
        f"--cores {cpus}",
    ):
        assert needle in output, f"{needle!r} not in output:\n{output[-3000:]}"
    assert "submitted with SLURM jobid" not in output and slurm_cluster.squeue() == before


# --------------------------------------------------------------------------- node sizes, no Slurm needed

SINFO = """\
debug* 2
debug* 2
big 64
big 128+
gpu 16
this line is not a node
"""


def fake_sinfo(stdout="", returncode=0, error=None):
    """A ``subprocess.run`` stand-in for ``e3hier.workflow.slurm_nodes.SINFO_NODE_CPUS``."""

    def run(cmd, **kwargs):
        assert tuple(cmd) == slurm_nodes.SINFO_NODE_CPUS
        if error is not None:
            raise error
        return subprocess.CompletedProcess(cmd, returncode, stdout, "sinfo: error: no controller" if returncode else "")

    return run


def test_sinfo_node_cpus_are_parsed_per_partition():
    assert slurm_nodes.parse_sinfo_cpus(SINFO) == ({"debug": 2, "big": 128, "gpu": 16}, "debug")
    assert slurm_nodes.parse_sinfo_cpus("") == ({}, None)


def test_jobs_wider_than_every_node_of_their_partition_are_refused():
    requests = {None: {"dft": 4, "structure": 4, "dataset": 1}, "gpu": {"train": 8}, "big": {"free_atom": 4}}
    with pytest.raises(ValueError) as err:
        slurm_nodes.check_slurm_node_sizes(requests, run=fake_sinfo(SINFO))
    message = str(err.value)
    assert (
        "partition 'debug': its largest node has 2 CPUs, but jobs of rules dft (4), structure (4) ask for more"
        in message
        and "PartitionConfig" in message
        and "--cores 2" in message
    )
    assert "dataset" not in message  # 1 CPU fits
    assert "'gpu'" not in message and "'big'" not in message  # 16 and 128 CPUs: room enough
    # exactly the node's size fits
    assert slurm_nodes.check_slurm_node_sizes({None: {"dft": 2}, "big": {"train": 128}}, run=fake_sinfo(SINFO)) == []


def test_unknown_partition_or_unusable_sinfo_only_warns():
    [warning] = slurm_nodes.check_slurm_node_sizes({"<partition>": {"dft": 4}}, run=fake_sinfo(SINFO))
    assert "'<partition>'" in warning and "big, debug, gpu" in warning
    [warning] = slurm_nodes.check_slurm_node_sizes({None: {"dft": 4}}, run=fake_sinfo(returncode=1))
    assert "exited with 1" in warning and "no controller" in warning
    [warning] = slurm_nodes.check_slurm_node_sizes({None: {"dft": 4}}, run=fake_sinfo(error=FileNotFoundError("sinfo")))
    assert "node sizes not checked" in warning


REQUESTS_FLOW = """
import json
from e3hier.plan import snakemake_command
from e3hier.workflow import slurm_nodes


onstart:
    requests = slurm_nodes.slurm_job_requests(workflow)
    with open("requests.json", "w") as out:
        json.dump({str(k): v for k, v in requests.items()}, out)

rule all:
    input: "c.txt"

rule a:
    output: "a.txt"
    threads: 6
    shell: "touch {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    threads: 2
    shell: "touch {output}"

rule c:
    input: "b.txt"
    output: "c.txt"
    threads: 16
    resources: slurm_partition="big"
    shell: "touch {output}"
"""


@pytest.mark.slow
def test_job_requests_follow_cores_threads_groups_and_partitions(tmp_path):
    """What each partition is asked for, read from a workflow's settings (a throwaway workflow, run locally)."""
    (tmp_path / "Snakefile").write_text(REQUESTS_FLOW)
    cmd = snakemake_command(
        tmp_path / "Snakefile",
        tmp_path,
        "--cores",
        "4",
        "--groups",
        "b=small",
        "--default-resources",
        "slurm_partition=debug",
        "--set-threads",
        "a=3",
        "--set-resources",
        "a:slurm_partition=mid",
    )
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT))
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    requests = json.loads((tmp_path / "requests.json").read_text())
    # a: set-threads 3 (on its own partition); b: 2 threads, but grouped: a group job asks for `cores`;
    # c: 16 threads capped at `cores`, on the partition the rule names
    assert requests == {"mid": {"a": 3}, "debug": {"b": 4}, "big": {"c": 4}}


# --------------------------------------------------------------------------- dry runs


def dry_run(profile, workdir, *configfiles):
    """A dry run with the profile's own settings (the test helper would pass --cores 2)."""
    cmd = tiny_command(workdir, profile, "--dry-run", TARGET, configfiles=configfiles)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_profiles_name_only_rules_of_the_workflow():
    sources = "\n".join(p.read_text() for p in [ROOT / "Snakefile", *(ROOT / "rules").glob("*.smk")])
    rules = set(re.findall(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", sources, re.M))
    for profile in (PROFILE, WORKSTATION):
        settings = yaml.safe_load((profile / "config.yaml").read_text())
        named = set()
        for key in ("set-threads", "set-resources", "groups"):
            named |= set(settings.get(key) or {})
        assert named <= rules, f"{profile.name}: unknown rules {named - rules}"
    # groups are the profile's (an execution matter): the workflow declares none
    assert not re.search(r"^\s+group:", sources, re.M)
    slurm = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert set(slurm["group-components"]) <= set(slurm["groups"].values()), slurm["groups"]


@pytest.mark.slow
def test_slurm_profile_bundles_dft_jobs_into_one_group_job(tmp_path):
    """No Slurm needed: a dry run shows the profile's threads, resources and dft group."""
    out = dry_run(PROFILE, tmp_path)
    assert out.count("Group job dft") == 1  # 9 tiny structures, up to 40 per group
    assert out.count("Group job structures") == 1  # up to 100 per group
    dft = re.findall(r"rule dft:\n(.*?)resources: ([^\n]*)", out, re.S)
    assert len(dft) == 9
    assert all(
        "threads: 4" in head and "runtime=30" in res and "slurm_partition=<partition>" in res for head, res in dft
    )


@pytest.mark.slow
def test_workstation_profile_lets_one_training_job_hold_the_gpu(tmp_path):
    cuda = tmp_path / "cuda.yaml"
    cuda.write_text("train: {device: cuda}\n")
    out = dry_run(WORKSTATION, tmp_path / "work", cuda)
    train = re.findall(r"rule train:\n.*?resources: ([^\n]*)", out, re.S)
    assert len(train) == len(training_grid(merged_config()["train"])) and all("gpu=1" in res for res in train), train


def test_every_rule_asks_for_more_memory_on_a_retry():
    """Each rule's mem_mb is a function of the attempt (a fixed number, in a rule or a profile, would
    resubmit a job killed for its memory with the same)."""
    from e3hier.workflow.rules import mem_mb_per_attempt

    assert [mem_mb_per_attempt(2000)(None, attempt) for attempt in (1, 2, 3)] == [2000, 4000, 6000]
    sources = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    settings = re.findall(r"^\s*mem_mb=([^\n]*),$", sources, re.M)
    per_models = re.findall(r"^\s*\*\*wf\.models_read_resources\(", sources, re.M)  # memory per attempt too
    assert len(settings) + len(per_models) == len(re.findall(r"^\s*resources:", sources, re.M)), settings
    dft = ("dft_mem_mb", "predict_dft_mem_mb")  # the DFT estimate of a structure of the run or of predict
    assert all(s.startswith("mem_mb_per_attempt(") or s in dft for s in settings), settings
    assert "* attempt" in sources[sources.index("def structure_dft_mem_mb") :]
    for profile in (PROFILE, WORKSTATION):
        per_rule = yaml.safe_load((profile / "config.yaml").read_text()).get("set-resources") or {}
        assert all("mem_mb" not in resources for resources in per_rule.values()), profile


def test_analysis_and_figure_resources_grow_with_the_models_and_the_attempt():
    """The jobs that read every model's tables ask for memory and time that grow with the number of models, and
    for more of both on a retry."""
    from e3hier.workflow.rules import models_read_resources

    for kind in ("analysis", "figure"):
        small, large = models_read_resources(kind, 12), models_read_resources(kind, 500)
        for key in ("mem_mb", "runtime"):
            assert large[key](None, 1) > small[key](None, 1)
            assert large[key](None, 2) >= 2 * large[key](None, 1) - 1
    assert models_read_resources("analysis", 500)["mem_mb"](None, 1) >= 4000  # ~0.5 MB measured per model, 10x


@pytest.mark.slow
def test_the_profiles_train_entry_covers_the_ensemble_training_rules(tmp_path):
    """Snakemake keys a profile's per-rule settings by rule name; `train:` reaches train_ensemble_seeds_*."""
    profile = tmp_path / "profile"
    profile.mkdir()
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    settings["set-resources"]["train"]["slurm_partition"] = "gpu-test"
    (profile / "config.yaml").write_text(yaml.safe_dump(settings))
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("train: {ensemble_size: 2, device: cuda}\n")
    out = dry_run(profile, tmp_path / "work", ensemble)
    jobs = re.findall(r"rule (train\w*):\n.*?resources: ([^\n]*)", out, re.S)
    assert jobs and all(name.startswith("train_ensemble_seeds_") for name, _ in jobs), jobs
    assert all("slurm_partition=gpu-test" in res and "runtime=720" in res and "gpu=1" in res for _, res in jobs)

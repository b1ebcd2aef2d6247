"""Slurm: refuse, before any job is submitted, jobs wider than every node of their partition.

Slurm accepts such a job and leaves it pending forever (reason PartitionConfig); the workflow's
``onstart`` handler (``rules/common.smk``) compares the jobs' CPUs with the nodes' (``sinfo``).
Kept free of Snakemake imports: ``slurm_job_requests`` reads a ``workflow`` object it is given.
"""

from __future__ import annotations

import re
import subprocess

#: Every node of every partition (hidden ones too) with its CPU count: one "partition cpus" line per
#: node and partition; the default partition's name ends in "*".
SINFO_NODE_CPUS = ("sinfo", "--noheader", "--all", "--Node", "--format=%P %c")
SINFO_TIMEOUT_S = 30


def parse_sinfo_cpus(text: str) -> tuple[dict[str, int], str | None]:
    """``({partition: CPUs of its largest node}, default partition or None)`` from ``SINFO_NODE_CPUS``'
    output (``sinfo -h -o '%c'`` per node and partition). A count "N+" (sinfo's "N or more", on lines
    that sum up nodes of different sizes) is read as N; lines that are not "partition count" are skipped.

    Parameters
    ----------
    text : str
        ``SINFO_NODE_CPUS``' stdout.
    """
    largest: dict[str, int] = {}
    default = None
    for line in text.splitlines():
        fields = line.split()
        match = re.fullmatch(r"(\d+)\+?", fields[1]) if len(fields) == 2 else None
        if match is None:
            continue
        partition = fields[0]
        if partition.endswith("*"):
            partition = default = partition[:-1]
        largest[partition] = max(largest.get(partition, 0), int(match.group(1)))
    return largest, default


def slurm_cpu_problems(requests: dict, largest: dict[str, int], default: str | None) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of a Slurm run whose jobs ask for ``requests`` = ``{partition (None: Slurm's
    default): {rule: CPUs one of its jobs asks for}}`` on a cluster whose partitions' largest nodes
    have ``largest`` CPUs (``parse_sinfo_cpus``).

    An error for each partition where no node has the CPUs that some rule's jobs ask for, naming those
    rules: Slurm accepts such a job and leaves it pending forever (reason PartitionConfig). A warning
    for a partition that sinfo does not list.

    Parameters
    ----------
    requests : dict
        ``slurm_job_requests``' output.
    largest : dict
        CPUs of each partition's largest node (``parse_sinfo_cpus``).
    default : str or None
        The default partition.
    """
    errors, warnings = [], []
    for partition, by_rule in requests.items():
        name = default if partition is None else partition
        if name not in largest:
            known = ", ".join(sorted(largest)) or "none"
            warnings.append(
                f"partition {name!r} (rules {', '.join(sorted(by_rule))}): sinfo lists no such "
                f"partition (it lists: {known}); set slurm_partition (docs/cluster.md, Site settings)"
            )
            continue
        n = largest[name]
        wide = {rule: cpus for rule, cpus in sorted(by_rule.items()) if cpus > n}
        if wide:
            listing = ", ".join(f"{rule} ({cpus})" for rule, cpus in wide.items())
            errors.append(
                f"partition {name!r}: its largest node has {n} CPUs, but jobs of rules {listing} ask for more "
                f"(a rule's threads, capped at `cores`; a group job asks for `cores`): Slurm would leave them "
                f"pending forever (reason PartitionConfig). Run with --cores {n}, or set `cores: {n}` in your "
                "copy of the profile (docs/cluster.md)"
            )
    return errors, warnings


def _resource_raw(rule, name: str):
    """The value of a rule's resource as set (``--default-resources``, ``set-resources``, the rule), or
    None when unset or set by a function of the job."""
    if name not in rule.resources:
        return None
    raw = getattr(rule.resources[name], "raw", None)
    return None if callable(raw) else raw


def slurm_job_requests(workflow) -> dict:
    """``{partition (None: Slurm's default): {rule: CPUs one of its jobs asks for}}`` of a Snakemake
    workflow with its settings (``workflow.cores``, threads, groups, ``slurm_partition``).

    A job asks for its rule's threads capped at ``cores``; a job of a grouped rule (the profile's
    ``groups:``) runs in a group job, which asks for ``cores``; threads set by a function count as ``cores``.

    Parameters
    ----------
    workflow : snakemake.workflow.Workflow
        The running workflow (``workflow`` in a Snakefile).
    """
    try:
        cores = workflow.cores
    except Exception:  # Snakemake raises when no --cores was given; then threads alone count
        cores = None
    groups = workflow.group_settings.overwrite_groups
    requests: dict = {}
    for rule in workflow.rules:
        if getattr(rule, "norun", False):
            continue  # a target-only rule such as `all` submits nothing
        threads = _resource_raw(rule, "_cores")
        grouped = rule.name in groups or getattr(rule, "group", None) is not None
        if cores is None:
            cpus = threads if isinstance(threads, int) else 1
        else:
            cpus = cores if grouped or not isinstance(threads, int) else min(threads, cores)
        partition = _resource_raw(rule, "slurm_partition")
        partition = str(partition).strip("'\"") if partition is not None else None
        requests.setdefault(partition, {})[rule.name] = cpus
    return requests


def check_slurm_node_sizes(requests: dict, run=subprocess.run) -> list[str]:
    """Raise ValueError when a partition's nodes are all smaller than the jobs sent there
    (``slurm_cpu_problems``); returns warnings (an unknown partition, sinfo not usable). ``requests``
    as from ``slurm_job_requests``; ``run`` calls ``SINFO_NODE_CPUS`` (``subprocess.run``'s signature).

    Parameters
    ----------
    requests : dict
        ``slurm_job_requests``' output.
    run : callable, optional
        Runs a command, as ``subprocess.run`` (a stand-in in tests).
    """
    try:
        result = run(list(SINFO_NODE_CPUS), capture_output=True, text=True, timeout=SINFO_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        return [f"node sizes not checked: {' '.join(SINFO_NODE_CPUS)} failed ({err})"]
    if result.returncode != 0:
        return [
            f"node sizes not checked: {' '.join(SINFO_NODE_CPUS)} exited with {result.returncode}: "
            f"{result.stderr.strip()[-500:]}"
        ]
    errors, warnings = slurm_cpu_problems(requests, *parse_sinfo_cpus(result.stdout))
    if errors:
        raise ValueError("Slurm jobs would never start: " + "; ".join(errors))
    return warnings

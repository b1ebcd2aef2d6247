"""What the Snakemake workflow needs to know before any job runs: structures, elements, resources.

Kept free of Snakemake imports so it is tested like the rest of the package.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
from pathlib import Path

from e3hier.basis import element_basis
from e3hier.grid import GRID_AXES
from e3hier.structures.plans import structure_plans


def structure_manifest(structures_cfg: dict, base_dir=".") -> dict[str, dict]:
    """``{structure_id: {"split", "symbols", "charge", "multiplicity", "recipe"}}`` in split order, from the config alone.

    Generated water clusters are known from their recipes (neutral singlets); XYZ inputs
    are read (cheaply) to learn their frames, elements, charges and multiplicities, and
    refused, naming the file, when periodic or when charge and multiplicity do not fit.
    ``recipe`` is what the structure's own job needs (``e3hier.structures.plans.build_structure``).
    """
    return {
        structure_id: {"split": plan["recipe"]["split"], **plan}
        for structure_id, plan in structure_plans(structures_cfg, base_dir).items()
    }


def check_single_charge(manifest: dict[str, dict], splits) -> None:
    """Fail before any job runs if the structures of ``splits`` (those a model is trained, validated or
    tested on) have different charges: the network has no charge input, so it cannot tell them apart.

    The message names each charge with its count and first structure.
    """
    by_charge: dict[int, list[str]] = {}
    for structure_id, info in manifest.items():
        if info["split"] in splits:
            by_charge.setdefault(info["charge"], []).append(structure_id)
    if len(by_charge) > 1:
        found = ", ".join(f"charge {charge:+d}: {len(ids)} (first {ids[0]})" for charge, ids in sorted(by_charge.items()))
        raise ValueError(
            f"structures of splits {sorted(splits)} have different charges ({found}): the network has no "
            "charge input, so train, validate and test on structures of one charge (the 'charge=' of the XYZ files)"
        )


def literal_pattern(names) -> str:
    """A regular expression that matches exactly the given strings (one that matches nothing if none).

    For ``wildcard_constraints`` of a rule whose wildcard only takes known values. Written
    as a character trie, so shared prefixes (``w3_train_0…``) appear once: Snakemake puts
    the constraint into the rule's output pattern and rescans that text for every job, so
    2,000 ids as a flat alternation (28 kB) cost seconds of planning, the trie (6 kB) little.
    """
    trie: dict = {}
    for name in set(names):
        if "{" in name or "}" in name:
            raise ValueError(f"{name!r}: braces are not allowed in a wildcard value")
        node = trie
        for char in name:
            node = node.setdefault(char, {})
        node[""] = {}  # a name ends here
    return _trie_pattern(trie) if trie else "(?!)"


def _trie_pattern(node: dict) -> str:
    """Regular expression of the names below ``node`` of ``literal_pattern``'s trie."""
    end = {"": {}}
    last = sorted(char for char, child in node.items() if char and child == end)  # chars that end a name
    alternatives = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char and child != end]
    if len(last) == 1:
        alternatives.append(re.escape(last[0]))
    elif last:
        alternatives.append("[" + "".join(map(re.escape, last)) + "]")
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return f"(?:{body})?" if "" in node else body


def check_basis_coverage(manifest: dict[str, dict], dft_cfg: dict) -> None:
    """Fail before any job runs if a structure has an element that the SCF or fit basis lacks.

    The message names the first structure with each missing element.
    """
    problems = []
    for element in elements(manifest):
        for key in ("basis", "fit_auxbasis"):
            try:
                element_basis(dft_cfg[key], element, False)
            except KeyError:
                first = next(s for s, info in manifest.items() if element in info["symbols"])
                problems.append(f"structure {first}: dft.{key} {dft_cfg[key]!r} has no functions for element {element!r}")
    if problems:
        raise ValueError("; ".join(problems))


def splits(manifest: dict[str, dict]) -> list[str]:
    """Splits that hold at least one structure, in first-seen order."""
    return list(dict.fromkeys(info["split"] for info in manifest.values()))


def elements(manifest: dict[str, dict]) -> list[str]:
    return sorted({el for info in manifest.values() for el in info["symbols"]})


@functools.lru_cache(maxsize=None)
def n_functions(basis_name: str, element: str, decontract: bool = False) -> int:
    """Number of spherical functions of ``element`` in a basis (cached: the DAG asks once per DFT job)."""
    return sum(2 * shell[0] + 1 for shell in element_basis(basis_name, element, decontract))


def per_model_train_settings(train_cfg: dict) -> dict:
    """``train`` without the grid axes: what one training job depends on."""
    return {k: v for k, v in train_cfg.items() if k not in GRID_AXES}


def fit_layout_settings(dft_cfg: dict) -> dict:
    """The part of ``dft`` the model and ε need: the fit basis (the layout) and the SCF basis name."""
    return {k: dft_cfg[k] for k in ("basis", "fit_auxbasis", "decontract")}


def training_uses_gpu(train_cfg: dict) -> bool:
    """Whether ``train.device`` resolves to CUDA here (``auto``: if torch sees a GPU)."""
    if train_cfg["device"] == "cuda":
        return True
    if train_cfg["device"] == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


# --- Slurm: jobs wider than every node of their partition ------------------------

#: Every node of every partition (hidden ones too) with its CPU count: one "partition cpus" line per
#: node and partition; the default partition's name ends in "*".
SINFO_NODE_CPUS = ("sinfo", "--noheader", "--all", "--Node", "--format=%P %c")
SINFO_TIMEOUT_S = 30


def parse_sinfo_cpus(text: str) -> tuple[dict[str, int], str | None]:
    """``({partition: CPUs of its largest node}, default partition or None)`` from ``SINFO_NODE_CPUS``'
    output (``sinfo -h -o '%c'`` per node and partition). A count "N+" (sinfo's "N or more", on lines
    that sum up nodes of different sizes) is read as N; lines that are not "partition count" are skipped.
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
    """
    errors, warnings = [], []
    for partition, by_rule in requests.items():
        name = default if partition is None else partition
        if name not in largest:
            known = ", ".join(sorted(largest)) or "none"
            warnings.append(f"partition {name!r} (rules {', '.join(sorted(by_rule))}): sinfo lists no such "
                            f"partition (it lists: {known}); set slurm_partition (docs/cluster.md, Site settings)")  # fmt: skip
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
    as from ``slurm_job_requests``; ``run`` calls ``SINFO_NODE_CPUS`` (``subprocess.run``'s signature)."""
    try:
        result = run(list(SINFO_NODE_CPUS), capture_output=True, text=True, timeout=SINFO_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        return [f"node sizes not checked: {' '.join(SINFO_NODE_CPUS)} failed ({err})"]
    if result.returncode != 0:
        return [f"node sizes not checked: {' '.join(SINFO_NODE_CPUS)} exited with {result.returncode}: "
                f"{result.stderr.strip()[-500:]}"]  # fmt: skip
    errors, warnings = slurm_cpu_problems(requests, *parse_sinfo_cpus(result.stdout))
    if errors:
        raise ValueError("Slurm jobs would never start: " + "; ".join(errors))
    return warnings
def code_files(script, package: str = "e3hier") -> list[str]:
    """The modules of ``package`` a workflow script runs: its imports, and theirs, found in the source
    (sorted absolute paths). A rule lists them as inputs, so editing a module reruns exactly the jobs
    whose code changed (Snakemake itself only tracks the script file)."""
    script = Path(script).resolve()
    root = script.parent.parent  # scripts/ sits beside the package
    found: set[Path] = set()
    pending = [script]
    while pending:
        for name in imported_modules(pending.pop(), package):
            for module in module_files(root, name):
                if module not in found:
                    found.add(module)
                    pending.append(module)
    return sorted(map(str, found))


def module_files(root: Path, name: str) -> list[Path]:
    """The files under ``root`` that importing the dotted ``name`` runs: the ``__init__.py`` of each
    package on the way (Python runs them first), then the module itself (``a/b.py`` or ``a/b/__init__.py``).

    Parameters
    ----------
    root : Path
        The folder that holds the package.
    name : str
        A dotted name as ``imported_modules`` gives it; one that is not a module (``a.b.function``) gives
        only the packages on its way.
    """
    parts = name.split(".")
    files = [root.joinpath(*parts[:k], "__init__.py") for k in range(1, len(parts))]
    files += [root.joinpath(*parts[:-1], parts[-1] + ".py"), root.joinpath(*parts, "__init__.py")]
    return [path for path in files if path.is_file()]


@functools.lru_cache(maxsize=None)
def imported_modules(path: Path, package: str) -> tuple[str, ...]:
    """Dotted names ``path`` imports from ``package`` (``from a.b import c`` gives a.b and a.b.c)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.split(".")[0] == package]
    return tuple(names)


def check_training_config(config: dict, manifest: dict[str, dict], train_split: str = "train") -> None:
    """Refuse, before any job, a training set-up that would fail late or silently: each error names its key.

    - the training split, ``train.val_split`` and every ``train.test_splits`` entry must name a split that
      holds structures (a typo would otherwise be dropped, or fail after training);
    - every ``train.n_train`` size must fit in the training split;
    - ``model.hidden_multiplicities`` needs one entry per order up to the largest ``train.lmax_hidden``;
    - every element of an evaluated split must occur in the training or validation split (the network has
      no input for an element it never saw).
    """
    train_cfg, problems = config["train"], []
    counts = {split: 0 for split in splits(manifest)}
    for info in manifest.values():
        counts[info["split"]] += 1
    available = ", ".join(f"{split} ({n})" for split, n in counts.items()) or "none"
    named = [("the training split", train_split), ("train.val_split", train_cfg.get("val_split", "val"))]
    named += [("train.test_splits", split) for split in train_cfg.get("test_splits", ["test", "test_large"])]
    for key, split in named:
        if not counts.get(split):
            problems.append(f"{key}: split {split!r} holds no structures (splits with structures: {available})")
    sizes = [n for n in train_cfg["n_train"] if n != "all" and int(n) > counts.get(train_split, 0)]
    if sizes:
        problems.append(f"train.n_train: {sizes} larger than the training split ({counts.get(train_split, 0)} structures)")
    multiplicities = config["model"]["hidden_multiplicities"]
    if len(multiplicities) < max(train_cfg["lmax_hidden"]) + 1:
        problems.append(f"model.hidden_multiplicities: {len(multiplicities)} entries (l = 0..{len(multiplicities) - 1}), "
                        f"train.lmax_hidden goes to {max(train_cfg['lmax_hidden'])}")  # fmt: skip
    seen = {el for info in manifest.values() if info["split"] in {train_split, named[1][1]} for el in info["symbols"]}
    for _, split in named[2:]:
        unseen = sorted({el for info in manifest.values() if info["split"] == split for el in info["symbols"]} - seen)
        if unseen:
            problems.append(f"train.test_splits: split {split!r} has element(s) {unseen} that no training or "
                            "validation structure has (the network has no input for them)")  # fmt: skip
    if problems:
        raise ValueError("config: " + "; ".join(problems))

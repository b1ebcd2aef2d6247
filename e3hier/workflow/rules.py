"""What the Snakemake workflow needs to know before any job runs: structures, elements, resources.

Kept free of Snakemake imports so it is tested like the rest of the package.
"""

from __future__ import annotations

import functools
import math
import re

from e3hier.dft.basis import element_basis
from e3hier.structures.plans import structure_plans
from e3hier.training.grid import EXECUTION_SETTINGS, GRID_AXES, same_size_n_train


def structure_manifest(structures_cfg: dict, base_dir=".") -> dict[str, dict]:
    """``{structure_id: {"split", "symbols", "charge", "multiplicity", "recipe"}}`` in split order, from the
    config alone.

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
        found = ", ".join(
            f"charge {charge:+d}: {len(ids)} (first {ids[0]})" for charge, ids in sorted(by_charge.items())
        )
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
    alternatives = [
        re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char and child != end
    ]
    if len(last) == 1:
        alternatives.append(re.escape(last[0]))
    elif last:
        alternatives.append("[" + "".join(map(re.escape, last)) + "]")
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return f"(?:{body})?" if "" in node else body


def check_basis_coverage(manifest: dict[str, dict], dft_cfg: dict) -> None:
    """Fail before any job runs if a structure has an element that the SCF basis, its density-fitting basis or
    the fit basis lacks (or PySCF knows no basis of that name).

    The message names the first structure with each missing element.
    """
    problems = []
    for element in elements(manifest):
        for key in ("basis", "scf_auxbasis", "fit_auxbasis"):
            try:
                element_basis(dft_cfg[key], element, False)
            except KeyError:
                first = next(s for s, info in manifest.items() if element in info["symbols"])
                problems.append(
                    f"structure {first}: dft.{key} {dft_cfg[key]!r} has no functions for element {element!r}"
                )
    if problems:
        raise ValueError("; ".join(problems))


def splits(manifest: dict[str, dict]) -> list[str]:
    """Splits that hold at least one structure, in first-seen order."""
    return list(dict.fromkeys(info["split"] for info in manifest.values()))


def elements(manifest: dict[str, dict]) -> list[str]:
    return sorted({el for info in manifest.values() for el in info["symbols"]})


@functools.cache
def n_functions(basis_name: str, element: str, decontract: bool = False) -> int:
    """Number of spherical functions of ``element`` in a basis (cached: the DAG asks once per DFT job)."""
    return sum(2 * shell[0] + 1 for shell in element_basis(basis_name, element, decontract))


def per_model_train_settings(train_cfg: dict) -> dict:
    """``train`` without the grid axes and the execution settings: what one training job's results depend on
    (its params: a change retrains)."""
    return {k: v for k, v in train_cfg.items() if k not in GRID_AXES + EXECUTION_SETTINGS}


def fit_layout_settings(dft_cfg: dict) -> dict:
    """The part of ``dft`` the model and ε need: the fit basis (the layout) and the SCF basis name."""
    return {k: dft_cfg[k] for k in ("basis", "fit_auxbasis", "decontract")}


def mem_mb_per_attempt(first_mb: int):
    """A rule's ``mem_mb``: ``first_mb`` on the first attempt, 2x and 3x on the retries (the profiles'
    ``restart-times``), so a job killed for its memory asks for more."""

    def mem_mb(wildcards, attempt: int) -> int:
        return int(first_mb) * attempt

    return mem_mb


def runtime_per_attempt(first_min: float):
    """A rule's ``runtime`` (minutes): ``first_min`` on the first attempt, 2x and 3x on the retries."""

    def runtime(wildcards, attempt: int) -> int:
        return int(math.ceil(first_min * attempt))

    return runtime


#: Memory (MB) and runtime (min) of the jobs that read every model's tables, ``(start-up, per model)``: Python,
#: pandas and matplotlib, then each model's metrics (an epoch a row), probes (≤ ``analysis.probe_schedule.
#: max_probes`` × ~100 rows) and test rows, concatenated (copies). The calibration runs measured ~470 MB for the
#: analysis of 12 and 45 models and ~250 MB per figure, a few seconds each: a per-model share of ~0.5 MB, taken
#: 10x (probes of l_max 4 models, ensembles of 5 seeds) with the study tier's former 2,000 MB and 10 min as start-up.
MODELS_READ_RESOURCES = {
    "analysis": {"mem_mb": (2000, 5.0), "runtime": (10, 0.02)},
    "figure": {"mem_mb": (2000, 2.0), "runtime": (10, 0.02)},
}


def models_read_resources(kind: str, n_models: int) -> dict:
    """``mem_mb`` and ``runtime`` of a job that reads the tables of ``n_models`` models (``kind``: a key of
    ``MODELS_READ_RESOURCES``), growing with the number of models and with ``attempt``."""
    (mem_base, mem_per_model), (min_base, min_per_model) = (
        MODELS_READ_RESOURCES[kind]["mem_mb"],
        MODELS_READ_RESOURCES[kind]["runtime"],
    )
    return {
        "mem_mb": mem_mb_per_attempt(int(math.ceil(mem_base + mem_per_model * n_models))),
        "runtime": runtime_per_attempt(min_base + min_per_model * n_models),
    }


def validation_overlap_mb(manifest: dict[str, dict], val_split: str, dft_cfg: dict) -> int:
    """Megabytes of the validation structures' fit overlap matrices (float64, fit functions² each) that a training
    job holds to validate every epoch in coefficient space (``e3hier.data.coefficient_metric``)."""
    total = 0
    for info in manifest.values():
        if info["split"] == val_split:
            functions = sum(n_functions(dft_cfg["fit_auxbasis"], el, dft_cfg["decontract"]) for el in info["symbols"])
            total += functions**2 * 8
    return int(math.ceil(total / 1e6))


def training_uses_gpu(train_cfg: dict) -> bool:
    """Whether ``train.device`` resolves to CUDA here (``auto``: if torch sees a GPU)."""
    if train_cfg["device"] == "cuda":
        return True
    if train_cfg["device"] == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def check_training_config(config: dict, manifest: dict[str, dict], train_split: str = "train") -> None:
    """Refuse, before any job, a training set-up that would fail late or silently: each error names its key.

    - the training split, ``train.val_split`` and every ``train.test_splits`` entry must name a split that
      holds structures (a typo would otherwise be dropped, or fail after training);
    - every ``train.n_train`` size must fit in the training split, and no two may resolve to one count;
    - ``analysis.probe_structures`` must not exceed the validation split (it would be cut silently);
    - ``model.hidden_multiplicities`` needs one entry per order up to the largest ``train.lmax_hidden``;
    - every element of an evaluated split must occur in the training or validation split (the network has
      no input for an element it never saw);
    - ``train.target_scaling: population`` needs ``dft.decontract: true`` (the study's populations divide by
      the normalisation of one primitive, which a contracted shell does not have).
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
        problems.append(
            f"train.n_train: {sizes} larger than the training split ({counts.get(train_split, 0)} structures)"
        )
    for same in same_size_n_train(train_cfg["n_train"], counts.get(train_split, 0)):
        problems.append(
            f"train.n_train: {same} are the same {counts.get(train_split, 0)}-structure training split (the same "
            "models would be trained twice): keep one"
        )
    probes, val_count = config["analysis"]["probe_structures"], counts.get(named[1][1], 0)
    if val_count and probes > val_count:
        problems.append(
            f"analysis.probe_structures: {probes} probed structures, the validation split {named[1][1]!r} has "
            f"{val_count}"
        )
    multiplicities = config["model"]["hidden_multiplicities"]
    if len(multiplicities) < max(train_cfg["lmax_hidden"]) + 1:
        problems.append(
            f"model.hidden_multiplicities: {len(multiplicities)} entries (l = 0..{len(multiplicities) - 1}), "
            f"train.lmax_hidden goes to {max(train_cfg['lmax_hidden'])}"
        )
    seen = {el for info in manifest.values() if info["split"] in {train_split, named[1][1]} for el in info["symbols"]}
    for _, split in named[2:]:
        unseen = sorted({el for info in manifest.values() if info["split"] == split for el in info["symbols"]} - seen)
        if unseen:
            problems.append(
                f"train.test_splits: split {split!r} has element(s) {unseen} that no training or "
                "validation structure has (the network has no input for them)"
            )
    if train_cfg["target_scaling"].startswith("population") and not config["dft"]["decontract"]:
        problems.append(
            f"train.target_scaling: {train_cfg['target_scaling']} needs dft.decontract: true (the study's population "
            "divides each coefficient by its primitive's normalisation; a contracted shell has several primitives)"
        )
    if problems:
        raise ValueError("config: " + "; ".join(problems))


def predict_plans(predict_cfg: dict, structures_cfg: dict) -> dict[str, dict]:
    """The plans (``e3hier.structures.xyz.xyz_plans``: recipe, symbols, charge, multiplicity) of the ``predict``
    block's XYZ frames, by structure id, with ``structures.source: xyz``'s checks (a bad file is refused naming it and
    the line, while the workflow is read); none while ``predict.structures`` is empty. Their recipes' split is
    ``predict``: the ``predict_structure`` and ``predict_dft`` jobs build them and run the DFT rule on them."""
    from e3hier.structures.xyz import MIN_DISTANCE_ANGSTROM, xyz_plans

    if not predict_cfg.get("structures"):
        return {}
    min_distance = structures_cfg.get("min_distance_angstrom", MIN_DISTANCE_ANGSTROM)
    return xyz_plans({"predict": predict_cfg["structures"]}, min_distance=min_distance)

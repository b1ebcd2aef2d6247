"""Contradictions in a config, refused while Snakemake reads the workflow (before any job), each error naming
the key and the value.

``check_config`` holds what any run needs (the splits' roles, the DFT's functional and bases: a DFT job
would fail on them); ``check_training_plan`` what only a run that trains needs (a block no order can reach,
the density figure's structure), called with ``e3hier.workflow.rules.check_training_config``.
"""

from __future__ import annotations

from e3hier.data.reach import OUTPUT_ORDERS, unreachable_orders
from e3hier.dft.basis import fit_basis, irreps_counts
from e3hier.training.grid import training_grid


def check_split_roles(train_cfg: dict, train_split: str = "train") -> list[str]:
    """Problems with the splits' roles: the validation split must be neither the training split nor a test
    split, a test split not the training split, and there must be a test split (a model selected on the
    structures it is tested on, or tested on those it was trained on, reports a meaningless ε)."""
    val = train_cfg.get("val_split", "val")
    tests = train_cfg.get("test_splits", ["test", "test_large"])
    problems = []
    if val == train_split:
        problems.append(f"train.val_split: {val!r} is the training split: validate on other structures")
    if val in tests:
        problems.append(
            f"train.val_split: {val!r} is also in train.test_splits {tests}: a model selected on its test "
            "structures reports an optimistic test ε"
        )
    if train_split in tests:
        problems.append(f"train.test_splits: {tests} holds the training split {train_split!r}")
    if not tests:
        problems.append("train.test_splits: [] names no split to test on (the first is the models table's test ε)")
    return problems


def check_xc(dft_cfg: dict) -> list[str]:
    """Problems with ``dft.xc``: PySCF's parser (libxc names) must know it; every DFT job would fail on it."""
    from pyscf.dft import libxc

    try:
        libxc.parse_xc(dft_cfg["xc"])
    except (KeyError, ValueError, NotImplementedError) as error:
        return [f"dft.xc: {dft_cfg['xc']!r} is not a functional PySCF knows ({error})"]
    return []


def check_config(config: dict, manifest: dict[str, dict], train_split: str = "train") -> None:
    """Refuse, while the workflow is read, a config whose splits contradict each other or whose ``dft.xc``
    PySCF does not know (the bases: ``e3hier.workflow.rules.check_basis_coverage``); the message names each key
    and value."""
    problems = check_split_roles(config["train"], train_split) + check_xc(config["dft"])
    if problems:
        raise ValueError("config: " + "; ".join(problems))


def block_orders(dft_cfg: dict, elements, output: str) -> list[int]:
    """The orders l of the fit basis (over ``elements``) in the block that ``output`` predicts."""
    union: set[int] = set()
    for shells in fit_basis(dft_cfg["fit_auxbasis"], elements, dft_cfg["decontract"]).values():
        union |= set(irreps_counts(shells))
    return sorted(l for l in union if OUTPUT_ORDERS[output](l))


def check_reachable_blocks(config: dict, elements) -> list[str]:
    """Problems with grid points whose predicted block no order can reach: the output convolution reaches
    l ≤ hidden l_max + ``model.lmax_edge`` (``e3hier.data.reach.unreachable_orders``), and a block beyond it
    has nothing to learn (its training job crashes). A block reached in part is trained, its rest flagged."""
    lmax_edge = config["model"]["lmax_edge"]
    points = training_grid(config["train"])[["lmax_hidden", "output"]].drop_duplicates()
    problems = []
    for output, group in points.groupby("output", sort=False):
        orders = block_orders(config["dft"], elements, output)
        unreached = sorted(
            int(lmax)
            for lmax in group["lmax_hidden"]
            if orders and unreachable_orders(lmax, lmax_edge, orders) == orders
        )
        if unreached:
            problems.append(
                f"train.output {output!r} (orders l = {orders} of dft.fit_auxbasis {config['dft']['fit_auxbasis']!r}) "
                f"cannot be reached at train.lmax_hidden {unreached} with model.lmax_edge {lmax_edge} (the output "
                f"reaches l ≤ l_max + lmax_edge): raise model.lmax_edge to {min(orders) - min(unreached)} or drop them"
            )
    return problems


def check_density_plane(config: dict, manifest: dict[str, dict]) -> list[str]:
    """Problems with ``analysis.density_plane_structure``: it indexes the first test split's structures."""
    index = config["analysis"].get("density_plane_structure", 0)
    tests = config["train"].get("test_splits", ["test", "test_large"])
    if not tests:
        return []  # check_split_roles names it
    count = sum(info["split"] == tests[0] for info in manifest.values())
    if count and index >= count:
        return [
            f"analysis.density_plane_structure: {index} is past the {count} structures of split {tests[0]!r} "
            "(the first of train.test_splits)"
        ]
    return []


def check_training_plan(config: dict, manifest: dict[str, dict]) -> None:
    """Refuse, before any job, a training grid that would crash or fail after training: a predicted block no
    order reaches, a density-figure structure past the end of its split. The message names each key and value."""
    elements = sorted({el for info in manifest.values() for el in info["symbols"]})
    problems = check_reachable_blocks(config, elements) + check_density_plane(config, manifest)
    if problems:
        raise ValueError("config: " + "; ".join(problems))

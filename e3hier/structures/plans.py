"""Structure plans: the one place that reads ``structures.source``, for the workflow and its jobs.

The workflow's path through the package:

1. ``structure_plans(config["structures"])`` — every structure's id, split, elements, charge,
   multiplicity and recipe, before any structure exists (``e3hier.workflow.rules.structure_manifest`` adds
   the split and checks the set; the Snakefile plans its jobs from it);
2. ``build_structure(recipe)`` — in the structure's own job (``scripts/structures.py``): generate the
   cluster or read the frame, which is then checked and written (``checks``, ``files``).

A recipe is a small dict of plain values: everything that determines one structure and nothing else,
so the workflow passes it as that structure's job parameters and a change reruns only the structures
whose recipe changed. Each source (``SOURCES``) plans its structures and builds one from its recipe:

- ``water_clusters``: ``{"source", "split", "index", "n_molecules", "seed" (that structure's own),
  "temperature_K", "md_steps"}`` (``water_clusters.water_cluster_plans``);
- ``xyz``: ``{"source", "split", "path" (the file, as matched), "frame"}`` (``xyz.xyz_plans``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ase import Atoms

from e3hier.structures.water_clusters import build_water_cluster, water_cluster_plans
from e3hier.structures.xyz import MIN_DISTANCE_ANGSTROM, build_xyz_frame, xyz_plans


class Source(NamedTuple):
    """How one ``structures.source`` plans its structures and builds one of them."""

    #: ``(the source's config block, base_dir, structures.min_distance_angstrom) → {id: plan}``
    plans: Callable[[dict, object, float], dict[str, dict]]
    #: ``(recipe, path or None) → Atoms``
    build: Callable[[dict, object], Atoms]


#: ``structures.source`` → its planner and builder; the config block of a source has the source's name.
SOURCES = {
    # a cluster is checked in its job, once generated; XYZ files are checked as they are read (file and line)
    "water_clusters": Source(
        lambda block, base_dir, min_distance: water_cluster_plans(block, base_dir), build_water_cluster
    ),
    "xyz": Source(xyz_plans, build_xyz_frame),
}


def _source(name) -> Source:
    """The ``SOURCES`` entry of ``name``; ValueError for any other."""
    if name not in SOURCES:
        raise ValueError(f"structures.source must be {' or '.join(map(repr, SOURCES))}, got {name!r}")
    return SOURCES[name]


def structure_plans(structures_cfg: dict, base_dir=".") -> dict[str, dict]:
    """id → ``{"recipe", "symbols", "charge", "multiplicity"}`` of every structure of the ``structures``
    config block, in split order.

    Parameters
    ----------
    structures_cfg : dict
        The ``structures`` block: ``source`` (a key of ``SOURCES`` for every split, or a mapping split → key of
        ``SOURCES``: mixed sources, only the splits it lists) and each source's block.
    base_dir : path, optional
        The folder XYZ glob patterns are relative to.

    Returns
    -------
    dict
        One plan per structure. XYZ files are read (to count their frames and learn their elements,
        charges and multiplicities; bad ones are refused, naming the file and line), clusters are not
        generated: they are neutral singlets.
    """
    name = structures_cfg.get("source")
    min_distance = structures_cfg.get("min_distance_angstrom", MIN_DISTANCE_ANGSTROM)
    if not isinstance(name, dict):
        return _source(name).plans(structures_cfg.get(name) or {}, base_dir, min_distance)
    by_source: dict[str, dict] = {}  # mixed sources: each source plans its splits at once (its checks span them)
    for split, source in name.items():
        _source(source)
        by_source.setdefault(source, {})[split] = split_entry(structures_cfg, source, split)
    planned: dict[str, dict] = {}
    for source, splits in by_source.items():
        block = {**structures_cfg[source], "splits": splits} if source == "water_clusters" else splits
        for structure_id, plan in _source(source).plans(block, base_dir, min_distance).items():
            if structure_id in planned:
                raise ValueError(
                    f"structures.source: structure id {structure_id!r} of split {plan['recipe']['split']!r} "
                    f"({source}) is also in split {planned[structure_id]['recipe']['split']!r}; rename the file"
                )
            planned[structure_id] = plan
    # in the mapping's split order
    order = {split: k for k, split in enumerate(name)}
    return dict(sorted(planned.items(), key=lambda item: order[item[1]["recipe"]["split"]]))


def split_entry(structures_cfg: dict, source: str, split: str):
    """Split ``split``'s entry in source ``source``'s config block (``structures.source`` as a mapping); a split that
    block does not list is refused, naming both keys. Each generated cluster's seed comes from
    ``structures.water_clusters.seed``, its split and its index: planning some splits gives the clusters that
    planning them all gives."""
    block = structures_cfg.get(source) or {}
    listed = block.get("splits", {}) if source == "water_clusters" else block
    if split not in listed:
        raise ValueError(
            f"structures.source.{split}: {source}, but structures.{source}"
            f"{'.splits' if source == 'water_clusters' else ''} has no split {split!r}"
        )
    return listed[split]


def build_structure(recipe: dict, path=None) -> Atoms:
    """The structure a recipe describes: generate the cluster, or read the frame (Å).

    Parameters
    ----------
    recipe : dict
        A plan's ``recipe`` (``structure_plans``).
    path : path, optional
        Replaces an XYZ recipe's ``path`` (the workflow passes the job's input file).
    """
    return _source(recipe["source"]).build(recipe, path)

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
        The ``structures`` block: ``source`` (a key of ``SOURCES``) and that source's block.
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
    return _source(name).plans(structures_cfg.get(name) or {}, base_dir, min_distance)


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

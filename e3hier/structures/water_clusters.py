"""Generated water clusters: a seeded, plausible (H2O)n per structure, and the plans of a config's splits.

Lengths are in Å, temperatures in K, times in fs. Each cluster is built in three deterministic steps,
all with ASE:

1. grow a compact random (H2O)n from rigid TIP3P-geometry molecules,
2. minimise with ASE's TIP3P force field (FIRE), molecules kept rigid by ``RigidWaters`` (TIP3P has
   no intramolecular terms),
3. a short Langevin MD at ``temperature_K`` to get a thermal, non-minimum snapshot (the densities
   should cover distorted hydrogen bonds, not one minimum per size).

All randomness comes from ``numpy.random.Generator`` streams derived from the integer seed with
``numpy.random.SeedSequence``, so a seed maps to bit-identical positions on a given machine.
"""

from __future__ import annotations

import zlib

import ase.units
import numpy as np
from ase import Atoms
from ase.calculators.tip3p import TIP3P, angleHOH, rOH

from e3hier.structures.charge_spin import DEFAULT_CHARGE, DEFAULT_MULTIPLICITY
from e3hier.structures.checks import check_water_cluster
from e3hier.structures.rigid_waters import RigidWaters

START_OO = 2.8  # Å, O–O distance of a newly placed molecule to its anchor
MIN_START_OO = 2.5  # Å, reject placements with a closer O–O pair
MIN_START_H = 1.5  # Å, reject placements with an intermolecular H–X pair closer than this
MAX_PLACEMENT_TRIES = 1000
MAX_ATTEMPTS = 50  # whole-cluster retries with derived seeds before giving up
# Coulomb cutoff of the TIP3P calculator. A finite cluster needs no cutoff, so
# choose one far beyond any cluster we build: then the smooth cutoff switch
# never acts and the energy is the plain TIP3P sum.
TIP3P_CUTOFF = 100.0
OPT_FMAX = 0.05  # eV/Å; a rough minimum is enough, MD follows
OPT_STEPS = 200
OPT_MAXSTEP = 0.1  # Å; FIRE's default 0.2 Å is large next to 0.96 Å rigid bonds
MD_TIMESTEP_FS = 1.0
MD_FRICTION_PER_FS = 0.02


def _water_template() -> np.ndarray:
    """O, H, H positions (Å) of one TIP3P water, O at the origin, in the xy plane."""
    half = np.radians(angleHOH) / 2
    return np.array(
        [
            [0.0, 0.0, 0.0],
            [rOH * np.sin(half), rOH * np.cos(half), 0.0],
            [-rOH * np.sin(half), rOH * np.cos(half), 0.0],
        ]
    )


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation matrix: a normalised Gaussian 4-vector is a uniform unit quaternion."""
    w, x, y, z = rng.standard_normal(4)
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _placement_ok(new: np.ndarray, placed: list[np.ndarray]) -> bool:
    """True when molecule ``new`` (3×3, O H H) clashes with none of ``placed``."""
    if not placed:
        return True
    old = np.concatenate(placed)  # (3m, 3), O H H per molecule
    d = np.linalg.norm(new[:, None, :] - old[None, :, :], axis=-1)  # (3, 3m)
    is_o_old = np.arange(len(old)) % 3 == 0
    if d[0, is_o_old].min() < MIN_START_OO:
        return False
    # Every intermolecular pair that involves an H: new H to anything, new O to old H.
    return d[1:].min() >= MIN_START_H and d[0, ~is_o_old].min() >= MIN_START_H


def _grow_cluster(n_molecules: int, rng: np.random.Generator) -> np.ndarray | None:
    """Compact random start (3n × 3 positions, Å), or None if a molecule could not be placed."""
    template = _water_template()
    placed = [template @ _random_rotation(rng).T]
    for _ in range(n_molecules - 1):
        for _try in range(MAX_PLACEMENT_TRIES):
            # Hang the new molecule off a random existing O: a compact, connected
            # start. Its orientation is random; the minimisation forms H-bonds.
            anchor = placed[rng.integers(len(placed))][0]
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            new = anchor + START_OO * direction + template @ _random_rotation(rng).T
            if _placement_ok(new, placed):
                placed.append(new)
                break
        else:
            return None
    return np.concatenate(placed)


def _relax_and_sample(
    positions: np.ndarray, temperature_K: float, md_steps: int, rng: np.random.Generator
) -> np.ndarray:
    """TIP3P minimisation then Langevin MD of a rigid-water cluster; returns final positions (Å)."""
    # imported here: jobs that only read structures (DFT, dataset) skip ASE's MD and optimisers (~0.1 s)
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from ase.optimize import FIRE

    n_molecules = len(positions) // 3
    atoms = Atoms("OH2" * n_molecules, positions=positions, pbc=False)
    atoms.constraints = [RigidWaters(n_molecules)]
    atoms.calc = TIP3P(rc=TIP3P_CUTOFF)
    FIRE(atoms, logfile=None, maxstep=OPT_MAXSTEP).run(fmax=OPT_FMAX, steps=OPT_STEPS)
    if md_steps > 0:
        if temperature_K > 0:
            thermalize_momenta(atoms, temperature_K, rng=rng)
            # No net drift or spin: the thermostat should heat internal motion only.
            Stationary(atoms)
            ZeroRotation(atoms)
        # fixcm=False: ASE deprecates fixcm; the centre is removed afterwards anyway.
        dyn = Langevin(
            atoms,
            timestep=MD_TIMESTEP_FS * ase.units.fs,
            temperature_K=temperature_K,
            friction=MD_FRICTION_PER_FS / ase.units.fs,
            fixcm=False,
            rng=rng,
            logfile=None,
        )
        dyn.run(md_steps)
    return atoms.get_positions()


def generate_water_cluster(n_molecules: int, seed: int, temperature_K: float = 50.0, md_steps: int = 100) -> Atoms:
    """A plausible (H2O)n cluster: atoms O, H, H per molecule, no cell, pbc False.

    ``temperature_K`` (K) and ``md_steps`` (1 fs steps) set the Langevin sampling
    after a TIP3P minimisation. A cluster that fails ``check_water_cluster`` (e.g.
    a molecule evaporated during MD) is regenerated from the next derived seed,
    at most ``MAX_ATTEMPTS`` times. The centre of mass is put at the origin.

    Parameters
    ----------
    n_molecules : int
        Waters in the cluster (≥ 1).
    seed : int
        Seed of the cluster's random streams (≥ 0; ``structure_seed`` gives each structure its own).
    temperature_K : float, optional
        Langevin temperature (K); 0 runs the MD without initial momenta.
    md_steps : int, optional
        Langevin steps of 1 fs; 0 keeps the minimised cluster.
    """
    if int(n_molecules) != n_molecules or n_molecules < 1:
        raise ValueError(f"n_molecules must be a positive integer, got {n_molecules!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if temperature_K < 0 or md_steps < 0:
        raise ValueError(f"temperature_K and md_steps must be >= 0, got {temperature_K!r}, {md_steps!r}")
    n_molecules, seed = int(n_molecules), int(seed)
    last_error = "no attempt made"
    for attempt in range(MAX_ATTEMPTS):
        # Separate streams for the start geometry and the MD, so md_steps or
        # temperature_K do not change the starting structure.
        start_ss, md_ss = np.random.SeedSequence([seed, attempt]).spawn(2)
        positions = _grow_cluster(n_molecules, np.random.default_rng(start_ss))
        if positions is None:
            last_error = "could not place all molecules"
            continue
        positions = _relax_and_sample(positions, temperature_K, int(md_steps), np.random.default_rng(md_ss))
        atoms = Atoms("OH2" * n_molecules, positions=positions, pbc=False)
        atoms.positions -= atoms.get_center_of_mass()
        try:
            check_water_cluster(atoms, f"(H2O){n_molecules} seed {seed} attempt {attempt}")
        except ValueError as err:
            last_error = str(err)
            continue
        return atoms
    raise RuntimeError(
        f"no plausible (H2O){n_molecules} cluster for seed {seed} in {MAX_ATTEMPTS} attempts; last: {last_error}"
    )


def _split_sizes(split: str, spec: dict) -> tuple[list[int], int]:
    """(sizes to cycle through, count) of one split spec, validated."""
    sizes = spec["n_molecules"]
    sizes = [sizes] if isinstance(sizes, int) else list(sizes)
    count = spec["count"]
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"split {split!r}: n_molecules must be a positive int or a non-empty list of them")
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"split {split!r}: count must be a non-negative int, got {count!r}")
    return sizes, count


def _cluster_ids(splits: dict) -> dict[str, list[tuple[str, int, int]]]:
    """split → [(structure id, n_molecules, index)], without generating anything."""
    plan = {}
    for split, spec in splits.items():
        sizes, count = _split_sizes(split, spec)
        plan[split] = [(f"w{sizes[i % len(sizes)]}_{split}_{i:04d}", sizes[i % len(sizes)], i) for i in range(count)]
    return plan


def structure_seed(seed: int, split: str, index: int) -> int:
    """Seed of structure ``index`` of ``split``: independent of every other split and index.

    crc32 of the split name, not ``hash()``, which is salted per Python process.

    Parameters
    ----------
    seed : int
        ``structures.water_clusters.seed``.
    split : str
        The structure's split.
    index : int
        The structure's index in its split.
    """
    ss = np.random.SeedSequence([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])
    return int(ss.generate_state(1, np.uint64)[0])


def water_cluster_plans(water_clusters_cfg: dict, base_dir=".") -> dict[str, dict]:
    """id → plan of every cluster of a ``structures.water_clusters`` block, in split order, none generated.

    Parameters
    ----------
    water_clusters_cfg : dict
        The block: ``seed``, ``temperature_K`` (K), ``md_steps`` (1 fs steps) and ``splits``,
        ``{split: {"n_molecules": int | [ints], "count": int}}``; with a list of sizes, structure i
        of a split has ``n_molecules[i % len]``.
    base_dir : path, optional
        Unused (clusters read no file); every source's planner takes it (``plans.SOURCES``).

    Returns
    -------
    dict
        ``{id: {"recipe", "symbols", "charge", "multiplicity"}}`` with ids ``f"w{n}_{split}_{i:04d}"``.
        A recipe is ``{"source": "water_clusters", "split", "index", "n_molecules", "seed" (that
        structure's own, ``structure_seed``), "temperature_K", "md_steps"}``; clusters are neutral singlets.
    """
    cfg = water_clusters_cfg
    plans = {}
    for split, entries in _cluster_ids(cfg["splits"]).items():
        for structure_id, n_molecules, index in entries:
            recipe = {
                "source": "water_clusters",
                "split": split,
                "index": index,
                "n_molecules": n_molecules,
                "seed": structure_seed(cfg["seed"], split, index),
                "temperature_K": cfg["temperature_K"],
                "md_steps": cfg["md_steps"],
            }
            plans[structure_id] = {
                "recipe": recipe,
                "symbols": ["O", "H", "H"] * n_molecules,
                "charge": DEFAULT_CHARGE,
                "multiplicity": DEFAULT_MULTIPLICITY,
            }
    return plans


def build_water_cluster(recipe: dict, path=None) -> Atoms:
    """The cluster a ``water_cluster_plans`` recipe describes (``generate_water_cluster``). ``path`` is unused: a
    cluster has no input file, but every source's builder takes one (``plans.SOURCES``)."""
    return generate_water_cluster(recipe["n_molecules"], recipe["seed"], recipe["temperature_K"], recipe["md_steps"])

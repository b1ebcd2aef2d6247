"""Structure input: generated water clusters or user XYZ files, plus checks and I/O.

Lengths are in Å, temperatures in K, times in fs. Every structure is keyed by a
string id that the workflow uses for file names, so ids must be known before any
structure exists (``structure_ids_from_config``) and must be unique.

Water clusters are built in three deterministic steps, all with ASE:

1. grow a compact random (H2O)n from rigid TIP3P-geometry molecules,
2. minimise with ASE's TIP3P force field (FIRE), molecules kept rigid by
   ``RigidWaters``, ASE's ``FixBondLengths`` with a vectorised solver (TIP3P
   has no intramolecular terms),
3. a short Langevin MD at ``temperature_K`` to get a thermal, non-minimum
   snapshot (the densities should cover distorted hydrogen bonds, not one
   minimum per size).

All randomness comes from ``numpy.random.Generator`` streams derived from the
integer seed with ``numpy.random.SeedSequence``, so a seed maps to bit-identical
positions on a given machine.
"""

from __future__ import annotations

import glob
import os
import uuid
import zlib
from pathlib import Path

import ase.io
import ase.units
import numpy as np
from ase import Atoms
from ase.calculators.tip3p import TIP3P, angleHOH, rOH
from ase.constraints import FixBondLengths
from ase.data import atomic_numbers, chemical_symbols
from ase.neighborlist import neighbor_list

# --- plausibility rules for water clusters (Å, degrees) ---------------------
OH_RANGE = (0.9, 1.1)
HOH_ANGLE_RANGE = (95.0, 115.0)
NEAREST_OO_RANGE = (2.5, 3.3)
CONNECT_OO = 3.5

# --- generation settings ----------------------------------------------------
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

# --- charge and spin (extended-XYZ comment line, ``Atoms.info``) --------------
CHARGE_KEY = "charge"  # net charge, e
MULTIPLICITY_KEY = "multiplicity"  # 2S + 1
DEFAULT_CHARGE = 0
DEFAULT_MULTIPLICITY = 1


# =============================================================================
# Water clusters
# =============================================================================


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


# Pair k of every molecule joins local atoms _PAIR_A[k] and _PAIR_B[k] (O=0, H=1, H=2).
_PAIR_A, _PAIR_B = np.array([0, 0, 1]), np.array([1, 2, 2])
# _INCIDENCE[k, i] = +1 / -1 if local atom i is the first / second atom of pair k.
_INCIDENCE = np.zeros((3, 3))
_INCIDENCE[np.arange(3), _PAIR_A] = 1.0
_INCIDENCE[np.arange(3), _PAIR_B] = -1.0


class RigidWaters(FixBondLengths):
    """ASE's ``FixBondLengths`` on O–H1, O–H2, H1–H2 of every molecule, solved per molecule at once.

    Same constraint and same solution as the parent class (SHAKE positions along
    the old bond vectors, RATTLE momenta), but the parent's pair-by-pair
    Gauss–Seidel sweeps converge slowly on the coupled water triangle (50–110
    Python sweeps per call) and made a trimer take ~13 s. Here the 3 multipliers
    of each molecule are solved together: a 3×3 linear solve for momenta and
    forces, a few Newton steps for positions, vectorised over molecules.
    Atoms must be ordered O, H, H per molecule; no periodic images (clusters).
    """

    def __init__(self, n_molecules: int, tolerance: float = 1e-13):
        pairs = [(3 * m + a, 3 * m + b) for m in range(n_molecules) for a, b in zip(_PAIR_A, _PAIR_B)]
        super().__init__(pairs, tolerance=tolerance)

    def _setup(self, atoms):
        """Bond vectors (n, 3 pairs, 3), squared lengths (n, 3), inverse masses (n, 3) and K (n, 3, 3).

        K[n, k, l] = Σ_i C[k, i] C[l, i] / m_i couples the pairs through shared atoms.
        """
        if self.bondlengths is None:
            self.bondlengths = self.initialize_bond_lengths(atoms)
        pos = atoms.positions.reshape(-1, 3, 3)
        invm = 1.0 / atoms.get_masses().reshape(-1, 3)
        coupling = np.einsum("ki,li,ni->nkl", _INCIDENCE, _INCIDENCE, invm)
        return pos[:, _PAIR_A] - pos[:, _PAIR_B], self.bondlengths.reshape(-1, 3) ** 2, invm, coupling

    def adjust_positions(self, atoms, new):
        d_old, length2, invm, coupling = self._setup(atoms)
        start = new.reshape(-1, 3, 3).copy()
        lam = np.zeros(length2.shape)
        for _ in range(self.maxiter):
            # Each atom moves along the old bond vectors, weighted by 1/mass (as in SHAKE).
            x = start + np.einsum("ki,nk,nkc->nic", _INCIDENCE, lam, d_old) * invm[..., None]
            d = x[:, _PAIR_A] - x[:, _PAIR_B]
            g = (d * d).sum(-1) - length2
            if np.abs(g).max() <= self.tolerance * length2.max():
                break
            jac = 2.0 * coupling * np.einsum("nkc,nlc->nkl", d, d_old)
            lam -= np.linalg.solve(jac, g[..., None])[..., 0]
        else:
            raise RuntimeError("RigidWaters: bond-length iteration did not converge")
        new[:] = x.reshape(-1, 3)

    def adjust_momenta(self, atoms, p):
        # Remove every relative velocity along a bond: linear in the 3 multipliers.
        d, _, invm, coupling = self._setup(atoms)
        v = p.reshape(-1, 3, 3) * invm[..., None]
        rhs = -(d * (v[:, _PAIR_A] - v[:, _PAIR_B])).sum(-1)
        mu = np.linalg.solve(coupling * np.einsum("nkc,nlc->nkl", d, d), rhs[..., None])[..., 0]
        p += np.einsum("ki,nk,nkc->nic", _INCIDENCE, mu, d).reshape(-1, 3)


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


def check_water_cluster(atoms: Atoms, structure_id: str = "structure") -> None:
    """Raise ValueError unless ``atoms`` is a plausible water cluster (distances in Å).

    Rules: only O and H, each O with exactly two H at 0.9–1.1 Å and H–O–H angle
    95–115°, every H on exactly one O; each O's nearest other O at 2.5–3.3 Å; the
    molecules connected when linked at O–O ≤ 3.5 Å. Atom order is not assumed.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    other = sorted(set(symbols) - {"O", "H"})
    if other:
        raise ValueError(f"{structure_id}: not a water cluster: elements {other} besides O and H")
    o_idx = np.flatnonzero(symbols == "O")
    h_idx = np.flatnonzero(symbols == "H")
    if len(o_idx) == 0 or len(h_idx) != 2 * len(o_idx):
        raise ValueError(f"{structure_id}: not a water cluster: {len(o_idx)} O and {len(h_idx)} H")
    pos = atoms.get_positions()

    # Intact molecules.
    d_oh = np.linalg.norm(pos[o_idx][:, None] - pos[h_idx][None], axis=-1)
    bonded = (d_oh >= OH_RANGE[0]) & (d_oh <= OH_RANGE[1])
    for k, o in enumerate(o_idx):
        hs = h_idx[bonded[k]]
        if len(hs) != 2:
            raise ValueError(
                f"{structure_id}: intact-molecule rule failed: O {o} has {len(hs)} H at "
                f"{OH_RANGE[0]}–{OH_RANGE[1]} Å (need 2)"
            )
        v1, v2 = pos[hs[0]] - pos[o], pos[hs[1]] - pos[o]
        angle = np.degrees(np.arccos(np.clip(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2), -1, 1)))
        if not HOH_ANGLE_RANGE[0] <= angle <= HOH_ANGLE_RANGE[1]:
            raise ValueError(
                f"{structure_id}: intact-molecule rule failed: H–O–H angle at O {o} is {angle:.1f}° "
                f"(allowed {HOH_ANGLE_RANGE[0]}–{HOH_ANGLE_RANGE[1]}°)"
            )
    shared = h_idx[bonded.sum(axis=0) != 1]
    if len(shared):
        raise ValueError(f"{structure_id}: intact-molecule rule failed: H {shared[0]} is not on exactly one O")

    if len(o_idx) == 1:
        return  # a monomer has no intermolecular rules to break
    d_oo = np.linalg.norm(pos[o_idx][:, None] - pos[o_idx][None], axis=-1)
    np.fill_diagonal(d_oo, np.inf)

    # Nearest-neighbour O–O distance.
    nearest = d_oo.min(axis=1)
    bad = np.flatnonzero((nearest < NEAREST_OO_RANGE[0]) | (nearest > NEAREST_OO_RANGE[1]))
    if len(bad):
        k = bad[0]
        raise ValueError(
            f"{structure_id}: nearest-O–O rule failed: O {o_idx[k]} has its nearest O at {nearest[k]:.3f} Å "
            f"(allowed {NEAREST_OO_RANGE[0]}–{NEAREST_OO_RANGE[1]} Å)"
        )

    # Connectivity: flood fill over the O–O ≤ 3.5 Å graph from the first O.
    linked = d_oo <= CONNECT_OO
    reached = np.zeros(len(o_idx), bool)
    reached[0] = True
    frontier = reached.copy()
    while frontier.any():
        frontier = linked[frontier].any(axis=0) & ~reached
        reached |= frontier
    if not reached.all():
        raise ValueError(
            f"{structure_id}: connectivity rule failed: O {o_idx[~reached].tolist()} not linked to O {o_idx[0]} "
            f"by O–O ≤ {CONNECT_OO} Å chains"
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


def _water_cluster_plan(splits: dict) -> dict[str, list[tuple[str, int, int]]]:
    """split → [(structure id, n_molecules, index)], without generating anything."""
    plan = {}
    for split, spec in splits.items():
        sizes, count = _split_sizes(split, spec)
        plan[split] = [(f"w{sizes[i % len(sizes)]}_{split}_{i:04d}", sizes[i % len(sizes)], i) for i in range(count)]
    return plan


def structure_seed(seed: int, split: str, index: int) -> int:
    """Seed of structure ``index`` of ``split``: independent of every other split and index.

    crc32 of the split name, not ``hash()``, which is salted per Python process.
    """
    ss = np.random.SeedSequence([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])
    return int(ss.generate_state(1, np.uint64)[0])


def generate_water_clusters(
    splits: dict, seed: int, temperature_K: float, md_steps: int
) -> dict[str, list[tuple[str, Atoms]]]:
    """split → [(id, cluster)] for ``{split: {"n_molecules": int | [ints], "count": int}}``.

    With a list of sizes, structure i has ``n_molecules[i % len]``. Ids are
    ``f"w{n}_{split}_{i:04d}"``. Temperatures in K, MD steps of 1 fs.
    """
    return {
        split: [
            (sid, generate_water_cluster(n, structure_seed(seed, split, i), temperature_K, md_steps))
            for sid, n, i in entries
        ]
        for split, entries in _water_cluster_plan(splits).items()
    }


# =============================================================================
# Charge, spin and periodicity
# =============================================================================


def electron_count(symbols, charge: int = DEFAULT_CHARGE) -> int:
    """Electrons of a structure: Σ Z of its atoms − ``charge``."""
    return sum(atomic_numbers[symbol] for symbol in symbols) - int(charge)


def _integer_info(atoms: Atoms, key: str, default: int, where: str) -> int:
    """``atoms.info[key]`` as an int (``default`` when absent); ValueError naming ``where`` unless it is a whole number."""
    value = atoms.info.get(key, default)
    if isinstance(value, (bool, np.bool_)):  # ASE reads a bare word of the comment line as True
        raise ValueError(
            f"{where}: the comment line has the word {key!r} without a value: write '{key}=<integer>', "
            f"or reword the comment"
        )
    if isinstance(value, np.generic):
        value = value.item()  # ASE's numpy scalars, shown as plain numbers in the message
    if not isinstance(value, (int, float)) or not np.isfinite(value) or float(value) != int(value):
        raise ValueError(f"{where}: {key}={value!r} in the comment line is not an integer")
    return int(value)


def check_charge_multiplicity(symbols, charge: int, multiplicity: int, where: str) -> None:
    """Raise ValueError naming ``where`` unless ``multiplicity`` (2S + 1) fits the electron count Σ Z − ``charge``.

    N electrons allow 2S = N mod 2, N mod 2 + 2, ..., N unpaired electrons: an even count needs an
    odd multiplicity (singlet, triplet, ...), an odd count an even one (doublet, quartet, ...).
    """
    n_electrons = electron_count(symbols, charge)
    hint = f"set '{CHARGE_KEY}=' and '{MULTIPLICITY_KEY}=' in the extended-XYZ comment line"
    if n_electrons < 1:
        raise ValueError(f"{where}: {CHARGE_KEY}={charge} leaves {n_electrons} electrons ({hint})")
    if multiplicity < 1:
        raise ValueError(f"{where}: {MULTIPLICITY_KEY}={multiplicity} is below 1 ({hint})")
    if (multiplicity - 1) % 2 != n_electrons % 2:
        odd = n_electrons % 2 == 1
        raise ValueError(
            f"{where}: {n_electrons} electrons ({CHARGE_KEY}={charge}) cannot have {MULTIPLICITY_KEY}={multiplicity}: "
            f"an {'odd' if odd else 'even'} electron count needs an {'even' if odd else 'odd'} multiplicity ({hint})"
        )
    if multiplicity - 1 > n_electrons:
        raise ValueError(
            f"{where}: {MULTIPLICITY_KEY}={multiplicity} needs {multiplicity - 1} unpaired electrons, "
            f"the structure has {n_electrons} ({CHARGE_KEY}={charge}; {hint})"
        )


def charge_and_multiplicity(atoms: Atoms, where: str) -> tuple[int, int]:
    """``(charge, multiplicity)`` of a structure, from its extended-XYZ comment line (``atoms.info``).

    The keys are ``charge`` (e) and ``multiplicity`` (2S + 1); without them a structure is a neutral
    singlet (``DEFAULT_CHARGE``, ``DEFAULT_MULTIPLICITY``). Raises ValueError naming ``where`` (a file, a
    frame or a structure id) when one is not an integer or they do not fit the electron count
    (``check_charge_multiplicity``).
    """
    charge = _integer_info(atoms, CHARGE_KEY, DEFAULT_CHARGE, where)
    multiplicity = _integer_info(atoms, MULTIPLICITY_KEY, DEFAULT_MULTIPLICITY, where)
    check_charge_multiplicity(atoms.get_chemical_symbols(), charge, multiplicity, where)
    return charge, multiplicity


def check_not_periodic(atoms: Atoms, where: str) -> None:
    """Raise ValueError naming ``where`` if the structure is periodic: ``pbc`` true along an axis, or a cell
    (``Lattice=`` in an extended-XYZ comment line). The DFT treats every structure as an isolated molecule."""
    found = []
    if atoms.pbc.any():
        found.append("pbc=\"" + " ".join("T" if p else "F" for p in atoms.pbc) + "\"")
    if atoms.cell.rank > 0:
        found.append("a cell (Lattice=)")
    if found:
        raise ValueError(
            f"{where}: periodic input ({' and '.join(found)}) is not supported: structures are computed as "
            "isolated molecules; remove 'Lattice=' and 'pbc=' from the comment line"
        )


# =============================================================================
# XYZ input
# =============================================================================


def _expand_globs(split: str, patterns, base_dir) -> list[Path]:
    """Files matched by ``patterns`` (relative to base_dir), sorted per pattern, without repeats."""
    if not patterns:
        return []
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.join(str(base_dir), str(pattern)), recursive=True))
        if not matches:
            raise ValueError(f"split {split!r}: pattern {str(pattern)!r} matches no file under {str(base_dir)!r}")
        files.extend(Path(m) for m in matches if Path(m) not in files)
    return files


def _find_bad_xyz_line(path: Path) -> str | None:
    """Describe the first line that breaks the (extended) XYZ layout, or None if none is found.

    ASE's errors rarely name a line, so walk the frames ourselves: a count line,
    a comment line, then ``count`` lines of symbol + 3 floats.
    """
    lines = path.read_text(errors="replace").splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1  # ASE tolerates blank lines between frames
            continue
        try:
            natoms = int(lines[i].split()[0])
        except ValueError:
            return f"line {i + 1}: expected an atom count, got {lines[i]!r}"
        if natoms < 0 or len(lines[i].split()) != 1:
            return f"line {i + 1}: expected an atom count, got {lines[i]!r}"
        if i + 1 + natoms >= len(lines):
            return f"line {i + 1}: frame announces {natoms} atoms but the file ends after {len(lines) - i - 2}"
        for j in range(i + 2, i + 2 + natoms):
            fields = lines[j].split()
            try:
                ok = (
                    len(fields) >= 4
                    and fields[0] in chemical_symbols
                    and all(np.isfinite(float(x)) for x in fields[1:4])
                )
            except ValueError:
                ok = False
            if not ok:
                return f"line {j + 1}: expected 'symbol x y z', got {lines[j]!r}"
        i += 2 + natoms
    return None


def _read_frames(path: Path) -> list[Atoms]:
    """Every frame of ``path`` (format from the extension), or ValueError naming the file."""
    try:
        frames = ase.io.read(path, index=":")
    except Exception as err:  # ASE raises many types here; the user needs the file and line
        where = _find_bad_xyz_line(path) if path.suffix.lower() in (".xyz", ".extxyz") else None
        raise ValueError(f"{path}: cannot read structures ({where or 'see ASE error'}); ASE: {err!r}") from err
    if not frames:
        raise ValueError(f"{path}: contains no structures")
    return frames


def _read_frame(path: Path, frame: int) -> Atoms:
    """Frame ``frame`` (0-based) of ``path``, or ValueError naming the file."""
    try:
        return ase.io.read(path, index=frame)
    except (IndexError, StopIteration) as err:  # ASE's extxyz reader stops, others index
        raise ValueError(f"{path}: has no frame {frame}") from err
    except Exception as err:  # as in _read_frames: name the file and, for XYZ, the line
        where = _find_bad_xyz_line(path) if path.suffix.lower() in (".xyz", ".extxyz") else None
        raise ValueError(f"{path}: cannot read structures ({where or 'see ASE error'}); ASE: {err!r}") from err


def xyz_frames(globs_by_split: dict, base_dir=".") -> dict[str, list[tuple[str, Path, int, Atoms]]]:
    """split → [(id, file, frame index, atoms)] of XYZ files (plain or extended) matched by glob patterns.

    Patterns are relative to ``base_dir`` and each is expanded in sorted order; a
    split with no patterns (None, []) is empty. A single-frame file's id is its
    stem, frame k of a multi-frame file is ``f"{stem}_{k}"``. Positions in Å.
    Periodic frames, and frames whose ``charge`` / ``multiplicity`` do not fit their
    electron count, are refused (ValueError naming the file and, in a multi-frame
    file, the frame).
    """
    out: dict[str, list[tuple[str, Path, int, Atoms]]] = {}
    source: dict[str, str] = {}  # id → where it came from, for duplicate errors
    for split, patterns in globs_by_split.items():
        out[split] = []
        for path in _expand_globs(split, patterns, base_dir):
            frames = _read_frames(path)
            for k, atoms in enumerate(frames):
                where = str(path) if len(frames) == 1 else f"{path} (frame {k})"
                check_not_periodic(atoms, where)
                charge_and_multiplicity(atoms, where)
                sid = path.stem if len(frames) == 1 else f"{path.stem}_{k}"
                here = f"{path} (split {split!r})"
                if sid in source:
                    raise ValueError(f"duplicate structure id {sid!r}: from {source[sid]} and {here}")
                source[sid] = here
                out[split].append((sid, path, k, atoms))
    return out


def read_xyz_structures(globs_by_split: dict, base_dir=".") -> dict[str, list[tuple[str, Atoms]]]:
    """split → [(id, atoms)] from XYZ files (plain or extended) matched by glob patterns (see ``xyz_frames``)."""
    return {
        split: [(sid, atoms) for sid, _, _, atoms in entries]
        for split, entries in xyz_frames(globs_by_split, base_dir).items()
    }


# =============================================================================
# Config entry points
# =============================================================================


def structure_ids_from_config(structures_cfg: dict, base_dir=".") -> dict[str, list[str]]:
    """split → structure ids, for the workflow DAG, without generating clusters.

    ``structures_cfg["source"]`` is ``"water_clusters"`` (ids from
    ``structures_cfg["water_clusters"]["splits"]``) or ``"xyz"`` (ids from the
    files of ``structures_cfg["xyz"]`` (split → globs), which are read to count frames).
    """
    source = structures_cfg.get("source")
    if source == "water_clusters":
        plan = _water_cluster_plan(structures_cfg["water_clusters"]["splits"])
        return {split: [sid for sid, _, _ in entries] for split, entries in plan.items()}
    if source == "xyz":
        structures = read_xyz_structures(structures_cfg.get("xyz") or {}, base_dir)
        return {split: [sid for sid, _ in entries] for split, entries in structures.items()}
    raise ValueError(f"structures.source must be 'water_clusters' or 'xyz', got {source!r}")


def structures_from_config(structures_cfg: dict, base_dir=".") -> dict[str, list[tuple[str, Atoms]]]:
    """split → [(id, atoms)] for the ``structures`` config block (same layout as ``structure_ids_from_config``)."""
    source = structures_cfg.get("source")
    if source == "water_clusters":
        cfg = structures_cfg["water_clusters"]
        return generate_water_clusters(cfg["splits"], cfg["seed"], cfg["temperature_K"], cfg["md_steps"])
    if source == "xyz":
        return read_xyz_structures(structures_cfg.get("xyz") or {}, base_dir)
    raise ValueError(f"structures.source must be 'water_clusters' or 'xyz', got {source!r}")


# =============================================================================
# One structure at a time: recipes (the workflow runs one job per structure)
# =============================================================================
#
# A recipe is a small dict of plain values: everything that determines one
# structure and nothing else, so the workflow passes it as that structure's job
# parameters and a change reruns only the structures whose recipe changed.
#   water clusters: {"source": "water_clusters", "split", "index", "n_molecules",
#                    "seed" (that structure's own seed), "temperature_K", "md_steps"}
#   XYZ input:      {"source": "xyz", "split", "path" (the file, as matched), "frame"}


def water_cluster_recipes(water_clusters_cfg: dict) -> dict[str, dict]:
    """id → recipe of every generated cluster of a ``structures.water_clusters`` block, in split order."""
    cfg = water_clusters_cfg
    return {
        sid: {
            "source": "water_clusters",
            "split": split,
            "index": index,
            "n_molecules": n_molecules,
            "seed": structure_seed(cfg["seed"], split, index),
            "temperature_K": cfg["temperature_K"],
            "md_steps": cfg["md_steps"],
        }
        for split, entries in _water_cluster_plan(cfg["splits"]).items()
        for sid, n_molecules, index in entries
    }


def xyz_recipe(split: str, path, frame: int) -> dict:
    """Recipe of frame ``frame`` of the XYZ file ``path`` (as matched, e.g. relative to the working directory)."""
    return {"source": "xyz", "split": split, "path": str(path), "frame": int(frame)}


def structure_plans(structures_cfg: dict, base_dir=".") -> dict[str, dict]:
    """id → ``{"recipe", "symbols", "charge", "multiplicity"}`` of every structure of the ``structures``
    config block, in split order.

    XYZ files are read (to count their frames and learn their elements, charges and
    multiplicities; ``xyz_frames`` refuses bad ones), clusters are not generated: they
    are neutral singlets.
    """
    source = structures_cfg.get("source")
    if source == "water_clusters":
        return {
            sid: {"recipe": recipe, "symbols": ["O", "H", "H"] * recipe["n_molecules"],
                  "charge": DEFAULT_CHARGE, "multiplicity": DEFAULT_MULTIPLICITY}
            for sid, recipe in water_cluster_recipes(structures_cfg["water_clusters"]).items()
        }  # fmt: skip
    if source == "xyz":
        plans = {}
        for split, entries in xyz_frames(structures_cfg.get("xyz") or {}, base_dir).items():
            for sid, path, frame, atoms in entries:
                charge, multiplicity = charge_and_multiplicity(atoms, str(path))
                plans[sid] = {"recipe": xyz_recipe(split, path, frame), "symbols": atoms.get_chemical_symbols(),
                              "charge": charge, "multiplicity": multiplicity}  # fmt: skip
        return plans
    raise ValueError(f"structures.source must be 'water_clusters' or 'xyz', got {source!r}")


def structure_recipes(structures_cfg: dict, base_dir=".") -> dict[str, dict]:
    """id → recipe of every structure of the ``structures`` config block, in split order."""
    return {sid: plan["recipe"] for sid, plan in structure_plans(structures_cfg, base_dir).items()}


def structure_recipe(structures_cfg: dict, structure_id: str, base_dir=".") -> dict:
    """The recipe of one structure of the ``structures`` config block (ValueError for an unknown id)."""
    recipes = structure_recipes(structures_cfg, base_dir)
    if structure_id not in recipes:
        raise ValueError(f"unknown structure id {structure_id!r}: not in the structures of the config")
    return recipes[structure_id]


def build_structure(recipe: dict, path=None) -> Atoms:
    """The structure a recipe describes: generate the cluster, or read the frame (Å).

    ``path`` replaces an XYZ recipe's ``path`` (the workflow passes the job's input file).
    Same recipe → the same atoms as ``structures_from_config`` gives for that id.
    """
    if recipe["source"] == "water_clusters":
        return generate_water_cluster(recipe["n_molecules"], recipe["seed"], recipe["temperature_K"], recipe["md_steps"])
    if recipe["source"] == "xyz":
        return _read_frame(Path(path if path is not None else recipe["path"]), recipe["frame"])
    raise ValueError(f"recipe source must be 'water_clusters' or 'xyz', got {recipe['source']!r}")


def structure_rows(structures: list[tuple[str, str, object]]) -> list[dict]:
    """Manifest rows (structure, split, n_atoms, formula) of written structures, given as (id, split, XYZ file)."""
    rows = []
    for structure_id, split, path in structures:
        atoms = read_structure(path)
        rows.append(
            {"structure": structure_id, "split": split, "n_atoms": len(atoms), "formula": atoms.get_chemical_formula()}
        )
    return rows


# =============================================================================
# Validation and single-structure I/O
# =============================================================================


def validate_structure(structure_id: str, atoms: Atoms, min_distance: float = 0.5, allowed_elements=None) -> None:
    """Raise ValueError naming ``structure_id`` if two atoms are closer than ``min_distance`` (Å),
    a position is not finite, (when ``allowed_elements`` is a set of symbols) an element is not allowed,
    the structure is periodic, or its charge and multiplicity do not fit its electron count.
    """
    if len(atoms) == 0:
        raise ValueError(f"{structure_id}: structure has no atoms")
    if not np.isfinite(atoms.positions).all():
        raise ValueError(f"{structure_id}: non-finite positions")
    check_not_periodic(atoms, structure_id)
    charge_and_multiplicity(atoms, structure_id)
    if allowed_elements is not None:
        bad = sorted(set(atoms.get_chemical_symbols()) - set(allowed_elements))
        if bad:
            raise ValueError(f"{structure_id}: element(s) {bad} not in allowed elements {sorted(allowed_elements)}")
    # ASE's neighbour list also covers periodic images when pbc is set.
    i, j, d = neighbor_list("ijd", atoms, min_distance)
    keep = i < j
    if keep.any():
        i, j, d = i[keep], j[keep], d[keep]
        k = int(np.argmin(d))
        sym = atoms.get_chemical_symbols()
        raise ValueError(
            f"{structure_id}: atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.3f} Å apart "
            f"(minimum {min_distance} Å); {len(d)} pair(s) too close"
        )


def write_structure(path, atoms: Atoms) -> None:
    """Write ``atoms`` as extended XYZ (Å), atomically; same atoms → same bytes.

    Only species, positions, cell, pbc and a charge or multiplicity other than the
    defaults (0, 1) are written: calculator results, the rest of ``info`` and extra
    arrays could differ between runs and would break byte-identical outputs (and the
    workflow's change detection). A neutral singlet's file is as it always was.
    """
    path = Path(path)
    clean = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.cell, pbc=atoms.pbc)
    charge, multiplicity = charge_and_multiplicity(atoms, str(path))
    if charge != DEFAULT_CHARGE:
        clean.info[CHARGE_KEY] = charge
    if multiplicity != DEFAULT_MULTIPLICITY:
        clean.info[MULTIPLICITY_KEY] = multiplicity
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so os.replace is an atomic rename: readers never see half a file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x") as fh:
            ase.io.write(fh, clean, format="extxyz")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_structure(path) -> Atoms:
    """Read one structure written by ``write_structure`` (positions in Å; a charge or multiplicity in ``info``)."""
    frames = ase.io.read(path, index=":", format="extxyz")
    if len(frames) != 1:
        raise ValueError(f"{path}: expected exactly one structure, found {len(frames)}")
    return frames[0]

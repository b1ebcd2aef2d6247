"""Geometry checks: is a structure a plausible water cluster, and can the DFT take it as it is.

Lengths in Å, angles in degrees. Every check raises ValueError naming the structure (its id, file or
frame) and the rule that failed, so a bad input is found before any DFT job runs.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from e3hier.structures.charge_spin import charge_and_multiplicity

# Plausibility rules for water clusters (Å, degrees).
OH_RANGE = (0.9, 1.1)
HOH_ANGLE_RANGE = (95.0, 115.0)
NEAREST_OO_RANGE = (2.5, 3.3)
CONNECT_OO = 3.5


def check_water_cluster(atoms: Atoms, structure_id: str = "structure") -> None:
    """Raise ValueError unless ``atoms`` is a plausible water cluster (distances in Å).

    Rules: only O and H, each O with exactly two H at 0.9–1.1 Å and H–O–H angle
    95–115°, every H on exactly one O; each O's nearest other O at 2.5–3.3 Å; the
    molecules connected when linked at O–O ≤ 3.5 Å. Atom order is not assumed.

    Parameters
    ----------
    atoms : ase.Atoms
        The cluster.
    structure_id : str, optional
        What the error names.
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


def check_not_periodic(atoms: Atoms, where: str) -> None:
    """Raise ValueError naming ``where`` if the structure is periodic: ``pbc`` true along an axis, or a cell
    (``Lattice=`` in an extended-XYZ comment line). The DFT treats every structure as an isolated molecule.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure.
    where : str
        What the error names: a file, a frame or a structure id.
    """
    found = []
    if atoms.pbc.any():
        found.append('pbc="' + " ".join("T" if p else "F" for p in atoms.pbc) + '"')
    if atoms.cell.rank > 0:
        found.append("a cell (Lattice=)")
    if found:
        raise ValueError(
            f"{where}: periodic input ({' and '.join(found)}) is not supported: structures are computed as "
            "isolated molecules; remove 'Lattice=' and 'pbc=' from the comment line"
        )


def validate_structure(structure_id: str, atoms: Atoms, min_distance: float = 0.5, allowed_elements=None) -> None:
    """Raise ValueError naming ``structure_id`` if two atoms are closer than ``min_distance`` (Å),
    a position is not finite, (when ``allowed_elements`` is a set of symbols) an element is not allowed,
    the structure is periodic, or its charge and multiplicity do not fit its electron count.

    Parameters
    ----------
    structure_id : str
        What the error names.
    atoms : ase.Atoms
        The structure.
    min_distance : float, optional
        Closest allowed pair of atoms (Å; ``structures.min_distance_angstrom``).
    allowed_elements : set of str, optional
        The elements allowed; any when None.
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

"""One structure per file: write and read the workflow's extended-XYZ structure files, list them.

The workflow writes each structure once (``results/structures/<id>.xyz``) and every later job reads
that file, so what is written must not depend on the run: same atoms → same bytes.
"""

from __future__ import annotations

from pathlib import Path

import ase.io
from ase import Atoms

from e3hier.io import atomic_path
from e3hier.structures.charge_spin import (
    CHARGE_KEY,
    DEFAULT_CHARGE,
    DEFAULT_MULTIPLICITY,
    MULTIPLICITY_KEY,
    charge_and_multiplicity,
)


def write_structure(path, atoms: Atoms) -> None:
    """Write ``atoms`` as extended XYZ (Å), atomically; same atoms → same bytes.

    Only species, positions, cell, pbc and a charge or multiplicity other than the
    defaults (0, 1) are written: calculator results, the rest of ``info`` and extra
    arrays could differ between runs and would break byte-identical outputs (and the
    workflow's change detection). A neutral singlet's file is as it always was.

    Parameters
    ----------
    path : path
        The file; its folder is created.
    atoms : ase.Atoms
        The structure.
    """
    path = Path(path)
    clean = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.cell, pbc=atoms.pbc)
    charge, multiplicity = charge_and_multiplicity(atoms, str(path))
    if charge != DEFAULT_CHARGE:
        clean.info[CHARGE_KEY] = charge
    if multiplicity != DEFAULT_MULTIPLICITY:
        clean.info[MULTIPLICITY_KEY] = multiplicity
    with atomic_path(path) as tmp:  # readers never see half a file, a crash loses no finished one
        ase.io.write(tmp, clean, format="extxyz")


def read_structure(path) -> Atoms:
    """Read one structure written by ``write_structure`` (positions in Å; a charge or multiplicity in ``info``).

    Parameters
    ----------
    path : path
        A file of ``write_structure``.
    """
    frames = ase.io.read(path, index=":", format="extxyz")
    if len(frames) != 1:
        raise ValueError(f"{path}: expected exactly one structure, found {len(frames)}")
    return frames[0]


def structure_rows(structures: list[tuple[str, str, object]]) -> list[dict]:
    """Manifest rows (structure, split, n_atoms, formula) of written structures, given as (id, split, XYZ file).

    Parameters
    ----------
    structures : list of (str, str, path)
        ``(structure id, split, XYZ file)`` per structure, in table order.
    """
    rows = []
    for structure_id, split, path in structures:
        atoms = read_structure(path)
        rows.append(
            {"structure": structure_id, "split": split, "n_atoms": len(atoms), "formula": atoms.get_chemical_formula()}
        )
    return rows

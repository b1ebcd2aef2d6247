"""The fit-function rows of a new structure, laid out as the DFT table lays them out (``e3hier.dft.basis``), with the
bundle's free-atom reference: what ``e3hier.training.samples.make_sample`` needs to predict on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyscf import gto

from e3hier.data.reference import attach_reference
from e3hier.dft.basis import fit_basis
from e3hier.dft.job import fit_table_columns
from e3hier.structures.charge_spin import charge_and_multiplicity, electron_count


def fit_molecule(symbols, positions_angstrom, fit_auxbasis: str, decontract: bool) -> gto.Mole:
    """The structure's atoms carrying the fit basis (spherical functions): the functions of its density."""
    atom = [(s, tuple(float(x) for x in p)) for s, p in zip(symbols, positions_angstrom)]
    auxmol = gto.M(atom=atom, unit="Angstrom", basis=fit_basis(fit_auxbasis, symbols, decontract), verbose=0)
    auxmol.spin = auxmol.nelectron % 2  # the fit basis carries no electrons: any consistent spin
    return auxmol


def structure_rows(structure_id: str, atoms, auxmol: gto.Mole, free_atom: pd.DataFrame) -> pd.DataFrame:
    """One row per fit function of ``atoms`` (``auxmol``'s functions), with the dataset's columns: positions,
    ∫χ, the free-atom ``reference`` and, standing in for the unknown density, ``coefficient`` = reference."""
    rows = attach_reference(pd.DataFrame(fit_table_columns(auxmol, np.zeros(auxmol.nao_nr()))), free_atom)
    rows["coefficient"] = rows["reference"]
    rows["target"] = 0.0
    positions = np.asarray(atoms.get_positions())
    for axis, name in enumerate("xyz"):
        rows[name] = positions[rows["atom"].to_numpy(), axis]
    charge, multiplicity = charge_and_multiplicity(atoms, f"structure {structure_id}")
    rows["structure"] = structure_id
    rows["n_electrons"] = electron_count(atoms.get_chemical_symbols(), charge)
    rows["charge"], rows["multiplicity"] = charge, multiplicity
    return rows

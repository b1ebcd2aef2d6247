"""Free-atom reference densities: the spherical part of each isolated atom, fitted on its s functions.

The training target is ``coefficient − reference``; the reference is added back
whenever a density or ε is computed. Fitting with the Coulomb metric onto s
functions only keeps exactly the spherical average of the atom's density,
because an s function's potential is spherical and only sees the monopole part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyscf import data as pyscf_data
from pyscf import gto
from pyscf.scf.atom_ks import AtomSphAverageRKS

from e3hier.dft.basis import build_mol, fit_basis, function_table
from e3hier.dft.fit import fit_density
from e3hier.dft.scf import SCFNotConverged, configure_grid


def free_atom_reference(element: str, settings: dict) -> pd.DataFrame:
    """The spherical free-atom density of ``element`` on its s fit functions.

    PySCF's spherically averaged atomic KS (fractional occupation of the open
    shell, ``AtomSphAverageRKS``) at the ``dft`` functional, basis and grid; the
    charge constraint makes the s coefficients integrate to Z. Returns one row per s
    function with ``element``, ``l`` (0), ``shell``, ``m`` (0), ``exponent``,
    ``reference`` and the atom's ``energy_hartree``.
    """
    mol = build_mol([element], np.zeros((1, 3)), settings["basis"], spin=pyscf_data.elements.charge(element) % 2)
    mf = AtomSphAverageRKS(mol)
    mf.xc = settings["xc"]
    configure_grid(mf.grids, settings["grid"])
    mf.conv_tol = float(settings["conv_tol"])
    # the reference must exist for the dataset to exist: ``dft.max_cycle`` and ``on_failure``
    # govern the structures, while a free atom always gets at least 100 cycles
    mf.max_cycle = max(int(settings["max_cycle"]), 100)
    mf.kernel()
    if not mf.converged:
        raise SCFNotConverged(f"free-atom SCF of {element} did not converge in {mf.max_cycle} cycles")
    dm_total = mf.make_rdm1()

    shells = fit_basis(settings["fit_auxbasis"], [element], settings["decontract"])[element]
    s_shells = [shell for shell in shells if shell[0] == 0]
    auxmol = gto.M(atom=mol._atom, unit="Bohr", basis={element: s_shells}, spin=mol.spin, verbose=0)
    coeff, _ = fit_density(mol, dm_total, auxmol, n_electrons=mol.nelectron)

    table = function_table(auxmol)
    table["reference"] = coeff[table["ao_index"].to_numpy()]
    table["energy_hartree"] = float(mf.e_tot)
    return table.drop(columns=["atom", "ao_index"])


def attach_reference(table: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """Add ``reference`` (0 where an element has no such s function) and ``target = coefficient − reference``.

    Rows are matched by element, l, shell and m, so the fit layout of the
    structure and of the free atom must come from the same basis settings.
    """
    keys = ["element", "l", "shell", "m"]
    merged = table.merge(references[keys + ["reference"]], on=keys, how="left", validate="many_to_one")
    merged["reference"] = merged["reference"].fillna(0.0)
    merged["target"] = merged["coefficient"] - merged["reference"]
    return merged

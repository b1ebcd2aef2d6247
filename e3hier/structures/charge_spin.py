"""Charge and spin of a structure: read from the extended-XYZ comment line (``Atoms.info``) and checked
against its electron count. Charges in e, multiplicity 2S + 1.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

CHARGE_KEY = "charge"  # net charge, e
MULTIPLICITY_KEY = "multiplicity"  # 2S + 1
DEFAULT_CHARGE = 0
DEFAULT_MULTIPLICITY = 1


def electron_count(symbols, charge: int = DEFAULT_CHARGE) -> int:
    """Electrons of a structure: Σ Z of its atoms − ``charge``.

    Parameters
    ----------
    symbols : sequence of str
        Element symbols of the atoms.
    charge : int, optional
        Net charge (e).
    """
    return sum(atomic_numbers[symbol] for symbol in symbols) - int(charge)


def _integer_info(atoms: Atoms, key: str, default: int, where: str) -> int:
    """``atoms.info[key]`` as an int (``default`` when absent); ValueError naming ``where`` unless it is a
    whole number."""
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

    Parameters
    ----------
    symbols : sequence of str
        Element symbols of the atoms.
    charge : int
        Net charge (e).
    multiplicity : int
        2S + 1.
    where : str
        What the error names: a file, a frame or a structure id.
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

    Parameters
    ----------
    atoms : ase.Atoms
        The structure, as read from an (extended) XYZ file.
    where : str
        What the error names: a file, a frame or a structure id.
    """
    charge = _integer_info(atoms, CHARGE_KEY, DEFAULT_CHARGE, where)
    multiplicity = _integer_info(atoms, MULTIPLICITY_KEY, DEFAULT_MULTIPLICITY, where)
    check_charge_multiplicity(atoms.get_chemical_symbols(), charge, multiplicity, where)
    return charge, multiplicity

"""Fit basis: decontracted auxiliary basis, its function table and its irreps.

Conventions
-----------
PySCF orders the real spherical functions of a shell as (x, y, z) for l = 1 and
as m = -l..l for l >= 2. The project stores every shell in m = -l..l order for
all l. For l = 1 this is (y, z, x) (m = -1 ↔ y, 0 ↔ z, +1 ↔ x), which is also
e3nn's basis for a ``1o`` irrep when positions are fed to e3nn as (y, z, x).
``ao_index`` keeps the column of each function in ``auxmol.eval_gto`` so a
density is always rendered against the function it belongs to.
"""

from __future__ import annotations

import math

import numpy as np
from pyscf import gto

#: m of each PySCF column of a spherical shell, for l = 1 (x, y, z).
PYSCF_P_M = (1, -1, 0)

#: Parity of a density component of order l: it is a scalar field, so (-1)^l.
PARITY_LETTER = {0: "e", 1: "o"}


#: The study's population scale: its network learns pop = c · 2√2 / N for a coefficient c of a primitive with
#: psi4's normalisation N (``get_iso_permuted_dataset`` in JoshRackers/equivariant_electron_density ``utils.py``).
POPULATION_NUMERATOR = 2.0 * math.sqrt(2.0)


def double_factorial(n: int) -> int:
    """n!! for n ≥ −1, with (−1)!! = 0!! = 1."""
    return math.prod(range(n, 0, -2)) if n > 0 else 1


def primitive_normalisation(l, exponent):
    """psi4's normalisation of a primitive Gaussian of order ``l`` and ``exponent`` (bohr⁻²), as psi4 reports
    it for a one-primitive shell (``shell.coef(0)``, up to the sign of the basis file's coefficient):
    N(l, α) = (2α/π)^{3/4} (4α)^{l/2} / √((2l − 1)!!), which normalises x^l e^{−αr²}. It equals PySCF's
    ``gto_norm(l, α)`` (the radial norm) × √((2l + 1)/4π).

    Parameters
    ----------
    l : int or array of int
        Order of the shell.
    exponent : float or array of float
        Gaussian exponent α, bohr⁻².
    """
    l = np.asarray(l, dtype=np.int64)
    alpha = np.asarray(exponent, dtype=np.float64)
    odd = np.vectorize(lambda n: float(double_factorial(int(n))), otypes=[np.float64])(2 * l - 1)
    return (2.0 * alpha / np.pi) ** 0.75 * (4.0 * alpha) ** (l / 2.0) / np.sqrt(odd)


def population_factor(l, exponent):
    """What a coefficient is multiplied by to give the study's population: 2√2 / N(l, α)
    (``primitive_normalisation``). ``train.target_scaling: population`` trains on target × this factor.

    Parameters
    ----------
    l, exponent
        As in ``primitive_normalisation``.
    """
    return POPULATION_NUMERATOR / primitive_normalisation(l, exponent)


def ao_population_factors(auxmol: gto.Mole) -> np.ndarray:
    """``population_factor`` of every column of ``auxmol.eval_gto`` (index it with ``ao_index``).

    A contracted shell (more than one primitive, ``dft.decontract: false``) has no single primitive whose
    normalisation the study's scale divides by: its columns get NaN, and ``train.target_scaling: population``
    refuses them.
    """
    factors = np.full(int(auxmol.nao_nr()), np.nan)
    ao_offsets = auxmol.ao_loc_nr()
    for ib in range(auxmol.nbas):
        exps = auxmol.bas_exp(ib)
        if len(exps) == 1:
            factors[ao_offsets[ib] : ao_offsets[ib + 1]] = population_factor(auxmol.bas_angular(ib), exps[0])
    return factors


def pyscf_m_order(l: int) -> tuple[int, ...]:
    """The m value of each column of a PySCF real spherical shell of order l."""
    if l == 1:
        return PYSCF_P_M
    return tuple(range(-l, l + 1))


def element_basis(basis_name: str, element: str, decontract: bool) -> list:
    """The named basis for one element in PySCF's internal format.

    ``decontract`` makes every primitive its own shell (duplicate exponents of
    the same l are merged, as ``pyscf.gto.uncontract`` does).
    Raises ``KeyError`` when the basis has no functions for ``element``.
    """
    try:
        shells = gto.basis.load(basis_name, element)
    except Exception as err:  # PySCF raises several types for a missing element
        raise KeyError(f"basis {basis_name!r} has no functions for element {element!r}: {err}") from err
    if not shells:
        raise KeyError(f"basis {basis_name!r} has no functions for element {element!r}")
    return gto.uncontract(shells) if decontract else shells


def fit_basis(basis_name: str, elements, decontract: bool) -> dict:
    """``{element: shells}`` for every element, ready for ``gto.M(basis=...)``."""
    return {el: element_basis(basis_name, el, decontract) for el in sorted(set(elements))}


def make_auxmol(mol: gto.Mole, basis: dict) -> gto.Mole:
    """A molecule with ``mol``'s atoms carrying the fit basis (spherical functions)."""
    auxmol = gto.M(
        atom=mol._atom,
        unit="Bohr",
        basis=basis,
        charge=0,
        spin=None,
        cart=False,
        verbose=0,
    )
    auxmol.spin = auxmol.nelectron % 2
    return auxmol


#: Columns of ``function_columns`` / ``function_table``, in order.
FUNCTION_COLUMNS = ("atom", "element", "l", "shell", "m", "exponent", "ao_index")


def function_columns(auxmol: gto.Mole) -> dict[str, np.ndarray]:
    """One entry per fit function, in the stored (m-ordered) layout, as numpy columns.

    Columns: ``atom`` (0-based), ``element``, ``l``, ``shell`` (index of the
    shell among the atom's shells of the same l, from the most compact),
    ``m`` (-l..l), ``exponent`` (bohr⁻²) and ``ao_index`` (column in
    ``auxmol.eval_gto``). Rows are sorted by atom, l, shell, m, so each atom's
    block is e3nn's irreps layout ``n0x0e + n1x1o + ...``.
    """
    rows = []
    ao_offsets = auxmol.ao_loc_nr()
    shell_counter: dict[tuple[int, int], int] = {}
    for ib in range(auxmol.nbas):
        atom = int(auxmol.bas_atom(ib))
        l = int(auxmol.bas_angular(ib))
        if auxmol.bas_nctr(ib) != 1:
            raise ValueError("fit basis shells must carry one contraction each")
        exps = auxmol.bas_exp(ib)
        # A contracted shell is labelled by its most diffuse exponent.
        exponent = float(np.min(exps))
        shell = shell_counter.get((atom, l), 0)
        shell_counter[(atom, l)] = shell + 1
        for k, m in enumerate(pyscf_m_order(l)):
            rows.append((atom, auxmol.atom_pure_symbol(atom), l, shell, m, exponent, int(ao_offsets[ib] + k)))
    atom, element, l, shell, m, exponent, ao_index = zip(*rows)
    columns = {
        "atom": np.array(atom, dtype=np.int64),
        "element": np.array(element, dtype=object),
        "l": np.array(l, dtype=np.int64),
        "shell": np.array(shell, dtype=np.int64),
        "m": np.array(m, dtype=np.int64),
        "exponent": np.array(exponent, dtype=np.float64),
        "ao_index": np.array(ao_index, dtype=np.int64),
    }
    order = np.lexsort((columns["m"], columns["shell"], columns["l"], columns["atom"]))  # stable
    return {name: values[order] for name, values in columns.items()}


def function_table(auxmol: gto.Mole):
    """``function_columns`` as a ``pandas.DataFrame``."""
    import pandas as pd  # here: the DFT job writes its table without importing pandas (~0.3 s)

    return pd.DataFrame(function_columns(auxmol))


def irreps_counts(shells) -> dict[int, int]:
    """``{l: number of shells}`` of one element's basis."""
    counts: dict[int, int] = {}
    for shell in shells:
        counts[shell[0]] = counts.get(shell[0], 0) + 1
    return dict(sorted(counts.items()))


def irreps_string(counts: dict[int, int]) -> str:
    """e3nn irreps of a density block, e.g. ``12x0e+5x1o+4x2e+2x3o+1x4e``."""
    return "+".join(f"{n}x{l}{PARITY_LETTER[l % 2]}" for l, n in sorted(counts.items()) if n > 0)


def build_mol(symbols, positions_angstrom, basis: str, charge: int = 0, spin: int | None = None) -> gto.Mole:
    """A PySCF molecule. Raises ``KeyError`` naming the element a basis lacks."""
    for el in sorted(set(symbols)):
        element_basis(basis, el, decontract=False)  # raises KeyError naming the missing element
    atom = [(s, tuple(float(x) for x in p)) for s, p in zip(symbols, positions_angstrom)]
    # spin=None lets PySCF pick the lowest spin consistent with the electron count
    return gto.M(atom=atom, unit="Angstrom", basis=basis, charge=charge, spin=spin, verbose=0)

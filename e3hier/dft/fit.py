"""Coulomb-metric density fitting: the SCF density matrix onto the fit functions, with a charge constraint.

Plain functions over arrays, as PySCF's ``df/incore.py``: the 3-centre integrals (μν|P) are taken packed
(μ ≥ ν, PySCF's ``s2ij``) and a block of fit shells at a time, so the fit's memory stays below
``FIT_BLOCK_MB`` instead of growing with n_ao² · n_aux. Coefficients are in ``eval_gto`` column order.
"""

from __future__ import annotations

import numpy as np
from pyscf import df, gto, lib
from pyscf.ao2mo.outcore import balance_partition

#: Eigenvalues of the Coulomb metric below this are dropped in the pseudo-inverse.
METRIC_EIGENVALUE_CUTOFF = 1e-10

#: Most memory (MB) one block of packed 3-centre integrals (μν|P), μ ≥ ν, takes in ``fit_density``:
#: the fit walks the fit functions' shells in blocks of this size, so its memory does not grow with
#: n_ao² · n_aux (6.9 GB for 10 waters in aug-cc-pVTZ) but stays below this (plus one shell's worth).
FIT_BLOCK_MB = 256


def fit_function_integrals(auxmol: gto.Mole) -> np.ndarray:
    """q_P = ∫ χ_P(r) dr for every (PySCF-normalised) fit function, in ``eval_gto`` column order.

    Only s functions integrate to a non-zero value. For a primitive s shell
    χ(r) = χ(0)·exp(-α r²), so ∫χ = χ(0)·(π/α)^{3/2}; χ(0) is read from
    ``eval_gto`` itself so no normalisation convention is assumed.

    Parameters
    ----------
    auxmol : pyscf.gto.Mole
        The structure in the fit functions (``basis.make_auxmol``).
    """
    q = np.zeros(auxmol.nao_nr())
    ao_loc = auxmol.ao_loc_nr()
    for ib in range(auxmol.nbas):
        if auxmol.bas_angular(ib) != 0:
            continue
        centre = auxmol.atom_coord(auxmol.bas_atom(ib))[None, :]
        exps = auxmol.bas_exp(ib)
        coeffs = auxmol._libcint_ctr_coeff(ib)[:, 0]
        # value of each primitive at the centre, scaled like eval_gto
        value_at_centre = auxmol.eval_gto("GTOval_sph", centre, shls_slice=(ib, ib + 1))[0, 0]
        shape = coeffs / coeffs.sum() if len(exps) > 1 else np.ones(1)
        q[ao_loc[ib]] = value_at_centre * float(np.sum(shape * (np.pi / exps) ** 1.5))
    return q


def coulomb_pseudo_inverse(metric: np.ndarray, cutoff: float = METRIC_EIGENVALUE_CUTOFF) -> np.ndarray:
    """J⁺ by eigendecomposition, dropping eigenvalues below ``cutoff``.

    Parameters
    ----------
    metric : numpy.ndarray
        The Coulomb metric (P|Q) of the fit functions.
    cutoff : float, optional
        Smallest eigenvalue kept.
    """
    w, v = np.linalg.eigh(metric)
    keep = w > cutoff
    return (v[:, keep] / w[keep]) @ v[:, keep].T


def packed_density(dm: np.ndarray) -> np.ndarray:
    """D packed for (μν|P) with μ ≥ ν (PySCF's ``s2ij`` layout): D_μν + D_νμ off the diagonal, D_μμ on it.

    Then Σ_μν (μν|P) D_μν = Σ_{μ≥ν} (μν|P) packed_μν for any D, as (μν|P) = (νμ|P) (as in PySCF's
    ``df_jk.get_jk``).

    Parameters
    ----------
    dm : numpy.ndarray
        A density matrix, n_ao × n_ao.
    """
    dm = np.asarray(dm)
    packed = lib.pack_tril(dm + dm.T)
    diagonal = np.arange(dm.shape[0])
    packed[diagonal * (diagonal + 1) // 2 + diagonal] *= 0.5
    return packed


def aux_shell_blocks(mol: gto.Mole, auxmol: gto.Mole, block_mb: float = FIT_BLOCK_MB) -> list[tuple[int, int]]:
    """Ranges ``(first, end)`` of ``auxmol``'s shells whose packed (μν|P) take at most ``block_mb`` MB each
    (a shell larger than that alone makes a block).

    Parameters
    ----------
    mol, auxmol, block_mb
        As in ``fit_density``.
    """
    nao = mol.nao_nr()
    per_block = max(1, int(block_mb * 1e6 / (8 * nao * (nao + 1) // 2)))
    return [(first, end) for first, end, _ in balance_partition(auxmol.ao_loc_nr(), per_block)]


def fit_projection(mol: gto.Mole, dm: np.ndarray, auxmol: gto.Mole, block_mb: float = FIT_BLOCK_MB) -> np.ndarray:
    """(P|ρ) = Σ_μν (μν|P) D_μν, from the packed (``s2ij``) integrals, block by block of fit shells
    (``aux_shell_blocks``).

    Parameters
    ----------
    mol, dm, auxmol, block_mb
        As in ``fit_density``.
    """
    nao = mol.nao_nr()
    n_pair = nao * (nao + 1) // 2
    aux_loc = auxmol.ao_loc_nr()
    blocks = aux_shell_blocks(mol, auxmol, block_mb)
    dm_packed = packed_density(dm)
    buffer = np.empty(n_pair * max(aux_loc[end] - aux_loc[first] for first, end in blocks))
    projection = np.empty(auxmol.nao_nr())
    for first, end in blocks:
        integrals = df.incore.aux_e2(
            mol, auxmol, intor="int3c2e", aosym="s2ij", shls_slice=(0, mol.nbas, 0, mol.nbas, first, end), out=buffer
        )
        projection[aux_loc[first] : aux_loc[end]] = dm_packed @ integrals
    return projection


def fit_density(
    mol: gto.Mole,
    dm: np.ndarray,
    auxmol: gto.Mole,
    n_electrons: float | None = None,
    integrals: np.ndarray | None = None,
    block_mb: float = FIT_BLOCK_MB,
):
    """Coulomb-metric fit of density matrix ``dm`` onto ``auxmol``'s functions.

    d = J⁺ (P|μν) D_μν, then the charge constraint Σ q_P d'_P = N_e by a
    Lagrange multiplier: d' = d + λ J⁺ q. With ``n_electrons=None`` the
    unconstrained fit is returned. ``integrals`` (q, from ``fit_function_integrals``) may be passed
    when the caller already has them. Coefficients are in ``eval_gto`` column order.
    The 3-centre integrals are never held whole: ``fit_projection`` takes them in blocks of
    ``block_mb`` MB.

    Returns ``(coefficients, fitted_electrons_before_constraint)``.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        The structure in the SCF basis.
    dm : numpy.ndarray
        The total density matrix in ``mol``'s basis (n_ao × n_ao).
    auxmol : pyscf.gto.Mole
        The structure in the fit functions (``basis.make_auxmol``).
    n_electrons : float, optional
        The electrons the fit must hold; None for the unconstrained fit.
    integrals : numpy.ndarray, optional
        q of ``fit_function_integrals``, when the caller has it.
    block_mb : float, optional
        Most memory (MB) of one block of 3-centre integrals.
    """
    metric = auxmol.intor("int2c2e")
    projection = fit_projection(mol, dm, auxmol, block_mb)
    j_inv = coulomb_pseudo_inverse(metric)
    del metric
    d = j_inv @ projection
    q = fit_function_integrals(auxmol) if integrals is None else integrals
    fitted = float(q @ d)
    if n_electrons is None:
        return d, fitted
    j_inv_q = j_inv @ q
    lam = (n_electrons - fitted) / float(q @ j_inv_q)
    return d + lam * j_inv_q, fitted

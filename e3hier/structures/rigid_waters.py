"""``RigidWaters``: ASE's bond-length constraint on every water of a cluster, solved per molecule at once.

Generation (``water_clusters``) keeps TIP3P molecules rigid with it during minimisation and MD: TIP3P
has no intramolecular terms. Atoms are ordered O, H, H per molecule; lengths in Å.
"""

from __future__ import annotations

import numpy as np
from ase.constraints import FixBondLengths

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

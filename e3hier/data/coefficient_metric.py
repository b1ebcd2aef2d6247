"""The density error in coefficient space: exact L2 norms of density differences in the fitting basis.

With ρ(r) = Σ_P c_P χ_P(r), ‖ρ_a − ρ_b‖² = ∫(ρ_a − ρ_b)² dr = Δcᵀ S Δc, S the fit basis' overlap matrix
(PySCF ``auxmol.intor("int1e_ovlp")``, the normalisation of ``auxmol.eval_gto``): no grid, a few MB per
structure, and a matrix product on the model's device. This is what training validates on every epoch
(model selection, early stopping, the onset curves); the L1 ε on Becke grids (``e3hier.data.metric``) stays the
reported metric (test splits, and validation at the kept epoch).

The **relative L2 error** (%) is ``l2 = 100·‖Δρ‖/‖ρ_ref‖``, ρ_ref the structure's fitted DFT density; of a part
of the functions (one order l: ``l2_l{l}``, the predicted block: ``l2_block``, the block's orders l ≤ L:
``l2_block_upto_l{L}``) it is the norm of that part's density alone (the rows and columns of S of its
functions), divided by the same ‖ρ_ref‖, as ε_l divides by N_e.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from e3hier.dft.basis import build_mol, fit_basis, make_auxmol

#: The type the overlap matrices and the quadratic forms are held in: float64, so that Δcᵀ S Δc of a small
#: error keeps its digits (the sum cancels between positive and negative off-diagonal terms).
L2_DTYPE = torch.float64

#: What training selects the kept epoch on (``TrainingLoop.finish_epoch``): a validation column of
#: ``l2_validation_row``.
SELECTION_COLUMN = "val_l2_block"


def fit_overlap(symbols, positions_angstrom, table, dft_settings: dict) -> np.ndarray:
    """The overlap matrix S of a structure's fit functions, rows and columns in the stored order of ``table``.

    Parameters
    ----------
    symbols, positions_angstrom
        The structure's atoms.
    table : pandas.DataFrame
        Its function rows with ``ao_index`` (``e3hier.dft.basis.function_table``, a dataset's rows).
    dft_settings : dict
        ``basis``, ``fit_auxbasis`` and ``decontract`` (``e3hier.workflow.rules.fit_layout_settings``).

    Returns
    -------
    numpy.ndarray
        (functions, functions) float64.
    """
    mol = build_mol(symbols, positions_angstrom, dft_settings["basis"])
    auxmol = make_auxmol(mol, fit_basis(dft_settings["fit_auxbasis"], symbols, dft_settings["decontract"]))
    index = np.asarray(table["ao_index"])
    if len(index) != auxmol.nao or index.max(initial=-1) >= auxmol.nao:
        raise ValueError(
            f"fit basis {dft_settings['fit_auxbasis']!r} (decontract {dft_settings['decontract']}) has {auxmol.nao} "
            f"functions for structure {table['structure'].iloc[0] if 'structure' in table else '?'}, its dataset "
            f"rows list {len(index)}: the dataset was written with another fit basis"
        )
    return auxmol.intor("int1e_ovlp")[np.ix_(index, index)]


@dataclass
class FitOverlap:
    """What the coefficient-space errors of one structure need, on the model's device.

    Attributes
    ----------
    matrix : torch.Tensor
        S (functions, functions), ``L2_DTYPE``.
    orders : tuple of int
        The orders l present, in increasing order.
    masks : torch.Tensor
        (functions, len(orders)): 1 where a function has that order.
    minus_target : torch.Tensor
        (functions,): reference − coefficient, the error of predicting the free-atom reference alone.
    reference_norm : float
        ‖ρ_ref‖ = √(cᵀ S c) of the fitted DFT coefficients c.
    rows : torch.Tensor
        The predicted block's function rows (``Sample.rows``), where a prediction enters Δc.
    baseline : dict or None
        ``l2_errors`` of the free-atom reference alone, once computed (fixed per structure).
    """

    matrix: torch.Tensor
    orders: tuple
    masks: torch.Tensor
    minus_target: torch.Tensor
    reference_norm: float
    rows: torch.Tensor
    baseline: dict | None = None

    @classmethod
    def build(
        cls, matrix: np.ndarray, l: np.ndarray, coefficient: np.ndarray, target: np.ndarray, rows=None
    ) -> FitOverlap:
        """From S and the structure's per-function order, coefficients, targets (coefficient − reference) and the
        block's rows (default: every function)."""
        l = np.asarray(l)
        orders = tuple(int(o) for o in np.unique(l))
        masks = np.stack([(l == o).astype(float) for o in orders], axis=1)
        norm = float(np.sqrt(max(coefficient @ matrix @ coefficient, 0.0)))
        if not norm > 0:
            raise ValueError("fit overlap: the reference density has zero norm (no coefficients?)")
        return cls(
            torch.as_tensor(matrix, dtype=L2_DTYPE),
            orders,
            torch.as_tensor(masks, dtype=L2_DTYPE),
            torch.as_tensor(-np.asarray(target, dtype=float), dtype=L2_DTYPE),
            norm,
            torch.as_tensor(np.arange(len(l)) if rows is None else np.asarray(rows), dtype=torch.long),
        )

    def to(self, device) -> FitOverlap:
        """The same, its tensors on ``device`` (in place; returns itself)."""
        self.matrix, self.masks, self.minus_target, self.rows = (
            t.to(device) for t in (self.matrix, self.masks, self.minus_target, self.rows)
        )
        return self

    def order_products(self, delta: torch.Tensor) -> torch.Tensor:
        """G (K, orders, orders), G[k, a, b] = Σ over functions i of order a, j of order b of δ_ik S_ij δ_jk.

        ``delta``: coefficient differences (functions, K). One (functions × functions) @ (functions × K·orders)
        product: every sum of orders (total, block, per l) is a sum of entries of G.
        """
        n, k = delta.shape
        parts = delta[:, :, None] * self.masks[:, None, :]  # (n, K, orders)
        products = (self.matrix @ parts.reshape(n, -1)).view(n, k, -1)
        return torch.einsum("ika,ikb->kab", parts, products)

    def l2_errors(self, delta: torch.Tensor, block_orders=(), upto=()) -> dict:
        """Relative L2 errors (%) of coefficient differences ``delta`` (functions, K), as tensors of K.

        Keys as ``e3hier.data.metric.DensityGrid.epsilon_by_l``: each order l (int), ``"total"``, ``"block"`` (the
        functions of ``block_orders`` together) and ``("block_upto", L)`` for each L of ``upto`` (NaN where the
        block has no order ≤ L).
        """
        g = self.order_products(delta.to(L2_DTYPE))
        scale = 100.0 / self.reference_norm

        def relative(indices):
            if not indices:
                return torch.full(g.shape[:1], float("nan"), dtype=g.dtype, device=g.device)
            sub = g[:, indices][:, :, indices]
            return sub.sum(dim=(1, 2)).clamp_min(0.0).sqrt() * scale

        index = {o: i for i, o in enumerate(self.orders)}
        out: dict = {o: g[:, i, i].clamp_min(0.0).sqrt() * scale for o, i in index.items()}
        out["total"] = relative(list(range(len(self.orders))))
        block = [index[o] for o in self.orders if o in {int(b) for b in block_orders}]
        out["block"] = relative(block) if block else out["total"] * 0.0
        for cap in upto:
            out[("block_upto", cap)] = relative([index[o] for o in self.orders if index[o] in block and o <= cap])
        return out

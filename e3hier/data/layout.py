"""Where each fit function lives in the network's per-atom output, and which block a grid point predicts.

Every element's density block is ``n0x0e + n1x1o + n2x2e + ...`` (counts from
the fit basis). The network emits, for every atom, the union over elements
(the largest count per l); an element with fewer shells of some l leaves the
remaining slots unused (masked out of loss and density).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from e3nn import o3

from e3hier.data.reach import (  # noqa: F401 (re-exported)
    OUTPUT_ORDERS,
    common_orders,
    orders_reached,
    reachable_lmax,
    unreachable_orders,
)
from e3hier.dft.basis import PARITY_LETTER, fit_basis, irreps_counts


@dataclass(frozen=True)
class OutputLayout:
    """Per-atom output layout of one grid point.

    ``counts``: {l: shells} of the union of elements, restricted to the block.
    """

    elements: tuple[str, ...]
    counts: dict
    output: str

    @classmethod
    def from_basis(cls, basis_name: str, elements, decontract: bool, output: str) -> OutputLayout:
        if output not in OUTPUT_ORDERS:
            raise ValueError(f"train.output: unknown output order {output!r}; choose from {sorted(OUTPUT_ORDERS)}")
        basis = fit_basis(basis_name, elements, decontract)
        union: dict[int, int] = {}
        for shells in basis.values():
            for l, n in irreps_counts(shells).items():
                union[l] = max(union.get(l, 0), n)
        counts = {l: n for l, n in sorted(union.items()) if OUTPUT_ORDERS[output](l)}
        if not counts:
            raise ValueError(f"fit basis {basis_name!r} has no functions in the {output!r} block")
        return cls(tuple(sorted(elements)), counts, output)

    @property
    def irreps(self) -> o3.Irreps:
        return o3.Irreps("+".join(f"{n}x{l}{PARITY_LETTER[l % 2]}" for l, n in self.counts.items()))

    def in_block(self, l) -> np.ndarray:
        """Boolean mask: which functions (by their l) this grid point predicts."""
        return np.vectorize(OUTPUT_ORDERS[self.output], otypes=[bool])(np.asarray(l))

    def slots(self, l, shell, m) -> np.ndarray:
        """Column in the per-atom output of each function (block functions only)."""
        offsets, start = {}, 0
        for ll, n in self.counts.items():
            offsets[ll] = start
            start += n * (2 * ll + 1)
        l, shell, m = (np.asarray(a) for a in (l, shell, m))
        return np.array([offsets[a] + b * (2 * a + 1) + c + a for a, b, c in zip(l, shell, m)], dtype=np.int64)

    def one_hot(self, symbols) -> np.ndarray:
        index = {el: i for i, el in enumerate(self.elements)}
        out = np.zeros((len(symbols), len(self.elements)))
        for i, el in enumerate(symbols):
            if el not in index:
                raise ValueError(f"element {el!r} is not among the model's elements {self.elements}")
            out[i, index[el]] = 1.0
        return out

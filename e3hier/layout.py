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

from e3hier.basis import PARITY_LETTER, fit_basis, irreps_counts
from e3hier.grid import OUTPUT_ORDERS


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


def orders_reached(l_hidden: int, lmax_edge: int, output_orders) -> list[int]:
    """The output orders that hidden order ``l_hidden`` can reach through one convolution.

    The output convolution couples a hidden feature of order l_h with the edge harmonics of order
    l_e ≤ ``lmax_edge`` into l_o only where the triangle rule holds, |l_h − l_o| ≤ l_e ≤ l_h + l_o
    (parity aside: the hidden features carry both parities). Such an l_e exists iff |l_h − l_o| ≤ lmax_edge.
    """
    return [int(l) for l in output_orders if abs(int(l_hidden) - int(l)) <= int(lmax_edge)]


def unreachable_orders(lmax_hidden: int, lmax_edge: int, output_orders) -> list[int]:
    """Output orders that no hidden order 0..``lmax_hidden`` reaches (``orders_reached``): for l_h ≤ l_o this
    is l_o > lmax_hidden + lmax_edge. An unreachable output stays exactly zero (the prediction is the free-atom
    reference there)."""
    hidden = range(int(lmax_hidden) + 1)
    reached = {l for l_hidden in hidden for l in orders_reached(l_hidden, lmax_edge, output_orders)}
    return [int(l) for l in output_orders if int(l) not in reached]


def common_orders(lmax_hidden: int, lmax_edge: int, output_orders) -> list[int]:
    """Output orders that every hidden order 0..``lmax_hidden`` reaches (``orders_reached``)."""
    return [
        int(l)
        for l in output_orders
        if all(int(l) in orders_reached(l_hidden, lmax_edge, [l]) for l_hidden in range(int(lmax_hidden) + 1))
    ]


def reachable_lmax(lmax_hidden_grid, lmax_edge: int, lmax_output: int) -> int:
    """The highest output order l such that every order 0..l is reachable (``orders_reached``) by a model of
    every hidden l_max of the grid (``lmax_hidden_grid``, controls included): min(l_max) + lmax_edge, capped at
    ``lmax_output`` (the model's highest output order)."""
    if not len(lmax_hidden_grid):
        raise ValueError("reachable_lmax: the grid's list of hidden l_max (train.lmax_hidden) is empty")
    orders = range(int(lmax_output) + 1)
    missing = unreachable_orders(min(int(l) for l in lmax_hidden_grid), lmax_edge, orders)
    return (min(missing) if missing else int(lmax_output) + 1) - 1

"""Output orders l: which a grid point predicts (``OUTPUT_ORDERS``), and which a convolution of hidden features
of order ≤ l_max can reach (the triangle rule).

Plain functions without e3nn, so the parse-time config checks can use them without its import time.
"""

from __future__ import annotations

#: ``train.output`` → the orders l it predicts (the rest stays at the free-atom reference).
OUTPUT_ORDERS = {
    "scalar": lambda l: l == 0,
    "vector": lambda l: l == 1,
    "higher": lambda l: l >= 2,
    "full": lambda l: True,
}


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

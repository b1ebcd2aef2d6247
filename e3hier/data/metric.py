"""The ε grids of a dataset's structures: the collocation of their fit functions on Becke grids.

ε itself and its grid are defined in ``e3hier.dft.epsilon`` (the DFT stage measures its fits with them);
here ρ(r) = Σ_P c_P χ_P(r), with χ the PySCF-normalised fit functions (``auxmol.eval_gto``), is evaluated on
each structure's grid, held or streamed within a job's memory budget.
"""

from __future__ import annotations

import numpy as np

from e3hier.dft.basis import build_mol, fit_basis, make_auxmol
from e3hier.dft.epsilon import becke_grid

#: The ε grids' collocation values in training jobs: float32 halves their memory (`make bench`'s epsilon
#: benchmark compares its electron count with a float64 collocation's).
COLLOCATION_DTYPE = np.float32

#: Default ``metric.collocation_cache_mb``: the study tier holds each test split's grids at once.
COLLOCATION_CACHE_MB = 2000

#: Memory (MB) of a training job besides its held collocations and validation fit overlaps (data, network,
#: Python); its rule asks for this plus the overlaps plus ``metric.collocation_cache_mb``.
TRAINING_BASE_MB = 2000

#: Grid points per block when a collocation is streamed: (points × fit functions) float32 values of one
#: block stay ~100 MB for a 10-water aug-cc-pVTZ fit (~1,600 functions).
STREAM_BLOCK_POINTS = 16384


class DensityGrid:
    """A structure's quadrature grid and the collocation of its fit functions.

    The collocation is (n_points, n_functions) with columns in the stored row order of the structure's
    function table; ``l`` gives each column's order; ``evaluate(start, stop)`` returns the rows of points
    ``start:stop``. It is held (``hold``: evaluated once, block of points by block of points, and kept split
    by l in contiguous arrays so per-l densities cost one pass) or streamed (evaluated again at each use),
    which trades CPU for memory: a paper-scale job cannot hold all its grids (``metric.collocation_cache_mb``).
    """

    def __init__(self, weights: np.ndarray, l: np.ndarray, n_electrons: float, evaluate, dtype=np.float64):
        self.weights = weights
        self.l = np.asarray(l)
        self.n_electrons = float(n_electrons)
        self.dtype = np.dtype(dtype)
        self.columns = {int(order): np.flatnonzero(self.l == order) for order in np.unique(self.l)}
        self.evaluate = evaluate
        self.held: dict = {}  # l → held collocation of the columns of order l

    @property
    def held_bytes(self) -> int:
        """Bytes of collocation this grid holds (0 when streamed)."""
        return sum(chi.nbytes for chi in self.held.values())

    @property
    def collocation_bytes(self) -> int:
        """Bytes of its collocation when held."""
        return collocation_bytes(len(self.weights), len(self.l), self.dtype)

    def point_blocks(self):
        """``(start, stop, collocation rows)`` of each block of ``STREAM_BLOCK_POINTS`` points."""
        for start in range(0, len(self.weights), STREAM_BLOCK_POINTS):
            stop = min(start + STREAM_BLOCK_POINTS, len(self.weights))
            yield start, stop, self.evaluate(start, stop)

    def hold(self):
        """Evaluate the collocation once and hold it (until ``release``), a block of points at a time so that
        no whole float64 copy is ever made."""
        if self.held:
            return
        held = {l: np.empty((len(self.weights), len(cols)), dtype=self.dtype) for l, cols in self.columns.items()}
        for start, stop, chi in self.point_blocks():
            for l, cols in self.columns.items():
                # np.take along axis 1, not fancy indexing: the same columns, ~10× faster
                held[l][start:stop] = np.take(chi, cols, axis=1)
        self.held = held

    def release(self):
        """Drop the held collocation: the grid is streamed again."""
        self.held = {}

    def density_by_l(self, coefficients: np.ndarray) -> dict[int, np.ndarray]:
        """ρ_l on the grid: the density of each order's functions alone."""
        coefficients = np.asarray(coefficients, dtype=self.dtype)
        if self.held:
            return {l: chi @ coefficients[self.columns[l]] for l, chi in self.held.items()}
        out = {l: np.empty((len(self.weights), *coefficients.shape[1:]), dtype=self.dtype) for l in self.columns}
        for start, stop, chi in self.point_blocks():
            for l, cols in self.columns.items():
                out[l][start:stop] = np.take(chi, cols, axis=1) @ coefficients[cols]
        return out

    def density(self, coefficients: np.ndarray) -> np.ndarray:
        """ρ on the grid (electrons/bohr³)."""
        return sum(self.density_by_l(coefficients).values())

    def integrate_abs(self, rho: np.ndarray):
        """100·∫|ρ| dr / N_e: ε (%) of a density difference; one per column for (points, K) densities."""
        value = 100.0 * np.dot(self.weights, np.abs(rho)) / self.n_electrons
        return float(value) if np.ndim(value) == 0 else value.astype(float)

    def epsilon(self, predicted: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
        """ε (%) of ``predicted`` against ``reference``; ``mask`` keeps only some functions (e.g. one l)."""
        delta = np.asarray(predicted) - np.asarray(reference)
        if mask is not None:
            delta = np.where(mask, delta, 0.0)
        return self.integrate_abs(self.density(delta))

    def epsilon_by_l(self, predicted: np.ndarray, reference: np.ndarray, block_orders=(), upto=()) -> dict:
        """ε (%) in total, of the functions of ``block_orders`` together (key ``"block"``), and per l (int keys).

        ε_l is the error of the density of l's functions alone, normalised by N_e. With (functions, K)
        coefficients (K models' predictions) every value is an array of K: one pass over the collocation.
        For each L of ``upto``, key ``("block_upto", L)``: ε of the block's functions of order l ≤ L together
        (the block's orders above L contribute no error; NaN where the block has no order ≤ L), from the
        same per-l densities.
        """
        pieces = self.density_by_l(np.asarray(predicted) - np.asarray(reference))
        out: dict = {l: self.integrate_abs(rho) for l, rho in pieces.items()}
        out["total"] = self.integrate_abs(sum(pieces.values()))
        block_orders = {int(l) for l in block_orders}
        block = [rho for l, rho in pieces.items() if l in block_orders]
        out["block"] = self.integrate_abs(sum(block)) if block else out["total"] * 0.0
        for cap in upto:
            orders = [l for l in pieces if l in block_orders and l <= cap]
            if not orders:
                out[("block_upto", cap)] = out["total"] * np.nan
            elif len(orders) == len(block):  # the whole block: its ε, already integrated
                out[("block_upto", cap)] = out["block"]
            else:
                out[("block_upto", cap)] = self.integrate_abs(sum(pieces[l] for l in orders))
        return out

    def electrons(self, coefficients: np.ndarray) -> float:
        """∫ρ on the grid."""
        return float(self.weights @ self.density(coefficients))


def density_grid(
    symbols,
    positions_angstrom,
    table,
    dft_settings: dict,
    level: int,
    dtype=np.float64,
    n_electrons: float | None = None,
    budget: CollocationBudget | None = None,
) -> DensityGrid:
    """Grid + collocation for one structure whose functions are listed in ``table`` (stored order).

    ``table`` needs the ``ao_index`` and ``l`` columns of ``e3hier.dft.basis.function_table``. ε is divided
    by ``n_electrons`` (the dataset's, Σ Z − charge; default: Σ Z, a neutral structure). The collocation is
    held if ``budget`` (default: none, hold every grid) has room for it, else streamed (``DensityGrid``).
    """
    mol = build_mol(symbols, positions_angstrom, dft_settings["basis"])
    auxmol = make_auxmol(mol, fit_basis(dft_settings["fit_auxbasis"], symbols, dft_settings["decontract"]))
    coords, weights = becke_grid(mol, level)
    ao_index = np.asarray(table["ao_index"])
    n_electrons = mol.nelectron if n_electrons is None else n_electrons

    def evaluate(start: int, stop: int) -> np.ndarray:
        # PySCF returns the (points, functions) array in Fortran order: gather whole function columns (rows
        # of its transpose) and cast them, instead of fancy-indexing across it (~0.3 s per trimer, most of a
        # training job's set-up)
        return auxmol.eval_gto("GTOval_sph", coords[start:stop]).T[ao_index].astype(dtype).T

    grid = DensityGrid(weights.astype(dtype), table["l"], n_electrons, evaluate, dtype)
    if budget is None or budget.take(grid.collocation_bytes):
        grid.hold()
    return grid


def collocation_bytes(n_points: int, n_functions: int, dtype=np.float32) -> int:
    """Bytes of one held collocation."""
    return int(n_points) * int(n_functions) * np.dtype(dtype).itemsize


class CollocationBudget:
    """Megabytes of collocation one job may hold (``metric.collocation_cache_mb``); grids built after it is
    spent are streamed. First come, first held (a job holds a chunk of test grids at a time)."""

    def __init__(self, megabytes: float):
        self.left = float(megabytes) * 1e6

    def take(self, nbytes: int) -> bool:
        """Reserve ``nbytes`` if they fit in what is left."""
        if nbytes > self.left:
            return False
        self.left -= nbytes
        return True

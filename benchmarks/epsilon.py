"""Benchmark 2: the ε evaluation, cached Becke-grid collocation vs a uniform 0.1 Å box rendered every time.

Same structure (a water trimer) and real fitted coefficients (the DFT benchmark's ``dft_job`` output);
"predicted" coefficients are the fitted ones with 5 % noise.
- grid: ``e3hier.data.metric.density_grid`` (Becke grid at ``metric.grid_level``, float32 collocation as in
  training), built once (timed separately as the one-time cost), then ``DensityGrid.epsilon_by_l`` per
  evaluation (per-l, block and total ε);
- box: the original recipe: the atoms' bounding box ± 3 Å at 0.1 Å spacing, fit functions evaluated
  with ``auxmol.eval_gto`` chunk by chunk at every evaluation (no caching), the same per-l, block and
  total ε, and ∫ρ_ref on the way.
Electron-count error |∫ρ − N_e| of the fitted (reference) density for both.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, load_config, log, ratio, stats
from e3hier.data.metric import density_grid
from e3hier.dft.basis import build_mol, fit_basis, make_auxmol
from e3hier.structures.files import read_structure

BOHR_PER_ANGSTROM = 1.0 / 0.52917721092
SPACING, MARGIN, CHUNK = 0.1, 3.0, 20000
GRID_EVALUATIONS = 20  # per repetition (one evaluation takes milliseconds)


def box_epsilon(symbols, positions, table, dft_cfg, predicted, reference, block_orders) -> dict:
    """ε (%) per l, of the block and in total, and ∫ρ_ref, on a uniform box; functions evaluated every time."""
    mol = build_mol(symbols, positions, dft_cfg["basis"])
    auxmol = make_auxmol(mol, fit_basis(dft_cfg["fit_auxbasis"], symbols, dft_cfg["decontract"]))
    lo, hi = positions.min(axis=0) - MARGIN, positions.max(axis=0) + MARGIN
    axes = [np.arange(a, b + 1e-9, SPACING) for a, b in zip(lo, hi)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3) * BOHR_PER_ANGSTROM
    volume = (SPACING * BOHR_PER_ANGSTROM) ** 3
    columns = np.asarray(table["ao_index"])
    l_values = np.asarray(table["l"])
    delta = np.asarray(predicted) - np.asarray(reference)
    orders = {int(l): np.flatnonzero(l_values == l) for l in np.unique(l_values)}
    sums = {l: 0.0 for l in orders} | {"total": 0.0, "block": 0.0}
    electrons = 0.0
    for start in range(0, len(points), CHUNK):
        chi = auxmol.eval_gto("GTOval_sph", points[start : start + CHUNK])[:, columns]
        pieces = {l: chi[:, cols] @ delta[cols] for l, cols in orders.items()}
        for l, rho in pieces.items():
            sums[l] += np.abs(rho).sum()
        sums["total"] += np.abs(sum(pieces.values())).sum()
        block = [rho for l, rho in pieces.items() if l in set(block_orders)]
        sums["block"] += np.abs(sum(block)).sum() if block else 0.0
        electrons += (chi @ np.asarray(reference)).sum()
    n_electrons = mol.nelectron
    out = {key: float(100.0 * value * volume / n_electrons) for key, value in sums.items()}
    out["electrons"] = float(electrons * volume)
    out["n_points"] = int(len(points))
    return out


def run(dft_result_parquet, xyz, repeats: int = 3) -> dict:
    config = load_config(ROOT / "config.yaml")
    dft_cfg, level = config["dft"], config["metric"]["grid_level"]
    atoms = read_structure(xyz)
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions()
    table = pd.read_parquet(dft_result_parquet)
    reference = table["coefficient"].to_numpy()
    predicted = reference * (1 + 0.05 * np.random.default_rng(0).normal(size=len(reference)))
    block_orders = sorted(set(table["l"]))

    cache, per_eval, grid = [], [], None
    for _ in range(repeats):
        start = time.perf_counter()
        grid = density_grid(symbols, positions, table, dft_cfg, level, dtype=np.float32)
        cache.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(GRID_EVALUATIONS):
            grid_errors = grid.epsilon_by_l(predicted, reference, block_orders)
        per_eval.append((time.perf_counter() - start) / GRID_EVALUATIONS)
    grid64 = density_grid(symbols, positions, table, dft_cfg, level, dtype=np.float64)

    box_runs, box_errors = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        box_errors = box_epsilon(symbols, positions, table, dft_cfg, predicted, reference, block_orders)
        box_runs.append(time.perf_counter() - start)

    n_electrons = grid.n_electrons
    out = {
        "structure": str(xyz),
        "grid_level": level,
        "n_grid_points": int(len(grid.weights)),
        "n_box_points": box_errors["n_points"],
        "box_spacing_angstrom": SPACING,
        "box_margin_angstrom": MARGIN,
        "grid_cache_seconds": stats(cache),
        "grid_seconds_per_evaluation": stats(per_eval),
        "box_seconds_per_evaluation": stats(box_runs),
        "epsilon_grid": {str(k): v for k, v in grid_errors.items()},
        "epsilon_box": {str(k): v for k, v in box_errors.items() if k not in ("electrons", "n_points")},
        "electron_error": {
            "grid_float32": abs(grid.electrons(reference) - n_electrons),
            "grid_float64": abs(grid64.electrons(reference) - n_electrons),
            "box": abs(box_errors["electrons"] - n_electrons),
        },
    }
    out["speedup"] = ratio(out["box_seconds_per_evaluation"], out["grid_seconds_per_evaluation"])
    out["speedup_including_cache"] = out["box_seconds_per_evaluation"]["median"] / (
        out["grid_seconds_per_evaluation"]["median"] + out["grid_cache_seconds"]["median"]
    )
    log(
        f"ε: grid {out['grid_seconds_per_evaluation']['median'] * 1e3:.2f} ms/evaluation (cache "
        f"{out['grid_cache_seconds']['median']:.2f} s once) vs box {out['box_seconds_per_evaluation']['median']:.2f} s "
        f"→ {out['speedup']:.0f}×; electron error grid {out['electron_error']['grid_float32']:.1e} e, box "
        f"{out['electron_error']['box']:.1e} e"
    )
    return out

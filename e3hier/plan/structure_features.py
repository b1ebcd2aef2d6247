"""Size features of the structures of a config: atoms, basis and fit functions, DFT and ε grid points.

The per-structure table (``structure_table``) the job features (``e3hier.plan.features``) sum over, and the
parameter count of a grid point's network; all known from the config before anything runs.
"""

from __future__ import annotations

import functools
import json

import pandas as pd


@functools.cache
def atom_grid_points(element: str, grid_key: str) -> int:
    """Quadrature points of one free atom's grid (a molecule's grid has about the sum over its atoms).

    Parameters
    ----------
    element : str
        Element symbol.
    grid_key : str
        JSON of a ``dft.grid`` block (the SCF grid) or of ``{"level": L}`` (the ε grid,
        ``metric.grid_level``).

    Returns
    -------
    int
        Number of points.
    """
    from pyscf import dft, gto

    from e3hier.dft.scf import configure_grid

    mol = gto.M(atom=f"{element} 0 0 0", basis="sto-3g", spin=gto.charge(element) % 2, verbose=0)
    grids = dft.gen_grid.Grids(mol)
    settings = json.loads(grid_key)
    if "level" in settings:
        grids.level = int(settings["level"])
    else:
        configure_grid(grids, settings)
    grids.build(with_non0tab=False)
    return len(grids.weights)


@functools.cache
def basis_functions(basis_name: str, element: str) -> int:
    """Spherical functions of one element in a contracted SCF basis, as PySCF builds it.

    Parameters
    ----------
    basis_name : str
        Basis set name (``dft.basis``).
    element : str
        Element symbol.

    Returns
    -------
    int
        Functions, counting every contraction column of a generally contracted shell (O in cc-pVDZ: 14).
    """
    from pyscf import gto

    return int(gto.M(atom=f"{element} 0 0 0", basis=basis_name, spin=gto.charge(element) % 2, verbose=0).nao_nr())


def structure_table(config: dict, base_dir=".") -> pd.DataFrame:
    """Size of every structure of a config, known from the config alone.

    Parameters
    ----------
    config : dict
        A ``load_config`` config.
    base_dir : path-like
        Where the config's XYZ globs resolve.

    Returns
    -------
    pandas.DataFrame
        Indexed by structure id: ``split``, ``atoms``, ``md_steps`` (FIRE minimisation + MD steps; 0 for
        XYZ input), ``n_basis`` (SCF basis functions), ``fit_functions`` (density-fit functions: the model's
        outputs and the ε collocation columns), ``dft_points`` (SCF grid), ``metric_points`` (ε grid),
        ``symbols`` and ``metric_grid`` (ε collocation entries, points × fit functions).
    """
    from e3hier.structures.water_clusters import OPT_STEPS
    from e3hier.workflow import rules as wf

    dft_cfg = config["dft"]
    dft_key = json.dumps(dft_cfg["grid"], sort_keys=True)
    metric_key = json.dumps({"level": config["metric"]["grid_level"]})
    rows = []
    for sid, info in wf.structure_manifest(config["structures"], base_dir).items():
        symbols, recipe = info["symbols"], info["recipe"]
        generated = recipe.get("source") == "water_clusters"
        rows.append(
            {
                "structure": sid,
                "split": info["split"],
                "atoms": len(symbols),
                "md_steps": (OPT_STEPS + int(recipe["md_steps"])) if generated else 0,
                "n_basis": sum(basis_functions(dft_cfg["basis"], el) for el in symbols),
                "fit_functions": sum(
                    wf.n_functions(dft_cfg["fit_auxbasis"], el, dft_cfg["decontract"]) for el in symbols
                ),
                "dft_points": sum(atom_grid_points(el, dft_key) for el in symbols),
                "metric_points": sum(atom_grid_points(el, metric_key) for el in symbols),
                "symbols": tuple(symbols),
            }
        )
    frame = pd.DataFrame(rows)
    frame["metric_grid"] = frame["metric_points"] * frame["fit_functions"]  # collocation entries
    return frame.set_index("structure")


@functools.cache
def model_size(
    lmax: int,
    output: str,
    capacity: str,
    channels: str,
    reference_lmax: int,
    elements: tuple,
    fit_basis: str,
    decontract: bool,
    model_json: str,
) -> int:
    """Parameter count of one grid point's network, from the irreps alone (``e3hier.network.capacity``)."""
    from e3hier.data.layout import OutputLayout
    from e3hier.network.capacity import grid_multiplicities

    layout = OutputLayout.from_basis(fit_basis, list(elements), decontract, output)
    plan = grid_multiplicities(
        lmax, capacity, channels, reference_lmax, len(elements), layout.irreps, json.loads(model_json)
    )
    return int(plan["n_params"])

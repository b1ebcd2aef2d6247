"""Predict the density of new structures with a trained model, as coefficient tables and Gaussian cube files.

    python -m e3hier.predict MODEL XYZ [XYZ ...] [--out DIR] [--spacing 0.2] [--margin 4.0]
        [--reference [--configfile config.yaml ...]]

MODEL is a ``model.pt`` (a bundle: it needs no ``results/`` folder) or the grid-point name of a finished run
(``results/models/{name}/model.pt``). The XYZ files (plain or extended, globs allowed) get the checks of
``structures.source: xyz``: a bad line, a charge or spin that does not fit, atoms too close are refused naming the
file and line, before any work; so is an element the model was not trained on. Per structure, under ``--out``
(default ``results/predict/{model}``): ``{id}.parquet`` (the predicted coefficients, with the DFT table's
columns), ``{id}.cube`` (the predicted density, free atoms included, on a box ``--margin`` Å beyond the atoms with
points ``--spacing`` Å apart), and one row of ``predictions.tsv`` (electrons: N_e and ∫ρ on the cube's points).
``--reference`` also runs the DFT of the config files (``dft`` block) on each structure: ``{id}.dft.cube``,
``{id}.difference.cube`` (prediction − DFT) and the ε (%) of the prediction (``metric.grid_level``'s Becke grid,
the project's definition) in ``predictions.tsv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from e3hier.config import load_config
from e3hier.predict.bundle import load_bundle, model_path
from e3hier.predict.predictions import MARGIN_ANGSTROM, SPACING_ANGSTROM, predict
from e3hier.structures.xyz import MIN_DISTANCE_ANGSTROM


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m e3hier.predict", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a model.pt, or a grid-point name under RESULTS/models/")
    parser.add_argument("xyz", nargs="+", help="XYZ or extended-XYZ files (globs allowed)")
    parser.add_argument("--out", type=Path, help="output folder (default RESULTS/predict/{model})")
    parser.add_argument("--results", type=Path, default=Path("results"), help="a finished run's results/ folder")
    parser.add_argument("--spacing", type=float, default=SPACING_ANGSTROM, help="cube point spacing, Å")
    parser.add_argument("--margin", type=float, default=MARGIN_ANGSTROM, help="cube margin beyond the atoms, Å")
    parser.add_argument("--reference", action="store_true", help="also run the DFT: DFT and difference cubes, and ε")
    parser.add_argument("--configfile", nargs="+", default=["config.yaml"], help="the config files of --reference")
    args = parser.parse_args(argv)
    if args.spacing <= 0 or args.margin < 0:
        parser.error(f"--spacing must be > 0 and --margin >= 0, got {args.spacing} and {args.margin}")
    path = model_path(args.model, args.results)
    bundle = load_bundle(path)
    out = args.out or args.results / "predict" / (path.parent.name if path.name == "model.pt" else path.stem)
    config = load_config(args.configfile) if args.reference else None
    min_distance = (config or {}).get("structures", {}).get("min_distance_angstrom", MIN_DISTANCE_ANGSTROM)
    table = predict(bundle, args.xyz, out, args.spacing, args.margin, config, min_distance)
    print(table.to_string(index=False))
    print(f"written to {out}")
    return table


if __name__ == "__main__":
    main()

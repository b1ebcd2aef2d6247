"""The DFT rule's work as Snakemake runs ``scripts/dft.py`` (same imports and calls), without Snakemake.

Usage: python dft_project.py XYZ OUT_PARQUET OUT_JSON LOG SETTINGS_JSON
"""

import json
import sys
from pathlib import Path

from pyscf import lib

from e3hier.dft.job import dft_job
from e3hier.io import logged_errors, setup_logging, write_json, write_parquet
from e3hier.structures.checks import validate_structure
from e3hier.structures.files import read_structure

xyz, out_parquet, out_json, log_path, settings_json = sys.argv[1:6]
settings = json.loads(Path(settings_json).read_text())
log = setup_logging(log_path)
lib.num_threads(1)
structure = "bench_trimer"

with logged_errors(log):
    atoms = read_structure(xyz)
    validate_structure(structure, atoms, min_distance=0.5)
    table, summary = dft_job(structure, atoms.get_chemical_symbols(), atoms.get_positions(), settings)
    log.info(
        "structure %s: E = %.8f Eh in %d cycles, fit error %.3f %%, %.1f s",
        structure,
        summary["energy_hartree"],
        summary["scf_cycles"],
        summary["fit_error_percent"],
        summary["wall_seconds"],
    )
    write_parquet(out_parquet, table, metadata={"structure": structure, "dft": settings})
    write_json(out_json, summary)

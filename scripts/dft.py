"""Snakemake glue: DFT and density fit of one structure."""

from pyscf import lib

from e3hier.dft import dft_job
from e3hier.io import logged_errors, setup_logging, write_json, write_parquet
from e3hier.structures import read_structure, validate_structure

log = setup_logging(snakemake.log[0])
lib.num_threads(snakemake.threads)
structure = snakemake.wildcards.structure

with logged_errors(log):
    atoms = read_structure(snakemake.input.xyz)
    validate_structure(structure, atoms, min_distance=snakemake.params.min_distance)
    table, summary = dft_job(structure, atoms.get_chemical_symbols(), atoms.get_positions(), snakemake.params.dft)
    if summary["skipped"]:
        log.warning("structure %s skipped: %s", structure, summary["reason"])
    else:
        log.info(
            "structure %s: E = %.8f Eh in %d cycles, fit error %.3f %%, %.1f s",
            structure, summary["energy_hartree"], summary["scf_cycles"],
            summary["fit_error_percent"], summary["wall_seconds"],
        )  # fmt: skip
    write_parquet(snakemake.output[0], table, metadata={"structure": structure, "dft": snakemake.params.dft})
    write_json(snakemake.output[1], summary)

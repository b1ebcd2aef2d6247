"""Snakemake glue: DFT and density fit of one structure."""

from pyscf import lib

from e3hier.dft.job import dft_job
from e3hier.io import logged_errors, setup_logging, write_json, write_parquet
from e3hier.structures.charge_spin import charge_and_multiplicity
from e3hier.structures.checks import validate_structure
from e3hier.structures.files import read_structure

log = setup_logging(snakemake.log[0])
lib.num_threads(snakemake.threads)
structure = snakemake.wildcards.structure
# a check of the input, not a setting of the output: read from the config, so a change reruns no job
MIN_DISTANCE = snakemake.config["structures"]["min_distance_angstrom"]

with logged_errors(log):
    atoms = read_structure(snakemake.input.xyz)
    validate_structure(structure, atoms, min_distance=MIN_DISTANCE)
    charge, multiplicity = charge_and_multiplicity(atoms, structure)  # from the structure file: 0, 1 by default
    table, summary = dft_job(
        structure, atoms.get_chemical_symbols(), atoms.get_positions(), snakemake.params.dft, charge, multiplicity
    )
    if summary["skipped"]:
        log.warning("structure %s skipped: %s", structure, summary["reason"])
    else:
        log.info(
            "structure %s (charge %+d, multiplicity %d): E = %.8f Eh in %d cycles, fit error %.3f %%, %.1f s",
            structure,
            charge,
            multiplicity,
            summary["energy_hartree"],
            summary["scf_cycles"],
            summary["fit_error_percent"],
            summary["wall_seconds"],
        )
    write_parquet(snakemake.output[0], table, metadata={"structure": structure, "dft": snakemake.params.dft})
    write_json(snakemake.output[1], summary)

"""Snakemake glue: build one structure from its recipe, check it and write its XYZ file."""

from e3hier.io import logged_errors, setup_logging
from e3hier.structures.checks import validate_structure
from e3hier.structures.files import write_structure
from e3hier.structures.plans import build_structure

log = setup_logging(snakemake.log[0])
structure = snakemake.wildcards.structure
# a check of the input, not a setting of the output: read from the config, so a change reruns no job
MIN_DISTANCE = snakemake.config["structures"]["min_distance_angstrom"]

with logged_errors(log):
    # XYZ input: read the job's input file (the recipe's path, as Snakemake staged it)
    atoms = build_structure(snakemake.params.recipe, path=snakemake.input.get("source"))
    validate_structure(structure, atoms, min_distance=MIN_DISTANCE)
    write_structure(snakemake.output.xyz, atoms)
    log.info("%s written: %d atoms, %s", structure, len(atoms), atoms.get_chemical_formula())

"""Snakemake glue: the spherical free-atom reference of one element."""

from pyscf import lib

from e3hier.data.reference import free_atom_reference
from e3hier.io import logged_errors, package_versions, setup_logging, write_parquet

log = setup_logging(snakemake.log[0])
lib.num_threads(snakemake.threads)

with logged_errors(log):
    element = snakemake.wildcards.element
    table = free_atom_reference(element, snakemake.params.dft)
    log.info("%s: %d s functions, E = %.8f Eh", element, len(table), table["energy_hartree"].iloc[0])
    write_parquet(snakemake.output[0], table, metadata={"dft": snakemake.params.dft, "versions": package_versions()})

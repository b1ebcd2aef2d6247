"""Snakemake glue: one table (TSV) of every written structure: id, split, atom count, formula."""

from pathlib import Path

import pandas as pd

from e3hier.io import logged_errors, setup_logging, write_tsv
from e3hier.structures.files import structure_rows

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    paths = list(snakemake.input.xyz)
    structures = [(Path(path).stem, split, path) for path, split in zip(paths, snakemake.params.splits, strict=True)]
    rows = structure_rows(structures)
    write_tsv(snakemake.output[0], pd.DataFrame(rows, columns=["structure", "split", "n_atoms", "formula"]))
    log.info("%d structures listed", len(rows))

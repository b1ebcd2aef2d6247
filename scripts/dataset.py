"""Snakemake glue: assemble one split's dataset table."""

import pandas as pd

from e3hier.data.dataset import assemble_split
from e3hier.io import logged_errors, package_versions, setup_logging, write_parquet, write_tsv
from e3hier.structures.files import read_structure

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    references = pd.concat([pd.read_parquet(p) for p in snakemake.input.references], ignore_index=True)
    entries = [
        (structure, read_structure(xyz), table, summary)
        for structure, xyz, table, summary in zip(
            snakemake.params.structure_ids, snakemake.input.xyz, snakemake.input.tables, snakemake.input.summaries
        )
    ]
    split = snakemake.wildcards.split
    frame, skipped = assemble_split(entries, references, required=snakemake.params.required, split=split)
    log.info(
        "split %s: %d structures, %d rows, %d skipped", split, frame["structure"].nunique(), len(frame), len(skipped)
    )
    provenance = {"split": split, "dft": snakemake.params.dft, "skipped": skipped, "versions": package_versions()}
    write_parquet(snakemake.output.dataset, frame, metadata=provenance)
    write_tsv(snakemake.output.skipped, pd.DataFrame({"structure": skipped}))

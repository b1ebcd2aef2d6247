"""Snakemake glue: DFT and predicted densities on a plane through one structure of the first test split."""

from e3hier.analysis.density_slice import plane_densities
from e3hier.io import logged_errors, read_table, setup_logging, write_parquet
from e3hier.training.evaluation import full_prediction, load_predictor
from e3hier.training.samples import load_samples

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    frame = read_table(snakemake.input.dataset)
    structure = snakemake.params.structure_id
    rows = frame[frame["structure"] == structure].reset_index(drop=True)
    if rows.empty:  # the index is the manifest's: a structure DFT skipped is not replaced by the next one
        raise ValueError(
            f"analysis.density_plane_structure: structure {structure!r} is not in {snakemake.input.dataset} "
            "(DFT skipped it: see its .skipped.tsv); choose another index"
        )
    sets = {"DFT": rows["coefficient"].to_numpy()}
    for label, path in zip(snakemake.params.labels, snakemake.input.models):
        predictor = load_predictor(path)
        (sample,) = load_samples(rows, predictor.layout, snakemake.params.model)
        sets[label] = full_prediction(sample, predictor.predict_targets(sample))
    atoms = rows.groupby("atom").first()
    planes = plane_densities(
        list(atoms["element"]), atoms[["x", "y", "z"]].to_numpy(), rows, sets, snakemake.params.dft
    )
    planes.insert(0, "structure", structure)
    write_parquet(snakemake.output[0], planes)
    log.info("%s: %d points × %d densities", structure, planes["u"].nunique() ** 2, len(sets))

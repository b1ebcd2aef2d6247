"""Snakemake glue: draw one figure from the analysis tables."""

from e3hier.analysis import figures, hierarchy_figures
from e3hier.io import logged_errors, read_table, setup_logging

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    tables = {name: read_table(path) for name, path in snakemake.input.items() if name != "code"}
    options = snakemake.params.options
    name = snakemake.params.figure
    if name == "epsilon_vs_lmax":
        fig = figures.epsilon_vs_lmax(tables["models"])
    elif name == "learning_curves":
        fig = figures.learning_curves(tables["training"])
    elif name == "hierarchy":
        fig = hierarchy_figures.hierarchy(tables["contributions"], tables["models"], options["output"])
    elif name == "hidden_features":
        fig = hierarchy_figures.hidden_features(tables["features"], options["output"])
    elif name == "output_orders":
        fig = hierarchy_figures.output_orders(tables["features"], options["output"])
    elif name == "findings":
        fig = figures.findings(tables["findings"])
    elif name == "ablation":
        fig = hierarchy_figures.ablation_heatmap(tables["ablation"], options["lmax_hidden"])
    elif name == "density":
        planes = tables["density_slice"]
        fig = hierarchy_figures.density_planes(planes, list(dict.fromkeys(planes["label"])))
    elif name == "transfer":
        fig = figures.transfer(tables["transfer"])
    elif name == "data_efficiency":
        fig = figures.data_efficiency(tables["models"])
    else:
        raise ValueError(f"unknown figure {name!r}")
    figures.save_figure(fig, snakemake.output.png, snakemake.output.pdf)
    log.info("%s written", name)

# e3hier: hierarchical learning in Euclidean neural networks (Rackers & Rao, 2022).
# Stages: structures -> DFT reference -> dataset -> training grid -> hierarchy analysis -> figures/report.


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/structures.smk"
include: "rules/dft.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/analysis.smk"
include: "rules/figures.smk"
include: "rules/predict.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        predict_targets(),

# Your own structures through a trained model (config block `predict`; docs/predict.md). Off while
# predict.structures is empty.


# with predict.reference, the DFT rule runs on the predicted structures: each frame of predict.structures becomes a
# structure file of its own (the structure rule's job on its recipe), then a DFT job (the dft rule's), in
# results/predict/ beside the run's
use rule structure as predict_structure with:
    input:
        source=lambda wc: PREDICT_PLANS[wc.structure]["recipe"]["path"],
        code=code_inputs("structures.py"),
    output:
        xyz="results/predict/structures/{structure}.xyz",
    log:
        "results/logs/predict/structures/{structure}.log",
    benchmark:
        "results/rule_benchmarks/predict/structures/{structure}.tsv"
    wildcard_constraints:
        structure=PREDICT_PATTERN,
    params:
        recipe=lambda wc: PREDICT_PLANS[wc.structure]["recipe"],


use rule dft as predict_dft with:
    input:
        xyz="results/predict/structures/{structure}.xyz",
        code=code_inputs("dft.py"),
    output:
        multiext("results/predict/dft/{structure}", ".parquet", ".json"),
    log:
        "results/logs/predict/dft/{structure}.log",
    wildcard_constraints:
        structure=PREDICT_PATTERN,
    resources:
        mem_mb=predict_dft_mem_mb,
        runtime=60,


rule predict:
    """The predicted density of each structure of predict.structures: its coefficients and cube files (with
    predict.reference, the DFT's and the difference, and ε)."""
    input:
        model=f"results/models/{PREDICT_MODEL}/model.pt",
        xyz=PREDICT.get("structures", []),
        # with predict.reference: the DFT rule's tables of the same structures
        dft=expand(
            "results/predict/dft/{s}.parquet",
            s=PREDICT_IDS if PREDICT.get("reference") else [],
        ),
        code=code_inputs("predict.py"),
    output:
        tables=expand(f"{PREDICT_DIR}/{{s}}.parquet", s=PREDICT_IDS),
        cubes=expand(f"{PREDICT_DIR}/{{s}}{{kind}}", s=PREDICT_IDS, kind=PREDICT_KINDS),
        summary=f"{PREDICT_DIR}/predictions.tsv",
    log:
        f"results/logs/predict/{PREDICT_MODEL}.log",
    benchmark:
        f"results/rule_benchmarks/predict/{PREDICT_MODEL}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(4000),
        runtime=60,
    params:
        # the outputs' folder, from the summary's path (no hardcoded prefix)
        out=lambda wc, output: os.path.dirname(output.summary),
        spacing=PREDICT.get("spacing_angstrom", 0.1),
        margin=PREDICT.get("margin_angstrom", 4.0),
        # the dft and metric blocks: the reference's fit basis and ε's grid
        config=lambda wc: (
            {k: config[k] for k in ("dft", "metric")}
            if PREDICT.get("reference")
            else None
        ),
        min_distance=config["structures"].get("min_distance_angstrom", 0.5),
        ids=PREDICT_IDS,
    script:
        "../scripts/predict.py"

# Your own structures through a trained model (config block `predict`; docs/predict.md). Off while
# predict.structures is empty.
rule predict:
    """The predicted density of each structure of predict.structures: its coefficients and cube files (with
    predict.reference, the DFT's and the difference, and ε)."""
    input:
        model=f"results/models/{PREDICT_MODEL}/model.pt",
        xyz=PREDICT.get("structures", []),
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
        # the dft, metric and structures blocks: the reference DFT, ε's grid and the distance check
        config=lambda wc: (
            {k: config[k] for k in ("dft", "metric", "structures")}
            if PREDICT.get("reference")
            else None
        ),
        min_distance=config["structures"].get("min_distance_angstrom", 0.5),
    script:
        "../scripts/predict.py"

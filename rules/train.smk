rule train:
    """Train and evaluate one grid point (hidden l_max × output order × capacity × channels × seed × size)."""
    input:
        train=f"results/dataset/{TRAIN_SPLIT}.parquet",
        val=f"results/dataset/{config['train'].get('val_split', 'val')}.parquet",
        tests=expand("results/dataset/{split}.parquet", split=TEST_SPLITS),
    output:
        model=f"results/models/{GRID.wildcard_pattern}/model.pt",
        metrics=f"results/models/{GRID.wildcard_pattern}/metrics.parquet",
        evaluation=f"results/models/{GRID.wildcard_pattern}/eval.parquet",
        summary=f"results/models/{GRID.wildcard_pattern}/summary.json",
        features=f"results/models/{GRID.wildcard_pattern}/features.parquet",
        ablation=f"results/models/{GRID.wildcard_pattern}/ablation.parquet",
    log:
        f"results/logs/train/{GRID.wildcard_pattern}.log",
    benchmark:
        f"results/benchmarks/train/{GRID.wildcard_pattern}.tsv"
    conda:
        "../envs/train.yaml"
    threads: config["train"].get("threads", 1)
    resources:
        **TRAIN_GPU,
        mem_mb=4000,
        runtime=120,
    params:
        point=GRID.instance,
        test_splits=TEST_SPLITS,
        dft=wf.fit_layout_settings(config["dft"]),
        model=config["model"],
        train=wf.per_model_train_settings(config["train"]),
        metric=config["metric"],
        # measured during training, so they are training settings too
        probes={k: config["analysis"][k] for k in ("probe_every", "probe_structures")},
        # only a capacity-matched point depends on the grid's largest l_max (its parameter count)
        reference_lmax=lambda wc: LMAX_VALUES[-1] if wc.capacity == "matched" else None,
    script:
        "../scripts/train.py"


rule models_table:
    """One row per trained model: test ε in total, of the block and per l."""
    input:
        expand(f"results/models/{{point}}/summary.json", point=GRID.instance_patterns),
    output:
        "results/tables/models.parquet",
    log:
        "results/logs/models_table.log",
    benchmark:
        "results/benchmarks/models_table.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/models_table.py"

rule dataset:
    """One Parquet table per split: positions, coefficients, free-atom reference and target."""
    input:
        xyz=lambda wc: expand("results/structures/{s}.xyz", s=structure_ids(wc.split)),
        tables=lambda wc: expand("results/dft/{s}.parquet", s=structure_ids(wc.split)),
        summaries=lambda wc: expand("results/dft/{s}.json", s=structure_ids(wc.split)),
        references=expand("results/reference/{element}.parquet", element=ELEMENTS),
        code=code_inputs("dataset.py"),
    output:
        dataset="results/dataset/{split}.parquet",
        skipped="results/dataset/{split}.skipped.tsv",
    log:
        "results/logs/dataset/{split}.log",
    benchmark:
        "results/rule_benchmarks/dataset/{split}.tsv"
    conda:
        "../envs/dataset.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(2000),
        runtime=10,
    params:
        structure_ids=lambda wc: structure_ids(wc.split),
        dft=config["dft"],
        # the splits a model needs: all skipped by DFT is an error here, before any training
        required=lambda wc: wc.split
        in (TRAIN_SPLIT, config["train"].get("val_split", "val"), TEST_SPLITS[0]),
    script:
        "../scripts/dataset.py"

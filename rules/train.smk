# the rest of a training job (data, network, Python), the validation fit overlaps (every epoch is validated in
# coefficient space) and the ε grids it holds (the probed structures; resource collocation_cache_mb, read by
# scripts/train.py: a resource, not a setting that retrains models); a retry asks for 2x, 3x the memory and
# holds the same, so the extra memory is all headroom
TRAIN_CACHE_MB = int(config["metric"]["collocation_cache_mb"])
TRAIN_OVERLAP_MB = wf.validation_overlap_mb(
    STRUCTURES, config["train"].get("val_split", "val"), config["dft"]
)
TRAIN_MEM_MB = TRAINING_BASE_MB + TRAIN_OVERLAP_MB + TRAIN_CACHE_MB
# what a job computes; how it runs (train.device, threads, checkpoint_every: grid.EXECUTION_SETTINGS)
# is no param, so changing it retrains nothing: scripts/train.py reads it from the config
TRAIN_PARAMS = {
    "dft": wf.fit_layout_settings(config["dft"]),
    "model": config["model"],
    "train": wf.per_model_train_settings(config["train"]),
    "metric": {
        k: v for k, v in config["metric"].items() if k != "collocation_cache_mb"
    },
    # measured during training, so they are training settings too
    "probes": {
        k: config["analysis"][k] for k in ("probe_schedule", "probe_structures")
    },
}


if ENSEMBLE_SIZE == 1:

    rule train:
        """Train one grid point (hidden l_max × output order × capacity × channels × seed × size)."""
        input:
            unpack(training_inputs),
        output:
            **model_files(GRID.wildcard_pattern, TRAINING_FILES),
        log:
            f"results/logs/train/{GRID.wildcard_pattern}.log",
        benchmark:
            f"results/rule_benchmarks/train/{GRID.wildcard_pattern}.tsv"
        conda:
            TRAIN_CONDA_ENV
        threads: config["train"].get("threads", 1)
        resources:
            **TRAIN_GPU,
            mem_mb=mem_mb_per_attempt(TRAIN_MEM_MB),
            collocation_cache_mb=TRAIN_CACHE_MB,
            runtime=120,
        params:
            **TRAIN_PARAMS,
            reference_lmax=reference_lmax,
        script:
            "../scripts/train.py"


# train.ensemble_size > 1: one job trains a block of seeds of a grid point together (e3hier.training.ensemble).
# Not an `else:` branch: Snakemake records a script rule's code as the text of its `script:` line, indentation
# included, and a model of rule `train` must not look changed to these rules (changing the ensemble size, or
# editing the seed list, retrains nothing: tests/test_reruns.py); both rules sit one level deep.
for block in SEED_BLOCKS if ENSEMBLE_SIZE > 1 else []:

    rule:
        name:
            f"train_ensemble_seeds_{'_'.join(map(str, block))}"
        input:
            unpack(training_inputs),
        output:
            **model_files(member_patterns(block), TRAINING_FILES),
        log:
            f"results/logs/train/{block_pattern(block)}.log",
        benchmark:
            f"results/rule_benchmarks/train/{block_pattern(block)}.tsv"
        conda:
            TRAIN_CONDA_ENV
        threads: config["train"].get("threads", 1)
        resources:
            **TRAIN_GPU,
            mem_mb=mem_mb_per_attempt(TRAIN_MEM_MB),
            collocation_cache_mb=TRAIN_CACHE_MB,
            runtime=120 * len(block),
        params:
            **TRAIN_PARAMS,
            reference_lmax=reference_lmax,
        script:
            "../scripts/train.py"

    # a profile's settings of rule `train` (--set-resources, --set-threads) apply to these rules too
    share_profile_settings(
        "train", f"train_ensemble_seeds_{'_'.join(map(str, block))}"
    )


# the test splits: an evaluate job per train job (its models share the test grids); the test datasets are no input
# of training, so adding a test structure re-evaluates the models and retrains none
EVALUATE_MEM_MB = TRAINING_BASE_MB + TRAIN_CACHE_MB
EVALUATE_PARAMS = {
    "test_splits": TEST_SPLITS,
    "dft": wf.fit_layout_settings(config["dft"]),
    "metric": {"grid_level": config["metric"]["grid_level"]},
}


if ENSEMBLE_SIZE == 1:

    rule evaluate:
        """One trained grid point on the test splits: ε per structure, the ablation of hidden orders, its summary."""
        input:
            **evaluation_inputs(GRID.wildcard_pattern),
        output:
            **model_files(GRID.wildcard_pattern, EVALUATION_FILES),
        log:
            f"results/logs/evaluate/{GRID.wildcard_pattern}.log",
        benchmark:
            f"results/rule_benchmarks/evaluate/{GRID.wildcard_pattern}.tsv"
        conda:
            TRAIN_CONDA_ENV
        threads: config["train"].get("threads", 1)
        resources:
            **TRAIN_GPU,
            mem_mb=mem_mb_per_attempt(EVALUATE_MEM_MB),
            collocation_cache_mb=TRAIN_CACHE_MB,
            runtime=60,
        params:
            **EVALUATE_PARAMS,
        script:
            "../scripts/evaluate.py"


# as the train rules: one level deep both (Snakemake records a script rule's code text, indentation included)
for block in SEED_BLOCKS if ENSEMBLE_SIZE > 1 else []:

    rule:
        name:
            f"evaluate_ensemble_seeds_{'_'.join(map(str, block))}"
        input:
            **evaluation_inputs(member_patterns(block)),
        output:
            **model_files(member_patterns(block), EVALUATION_FILES),
        log:
            f"results/logs/evaluate/{block_pattern(block)}.log",
        benchmark:
            f"results/rule_benchmarks/evaluate/{block_pattern(block)}.tsv"
        conda:
            TRAIN_CONDA_ENV
        threads: config["train"].get("threads", 1)
        resources:
            **TRAIN_GPU,
            mem_mb=mem_mb_per_attempt(EVALUATE_MEM_MB),
            collocation_cache_mb=TRAIN_CACHE_MB,
            runtime=60 * len(block),
        params:
            **EVALUATE_PARAMS,
        script:
            "../scripts/evaluate.py"

    # a profile's settings of rule `evaluate` (--set-resources, --set-threads) apply to these rules too
    share_profile_settings(
        "evaluate", f"evaluate_ensemble_seeds_{'_'.join(map(str, block))}"
    )


rule models_table:
    """One row per trained model: test ε in total, of the block, per l and of the orders every model reaches."""
    input:
        summaries=expand(
            f"results/models/{{point}}/summary.json", point=GRID.instance_patterns
        ),
        code=code_inputs("models_table.py"),
    output:
        "results/tables/models.parquet",
    log:
        "results/logs/models_table.log",
    benchmark:
        "results/rule_benchmarks/models_table.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(1000),
        runtime=10,
    params:
        # reachable_lmax: the output orders every hidden l_max of the grid (controls included) reaches
        lmax_hidden=sorted(config["train"]["lmax_hidden"]),
        lmax_edge=config["model"]["lmax_edge"],
    script:
        "../scripts/models_table.py"

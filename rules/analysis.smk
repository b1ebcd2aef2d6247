rule analysis:
    """Hierarchy tables: learning per l and its onset, feature norms, ablation, learning curves, transfer, the
    per-(model, test structure) errors and the verdict table."""
    input:
        models="results/tables/models.parquet",
        dirs=expand(
            "results/models/{point}/{name}.parquet",
            point=GRID.instance_patterns,
            name=["metrics", "features", "ablation", "eval"],
        ),
        code=code_inputs("analysis.py"),
    output:
        **{name: f"results/tables/{name}.parquet" for name in ANALYSIS_TABLES},
    log:
        "results/logs/analysis.log",
    benchmark:
        "results/rule_benchmarks/analysis.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        # it reads every model's tables: memory and time grow with the number of models
        **wf.models_read_resources("analysis", N_MODELS),
    params:
        model_dirs=expand("results/models/{point}", point=GRID.instance_patterns),
        onset_fraction=config["analysis"]["onset_fraction"],
        test_split=TEST_SPLITS[0],
        equivalence=config["analysis"]["equivalence"],
    script:
        "../scripts/analysis.py"


rule density_slice:
    """DFT and predicted densities on a plane through one structure of the first test split, for the lowest
    and highest l_max."""
    input:
        dataset=f"results/dataset/{TEST_SPLITS[0]}.parquet",
        models=expand("results/models/{point}/model.pt", point=density_slice_points()),
        code=code_inputs("density_slice.py"),
    output:
        "results/tables/density_slice.parquet",
    log:
        "results/logs/density_slice.log",
    benchmark:
        "results/rule_benchmarks/density_slice.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(2000),
        runtime=10,
    params:
        labels=[f"hidden l_max {lmax}" for lmax in density_slice_lmax()],
        # the manifest's structure at that index (check_density_plane: within the split), skipped or not
        structure_id=lambda wc: structure_ids(TEST_SPLITS[0])[
            config["analysis"]["density_plane_structure"]
        ],
        dft=wf.fit_layout_settings(config["dft"]),
        model=config["model"],
    script:
        "../scripts/density_slice.py"


rule findings_report:
    """The verdict table as HTML (the report's first item) and Markdown (for the README)."""
    input:
        "results/tables/findings.parquet",
        code=code_inputs("findings_report.py"),
    output:
        html=report(
            "results/tables/findings.html",
            caption="../report/findings_table.rst",
            category="Findings",
        ),
        markdown="results/tables/findings.md",
    log:
        "results/logs/findings_report.log",
    benchmark:
        "results/rule_benchmarks/findings_report.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(1000),
        runtime=5,
    script:
        "../scripts/findings_report.py"

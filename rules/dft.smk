rule dft:
    """SCF of one structure and the Coulomb-metric fit of its density."""
    input:
        xyz="results/structures/{structure}.xyz",
        code=code_inputs("dft.py"),
    output:
        # multiext: required for between-workflow caching of several files
        multiext("results/dft/{structure}", ".parquet", ".json"),
    log:
        "results/logs/dft/{structure}.log",
    cache: "omit-software"
    # No benchmark: Snakemake forbids it on cached rules; the JSON records wall_seconds.
    conda:
        "../envs/dft.yaml"
    threads: 1
    resources:
        mem_mb=dft_mem_mb,
        runtime=60,
    params:
        # (structures.min_distance_angstrom is a check, not a param: scripts/dft.py reads it)
        dft=config["dft"],
    script:
        "../scripts/dft.py"


rule free_atom:
    """Spherical free-atom density of one element on its s fit functions."""
    input:
        code=code_inputs("free_atom.py"),
    output:
        "results/reference/{element}.parquet",
    log:
        "results/logs/reference/{element}.log",
    benchmark:
        "results/rule_benchmarks/reference/{element}.tsv"
    conda:
        "../envs/dft.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(2000),
        runtime=10,
    params:
        dft=config["dft"],
    script:
        "../scripts/free_atom.py"

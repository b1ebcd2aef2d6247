rule structures:
    """Generate (seeded water clusters) or read (XYZ files) every structure."""
    output:
        xyz=expand("results/structures/{structure}.xyz", structure=structure_ids()),
        manifest="results/structures/manifest.tsv",
    log:
        "results/logs/structures.log",
    benchmark:
        "results/benchmarks/structures.tsv"
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        structures=config["structures"],
    script:
        "../scripts/structures.py"

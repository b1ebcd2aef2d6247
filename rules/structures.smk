rule structure:
    """Generate (seeded water cluster) or read (XYZ frame) one structure."""
    input:
        # an XYZ structure's own source file (none for generated clusters): editing one
        # file reruns only its structures
        unpack(structure_source),
        code=code_inputs("structures.py"),
    output:
        xyz="results/structures/{structure}.xyz",
    log:
        "results/logs/structures/{structure}.log",
    benchmark:
        "results/rule_benchmarks/structures/{structure}.tsv"
    wildcard_constraints:
        structure=STRUCTURE_PATTERN,
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(1000),
        runtime=5,
    params:
        # this structure's recipe only (split, index, n_molecules, its own seed, MD
        # settings; or split, file and frame), so a change reruns only what it touches
        # (structures.min_distance_angstrom is a check, not a param: scripts/structures.py reads it)
        recipe=lambda wc: STRUCTURES[wc.structure]["recipe"],
    script:
        "../scripts/structures.py"


rule structure_manifest:
    """One table of every structure: id, split, atom count and formula."""
    input:
        xyz=expand("results/structures/{structure}.xyz", structure=structure_ids()),
        code=code_inputs("structure_manifest.py"),
    output:
        "results/structures/manifest.tsv",
    log:
        "results/logs/structure_manifest.log",
    benchmark:
        "results/rule_benchmarks/structure_manifest.tsv"
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_per_attempt(1000),
        runtime=10,
    params:
        splits=[STRUCTURES[s]["split"] for s in structure_ids()],
    script:
        "../scripts/structure_manifest.py"

# One rule per figure (generated from FIGURES in common.smk): PNG for the report, PDF for papers.
for figure, spec in FIGURES.items():

    rule:
        name:
            f"figure_{figure}"
        input:
            **spec["inputs"],
            code=code_inputs("figure.py"),
        output:
            png=report(
                f"results/figures/{figure}.png",
                caption=f"../report/{figure}.rst",
                category=spec["category"],
            ),
            pdf=f"results/figures/{figure}.pdf",
        log:
            f"results/logs/figures/{figure}.log",
        benchmark:
            f"results/rule_benchmarks/figures/{figure}.tsv"
        conda:
            "../envs/analysis.yaml"
        threads: 1
        resources:
            # a figure reads tables of every model: memory and time grow with their number
            **wf.models_read_resources("figure", N_MODELS),
        params:
            figure=figure,
            options=spec.get("options", {}),
        script:
            "../scripts/figure.py"

"""e3hier: the logic of the pipeline, importable and tested without Snakemake.

One subpackage per stage, in pipeline order; a stage imports only from the stages before it
(``tests/test_layout_imports.py``):

- ``structures/``: water clusters or user XYZ files, their checks and files;
- ``dft/``: reference densities (SCF and density fit), the fitting basis, and ε on Becke grids;
- ``data/``: the dataset, what a grid point predicts (``layout``) and the grids its errors are measured on;
- ``network/``: the study's network, its speed layer in ``network/fused/``;
- ``training/``: one grid point end to end: the grid, the training loop, ensembles, evaluation, probes;
- ``analysis/``: the tables, findings, figures and the numbers the docs quote;
- ``predict/``: a trained model's bundle applied to new structures, as coefficient tables and cube files;
- ``workflow/``: what the Snakemake rules need, the run lock, Slurm and the conda envs; ``plan/``: the cost plan.

Beside them, for every stage: ``io.py`` (atomic, durable writes; provenance), ``config.py`` (a run's config,
merged and validated), ``run_record.py`` (which run a
``results/`` folder holds) and ``script_imports.py`` (the modules a script runs: the rules' code inputs).
"""

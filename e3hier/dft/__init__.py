"""Reference densities: a density-fitted Kohn–Sham SCF per structure and a Coulomb-metric fit of its density.

One module per step, each plain functions over arrays and named constants:

- ``job``: one structure's DFT rule (``dft_job``): SCF, fit, fit error, the function table;
- ``scf``: the SCF driver (``run_scf``) and its grid settings;
- ``fit``: the constrained Coulomb-metric fit, its 3-centre integrals taken packed and in blocks;
- ``fit_error``: ε (%) of the fitted density on a Becke grid;
- ``epsilon``: ε on a Becke grid, the study's metric, defined once for the fits and the models;
- ``basis``: the fit basis (decontracted auxiliary basis), its function table, irreps and normalisations;
- ``memory``: the peak memory of one job, the dft rule's ``mem_mb`` (``structure_memory_mb``).

This file imports nothing, so the workflow's memory estimate loads no more than it needs.
"""

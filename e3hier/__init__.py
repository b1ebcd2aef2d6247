"""e3hier: the logic of the pipeline, importable and tested without Snakemake. A map, in pipeline order:

- structures: ``structures/`` (``plans.py`` is the workflow's path: plans, then ``build_structure``);
- DFT density fits: ``dft/`` (``job.py`` runs one structure), ``basis.py``, ``reference.py`` (free atoms),
  ``conventions.py`` (m order, Wigner-D);
- the dataset: ``dataset.py``;
- the training grid: ``grid.py`` (``GridPoint``: one name per axis in the config, folders and tables);
- one grid point: ``experiment.py`` (end to end) over ``samples.py`` (cached graphs, ε grids),
  ``layout.py`` (which outputs a point predicts), ``reach.py`` (which output orders a hidden l_max reaches),
  ``capacity.py`` (channel counts), ``network_setup.py``,
  ``training.py`` (the loop), ``checkpoints.py``, ``probe_log.py`` (probe records in a side file),
  ``evaluation.py``, ``metric.py`` (ε on Becke grids), ``coefficient_metric.py`` (the exact L2 density error in
  the fitting basis: per-epoch validation),
  ``held_out.py`` (test splits and the ablation), ``features.py`` (hidden-feature probes) and
  ``ensemble.py`` (seeds trained together);
- the network: ``model.py`` (the study's), and its speed layer ``fused_products.py``, ``fused_layers.py``,
  ``generated_code.py``, ``scalar_linear.py``, ``fused_radial.py``, ``allocator.py``, ``lean_adam.py`` (the
  optimiser's step), with e3nn's internals reached only in ``e3nn_internals.py``;
- analysis and figures: ``analysis.py``, ``findings.py`` (verdicts), ``families.py`` (which models measure
  which finding), ``hierarchy_findings.py`` (finding 2), ``statistics.py`` (intervals, the verdict rule),
  ``findings_report.py``, ``figures.py``, ``hierarchy_figures.py``, ``density_slice.py``;
- the workflow's helpers: ``workflow.py``, ``config_checks.py`` (contradictions refused up front),
  ``script_imports.py`` (code inputs), ``slurm_nodes.py``, ``resume.py`` (``make reproduce``'s runner, the run
  lock), ``io.py`` (atomic, durable writes); the cost plan: ``plan/``; the rules' conda envs,
  generated from ``requirements.lock`` (``make envs``): ``envs.py``.
"""

"""What the Snakemake workflow needs, kept free of Snakemake imports.

- ``rules``: what the rules need to know before any job runs (structures, elements, resources);
- ``config_checks``: contradictions in a config, refused before any job;
- ``resume``: ``make reproduce``'s runner (``python -m e3hier.workflow.resume``): a killed run continues;
- ``slurm_nodes``: jobs wider than every node of their partition, refused before submission;
- ``envs``: the rules' conda environments, generated from ``requirements.lock`` (``make envs``).
"""

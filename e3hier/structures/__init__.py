"""Structures: generated water clusters or user XYZ files, the checks they pass and their files.

Every structure is keyed by a string id that the workflow uses for file names, so ids must be known
before any structure exists, and must be unique. One module per job:

- ``plans``: the workflow's entry point — ``structure_plans`` (every id with its recipe, from the
  config alone; the only reader of ``structures.source``) and ``build_structure`` (one structure
  from its recipe, in that structure's job);
- ``water_clusters``: seeded (H2O)n generation (``generate_water_cluster``), kept rigid by
  ``rigid_waters.RigidWaters``;
- ``xyz``: frames of user XYZ files, with errors that name the file and line;
- ``checks``: plausibility of a water cluster, and what the DFT accepts (``validate_structure``);
- ``charge_spin``: charge and multiplicity from the extended-XYZ comment line;
- ``files``: the workflow's one-structure extended-XYZ files.

This file imports nothing, so a job that only reads structure files loads no generation code.
"""

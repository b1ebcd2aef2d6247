"""One grid point, end to end: set-up, the training loop, ensembles, evaluation and the outputs.

- ``experiment``: a grid point (or a block of its seeds) from dataset files to its outputs (``outputs``);
- ``grid``: the training grid, one ``GridPoint`` per model;
- ``samples``: structures as the loop consumes them (cached graphs, targets, ε grids);
- ``network_setup``: the network's config, seeded weights and device, its optimiser and schedule;
- ``loop``: the training loop (epochs, validation, the kept epoch, early stopping, probes, checkpoints), one
  for both: ``trainer`` (``Trainer``, one model: its data, targets, step and checkpoint) and ``ensemble``
  (the seeds of a grid point trained together in one stacked network, ``members``);
- ``checkpoints``, ``probe_log``: what a run records and resumes from;
- ``lean_adam``, ``allocator``: the optimiser's step and the memory a step reuses;
- ``evaluation``, ``held_out``: errors per structure on the validation and test splits, the ablation;
- ``features``: hidden-feature probes per order l.
"""

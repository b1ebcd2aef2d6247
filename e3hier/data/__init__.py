"""The dataset and what a grid point learns from it.

- ``dataset``: one long table per split, one row per fit function (``assemble_split``);
- ``reference``: the free-atom reference densities the targets are taken from;
- ``conventions``: frames and rotations shared by the DFT coefficients and the network;
- ``layout``: where each fit function lives in the network's output, and which block a grid point predicts;
- ``reach``: which output orders a grid point predicts and which its hidden orders can reach (no e3nn import);
- ``metric``: the ε grids of a dataset's structures (collocations, held or streamed);
- ``coefficient_metric``: the exact L2 density error in the fitting basis (per-epoch validation).
"""

"""The study's network.

- ``model``: ``DensityNetwork``, e3nn's ``gate_points_2101.Network`` fed with exact neighbour lists;
- ``capacity``: parameter counts and the hidden channel counts of the capacity and channel controls;
- ``devices``: where the network's inputs live (a graph reaches it only through ``to_device``);
- ``fused/``: the speed layer, the same network evaluated faster.
"""

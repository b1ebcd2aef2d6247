"""Use what was trained: a model's bundle (``model.pt``) applied to new structures, written as coefficient tables
and Gaussian cube files (``python -m e3hier.predict``; docs/predict.md).

- ``bundle``: load and check a bundle (its format, its layout against the fit basis, its weights);
- ``structures``: the fit-function rows of a new structure, as the DFT table lays them out;
- ``cube``: a density on a cube grid, written by PySCF's cube writer;
- ``__main__``: the command.
"""

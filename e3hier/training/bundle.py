"""What ``model.pt`` holds besides the weights, so that a trained model stands alone (``e3hier.predict``).

A model's file is its bundle: the best weights and the config that rebuilds the network (``Trainer.save_model``),
the per-shell target scales, and the fields here: the bundle format, the fit basis (name, decontraction) whose
layout the outputs follow, the free-atom coefficients the predicted targets are added to, the charge of the
training structures, the grid point and the commit that trained it. It loads with
``torch.load(..., weights_only=True)`` and needs no ``results/`` folder.
"""

from __future__ import annotations

import pandas as pd

from e3hier.run_record import commit
from e3hier.training.samples import structure_charges

#: The bundle's layout version: ``e3hier.predict`` refuses a bundle of another one.
BUNDLE_FORMAT = 1
#: The free-atom table's columns, stored per element (the reference is 0 for every function not listed).
FREE_ATOM_COLUMNS = ("element", "l", "shell", "m", "reference")


def free_atom_coefficients(frame: pd.DataFrame) -> dict[str, list]:
    """The free-atom coefficients of each element in a dataset table (its first atom of that element; every atom
    of an element has the same), as lists per ``FREE_ATOM_COLUMNS``: the s functions with a reference."""
    firsts = frame.groupby("element", sort=True).apply(
        lambda rows: rows[(rows["structure"] == rows["structure"].iloc[0]) & (rows["atom"] == rows["atom"].iloc[0])],
        include_groups=False,
    )
    table = firsts.reset_index(level=0)
    table = table[table["reference"] != 0]
    return {column: table[column].tolist() for column in FREE_ATOM_COLUMNS}


def bundle_fields(dft_cfg: dict, train_frame: pd.DataFrame) -> dict:
    """The fields ``model.pt`` stores besides the network, shared by the models of one job: format, fit basis,
    free atoms and commit (``with_grid_point`` adds each model's own)."""
    return {
        "format": BUNDLE_FORMAT,
        "fit_auxbasis": dft_cfg["fit_auxbasis"],
        "decontract": bool(dft_cfg["decontract"]),
        "free_atom": free_atom_coefficients(train_frame),
        # the network has no charge input: what it was trained on is the only charge it predicts
        "charge": int(structure_charges(train_frame).iloc[0]),
        "commit": commit(),
    }


def with_grid_point(fields: dict, point: dict) -> dict:
    """A model's bundle fields: the job's and its grid point (values as in its folder name)."""
    return {**fields, "grid_point": {key: str(value) for key, value in point.items()}}

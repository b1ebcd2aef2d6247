"""The training grid: one row per model (hidden l_max × output order × capacity × channels × seed × size).

The study's grid is the full product of ``train.lmax_hidden``, ``outputs``, ``seeds`` and ``n_train``
(capacity and channels ``study``). Two controls add rows, at the largest training size only:

- ``train.matched_capacity`` (outputs): every l_max below the largest, widened to the parameter count of
  the largest (``capacity: matched``; the largest is its own match, so it is not trained twice);
- ``train.equal_channels`` (outputs): the largest l_max with one channel count for every order
  (``channels: equal``), at the study's parameter count.
"""

from __future__ import annotations

import itertools

import pandas as pd

#: ``train`` keys that span the grid; they are not passed to each training job, so adding
#: a grid value does not invalidate the models already trained.
GRID_AXES = ("lmax_hidden", "outputs", "seeds", "n_train", "matched_capacity", "equal_channels", "ensemble_size")

#: Folder keys of a grid point, in the order of its folder name (``lmax~2_output~full_...``).
POINT_KEYS = ("lmax", "output", "capacity", "channels", "seed", "ntrain")


def largest_n_train(n_train: list):
    """``"all"`` if listed, else the largest structure count."""
    return "all" if "all" in n_train else max(n_train)


def training_grid(train_cfg: dict) -> pd.DataFrame:
    """The grid as a table with columns ``POINT_KEYS``, for ``snakemake.utils.Paramspace``."""
    lmaxes, seeds = sorted(train_cfg["lmax_hidden"]), train_cfg["seeds"]
    rows = [
        (lmax, output, "study", "study", seed, ntrain)
        for lmax, output, seed, ntrain in itertools.product(lmaxes, train_cfg["outputs"], seeds, train_cfg["n_train"])
    ]
    ntrain = largest_n_train(train_cfg["n_train"])
    for output in train_cfg.get("matched_capacity", []):
        rows += [(lmax, output, "matched", "study", seed, ntrain) for lmax in lmaxes[:-1] for seed in seeds]
    for output in train_cfg.get("equal_channels", []):
        rows += [(lmaxes[-1], output, "study", "equal", seed, ntrain) for seed in seeds]
    frame = pd.DataFrame(rows, columns=list(POINT_KEYS))
    frame["ntrain"] = frame["ntrain"].astype(str)
    return frame


def point_name(point: dict) -> str:
    """The Paramspace folder name of a grid point (``lmax~2_output~full_capacity~study_..._ntrain~all``)."""
    return "_".join(f"{key}~{point[key]}" for key in POINT_KEYS)


def seed_blocks(seeds: list, ensemble_size: int) -> list[list]:
    """The seeds trained together in one job (``train.ensemble_size``): consecutive runs of the
    configured seed list, ``ensemble_size`` at a time. Appending seeds to the list touches only its
    last, incomplete block, so the models of the full blocks are kept on a rerun."""
    size = max(1, int(ensemble_size))
    return [list(seeds[k : k + size]) for k in range(0, len(seeds), size)]


def block_name(point: dict, seeds: list) -> str:
    """The name of one ensemble job: the grid point's name with its block of seeds (``seed~0-1-2``)."""
    return point_name({**point, "seed": "-".join(map(str, seeds))})

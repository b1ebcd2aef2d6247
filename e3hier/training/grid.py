"""The training grid: one `GridPoint` per model (hidden l_max × output order × capacity × channels × seed × size).

One concept, one name: a grid point's fields (``lmax_hidden``, ``output``, ``capacity``, ``channels``,
``seed``, ``n_train``) name the ``train`` axes of the config, the keys of its folder
(``lmax_hidden~2_output~full_..._n_train~all``) and the columns of the tables.

The study's grid is the full product of ``train.lmax_hidden``, ``output``, ``seed`` and ``n_train``
(capacity and channels ``study``). Two controls add points, at the largest training size only:

- ``train.matched_capacity`` (outputs): every l_max below the largest, widened to the parameter count of
  the largest (``capacity: matched``; the largest is its own match, so it is not trained twice);
- ``train.equal_channels`` (outputs): the largest l_max with one channel count for every order
  (``channels: equal``), at the study's parameter count.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping

import pandas as pd

#: ``train`` keys that span the grid; they are not passed to each training job, so adding
#: a grid value does not invalidate the models already trained.
GRID_AXES = ("lmax_hidden", "output", "seed", "n_train", "matched_capacity", "equal_channels", "ensemble_size")

#: ``train`` keys that set how a job runs, not what it computes (``compile``: the same model to float rounding,
#: like ``device``): not training params nor part of a checkpoint's fingerprint, so changing one retrains
#: nothing and an interrupted job resumes under the new value (``scripts/train.py`` reads them from the config).
EXECUTION_SETTINGS = ("device", "threads", "checkpoint_every", "compile")

#: The output order whose models the single-output figures draw: the full density when it is trained.
PREFERRED_OUTPUT = "full"


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One model of the grid; its fields, in order, make its folder name.

    Parameters
    ----------
    lmax_hidden
        Highest order l of the hidden features.
    output
        The output order it predicts (``scalar``, ``vector``, ``higher`` or ``full``).
    capacity
        ``study`` (the study's channel counts) or ``matched`` (widened to the largest l_max's parameters).
    channels
        ``study`` (channels falling with l) or ``equal`` (one channel count for every l).
    seed
        Seed of the initialisation and the data order.
    n_train
        Training structures: ``"all"`` or a count (a string, as in the folder name).
    """

    lmax_hidden: int
    output: str
    capacity: str = "study"
    channels: str = "study"
    seed: int = 0
    n_train: str = "all"

    def __post_init__(self):
        # values arrive as strings from wildcards and Paramspace; store one type per field
        for field in dataclasses.fields(self):
            kind = int if field.name in ("lmax_hidden", "seed") else str
            object.__setattr__(self, field.name, kind(getattr(self, field.name)))

    @classmethod
    def from_mapping(cls, values: Mapping) -> GridPoint:
        """The point of a mapping holding its fields (wildcards, a Paramspace instance, a table row)."""
        names = [field.name for field in dataclasses.fields(cls)]
        return cls(**{name: values[name] for name in names if name in values})

    @property
    def name(self) -> str:
        """The folder name: ``lmax_hidden~2_output~full_capacity~study_channels~study_seed~0_n_train~all``."""
        return folder_name(dataclasses.asdict(self))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def with_seed(self, seed) -> GridPoint:
        return dataclasses.replace(self, seed=seed)


#: The fields of a grid point, in the order of its folder name.
POINT_KEYS = tuple(field.name for field in dataclasses.fields(GridPoint))


def folder_name(values: Mapping) -> str:
    """``key~value`` of every ``POINT_KEYS`` entry joined by ``_`` (Paramspace's ``filename_params="*"``,
    ``param_sep="~"``); the one place a grid point's folder name is built."""
    return "_".join(f"{key}~{values[key]}" for key in POINT_KEYS)


#: A folder name (or an ensemble job's name, ``seed~0-1-2``) back into its values; keys hold ``_`` too.
FOLDER_NAME = re.compile("_".join(f"{key}~(?P<{key}>[^_~]+)" for key in POINT_KEYS))


def folder_values(name: str) -> dict:
    """``{key: value}`` (strings) of a folder name built by ``folder_name``."""
    match = FOLDER_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a grid-point folder name ({'_'.join(f'{k}~…' for k in POINT_KEYS)})")
    return match.groupdict()


def largest_n_train(n_train: list):
    """``"all"`` if listed, else the largest structure count."""
    return "all" if "all" in n_train else max(n_train)


def same_size_n_train(n_train: list, split_size: int) -> list[list]:
    """The groups of ``train.n_train`` values that resolve to one structure count for a training split of
    ``split_size`` structures (``"all"`` and counts ≥ the split are the whole split): each group would train the
    same models twice."""
    groups: dict[int, list] = {}
    for value in n_train:
        groups.setdefault(split_size if value == "all" else min(int(value), split_size), []).append(value)
    return [values for values in groups.values() if len(values) > 1]


def preferred_output(outputs: list) -> str:
    """The output order drawn by single-output figures: ``PREFERRED_OUTPUT`` if trained, else the last listed."""
    return PREFERRED_OUTPUT if PREFERRED_OUTPUT in outputs else outputs[-1]


def training_grid(train_cfg: dict) -> pd.DataFrame:
    """The grid as a table with columns ``POINT_KEYS``, for ``snakemake.utils.Paramspace``."""
    # sorted: the order in which seeds are listed changes no job and no table
    lmaxes, seeds = sorted(train_cfg["lmax_hidden"]), sorted(train_cfg["seed"])
    points = [
        GridPoint(lmax, output, seed=seed, n_train=n_train)
        for lmax, output, seed, n_train in itertools.product(lmaxes, train_cfg["output"], seeds, train_cfg["n_train"])
    ]
    n_train = largest_n_train(train_cfg["n_train"])
    for output in train_cfg.get("matched_capacity", []):
        points += [
            GridPoint(lmax, output, "matched", seed=seed, n_train=n_train) for lmax in lmaxes[:-1] for seed in seeds
        ]
    for output in train_cfg.get("equal_channels", []):
        points += [GridPoint(lmaxes[-1], output, channels="equal", seed=seed, n_train=n_train) for seed in seeds]
    return pd.DataFrame([point.as_dict() for point in points], columns=list(POINT_KEYS))


def seed_blocks(seeds: list, ensemble_size: int) -> list[list]:
    """The seeds trained together in one job (``train.ensemble_size``), defined by their values, not their
    places in the list: seed s belongs to block s // ensemble_size (seeds 0-4, 5-9, … for 5). Removing or
    reordering seeds leaves every other seed in its block, and a job's outputs are its seeds' own model
    folders (their params do not name the block), so neither retrains a finished model; an appended seed
    lands in its own block, or in the block of the seeds it completes (which is then retrained)."""
    size = max(1, int(ensemble_size))
    blocks: dict[int, list] = {}
    for seed in sorted(int(s) for s in seeds):
        blocks.setdefault(seed // size, []).append(seed)
    return list(blocks.values())


def block_name(values: Mapping, seeds: list) -> str:
    """The name of one ensemble job: the grid point's name with its block of seeds (``seed~0-1-2``)."""
    return folder_name({**values, "seed": "-".join(map(str, seeds))})

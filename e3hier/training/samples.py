"""Structures as the training loop consumes them: cached graphs, targets in the output layout, ε grids.

Everything that does not change during training (neighbour lists, edge
features, row → output-slot indices, the ε collocation) is computed once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from pyscf import gto

from e3hier.data.coefficient_metric import FitOverlap, fit_overlap
from e3hier.data.layout import OutputLayout
from e3hier.data.metric import COLLOCATION_DTYPE, CollocationBudget, DensityGrid, density_grid
from e3hier.network.devices import HostGraph
from e3hier.network.model import edge_features

#: ``train.dtype`` → the torch type of the network, its inputs and its targets.
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Sample:
    """One structure. Row arrays follow the dataset's function rows (stored order).

    ``rows`` (block functions only) index the network output as
    ``output[atom[rows], slot[rows]]``.
    """

    structure: str
    symbols: list
    positions: np.ndarray  # Å
    graph: dict  # one_hot, edge_features, and the block rows' atom and slot: torch tensors
    l: np.ndarray
    coefficient: np.ndarray
    integral: np.ndarray
    reference: np.ndarray
    target: np.ndarray
    rows: np.ndarray
    atom: np.ndarray
    slot: np.ndarray
    n_electrons: float
    grid: DensityGrid | None = field(default=None, repr=False)
    baseline: dict | None = field(default=None, repr=False)  # ε of the free-atom reference, once computed
    population_factor: np.ndarray | None = field(default=None, repr=False)  # per row; NaN: unknown (contracted)
    overlap: FitOverlap | None = field(default=None, repr=False)  # the fit basis' S: errors in coefficient space

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)


def split_structures(frame: pd.DataFrame):
    """Yield ``(structure_id, rows)`` in the dataset's order."""
    for structure_id, rows in frame.groupby("structure", sort=False):
        yield structure_id, rows.reset_index(drop=True)


def make_sample(structure_id: str, rows: pd.DataFrame, layout: OutputLayout, model_cfg: dict, dtype) -> Sample:
    """Cache one structure's graph and its block's target indices."""
    atoms = rows.groupby("atom", sort=True).first()
    symbols = list(atoms["element"])
    positions = atoms[["x", "y", "z"]].to_numpy()
    graph = edge_features(positions, model_cfg["max_radius"], model_cfg["number_of_basis"], model_cfg["lmax_edge"])
    graph = {k: v.to(dtype) if v.is_floating_point() else v for k, v in graph.items()}
    graph["one_hot"] = torch.as_tensor(layout.one_hot(symbols), dtype=dtype)
    l = rows["l"].to_numpy()
    block = np.flatnonzero(layout.in_block(l))
    atom = rows["atom"].to_numpy()[block]
    slot = layout.slots(l[block], rows["shell"].to_numpy()[block], rows["m"].to_numpy()[block])
    # the output rows as tensors of the graph: moved to the network's device once, with the graph
    graph["atom"], graph["slot"] = torch.as_tensor(atom), torch.as_tensor(slot)
    return Sample(
        structure=structure_id,
        symbols=symbols,
        positions=positions,
        graph=graph,
        l=l,
        coefficient=rows["coefficient"].to_numpy(dtype=float, copy=True),
        integral=rows["integral"].to_numpy(dtype=float, copy=True),
        reference=rows["reference"].to_numpy(dtype=float, copy=True),
        target=rows["target"].to_numpy(dtype=float, copy=True),
        rows=block,
        atom=atom,
        slot=slot,
        n_electrons=float(rows["n_electrons"].iloc[0]),
        # a table of another kind may lack the column: only ``target_scaling: population`` needs it
        population_factor=(
            rows["population_factor"].to_numpy(dtype=float, copy=True)
            if "population_factor" in rows
            else np.full(len(rows), np.nan)
        ),
    )


#: The columns ``structure_charges`` reads: enough to tell each structure's charge from its atoms.
CHARGE_COLUMNS = ["structure", "atom", "element", "n_electrons"]


def structure_charges(frame: pd.DataFrame) -> pd.Series:
    """Net charge (e) of every structure of a dataset table, in dataset order: Σ Z of its atoms − ``n_electrons``.

    Needs only ``CHARGE_COLUMNS``, so it also tells the charge of tables written before the ``charge``
    column existed.
    """
    if frame.empty:
        return pd.Series(dtype="int64", name="charge")
    atoms = frame.drop_duplicates(["structure", "atom"])
    protons = atoms["element"].map(gto.charge).groupby(atoms["structure"], sort=False).sum()
    electrons = atoms.groupby("structure", sort=False)["n_electrons"].first()
    return (protons - electrons).astype("int64").rename("charge")


def check_single_charge(frames: dict[str, pd.DataFrame], trained: int | None = None) -> int | None:
    """The one charge of every structure in ``frames`` (split → dataset table), None when all are empty.

    ValueError naming each split and charge (with a structure) when they differ, or differ from ``trained`` (the
    charge the models were trained on, ``model.pt``'s bundle): the network has no charge input, so one model
    cannot learn structures of different charges.
    """
    found: dict[int, str] = {} if trained is None else {int(trained): "the models' training structures (split train)"}
    for split, frame in frames.items():
        for structure_id, charge in structure_charges(frame).items():
            found.setdefault(int(charge), f"{structure_id} (split {split})")
    if len(found) > 1:
        listing = ", ".join(f"charge {charge:+d}: {where}" for charge, where in sorted(found.items()))
        raise ValueError(
            f"the job's structures have different charges ({listing}): the network has no charge "
            "input; train, validate and test on structures of one charge"
        )
    return next(iter(found), None)


def load_samples(
    frame: pd.DataFrame,
    layout: OutputLayout,
    model_cfg: dict,
    dtype=torch.float32,
    with_grid: bool = False,
    dft_cfg: dict | None = None,
    grid_level: int = 1,
    budget: CollocationBudget | None = None,
    with_overlap: bool = False,
) -> list[Sample]:
    """All structures of a dataset table; ``with_grid`` adds the ε grid + collocation of each (held while
    ``budget`` has room, else streamed; see ``e3hier.data.metric.DensityGrid``), ``with_overlap`` the fit basis'
    overlap matrix (``e3hier.data.coefficient_metric``: the validation of every epoch); both need ``dft_cfg``."""
    samples = []
    for structure_id, rows in split_structures(frame):
        sample = make_sample(structure_id, rows, layout, model_cfg, dtype)
        if with_overlap:
            matrix = fit_overlap(sample.symbols, sample.positions, rows, dft_cfg)
            sample.overlap = FitOverlap.build(matrix, sample.l, sample.coefficient, sample.target, sample.rows)
        samples.append(sample)
    if with_grid:
        add_grids(samples, frame, dft_cfg, grid_level, budget)
    return samples


def add_grids(
    samples: list[Sample], frame: pd.DataFrame, dft_cfg: dict, grid_level: int, budget: CollocationBudget | None
) -> list[Sample]:
    """Give each sample (``frame``'s structures, in its order) its ε grid + collocation (held while ``budget``
    has room, else streamed); returns the samples."""
    for sample, (structure_id, rows) in zip(samples, split_structures(frame), strict=True):
        if sample.structure != structure_id:
            raise ValueError(f"add_grids: sample {sample.structure} against dataset structure {structure_id}")
        sample.grid = density_grid(
            sample.symbols,
            sample.positions,
            rows,
            dft_cfg,
            grid_level,
            dtype=COLLOCATION_DTYPE,
            n_electrons=sample.n_electrons,
            budget=budget,
        )
    return samples


def pack(samples: list[Sample]) -> HostGraph:
    """One disjoint graph from several structures (edge and row indices offset per structure), on the device
    of the samples' graphs; a network takes it through ``e3hier.network.devices.to_device``."""
    if len(samples) == 1:
        return HostGraph(samples[0].graph)
    offsets = np.cumsum([0] + [s.n_atoms for s in samples[:-1]])
    pair_offsets = np.cumsum([0] + [len(s.graph["pair_length_embedded"]) for s in samples[:-1]])
    return HostGraph(
        {
            "one_hot": torch.cat([s.graph["one_hot"] for s in samples]),
            "edge_src": torch.cat([s.graph["edge_src"] + int(o) for s, o in zip(samples, offsets)]),
            "edge_dst": torch.cat([s.graph["edge_dst"] + int(o) for s, o in zip(samples, offsets)]),
            "edge_attr": torch.cat([s.graph["edge_attr"] for s in samples]),
            "edge_length_embedded": torch.cat([s.graph["edge_length_embedded"] for s in samples]),
            "edge_pair": torch.cat([s.graph["edge_pair"] + int(o) for s, o in zip(samples, pair_offsets)]),
            "pair_length_embedded": torch.cat([s.graph["pair_length_embedded"] for s in samples]),
            "atom": torch.cat([s.graph["atom"] + int(o) for s, o in zip(samples, offsets)]),
            "slot": torch.cat([s.graph["slot"] for s in samples]),
        }
    )


#: ``train.target_scaling`` values; ``population`` is the study's loss.
TARGET_SCALINGS = ("population", "population_rms", "global_rms", "none", "shell_rms")


def population_scales(samples: list[Sample], layout: OutputLayout) -> np.ndarray:
    """Scale per (element, output slot) that turns a target into the study's population: 1 / ``population_factor``
    (N(l, α) / 2√2, ``e3hier.dft.basis.population_factor``). One number per shell, from the dataset's
    ``population_factor`` column; unused slots get 1.

    ValueError naming the structure when a block row has no factor (a contracted shell, ``dft.decontract:
    false``, or a dataset written before the column existed) or when an element's slot has two factors (the
    samples' fit bases differ).
    """
    scales = np.full((len(layout.elements), layout.irreps.dim), np.nan)
    element_index = {el: i for i, el in enumerate(layout.elements)}
    for s in samples:
        factors = s.population_factor[s.rows]
        if not np.all(np.isfinite(factors) & (factors > 0)):
            raise ValueError(
                f"train.target_scaling: population: structure {s.structure} has fit functions without a "
                "population_factor (a contracted shell, dft.decontract: false, or a dataset written before the "
                "column existed): decontract the fit basis, or rebuild the dataset"
            )
        el = np.array([element_index[s.symbols[a]] for a in s.atom])
        known = scales[el, s.slot]
        clash = np.isfinite(known) & ~np.isclose(known, 1.0 / factors, rtol=1e-10, atol=0.0)
        if clash.any():
            raise ValueError(
                f"train.target_scaling: population: structure {s.structure} has another population_factor for "
                f"element {s.symbols[s.atom[clash][0]]} than earlier structures (a different fit basis)"
            )
        scales[el, s.slot] = 1.0 / factors
    return np.where(np.isfinite(scales), scales, 1.0)


def shell_scales(samples: list[Sample], layout: OutputLayout, scaling: str) -> np.ndarray:
    """Target scale per (element, output slot): RMS of the target over the training set per shell.

    One number per shell (all m of a shell share it), so scaling keeps the
    output equivariant. ``scaling="population"`` (the study's) gives N(l, α) / 2√2, so the loss sees the
    study's populations (``population_scales``); ``"none"`` gives ones (the unscaled coefficients);
    ``"global_rms"`` one RMS over every block target (the same weighting over coefficients as ``none``, the
    loss divided by a constant, so Adam sees the same problem with outputs of unit size). Unused slots get 1.
    """
    n_el, dim = len(layout.elements), layout.irreps.dim
    scales = np.ones((n_el, dim))
    if scaling == "none":
        return scales
    if scaling in ("population", "population_rms"):
        scales = population_scales(samples, layout)
        if scaling == "population":
            return scales
        # the study's weighting of the coefficients divided by one constant (Adam sees the same problem), so the
        # outputs start at the targets' size instead of shrinking ~20x first: population_rms is to population
        # what global_rms is to none
        populations = np.concatenate([s.target[s.rows] * s.population_factor[s.rows] for s in samples])
        rms = float(np.sqrt(np.mean(populations**2))) if len(populations) else 1.0
        return scales * (rms if rms > 1e-8 else 1.0)
    if scaling == "global_rms":  # one number for every coefficient: the loss weighs them as unscaled MSE does
        block = np.concatenate([s.target[s.rows] for s in samples]) if samples else np.zeros(0)
        rms = float(np.sqrt(np.mean(block**2))) if len(block) else 1.0
        return scales * (rms if rms > 1e-8 else 1.0)
    if scaling != "shell_rms":
        raise ValueError(f"train.target_scaling: {scaling!r} is not one of {', '.join(map(repr, TARGET_SCALINGS))}")
    sums, counts = np.zeros((n_el, dim)), np.zeros((n_el, dim))
    element_index = {el: i for i, el in enumerate(layout.elements)}
    for s in samples:
        el = np.array([element_index[s.symbols[a]] for a in s.atom])
        np.add.at(sums, (el, s.slot), s.target[s.rows] ** 2)
        np.add.at(counts, (el, s.slot), 1)
    # average over the 2l+1 components of each shell
    start = 0
    for l, n in layout.counts.items():
        width = 2 * l + 1
        for k in range(n):
            cols = slice(start + k * width, start + (k + 1) * width)
            total, count = sums[:, cols].sum(axis=1), counts[:, cols].sum(axis=1)
            rms = np.sqrt(np.divide(total, count, out=np.zeros_like(total), where=count > 0))
            scales[:, cols] = np.where(rms > 1e-8, rms, 1.0)[:, None]
        start += n * width
    return scales

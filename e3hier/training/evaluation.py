"""Predictions and their errors: the network's block targets back to coefficients, ε per structure and per l.

``structure_errors`` gives ε (%) in total, of the predicted block, of the block's orders l ≤ L (one column per
L) and per order l, the free-atom baseline's, and the electron-count error; ``evaluate`` tabulates them per
structure. Validation, test and the ablation all go through it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from e3hier.data.layout import OutputLayout, reachable_lmax
from e3hier.network.devices import module_device, to_device
from e3hier.network.model import DensityNetwork
from e3hier.training.network_setup import build_model
from e3hier.training.samples import TORCH_DTYPES, Sample, pack

L_COLUMNS = range(5)  # per-l columns of the tables: l = 0..4


class Predictor:
    """Network + per-shell scales: turns a packed graph into block targets per function row."""

    def __init__(self, model: DensityNetwork, scales: torch.Tensor, layout: OutputLayout):
        self.model, self.scales, self.layout = model, scales, layout
        self.element_index = {el: i for i, el in enumerate(layout.elements)}
        self._row_scales: dict[str, torch.Tensor] = {}

    def row_scales(self, sample: Sample) -> torch.Tensor:
        """The scale of each of the sample's block rows (cached per structure)."""
        if sample.structure not in self._row_scales:
            el = torch.as_tensor([self.element_index[sample.symbols[a]] for a in sample.atom], dtype=torch.long)
            self._row_scales[sample.structure] = self.scales[
                el.to(self.scales.device), torch.as_tensor(sample.slot, device=self.scales.device)
            ]
        return self._row_scales[sample.structure]

    def scaled_outputs(self, graph: dict) -> torch.Tensor:
        """The network's output at every block row of the packed graph (scaled units)."""
        return self.model(graph)[graph["atom"], graph["slot"]]

    @torch.no_grad()
    def predict_targets(self, sample: Sample) -> np.ndarray:
        """Predicted targets (coefficient − reference) for the sample's block rows."""
        graph = to_device(pack([sample]), module_device(self.model))
        out = self.scaled_outputs(graph) * self.row_scales(sample).to(self.scales.dtype)
        return out.double().cpu().numpy()


def full_prediction(sample: Sample, predicted_block_targets: np.ndarray) -> np.ndarray:
    """Predicted coefficients of every function: reference + predicted target in the block, reference elsewhere."""
    coefficients = sample.reference.copy()
    coefficients[sample.rows] += predicted_block_targets
    return coefficients


#: Prefix of the columns ``epsilon_block_upto_l{L}``: ε of the predicted block restricted to its orders l ≤ L.
BLOCK_UPTO = "epsilon_block_upto_l"


def upto_orders(layout: OutputLayout) -> range:
    """The L of the ``epsilon_block_upto_l{L}`` columns: 0..the layout's highest output order."""
    return range(max(layout.counts) + 1)


def upto_columns(table) -> list[str]:
    """The ``epsilon_block_upto_l{L}`` columns of a table (or the keys of a row), in order of L."""
    return sorted((c for c in table if str(c).startswith(BLOCK_UPTO)), key=lambda c: int(c[len(BLOCK_UPTO) :]))


def structure_errors(sample: Sample, predicted: np.ndarray, layout: OutputLayout) -> dict | list[dict]:
    """ε (%) total, of the block and per l; of the block restricted to its orders l ≤ L (``epsilon_block_upto_l{L}``,
    L = 0..the highest output order); baseline (free-atom) ε; electron-count error (e).

    ``predicted`` is one model's coefficients (functions,), or K models' (functions, K): then one row
    per model, from one pass over the structure's ε grid.
    """
    block_orders = [l for l in np.unique(sample.l) if layout.in_block(l)]
    columns = predicted[:, None] if predicted.ndim == 1 else predicted  # one column per model
    caps = upto_orders(layout)
    errors = sample.grid.epsilon_by_l(columns, sample.coefficient[:, None], block_orders, caps)
    if sample.baseline is None:  # the free-atom reference alone: fixed per structure, computed once
        sample.baseline = sample.grid.epsilon_by_l(sample.reference, sample.coefficient, block_orders)
    electrons = sample.integral @ columns - sample.n_electrons
    rows = []
    for k in range(columns.shape[1]):
        row = {
            "epsilon": errors["total"][k],
            "epsilon_block": errors["block"][k],
            "epsilon_baseline": sample.baseline["total"],
            "epsilon_baseline_block": sample.baseline["block"],
            "electron_error": electrons[k],
        }
        for l in L_COLUMNS:
            row[f"epsilon_l{l}"] = errors[l][k] if l in errors else float("nan")
            row[f"epsilon_baseline_l{l}"] = sample.baseline.get(l, float("nan"))
        for cap in caps:
            row[f"{BLOCK_UPTO}{cap}"] = errors[("block_upto", cap)][k]
        rows.append({key: float(value) for key, value in row.items()})
    return rows[0] if predicted.ndim == 1 else rows


def evaluate(predictor: Predictor, samples: list[Sample]) -> pd.DataFrame:
    """One row per structure with ``structure_errors``."""
    predictor.model.eval()
    rows = []
    for s in samples:
        predicted = full_prediction(s, predictor.predict_targets(s))
        rows.append(
            {"structure": s.structure, "n_atoms": s.n_atoms, **structure_errors(s, predicted, predictor.layout)}
        )
    return pd.DataFrame(rows)


def validation_row(errors: pd.DataFrame) -> dict:
    """The validation columns of an epoch's metrics from ``evaluate``'s table of the validation split."""
    # NaN on one structure makes the epoch's ε NaN (pandas would skip it): a model that predicts NaN is broken
    row = {
        "val_epsilon": float(errors["epsilon"].mean(skipna=False)),
        "val_epsilon_block": float(errors["epsilon_block"].mean(skipna=False)),
    }
    for l in L_COLUMNS:
        row[f"val_epsilon_l{l}"] = float(errors[f"epsilon_l{l}"].mean())
    for column in upto_columns(errors):
        row[f"val_{column}"] = float(errors[column].mean())
    # the free-atom (zero-prediction) baseline, against which learning per l is measured
    row["val_baseline"] = float(errors["epsilon_baseline"].mean())
    for l in L_COLUMNS:
        row[f"val_baseline_l{l}"] = float(errors[f"epsilon_baseline_l{l}"].mean())
    return row


#: Validation structures per forward pass of the per-epoch validation (bounds its activations' memory).
VALIDATION_CHUNK = 64


@torch.no_grad()
def validation_targets(predictor: Predictor, samples: list[Sample]) -> list[torch.Tensor]:
    """Predicted block targets of each sample (block rows, 1), on the model's device: ``VALIDATION_CHUNK``
    structures per forward pass, no host sync."""
    predictor.model.eval()
    device, predicted = module_device(predictor.model), []
    for start in range(0, len(samples), VALIDATION_CHUNK):
        chunk = samples[start : start + VALIDATION_CHUNK]
        out = predictor.scaled_outputs(to_device(pack(chunk), device))
        scales = torch.cat([predictor.row_scales(s) for s in chunk]).to(out.dtype)
        predicted += [part[:, None] for part in (out * scales).split([len(s.rows) for s in chunk])]
    return predicted


def l2_validation_rows(samples: list[Sample], predicted: list[torch.Tensor], layout: OutputLayout) -> list[dict]:
    """The validation columns of an epoch in coefficient space (``e3hier.data.coefficient_metric``), one row per model.

    ``predicted``: per sample, its predicted block targets (block rows, K models), on the device of the
    samples' ``overlap``. Each row: ``val_l2`` (%, 100·‖Δρ‖/‖ρ_ref‖), ``val_l2_block``, ``val_l2_l{l}``,
    ``val_l2_block_upto_l{L}`` and the free-atom baseline's ``val_l2_baseline``, ``val_l2_baseline_l{l}``, each
    the mean over the structures; the values reach the host once, at the end.
    """
    caps = upto_orders(layout)
    keys = ["total", "block", *L_COLUMNS, *(("block_upto", cap) for cap in caps)]
    names = ["val_l2", "val_l2_block", *(f"val_l2_l{l}" for l in L_COLUMNS), *(f"val_l2_block_upto_l{c}" for c in caps)]
    per_structure, baselines = [], []
    for sample, targets in zip(samples, predicted):
        overlap = sample.overlap
        if overlap is None:
            raise ValueError(
                f"validation structure {sample.structure}: no fit overlap; validation is in coefficient space: load "
                "the split with load_samples(..., with_overlap=True)"
            )
        block_orders = [o for o in overlap.orders if layout.in_block(o)]
        delta = overlap.minus_target[:, None].repeat(1, targets.shape[1])
        delta[overlap.rows] += targets.to(delta.dtype)  # the block's rows, on the device already
        errors = overlap.l2_errors(delta, block_orders, caps)
        nan = torch.full_like(errors["total"], float("nan"))
        per_structure.append(torch.stack([errors.get(key, nan) for key in keys]))
        if overlap.baseline is None:  # the free-atom reference alone: fixed per structure, computed once
            base = overlap.l2_errors(overlap.minus_target[:, None], block_orders)
            overlap.baseline = {key: float(base[key][0]) if key in base else math.nan for key in ("total", *L_COLUMNS)}
        baselines.append([overlap.baseline[key] for key in ("total", *L_COLUMNS)])
    values = torch.stack(per_structure).cpu().numpy()  # (structures, columns, K): one host sync
    base = pd.DataFrame(baselines, columns=["val_l2_baseline", *(f"val_l2_baseline_l{l}" for l in L_COLUMNS)]).mean()
    rows = []
    for k in range(values.shape[2]):
        frame = pd.DataFrame(values[:, :, k], columns=names)
        # NaN on one structure makes the total and the block NaN (pandas would skip it): a model that predicts
        # NaN is broken; a per-order column skips the structures without that order
        row = {name: float(frame[name].mean(skipna=name not in names[:2])) for name in names}
        rows.append({**row, **{name: float(value) for name, value in base.items()}})
    return rows


def with_reachable(models: pd.DataFrame, lmax_hidden_grid, lmax_edge: int) -> pd.DataFrame:
    """The models table with ``reachable_lmax`` and the test and validation ε of the output orders every model
    of the grid can reach, ``epsilon_test_reachable`` and ``epsilon_val_reachable`` (the summaries'
    ``epsilon_{test,val}_block_upto_l{reachable_lmax}``).

    ``reachable_lmax`` is ``e3hier.data.layout.reachable_lmax`` of the grid's hidden l_max (``lmax_hidden_grid``:
    ``train.lmax_hidden``, which the controls share) and ``model.lmax_edge``, capped at each model's
    ``lmax_output``.
    """
    missing = {"lmax_output"} - set(models)
    if missing and len(models):
        raise ValueError(f"models table: no column {sorted(missing)} (summaries written before it: retrain)")
    out = models.copy()
    caps = [reachable_lmax(lmax_hidden_grid, lmax_edge, int(lmax)) for lmax in out["lmax_output"]]
    out["reachable_lmax"] = pd.Series(caps, index=out.index, dtype="int64")
    for split in ("test", "val"):
        values = []
        for index, cap in zip(out.index, caps):
            column = f"epsilon_{split}_block_upto_l{cap}"
            if column not in out:
                raise ValueError(f"models table: no column {column!r} for reachable_lmax {cap}")
            values.append(float(out.at[index, column]))
        out[f"epsilon_{split}_reachable"] = values
    return out


def load_predictor(path, device: str = "cpu") -> Predictor:
    """Rebuild the network of a ``model.pt`` (best weights) as a ``Predictor``."""
    return predictor_from_payload(torch.load(path, map_location=device, weights_only=True), device)


def predictor_from_payload(payload: dict, device: str = "cpu") -> Predictor:
    """The ``Predictor`` of a loaded ``model.pt``: its network rebuilt from its config, with its best weights."""
    cfg = payload["config"]
    model = build_model(cfg)
    model.load_state_dict(payload["state_dict"])
    dtype = TORCH_DTYPES[cfg["dtype"]]
    model.to(device, dtype).eval()
    layout = OutputLayout(tuple(cfg["elements"]), {int(l): n for l, n in cfg["layout_counts"].items()}, cfg["output"])
    return Predictor(model, payload["scales"].to(device, dtype), layout)

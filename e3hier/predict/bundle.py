"""A trained model's bundle (``model.pt``, ``e3hier.training.bundle``) loaded as something that predicts, with
every check that keeps a stale or broken file from predicting quietly wrong densities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from e3hier.data.layout import OutputLayout
from e3hier.network.model import DensityNetwork
from e3hier.training.bundle import BUNDLE_FORMAT, FREE_ATOM_COLUMNS
from e3hier.training.evaluation import Predictor, predictor_from_payload


@dataclass
class Bundle:
    """A model ready to predict: its ``Predictor``, the fit basis of its outputs, its free atoms and provenance."""

    path: Path
    predictor: Predictor
    model_cfg: dict  # the ``model`` block the network was built with (its graph: radius, radial basis, edges)
    fit_auxbasis: str
    decontract: bool
    free_atom: pd.DataFrame  # FREE_ATOM_COLUMNS
    grid_point: dict
    commit: str
    charge: int | None = None  # of the training structures (None: a bundle written before it was stored)

    @property
    def elements(self) -> list[str]:
        return list(self.predictor.layout.elements)

    @property
    def model(self) -> DensityNetwork:
        return self.predictor.model


def model_path(model: str, results: Path = Path("results")) -> Path:
    """``model`` as a file: a path to a ``model.pt``, or a grid-point name of a finished run (its folder under
    ``results/models/``)."""
    path = Path(model)
    if path.is_file():
        return path
    candidate = Path(results) / "models" / model / "model.pt"
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(
        f"{model}: neither a model.pt nor a grid point with a trained model under {Path(results) / 'models'}"
    )


def load_bundle(path, device: str = "cpu") -> Bundle:
    """Load and check a bundle. Refused, naming the file: one that does not load (damaged or not a model), one of
    another bundle format (or none: trained before bundles), one whose output layout is not what its fit basis
    gives today (the rows would be misread), one whose weights do not fit its network."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise ValueError(f"{path}: not a readable model bundle ({type(error).__name__}: {error})") from error
    fields = payload.get("bundle") if isinstance(payload, dict) else None
    if not fields:
        raise ValueError(f"{path}: a model without a bundle (trained before e3hier wrote bundles): retrain it")
    if fields.get("format") != BUNDLE_FORMAT:
        raise ValueError(
            f"{path}: bundle format {fields.get('format')!r}, this code reads format {BUNDLE_FORMAT} (written by "
            f"another version of e3hier, commit {fields.get('commit')}): retrain it, or use that version"
        )
    cfg = payload["config"]
    stored = {int(l): int(n) for l, n in cfg["layout_counts"].items()}
    layout = OutputLayout.from_basis(fields["fit_auxbasis"], cfg["elements"], fields["decontract"], cfg["output"])
    if dict(layout.counts) != stored:
        raise ValueError(
            f"{path}: its output layout {stored} (shells per l) is not the layout {dict(layout.counts)} of "
            f"{fields['fit_auxbasis']!r} today (decontract {fields['decontract']}): its outputs would be read "
            "against the wrong functions"
        )
    try:
        predictor = predictor_from_payload(payload, device)
    except RuntimeError as error:
        raise ValueError(f"{path}: its weights do not fit the network its config builds ({error})") from error
    return Bundle(
        path=path,
        predictor=predictor,
        model_cfg=dict(cfg["model"]),
        fit_auxbasis=fields["fit_auxbasis"],
        decontract=bool(fields["decontract"]),
        free_atom=pd.DataFrame({c: fields["free_atom"][c] for c in FREE_ATOM_COLUMNS}),
        grid_point=dict(fields.get("grid_point", {})),
        commit=str(fields.get("commit")),
        charge=fields.get("charge"),
    )

"""The predictions of a set of XYZ structures by one bundle: coefficient tables, cube files and ``predictions.tsv``
(``python -m e3hier.predict`` and the ``predict`` rule; the command's docstring says what each file holds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from e3hier.data.metric import density_grid
from e3hier.dft.job import DFT_TABLE_COLUMNS, reference_density
from e3hier.io import read_table, write_parquet, write_tsv
from e3hier.predict.bundle import Bundle
from e3hier.predict.cube import cube_grid, density_on, electrons_on, write_density_cube
from e3hier.predict.structures import fit_molecule, structure_rows
from e3hier.structures.charge_spin import charge_and_multiplicity
from e3hier.structures.xyz import MIN_DISTANCE_ANGSTROM, xyz_frames
from e3hier.training.evaluation import full_prediction
from e3hier.training.samples import make_sample

#: Cube spacing and margin (Å) by default: at 0.1 Å a water's cube integrates to N_e within ~3 % (the oxygen core
#: is sharper than the points: 0.05 Å gives ~0.1 %, at 8x the file size); 4 Å holds all but ~1e-3 e of it.
SPACING_ANGSTROM = 0.1
MARGIN_ANGSTROM = 4.0


def read_structures(files, bundle: Bundle, min_distance: float = MIN_DISTANCE_ANGSTROM) -> list:
    """``(id, file, frame, atoms)`` of every frame of ``files``, with the XYZ checks; an element the model has
    no input for is refused, naming it and the file."""
    (frames,) = xyz_frames({"predict": list(map(str, files))}, min_distance=min_distance).values()
    for structure_id, path, _, atoms in frames:
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(bundle.elements))
        if unknown:
            raise ValueError(
                f"{path}: element(s) {unknown} of structure {structure_id!r} were not in the model's training data "
                f"(it knows {bundle.elements}): {bundle.path}"
            )
        charge, _ = charge_and_multiplicity(atoms, str(path))
        if bundle.charge is not None and charge != bundle.charge:
            raise ValueError(
                f"{path}: structure {structure_id!r} has charge {charge:+d}, the model was trained on charge "
                f"{bundle.charge:+d} and has no charge input: {bundle.path}"
            )
    return frames


def predict_structure(bundle: Bundle, structure_id: str, atoms) -> tuple[pd.DataFrame, object]:
    """The predicted coefficients of one structure (the DFT table's rows and columns) and its fit molecule."""
    auxmol = fit_molecule(atoms.get_chemical_symbols(), atoms.get_positions(), bundle.fit_auxbasis, bundle.decontract)
    rows = structure_rows(structure_id, atoms, auxmol, bundle.free_atom)
    sample = make_sample(structure_id, rows, bundle.predictor.layout, bundle.model_cfg, bundle.predictor.scales.dtype)
    rows["coefficient"] = full_prediction(sample, bundle.predictor.predict_targets(sample))
    return rows, auxmol


def by_ao(rows: pd.DataFrame, values) -> np.ndarray:
    """``values`` (stored row order) in ``eval_gto`` column order."""
    out = np.zeros(len(rows))
    out[rows["ao_index"].to_numpy()] = np.asarray(values)
    return out


def dft_reference(atoms, rows: pd.DataFrame, dft_cfg: dict, table: pd.DataFrame | None = None) -> np.ndarray:
    """The DFT coefficients of the structure in ``rows``' order: ``table``, the DFT rule's table of it (the
    workflow's ``predict_dft`` jobs), or else its fit computed here (``reference_density``), at the charge and
    multiplicity ``structure_rows`` read from its file."""
    if table is None:
        charge, multiplicity = int(rows["charge"].iloc[0]), int(rows["multiplicity"].iloc[0])
        fit = reference_density(atoms.get_chemical_symbols(), atoms.get_positions(), dft_cfg, charge, multiplicity)
        table = fit.table.to_pandas()
    if table.empty:
        raise ValueError("the DFT of this structure was skipped (dft.on_failure: skip): no reference")
    keys = ["atom", "l", "shell", "m"]
    merged = rows[keys].merge(table[keys + ["coefficient"]], on=keys, how="left", validate="one_to_one")
    if merged["coefficient"].isna().any():
        raise ValueError("the DFT's fit functions are not the model's: is dft.fit_auxbasis the bundle's?")
    return merged["coefficient"].to_numpy()


def predict(
    bundle: Bundle,
    files,
    out: Path,
    spacing: float,
    margin: float,
    config: dict | None = None,
    min_distance: float = MIN_DISTANCE_ANGSTROM,
    references: dict | None = None,
) -> pd.DataFrame:
    """Predict every structure of ``files`` into ``out`` (module docstring); ``config`` (its ``dft`` and ``metric``
    blocks) compares with the DFT reference too: each structure's DFT table in ``references`` (id → Parquet file of
    the DFT rule), else its DFT computed here; ``min_distance``: ``structures.min_distance_angstrom``. Returns the
    ``predictions.tsv`` table."""
    frames = read_structures(files, bundle, min_distance)
    if config is not None and config["dft"]["fit_auxbasis"] != bundle.fit_auxbasis:
        raise ValueError(
            f"dft.fit_auxbasis {config['dft']['fit_auxbasis']!r} of the config is not the model's "
            f"{bundle.fit_auxbasis!r}: the reference would be another basis"
        )
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for structure_id, path, _, atoms in tqdm(frames, desc="predict", unit="structure"):
        rows, auxmol = predict_structure(bundle, structure_id, atoms)
        write_parquet(
            out / f"{structure_id}.parquet", rows[list(DFT_TABLE_COLUMNS)], metadata={"model": str(bundle.path)}
        )
        box = cube_grid(auxmol, spacing, margin)
        comment = f"e3hier prediction of {structure_id} by {bundle.path}"
        predicted = by_ao(rows, rows["coefficient"])
        row = {
            "structure": structure_id,
            "file": str(path),
            "n_atoms": len(atoms),
            "n_electrons": int(rows["n_electrons"].iloc[0]),
            "electrons_coefficients": float(rows["integral"] @ rows["coefficient"]),
            "electrons_cube": write_density_cube(out / f"{structure_id}.cube", auxmol, predicted, box, comment),
            # the cube's own integration error: the free atoms' density integrates to Σ Z exactly
            "cube_error_free_atoms": electrons_on(box, density_on(box, auxmol, by_ao(rows, rows["reference"])))
            - float(rows["integral"] @ rows["reference"]),
        }
        if config is not None:
            table = read_table(references[structure_id]) if references else None
            reference = dft_reference(atoms, rows, config["dft"], table)
            reference_by_ao = by_ao(rows, reference)
            row["electrons_cube_dft"] = write_density_cube(
                out / f"{structure_id}.dft.cube", auxmol, reference_by_ao, box, f"DFT density of {structure_id}"
            )
            write_density_cube(
                out / f"{structure_id}.difference.cube",
                auxmol,
                predicted - reference_by_ao,
                box,
                f"prediction - DFT of {structure_id}",
            )
            grid = density_grid(
                atoms.get_chemical_symbols(),
                atoms.get_positions(),
                rows,
                config["dft"],
                config["metric"]["grid_level"],
                n_electrons=row["n_electrons"],
            )
            row["epsilon"] = float(grid.epsilon_by_l(rows["coefficient"].to_numpy(), reference)["total"])
        summary.append(row)
    table = pd.DataFrame(summary)
    write_tsv(out / "predictions.tsv", table)
    return table

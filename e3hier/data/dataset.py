"""Dataset assembly: one long Parquet table per split, one row per fit function.

Schema of ``results/dataset/{split}.parquet`` (one row per structure × fit function):

=================  =======  ===========================================================
column             type     meaning
=================  =======  ===========================================================
structure          str      structure id
atom               int      0-based atom index in the structure
element            str      element symbol
x, y, z            float    atom position, Å (Cartesian, as in the XYZ file)
l, shell, m        int      order, shell index within (atom, l), m = -l..l
exponent           float    Gaussian exponent of the shell, bohr⁻²
ao_index           int      column of the function in ``auxmol.eval_gto``
integral           float    ∫χ dr of the function (non-zero for s functions only)
coefficient        float    fitted density coefficient (PySCF-normalised function)
reference          float    free-atom (spherical) coefficient, 0 for l > 0
target             float    coefficient − reference: what the model learns
population_factor  float    2√2 / N(l, exponent), N psi4's primitive normalisation: target ×
                            it is the study's population (``train.target_scaling: population``);
                            NaN for a contracted shell
n_electrons        int      electrons of the structure: Σ Z − charge
charge             int      net charge of the structure, e (0 unless its XYZ says so)
multiplicity       int      2S + 1 (1: RKS; > 1: UKS, the fit is of the total density)
=================  =======  ===========================================================

Group by ``l`` (or by ``structure, l``) to work per order. The Parquet metadata
key ``e3hier`` holds the DFT settings, package versions and skipped structures.
"""

from __future__ import annotations

import pandas as pd

from e3hier.data.reference import attach_reference
from e3hier.io import read_json
from e3hier.structures.charge_spin import DEFAULT_CHARGE, DEFAULT_MULTIPLICITY, charge_and_multiplicity, electron_count

DATASET_COLUMNS = [
    "structure",
    "atom",
    "element",
    "x",
    "y",
    "z",
    "l",
    "shell",
    "m",
    "exponent",
    "ao_index",
    "integral",
    "coefficient",
    "reference",
    "target",
    "population_factor",
    "n_electrons",
    "charge",
    "multiplicity",
]


def structure_rows(
    structure_id: str,
    atoms,
    dft_table: pd.DataFrame,
    references: pd.DataFrame,
    n_electrons: int,
    charge: int = DEFAULT_CHARGE,
    multiplicity: int = DEFAULT_MULTIPLICITY,
):
    """The dataset rows of one structure: its fit table, positions and free-atom reference.

    ``n_electrons``, ``charge`` and ``multiplicity`` are the DFT summary's; ValueError naming the
    structure when they disagree with its structure file (a DFT result of an earlier version of it).
    """
    symbols = atoms.get_chemical_symbols()
    if (
        len(symbols) != int(dft_table["atom"].max()) + 1
        or list(dft_table.groupby("atom")["element"].first()) != symbols
    ):
        raise ValueError(f"structure {structure_id}: DFT table atoms do not match the structure file")
    file_charge, file_multiplicity = charge_and_multiplicity(atoms, f"structure {structure_id}")
    file_electrons = electron_count(symbols, file_charge)
    if (int(charge), int(multiplicity), int(n_electrons)) != (file_charge, file_multiplicity, file_electrons):
        raise ValueError(
            f"structure {structure_id}: the DFT result has charge {charge}, multiplicity {multiplicity} and "
            f"{n_electrons} electrons, the structure file charge {file_charge}, multiplicity {file_multiplicity} "
            f"and {file_electrons} electrons: delete results/dft/{structure_id}.* and rerun"
        )
    if "population_factor" not in dft_table.columns:
        raise ValueError(
            f"structure {structure_id}: its DFT table has no population_factor column (written by an earlier "
            f"version): delete results/dft/{structure_id}.* and rerun"
        )
    rows = attach_reference(dft_table, references)
    positions = atoms.get_positions()
    for axis, name in enumerate("xyz"):
        rows[name] = positions[rows["atom"].to_numpy(), axis]
    rows["structure"] = structure_id
    rows["n_electrons"] = int(n_electrons)
    rows["charge"] = int(charge)
    rows["multiplicity"] = int(multiplicity)
    return rows[DATASET_COLUMNS]


def assemble_split(
    entries, references: pd.DataFrame, required: bool = False, split: str = "split"
) -> tuple[pd.DataFrame, list[str]]:
    """Stack ``entries`` = [(structure_id, atoms, dft_parquet, dft_json)] into one table.

    Structures whose DFT was skipped (``skipped: true`` in the JSON) are left out
    and returned as the second value. A ``required`` split (training, validation, the first test split) with
    every structure skipped is an error naming ``split`` and the skipped structures: no other split stands in.
    """
    frames, skipped = [], []
    for structure_id, atoms, table_path, summary_path in entries:
        summary = read_json(summary_path)
        if summary.get("skipped"):
            skipped.append(structure_id)
            continue
        # summaries of earlier versions have no charge / multiplicity: those ran neutral singlets
        frames.append(
            structure_rows(
                structure_id,
                atoms,
                pd.read_parquet(table_path),
                references,
                summary["n_electrons"],
                summary.get("charge", DEFAULT_CHARGE),
                summary.get("multiplicity", DEFAULT_MULTIPLICITY),
            )
        )
    if not frames:
        if required:
            raise ValueError(
                f"split {split!r}: DFT skipped every structure ({', '.join(skipped) or 'none listed'}; "
                "dft.on_failure: skip), and the models need it (the training, validation or first test split)"
            )
        return pd.DataFrame({c: pd.Series(dtype=object) for c in DATASET_COLUMNS}), skipped
    return pd.concat(frames, ignore_index=True), skipped

"""XYZ input: the frames of the files a config's globs match, with errors that name the file and line.

A single-frame file's structure id is its stem, frame k of a multi-frame file is ``f"{stem}_{k}"``.
Positions in Å. Plain and extended XYZ are read by ASE; when ASE fails, the first line that breaks
the layout is located here, since ASE's errors rarely name one. What ASE reads but a job would refuse is
refused here, while the workflow is read, naming the file and the line: a coordinate that is not finite,
two atoms closer than ``structures.min_distance_angstrom``, an id that is not a valid job name, ids
that differ only in case (one file on a case-insensitive file system), and the same structure (elements,
charge, multiplicity and positions to 1e-6 Å) in two splits, whatever its file or id.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list

from e3hier.structures.charge_spin import charge_and_multiplicity
from e3hier.structures.checks import check_not_periodic

#: A structure id: the name of its files and the value of its jobs' ``structure`` wildcard (rules/common.smk).
STRUCTURE_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
#: ``structures.min_distance_angstrom``'s default (the schema's).
MIN_DISTANCE_ANGSTROM = 0.5


def _expand_globs(split: str, patterns, base_dir) -> list[Path]:
    """Files matched by ``patterns`` (relative to base_dir), sorted per pattern, without repeats."""
    if not patterns:
        return []
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.join(str(base_dir), str(pattern)), recursive=True))
        if not matches:
            raise ValueError(f"split {split!r}: pattern {str(pattern)!r} matches no file under {str(base_dir)!r}")
        files.extend(Path(m) for m in matches if Path(m) not in files)
    return files


def _find_bad_xyz_line(path: Path) -> str | None:
    """Describe the first line that breaks the (extended) XYZ layout, or None if none is found.

    ASE's errors rarely name a line, so walk the frames ourselves: a count line,
    a comment line, then ``count`` lines of symbol + 3 floats.
    """
    lines = path.read_text(errors="replace").splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1  # ASE tolerates blank lines between frames
            continue
        try:
            natoms = int(lines[i].split()[0])
        except ValueError:
            return f"line {i + 1}: expected an atom count, got {lines[i]!r}"
        if natoms < 0 or len(lines[i].split()) != 1:
            return f"line {i + 1}: expected an atom count, got {lines[i]!r}"
        if i + 1 + natoms >= len(lines):
            return f"line {i + 1}: frame announces {natoms} atoms but the file ends after {len(lines) - i - 2}"
        for j in range(i + 2, i + 2 + natoms):
            fields = lines[j].split()
            try:
                ok = (
                    len(fields) >= 4
                    and fields[0] in chemical_symbols
                    and all(np.isfinite(float(x)) for x in fields[1:4])
                )
            except ValueError:
                ok = False
            if not ok:
                return f"line {j + 1}: expected 'symbol x y z', got {lines[j]!r}"
        i += 2 + natoms
    return None


def _atom_lines(path: Path) -> list[int]:
    """1-based line of each frame's first atom (the count line + 2), in the layout ``_find_bad_xyz_line``
    walks: blank lines between frames are skipped."""
    lines, starts, i = path.read_text(errors="replace").splitlines(), [], 0
    while i < len(lines):
        fields = lines[i].split()
        if not fields:
            i += 1
            continue
        starts.append(i + 3)
        i += 2 + int(fields[0])
    return starts


def _where_atom(path: Path, frame: int, atom: int) -> str:
    """The file and line of atom ``atom`` (0-based) of frame ``frame``; the atom's number if lines are unknown
    (a format other than XYZ)."""
    if path.suffix.lower() in (".xyz", ".extxyz"):
        starts = _atom_lines(path)
        if frame < len(starts):
            return f"{path}, line {starts[frame] + atom}"
    return f"{path} (frame {frame}, atom {atom + 1})"


def check_xyz_frame(path: Path, frame: int, atoms: Atoms, min_distance: float = MIN_DISTANCE_ANGSTROM) -> None:
    """Refuse a frame the structure and DFT jobs would refuse, naming the file and the line: a coordinate
    that is not finite (``nan``, ``inf``), or two atoms closer than ``min_distance`` (Å).

    Parameters
    ----------
    path : Path
        The file (for the message and the line numbers).
    frame : int
        The frame's index in the file.
    atoms : ase.Atoms
        The frame, as ASE read it.
    min_distance : float, optional
        ``structures.min_distance_angstrom``.
    """
    bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
    if len(bad):
        raise ValueError(
            f"{_where_atom(path, frame, int(bad[0]))}: coordinates {atoms.positions[bad[0]].tolist()} are not finite"
            f" ({len(bad)} atom(s) of the frame)"
        )
    i, j, d = neighbor_list("ijd", atoms, min_distance)
    close = i < j
    if close.any():
        i, j, d = i[close], j[close], d[close]
        k = int(np.argmin(d))
        first, second = _where_atom(path, frame, int(i[k])), _where_atom(path, frame, int(j[k])).rsplit(", ", 1)[-1]
        raise ValueError(
            f"{first} and {second}: atoms {atoms[i[k]].symbol} and {atoms[j[k]].symbol} are {d[k]:.3f} Å apart, "
            f"closer than structures.min_distance_angstrom {min_distance} ({len(d)} pair(s) of the frame)"
        )


def check_structure_id(structure_id: str, where: str) -> None:
    """Refuse an id that cannot name a job's files (the ``structure`` wildcard), naming where it comes from."""
    if not re.fullmatch(STRUCTURE_ID, structure_id):
        raise ValueError(
            f"{where}: structure id {structure_id!r} (from the file name) is not a valid job name: it must start "
            "with a letter or digit and hold only letters, digits, '_', '.' and '-'; rename the file"
        )


def _read_frames(path: Path) -> list[Atoms]:
    """Every frame of ``path`` (format from the extension), or ValueError naming the file."""
    try:
        frames = ase.io.read(path, index=":")
    except Exception as err:  # ASE raises many types here; the user needs the file and line
        where = _find_bad_xyz_line(path) if path.suffix.lower() in (".xyz", ".extxyz") else None
        raise ValueError(f"{path}: cannot read structures ({where or 'see ASE error'}); ASE: {err!r}") from err
    if not frames:
        raise ValueError(f"{path}: contains no structures")
    return frames


def _read_frame(path: Path, frame: int) -> Atoms:
    """Frame ``frame`` (0-based) of ``path``, or ValueError naming the file."""
    try:
        return ase.io.read(path, index=frame)
    except (IndexError, StopIteration) as err:  # ASE's extxyz reader stops, others index
        raise ValueError(f"{path}: has no frame {frame}") from err
    except Exception as err:  # as in _read_frames: name the file and, for XYZ, the line
        where = _find_bad_xyz_line(path) if path.suffix.lower() in (".xyz", ".extxyz") else None
        raise ValueError(f"{path}: cannot read structures ({where or 'see ASE error'}); ASE: {err!r}") from err


def xyz_frames(
    globs_by_split: dict, base_dir=".", min_distance: float = MIN_DISTANCE_ANGSTROM
) -> dict[str, list[tuple[str, Path, int, Atoms]]]:
    """split → [(id, file, frame index, atoms)] of XYZ files (plain or extended) matched by glob patterns.

    Patterns are relative to ``base_dir`` and each is expanded in sorted order; a
    split with no patterns (None, []) is empty. A single-frame file's id is its
    stem, frame k of a multi-frame file is ``f"{stem}_{k}"``. Positions in Å.
    Periodic frames, and frames whose ``charge`` / ``multiplicity`` do not fit their
    electron count, are refused (ValueError naming the file and, in a multi-frame
    file, the frame); so are the frames and ids of ``check_xyz_frame`` and
    ``check_structure_id``, and ids that repeat ignoring case.

    Parameters
    ----------
    globs_by_split : dict
        split → glob pattern, or list of them (None or [] for an empty split).
    base_dir : path, optional
        The folder the patterns are relative to.
    min_distance : float, optional
        ``structures.min_distance_angstrom``: closest allowed pair of atoms (Å).
    """
    out: dict[str, list[tuple[str, Path, int, Atoms]]] = {}
    # id (lower case: A.xyz and a.xyz are one file on a case-insensitive file system) → where it came from
    source: dict[str, str] = {}
    # (charge and multiplicity, geometry_key) → (split, file, frame): a structure sits in one split only
    geometries: dict[tuple, tuple[str, Path, int]] = {}
    for split, patterns in globs_by_split.items():
        out[split] = []
        for path in _expand_globs(split, patterns, base_dir):
            frames = _read_frames(path)
            for k, atoms in enumerate(frames):
                where = str(path) if len(frames) == 1 else f"{path} (frame {k})"
                check_not_periodic(atoms, where)
                state = charge_and_multiplicity(atoms, where)
                check_xyz_frame(path, k, atoms, min_distance)
                sid = path.stem if len(frames) == 1 else f"{path.stem}_{k}"
                check_structure_id(sid, where)
                here = f"{path} (split {split!r})"
                if sid.lower() in source:
                    raise ValueError(
                        f"duplicate structure id {sid!r} (ids that differ only in case are one file on some file "
                        f"systems): from {source[sid.lower()]} and {here}"
                    )
                source[sid.lower()] = here
                first_split, first_path, first_frame = geometries.setdefault(
                    (state, geometry_key(atoms)), (split, path, k)
                )
                if first_split != split:
                    raise ValueError(
                        f"the same geometry (elements, positions to 1e-{GEOMETRY_DECIMALS} Å) is in split "
                        f"{first_split!r} ({_where_atom(first_path, first_frame, 0)}) and in split {split!r} "
                        f"({_where_atom(path, k, 0)}): a structure trained or validated on and tested on gives an "
                        "optimistic error"
                    )
                out[split].append((sid, path, k, atoms))
    return out


#: Positions are compared to 10⁻⁶ Å: a copy, a symlink or a repeated frame is the same structure.
GEOMETRY_DECIMALS = 6


def geometry_key(atoms: Atoms) -> tuple:
    """What makes two frames one structure: the elements and the positions rounded to ``GEOMETRY_DECIMALS`` (Å),
    whatever the file or the id."""
    positions = np.round(atoms.get_positions(), GEOMETRY_DECIMALS) + 0.0  # + 0.0: -0.0 and 0.0 are one position
    return tuple(atoms.get_chemical_symbols()), positions.tobytes()


def xyz_plans(globs_by_split: dict, base_dir=".", min_distance: float = MIN_DISTANCE_ANGSTROM) -> dict[str, dict]:
    """id → plan of every frame of the XYZ files of a ``structures.xyz`` block, in split order.

    Parameters
    ----------
    globs_by_split : dict
        The block: split → glob pattern(s), relative to ``base_dir`` (see ``xyz_frames``).
    base_dir : path, optional
        The folder the patterns are relative to.
    min_distance : float, optional
        ``structures.min_distance_angstrom`` (``xyz_frames``).

    Returns
    -------
    dict
        ``{id: {"recipe", "symbols", "charge", "multiplicity"}}``. The files are read, to count their
        frames and learn their elements, charges and multiplicities (``xyz_frames`` refuses bad ones).
        A recipe is ``{"source": "xyz", "split", "path" (the file, as matched), "frame"}``.
    """
    plans = {}
    for split, entries in xyz_frames(globs_by_split, base_dir, min_distance).items():
        for structure_id, path, frame, atoms in entries:
            charge, multiplicity = charge_and_multiplicity(atoms, str(path))
            plans[structure_id] = {
                "recipe": {"source": "xyz", "split": split, "path": str(path), "frame": int(frame)},
                "symbols": atoms.get_chemical_symbols(),
                "charge": charge,
                "multiplicity": multiplicity,
            }
    return plans


def build_xyz_frame(recipe: dict, path=None) -> Atoms:
    """The frame an ``xyz_plans`` recipe describes, read from its file (Å).

    Parameters
    ----------
    recipe : dict
        A recipe of ``xyz_plans``.
    path : path, optional
        Replaces the recipe's ``path``: the workflow passes the job's input file, as Snakemake staged it.
    """
    return _read_frame(Path(path if path is not None else recipe["path"]), recipe["frame"])

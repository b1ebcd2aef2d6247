"""A picture of a cube file: the density on the plane through the atoms' centre, perpendicular to z
(``python -m e3hier.predict.render CUBE [CUBE ...] --out PNG``): read by ASE's cube reader, drawn by matplotlib, the
way a reader checks a cube before opening it in VMD or Avogadro."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on a cluster node

import ase.io.cube  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from e3hier.io import atomic_path  # noqa: E402

#: The densest colour of the log scale (e/bohr³) and how many decades it spans.
DENSITY_MAX, DECADES = 1.0, 4


def middle_slice(path) -> tuple[np.ndarray, np.ndarray, object]:
    """(the xy plane of the cube through the atoms' mean z, its extent in Å, the atoms)."""
    with open(path) as handle:
        cube = ase.io.cube.read_cube(handle)
    data, origin, step = cube["data"], cube["origin"], np.diag(cube["spacing"])  # Å
    k = int(round((cube["atoms"].positions[:, 2].mean() - origin[2]) / step[2]))
    ends = origin[:2] + step[:2] * (np.array(data.shape[:2]) - 1)
    return data[:, :, k].T, np.array([origin[0], ends[0], origin[1], ends[1]]), cube["atoms"]


def render(cubes, out, titles=None) -> None:
    """One panel per cube: log density (a ``*.difference.cube``: signed, symmetric), atoms marked. A fitted density
    can dip below 0 in places: those show as the scale's floor."""
    fig, axes = plt.subplots(1, len(cubes), figsize=(3.6 * len(cubes), 3.4), squeeze=False, layout="constrained")
    for ax, path, title in zip(axes[0], cubes, titles or [Path(c).name for c in cubes]):
        plane, extent, atoms = middle_slice(path)
        if Path(path).name.endswith(".difference.cube"):  # e3hier.predict's difference: a symmetric linear scale
            limit = float(np.abs(plane).max())
            image = ax.imshow(plane, origin="lower", extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            norm = matplotlib.colors.LogNorm(vmin=DENSITY_MAX * 10**-DECADES, vmax=DENSITY_MAX)
            image = ax.imshow(np.clip(plane, norm.vmin, None), origin="lower", extent=extent, cmap="viridis", norm=norm)
        ax.scatter(atoms.positions[:, 0], atoms.positions[:, 1], s=12, c="white", edgecolors="black")
        ax.set(title=title, xlabel="x (Å)", ylabel="y (Å)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="e/bohr³")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e3hier.predict.render", description=__doc__.split("\n")[0])
    parser.add_argument("cubes", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--titles", nargs="+", help="one per cube (default: the file names)")
    args = parser.parse_args(argv)
    render(args.cubes, args.out, args.titles)


if __name__ == "__main__":
    main()

"""Tests for e3hier.structures: water-cluster generation, checks, XYZ input, plans and files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.tip3p import rOH
from ase.constraints import FixBondLengths

from e3hier.structures.charge_spin import charge_and_multiplicity, electron_count
from e3hier.structures.checks import check_water_cluster, validate_structure
from e3hier.structures.files import read_structure, structure_rows, write_structure
from e3hier.structures.plans import build_structure, structure_plans
from e3hier.structures.rigid_waters import RigidWaters
from e3hier.structures.water_clusters import _grow_cluster, _water_template, generate_water_cluster, structure_seed
from e3hier.structures.xyz import xyz_frames
from e3hier.workflow import rules as W


@pytest.fixture(scope="module")
def trimer() -> Atoms:
    return generate_water_cluster(3, seed=1)


def _water(o) -> np.ndarray:
    """O, H, H of a TIP3P water with its O at ``o`` (Å), H pointing along +y."""
    return _water_template() + np.asarray(o, float)


def _cluster(*waters) -> Atoms:
    return Atoms("OH2" * len(waters), positions=np.concatenate(waters))


# --- generation ---------------------------------------------------------------


def test_same_seed_gives_identical_file_bytes(tmp_path, trimer):
    again = generate_water_cluster(3, seed=1)
    other = generate_water_cluster(3, seed=2)
    paths = [tmp_path / f"{name}.xyz" for name in ("a", "b", "c")]
    for path, atoms in zip(paths, (trimer, again, other)):
        write_structure(path, atoms)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    assert np.array_equal(trimer.positions, again.positions)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_generated_clusters_are_plausible(n):
    for seed in range(3):
        atoms = generate_water_cluster(n, seed)
        assert atoms.get_chemical_symbols() == ["O", "H", "H"] * n
        assert not atoms.pbc.any() and not atoms.cell.any()
        assert atoms.calc is None and not atoms.constraints
        check_water_cluster(atoms, f"w{n}_{seed}")
        validate_structure(f"w{n}_{seed}", atoms, min_distance=0.8, allowed_elements={"H", "O"})
        # Rigid TIP3P molecules stay rigid through minimisation and MD.
        oh = [atoms.get_distance(3 * m, 3 * m + h) for m in range(n) for h in (1, 2)]
        assert np.allclose(oh, rOH, atol=1e-6)
        assert np.allclose(atoms.get_center_of_mass(), 0.0, atol=1e-9)


def test_monomer_and_md_options():
    monomer = generate_water_cluster(1, seed=0)
    check_water_cluster(monomer)
    # No MD and 0 K are allowed; MD settings don't change the start geometry stream.
    check_water_cluster(generate_water_cluster(2, seed=0, md_steps=0))
    check_water_cluster(generate_water_cluster(2, seed=0, temperature_K=0.0, md_steps=10))


@pytest.mark.parametrize("bad", [dict(n_molecules=0, seed=0), dict(n_molecules=2, seed=-1)])
def test_generate_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        generate_water_cluster(**bad)


def test_rigid_waters_matches_ase_fix_bond_lengths():
    """The vectorised constraint gives ASE's FixBondLengths solution, only faster."""
    n = 4
    positions = _grow_cluster(n, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    target = positions + rng.normal(scale=0.02, size=positions.shape)
    momenta = rng.normal(scale=0.3, size=positions.shape)
    pairs = [(3 * m + a, 3 * m + b) for m in range(n) for a, b in ((0, 1), (0, 2), (1, 2))]
    results = []
    for constraint in (FixBondLengths(pairs), RigidWaters(n)):
        atoms = Atoms("OH2" * n, positions=positions)
        atoms.constraints = [constraint]
        atoms.set_positions(target)
        atoms.set_momenta(momenta)
        forces = momenta.copy()
        constraint.adjust_forces(atoms, forces)
        results.append((atoms.positions.copy(), atoms.get_momenta(), forces))
    for ours, ase_ in zip(results[1], results[0]):
        assert np.allclose(ours, ase_, atol=1e-10)


# --- check_water_cluster --------------------------------------------------------


def test_check_accepts_hand_built_dimer():
    check_water_cluster(_cluster(_water([0, 0, 0]), _water([2.9, 0, 0])))


def test_check_rejects_broken_molecule(trimer):
    atoms = trimer.copy()
    o, h = atoms.positions[3], atoms.positions[4]
    atoms.positions[4] = o + 1.3 * (h - o) / np.linalg.norm(h - o)
    with pytest.raises(ValueError, match=r"w3_broken: intact-molecule rule failed: O 3 has 1 H"):
        check_water_cluster(atoms, "w3_broken")


def test_check_rejects_bent_molecule():
    atoms = _cluster(_water([0, 0, 0]), _water([2.9, 0, 0]))
    atoms.positions[2] = [0.0, -0.96, 0.0]  # H–O–H ≈ 142°, bonds still 0.96 Å
    with pytest.raises(ValueError, match=r"bent: intact-molecule rule failed: H–O–H angle at O 0"):
        check_water_cluster(atoms, "bent")


def test_check_rejects_far_away_molecule(trimer):
    atoms = trimer.copy()
    atoms.positions[6:9] += [10.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"w3_far: nearest-O–O rule failed: O 6"):
        check_water_cluster(atoms, "w3_far")


def test_check_rejects_disconnected_cluster():
    # Two well-formed dimers 10 Å apart: every O has a near O, but the cluster is split.
    dimer = [_water([0, 0, 0]), _water([2.9, 0, 0])]
    far = [w + [0.0, 0.0, 10.0] for w in dimer]
    with pytest.raises(ValueError, match=r"split: connectivity rule failed: O \[6, 9\]"):
        check_water_cluster(_cluster(*dimer, *far), "split")


def test_check_rejects_too_close_oxygens():
    atoms = _cluster(_water([0, 0, 0]), _water([2.3, 0, 0]))
    with pytest.raises(ValueError, match=r"close: nearest-O–O rule failed: O 0 has its nearest O at 2.300"):
        check_water_cluster(atoms, "close")


def test_check_rejects_non_water():
    with pytest.raises(ValueError, match="elements"):
        check_water_cluster(Atoms("CH4", positions=np.eye(5, 3)), "methane")
    with pytest.raises(ValueError, match="1 O and 1 H"):
        check_water_cluster(Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]]), "oh")


# --- splits and ids -------------------------------------------------------------


def cluster_config(seed: int, splits: dict) -> dict:
    """A small, fast ``structures`` block of generated clusters."""
    return {
        "source": "water_clusters",
        "water_clusters": {"seed": seed, "temperature_K": 50.0, "md_steps": 5, "splits": splits},
    }


def ids_by_split(plans: dict) -> dict[str, list[str]]:
    """split → structure ids of ``structure_plans``' output, in its order (splits without structures absent)."""
    out: dict[str, list[str]] = {}
    for structure_id, plan in plans.items():
        out.setdefault(plan["recipe"]["split"], []).append(structure_id)
    return out


def test_split_ids_cycle_sizes():
    cfg = cluster_config(
        0, {"train": {"n_molecules": 3, "count": 2}, "test_large": {"n_molecules": [5, 6], "count": 3}}
    )
    assert ids_by_split(structure_plans(cfg)) == {
        "train": ["w3_train_0000", "w3_train_0001"],
        "test_large": ["w5_test_large_0000", "w6_test_large_0001", "w5_test_large_0002"],
    }


def test_split_seeds_independent_of_other_splits():
    small = {"train": {"n_molecules": 1, "count": 2}}
    big = {"val": {"n_molecules": 1, "count": 1}, "train": {"n_molecules": 1, "count": 3}}
    plans_a, plans_b = structure_plans(cluster_config(5, small)), structure_plans(cluster_config(5, big))
    assert ids_by_split(plans_a)["train"] == ["w1_train_0000", "w1_train_0001"]
    for id_a, id_b in zip(ids_by_split(plans_a)["train"], ids_by_split(plans_b)["train"]):
        atoms_a, atoms_b = build_structure(plans_a[id_a]["recipe"]), build_structure(plans_b[id_b]["recipe"])
        assert id_a == id_b and np.array_equal(atoms_a.positions, atoms_b.positions)
    # Different splits and indices get different seeds; the seed is stable across processes.
    seeds = {structure_seed(5, split, i) for split in ("train", "val", "test") for i in range(20)}
    assert len(seeds) == 60
    assert structure_seed(5, "train", 0) == structure_seed(5, "train", 0)
    assert structure_seed(5, "train", 0) != structure_seed(6, "train", 0)


def test_plans_match_the_built_structures():
    cfg = cluster_config(0, {"train": {"n_molecules": [1, 2], "count": 3}, "empty": {"n_molecules": 2, "count": 0}})
    plans = structure_plans(cfg)
    assert ids_by_split(plans) == {"train": ["w1_train_0000", "w2_train_0001", "w1_train_0002"]}  # "empty": none
    built = [build_structure(plan["recipe"]) for plan in plans.values()]
    assert [len(atoms) for atoms in built] == [3, 6, 3]
    assert [atoms.get_chemical_symbols() for atoms in built] == [plan["symbols"] for plan in plans.values()]


def test_bad_split_specs_and_source():
    with pytest.raises(ValueError, match="'train'"):
        structure_plans(cluster_config(0, {"train": {"n_molecules": [], "count": 1}}))
    with pytest.raises(ValueError, match="source"):
        structure_plans({"source": "pdb"})
    with pytest.raises(ValueError, match="source"):
        build_structure({"source": "pdb"})


def test_recipes_rebuild_the_structures(tmp_path):
    """One structure at a time from its recipe: the same atoms, and bytes, as generating it with its own seed."""
    cfg = cluster_config(3, {"train": {"n_molecules": [1, 2], "count": 3}, "test": {"n_molecules": 1, "count": 1}})
    recipes = {sid: plan["recipe"] for sid, plan in structure_plans(cfg).items()}
    assert list(recipes) == ["w1_train_0000", "w2_train_0001", "w1_train_0002", "w1_test_0000"]
    assert recipes["w2_train_0001"] == {
        "source": "water_clusters",
        "split": "train",
        "index": 1,
        "n_molecules": 2,
        "seed": structure_seed(3, "train", 1),
        "temperature_K": 50.0,
        "md_steps": 5,
    }
    for sid, recipe in recipes.items():
        one = build_structure(recipe)
        seed = structure_seed(3, recipe["split"], recipe["index"])
        direct = generate_water_cluster(recipe["n_molecules"], seed, temperature_K=50.0, md_steps=5)
        write_structure(tmp_path / "a.xyz", direct)
        write_structure(tmp_path / "b.xyz", one)
        assert (tmp_path / "a.xyz").read_bytes() == (tmp_path / "b.xyz").read_bytes(), sid
    assert "w2_train_0000" not in recipes  # index 0 has 1 molecule


def test_literal_pattern_matches_exactly_the_ids():
    import re

    ids = ["w3_train_0000", "w4_train_0001", "w3_train_0004", "a", "ab", "a.b", "x-1"]
    pattern = re.compile(f"(?:{W.literal_pattern(ids)})\\Z")
    assert all(pattern.match(i) for i in ids)
    for other in ["w3_train_0001", "w3_train_000", "w3_train_00000", "", "b", "abc", "a_b", "aXb", "x"]:
        assert not pattern.match(other), other
    assert not re.match(W.literal_pattern([]), "")
    with pytest.raises(ValueError, match="braces"):
        W.literal_pattern(["a{1}"])


# --- XYZ input ------------------------------------------------------------------

WATER_XYZ = "3\n{comment}\nO 0.0 0.0 0.0\nH 0.96 0.0 0.0\nH -0.24 0.93 0.0\n"


@pytest.fixture
def xyz_dir(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b_single.xyz").write_text(WATER_XYZ.format(comment="plain xyz"))
    (tmp_path / "data" / "a_multi.xyz").write_text(
        WATER_XYZ.format(comment='Properties=species:S:1:pos:R:3 energy=-1.5 pbc="F F F"')
        + WATER_XYZ.format(comment="frame 1")
        + WATER_XYZ.format(comment="frame 2")
    )
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "big.xyz").write_text(WATER_XYZ.format(comment="").replace("0.96", "0.97"))
    return tmp_path


def test_read_xyz_ids_and_empty_splits(xyz_dir):
    out = xyz_frames({"train": ["data/*.xyz"], "test": ["test/big.xyz"], "val": None, "extra": []}, base_dir=xyz_dir)
    assert [sid for sid, *_ in out["train"]] == ["a_multi_0", "a_multi_1", "a_multi_2", "b_single"]
    assert [(frame, path.name) for _, path, frame, _ in out["train"][2:]] == [(2, "a_multi.xyz"), (0, "b_single.xyz")]
    assert [sid for sid, *_ in out["test"]] == ["big"]
    assert out["val"] == [] and out["extra"] == []
    atoms = out["train"][3][3]
    assert atoms.get_chemical_symbols() == ["O", "H", "H"]
    assert np.allclose(atoms.positions[1], [0.96, 0.0, 0.0])
    cfg = {"source": "xyz", "xyz": {"train": ["data/*.xyz"], "val": None}}
    assert ids_by_split(structure_plans(cfg, base_dir=xyz_dir)) == {
        "train": ["a_multi_0", "a_multi_1", "a_multi_2", "b_single"],  # "val" holds none
    }


def test_xyz_recipes_read_one_frame(xyz_dir, tmp_path):
    cfg = {"source": "xyz", "xyz": {"train": ["data/*.xyz"], "test": ["test/big.xyz"]}}
    recipes = {sid: plan["recipe"] for sid, plan in structure_plans(cfg, base_dir=xyz_dir).items()}
    assert recipes["a_multi_1"] == {
        "source": "xyz",
        "split": "train",
        "path": str(xyz_dir / "data" / "a_multi.xyz"),
        "frame": 1,
    }
    for entries in xyz_frames(cfg["xyz"], base_dir=xyz_dir).values():
        for sid, _, _, atoms in entries:
            one = build_structure(recipes[sid])
            write_structure(tmp_path / "a.xyz", atoms)
            write_structure(tmp_path / "b.xyz", one)
            assert (tmp_path / "a.xyz").read_bytes() == (tmp_path / "b.xyz").read_bytes(), sid
    # the file can be given apart from the recipe (the workflow passes the job's input)
    moved = tmp_path / "moved.xyz"
    moved.write_text((xyz_dir / "data" / "a_multi.xyz").read_text())
    assert (
        build_structure(recipes["a_multi_2"], path=moved).positions.tolist()
        == build_structure(recipes["a_multi_2"]).positions.tolist()
    )
    with pytest.raises(ValueError, match=r"big\.xyz.*frame 1"):
        build_structure({**recipes["big"], "frame": 1})


def test_structure_rows(tmp_path, trimer):
    write_structure(tmp_path / "w3.xyz", trimer)
    write_structure(tmp_path / "h2o.xyz", Atoms("OH2", positions=_water([0, 0, 0])))
    rows = structure_rows([("w3", "train", tmp_path / "w3.xyz"), ("h2o", "test", str(tmp_path / "h2o.xyz"))])
    assert rows == [
        {"structure": "w3", "split": "train", "n_atoms": 9, "formula": "H6O3"},
        {"structure": "h2o", "split": "test", "n_atoms": 3, "formula": "H2O"},
    ]


def test_read_xyz_missing_glob(xyz_dir):
    with pytest.raises(ValueError, match=r"split 'test'.*'nothing/\*\.xyz'"):
        xyz_frames({"train": ["data/*.xyz"], "test": ["nothing/*.xyz"]}, base_dir=xyz_dir)


@pytest.mark.parametrize("copy", ["copy", "symlink", "frame"])
def test_the_same_geometry_in_two_splits_is_refused_naming_both(xyz_dir, copy):
    target = xyz_dir / "test" / "other_name.xyz"
    if copy == "symlink":
        target.symlink_to(xyz_dir / "data" / "b_single.xyz")
    elif copy == "copy":  # other comment, same atoms to 1e-7 Å
        target.write_text(WATER_XYZ.format(comment="a copy").replace("0.96 ", "0.9600001 "))
    else:  # frame 2 of the training file, in a test file of two frames
        target.write_text(WATER_XYZ.format(comment="x").replace("0.96", "0.5") + WATER_XYZ.format(comment="again"))
    with pytest.raises(
        ValueError, match=r"same geometry.*split 'train' \(.*data.*line \d+\).*split 'test' \(.*other_name"
    ):
        xyz_frames({"train": ["data/*.xyz"], "test": ["test/*.xyz"]}, base_dir=xyz_dir)
    assert xyz_frames({"train": ["data/*.xyz"], "test": ["test/big.xyz"]}, base_dir=xyz_dir)["test"]


def test_read_xyz_duplicate_ids(xyz_dir):
    (xyz_dir / "test" / "b_single.xyz").write_text(WATER_XYZ.format(comment="same stem"))
    with pytest.raises(
        ValueError, match=r"duplicate structure id 'b_single'.*data.*b_single\.xyz.*test.*b_single\.xyz"
    ):
        xyz_frames({"train": ["data/*.xyz"], "test": ["test/*.xyz"]}, base_dir=xyz_dir)


@pytest.mark.parametrize(
    "text, needle",
    [
        # malformed: the reader's own message
        ("3\nc\nO 0 0 0\nH 0.96 abc 0\nH 0 1 0\n", ": cannot read structures (line 4"),
        ("3\nc\nO 0 0 0\nH 0.96 0\nH 0 1 0\n", ": cannot read structures (line 4"),
        ("3\nc\nO 0 0 0\nH 0.96 0 0\n", ": cannot read structures (line 1"),
        ("three\nc\nO 0 0 0\n", ": cannot read structures (line 1"),
        # ASE reads nan and inf; the DFT job would fail on them
        ("3\nc\nO 0 0 0\nH 0.96 nan 0\nH 0 1 0\n", ", line 4: coordinates [0.96, nan, 0.0] are not finite"),
        ("3\nc\nO 0 0 0\nH 0.96 0 0\nH 0 1 0\n3\nc\nO 0 0 0\nH 0.96 0 0\nH 0 inf 0\n", ", line 10:"),
        # two atoms closer than structures.min_distance_angstrom (0.3 here)
        ("3\nc\nO 0 0 0\nH 0.96 0 0\nH 0.1 0.1 0\n", ", line 3 and line 5: atoms O and H are 0.141 Å apart"),
    ],
)
def test_malformed_or_unusable_xyz_is_refused_naming_file_and_line(tmp_path, text, needle):
    """While the workflow is read (``structure_plans`` reads every frame), before any job."""
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    cfg = {"source": "xyz", "min_distance_angstrom": 0.3, "xyz": {"train": ["bad.xyz"]}}
    with pytest.raises(ValueError) as err:
        structure_plans(cfg, base_dir=tmp_path)
    assert f"{path}{needle}" in str(err.value)


def test_the_minimum_distance_of_the_config_is_the_one_checked(tmp_path):
    (tmp_path / "w.xyz").write_text("3\nc\nO 0 0 0\nH 0.96 0 0\nH 0 0.96 0\n")
    cfg = {"source": "xyz", "min_distance_angstrom": 1.0, "xyz": {"train": ["w.xyz"]}}
    with pytest.raises(ValueError, match=r"closer than structures.min_distance_angstrom 1.0"):
        structure_plans(cfg, base_dir=tmp_path)
    assert list(structure_plans({**cfg, "min_distance_angstrom": 0.5}, base_dir=tmp_path)) == ["w"]


def test_a_file_name_that_is_no_job_name_is_refused(tmp_path):
    (tmp_path / "my water.xyz").write_text(WATER_XYZ.format(comment="c"))
    with pytest.raises(ValueError, match=r"my water.xyz: structure id 'my water' .* is not a valid job name"):
        xyz_frames({"train": ["*.xyz"]}, base_dir=tmp_path)


def test_ids_that_differ_only_in_case_are_refused(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "A.xyz").write_text(WATER_XYZ.format(comment="c"))
    (tmp_path / "a.xyz").write_text(WATER_XYZ.format(comment="c"))
    with pytest.raises(ValueError, match=r"duplicate structure id 'a' \(ids that differ only in case.*A\.xyz.*a\.xyz"):
        xyz_frames({"train": ["train/*.xyz"], "val": ["a.xyz"]}, base_dir=tmp_path)


# --- validate_structure ---------------------------------------------------------


def test_validate_structure_close_atoms():
    atoms = Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [0.96, 0.3, 0]])
    with pytest.raises(ValueError, match=r"s7: atoms 1 \(H\) and 2 \(H\) are 0\.300 Å apart"):
        validate_structure("s7", atoms)
    validate_structure("s7", atoms, min_distance=0.25)


def test_validate_structure_elements():
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    validate_structure("w", atoms, allowed_elements={"H", "O"})
    with pytest.raises(ValueError, match=r"w: element\(s\) \['O'\] not in allowed"):
        validate_structure("w", atoms, allowed_elements={"H", "C"})


# --- write/read -----------------------------------------------------------------


def test_write_read_roundtrip_is_clean_and_atomic(tmp_path, trimer):
    atoms = trimer.copy()
    atoms.info["energy"] = -1.0  # run-dependent extras must not reach the file
    atoms.set_momenta(np.ones((len(atoms), 3)))
    path = tmp_path / "out" / "w3.xyz"
    write_structure(path, atoms)
    write_structure(tmp_path / "plain.xyz", trimer)
    assert path.read_bytes() == (tmp_path / "plain.xyz").read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["w3.xyz"]  # no temp file left
    back = read_structure(path)
    assert back.get_chemical_symbols() == trimer.get_chemical_symbols()
    assert np.allclose(back.positions, trimer.positions, atol=1e-7)
    assert not back.pbc.any() and back.info == {}
    write_structure(path, back)  # overwriting an existing file works and is stable
    assert path.read_bytes() == (tmp_path / "plain.xyz").read_bytes()


# --- charge, spin and periodicity -----------------------------------------------

OH_XYZ = "2\n{comment}\nO 0.0 0.0 0.0\nH 0.0 0.0 0.97\n"


def test_charge_and_multiplicity_read_from_the_comment_line_with_defaults(tmp_path):
    (tmp_path / "water.xyz").write_text(WATER_XYZ.format(comment="plain xyz"))
    (tmp_path / "oh.xyz").write_text(OH_XYZ.format(comment="multiplicity=2"))
    (tmp_path / "h2o_plus.xyz").write_text(WATER_XYZ.format(comment="charge=1 multiplicity=2"))
    (tmp_path / "oh_minus.xyz").write_text(
        OH_XYZ.format(comment='Properties=species:S:1:pos:R:3 charge=-1 pbc="F F F"')
    )
    manifest = W.structure_manifest({"source": "xyz", "xyz": {"train": ["*.xyz"]}}, base_dir=tmp_path)
    found = {sid: (info["charge"], info["multiplicity"]) for sid, info in manifest.items()}
    assert found == {"h2o_plus": (1, 2), "oh": (0, 2), "oh_minus": (-1, 1), "water": (0, 1)}
    # generated clusters are neutral singlets
    clusters = W.structure_manifest(
        {
            "source": "water_clusters",
            "water_clusters": {
                "seed": 0,
                "temperature_K": 50.0,
                "md_steps": 0,
                "splits": {"train": {"n_molecules": 2, "count": 2}},
            },
        }
    )
    assert {(info["charge"], info["multiplicity"]) for info in clusters.values()} == {(0, 1)}
    assert electron_count(["O", "H", "H"], 1) == 9


def test_charge_and_multiplicity_travel_through_the_structure_file(tmp_path, trimer):
    (tmp_path / "h2o_plus.xyz").write_text(WATER_XYZ.format(comment="charge=1 multiplicity=2"))
    plans = structure_plans({"source": "xyz", "xyz": {"train": ["h2o_plus.xyz"]}}, base_dir=tmp_path)
    atoms = build_structure(plans["h2o_plus"]["recipe"])
    write_structure(tmp_path / "out.xyz", atoms)
    assert charge_and_multiplicity(read_structure(tmp_path / "out.xyz"), "out") == (1, 2)
    # a neutral singlet's file carries neither key: generated clusters' files stay as they were
    write_structure(tmp_path / "w3.xyz", trimer)
    assert "charge" not in (tmp_path / "w3.xyz").read_text() and "multiplicity" not in (tmp_path / "w3.xyz").read_text()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("oh.xyz", OH_XYZ.format(comment="OH radical"), r"9 electrons \(charge=0\) cannot have multiplicity=1"),
        ("water.xyz", WATER_XYZ.format(comment="multiplicity=2"), r"10 electrons .* multiplicity=2: an even electron"),
        ("cation.xyz", WATER_XYZ.format(comment="charge=1"), r"9 electrons \(charge=1\) cannot have multiplicity=1"),
        (
            "high.xyz",
            OH_XYZ.format(comment="multiplicity=12"),
            r"multiplicity=12 needs 11 unpaired electrons, the structure has 9",
        ),
        ("bare_ion.xyz", "1\ncharge=1\nH 0 0 0\n", r"charge=1 leaves 0 electrons"),
        ("bare.xyz", WATER_XYZ.format(comment="water, no charge"), r"the word 'charge' without a value"),
        ("half.xyz", WATER_XYZ.format(comment="charge=0.5"), r"charge=0\.5 in the comment line is not an integer"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.endswith(".xyz") else "",
)
def test_charge_spin_mismatch_is_refused_naming_the_file(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        W.structure_manifest({"source": "xyz", "xyz": {"train": ["*.xyz"]}}, base_dir=tmp_path)
    assert str(tmp_path / name) in str(err.value)


def test_parity_mismatch_in_one_frame_names_the_frame(tmp_path):
    (tmp_path / "traj.xyz").write_text(OH_XYZ.format(comment="multiplicity=2") + OH_XYZ.format(comment="frame 1"))
    with pytest.raises(ValueError, match=r"traj\.xyz \(frame 1\): 9 electrons"):
        structure_plans({"source": "xyz", "xyz": {"train": ["traj.xyz"]}}, base_dir=tmp_path)


@pytest.mark.parametrize(
    "comment, found",
    [
        ('Lattice="8 0 0 0 8 0 0 0 8" Properties=species:S:1:pos:R:3', 'pbc="T T T" and a cell'),
        ('pbc="T F F"', 'pbc="T F F"'),
        ('Lattice="8 0 0 0 8 0 0 0 8" pbc="F F F"', r"\(a cell \(Lattice=\)\)"),
    ],
)
def test_periodic_input_is_refused_naming_the_file(tmp_path, comment, found):
    (tmp_path / "box.xyz").write_text(WATER_XYZ.format(comment=comment))
    with pytest.raises(ValueError, match="periodic input") as err:
        W.structure_manifest({"source": "xyz", "xyz": {"train": ["*.xyz"]}}, base_dir=tmp_path)
    assert str(tmp_path / "box.xyz") in str(err.value)
    assert re.search(found, str(err.value)), str(err.value)


def test_validate_structure_refuses_periodic_and_odd_structures():
    water = Atoms("OH2", positions=_water([0, 0, 0]))
    validate_structure("w", water)
    with pytest.raises(ValueError, match="w: periodic input"):
        validate_structure("w", Atoms("OH2", positions=_water([0, 0, 0]), cell=[9, 9, 9], pbc=True))
    with pytest.raises(ValueError, match="oh: 9 electrons"):
        validate_structure("oh", Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]]))
    radical = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]], info={"multiplicity": 2})
    validate_structure("oh", radical)


def test_training_on_mixed_charges_is_refused_before_any_job(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "train" / "water.xyz").write_text(WATER_XYZ.format(comment=""))
    (tmp_path / "test" / "h2o_plus.xyz").write_text(WATER_XYZ.format(comment="charge=1 multiplicity=2"))
    manifest = W.structure_manifest(
        {"source": "xyz", "xyz": {"train": ["train/*.xyz"], "test": ["test/*.xyz"]}}, base_dir=tmp_path
    )
    with pytest.raises(
        ValueError,
        match=r"different charges \(charge \+0: 1 \(first water\), charge \+1: 1 "
        r"\(first h2o_plus\)\).*no charge input",
    ):
        W.check_single_charge(manifest, ["train", "val", "test"])
    W.check_single_charge(manifest, ["train", "val"])  # a split no model sees may differ


# --- mixed sources --------------------------------------------------------------


def test_mixed_sources_plan_each_split_from_its_own_source(xyz_dir):
    """structures.source as a mapping: generated train and val, test from XYZ files; the generated clusters are
    those that planning every split as clusters gives (their seeds do not depend on the other splits)."""
    clusters = {"train": {"n_molecules": 1, "count": 2}, "val": {"n_molecules": 1, "count": 1}}
    cfg = {
        **cluster_config(4, {**clusters, "test": {"n_molecules": 1, "count": 3}}),
        "source": {"train": "water_clusters", "val": "water_clusters", "test": "xyz"},
        "xyz": {"train": ["data/*.xyz"], "test": ["test/big.xyz"]},
    }
    plans = structure_plans(cfg, base_dir=xyz_dir)
    assert ids_by_split(plans) == {"train": ["w1_train_0000", "w1_train_0001"], "val": ["w1_val_0000"], "test": ["big"]}
    alone = structure_plans(cluster_config(4, clusters))
    assert all(plans[sid] == plan for sid, plan in alone.items())
    assert plans["big"]["recipe"] == {
        "source": "xyz",
        "split": "test",
        "path": str(xyz_dir / "test/big.xyz"),
        "frame": 0,
    }


@pytest.mark.parametrize(
    "source, message",
    [
        (
            {"train": "water_clusters", "val": "xyz"},
            "structures.source.val: xyz, but structures.xyz has no split 'val'",
        ),
        ({"test": "water_clusters"}, "structures.source.test: water_clusters, but structures.water_clusters.splits"),
        ({"train": "pdb"}, "structures.source must be"),
    ],
)
def test_a_mixed_source_names_the_split_its_block_lacks(xyz_dir, source, message):
    cfg = {**cluster_config(4, {"train": {"n_molecules": 1, "count": 1}}), "source": source, "xyz": {"test": []}}
    with pytest.raises(ValueError, match=re.escape(message)):
        structure_plans(cfg, base_dir=xyz_dir)


def test_the_same_geometry_in_two_xyz_splits_is_refused_with_mixed_sources(xyz_dir):
    cfg = {
        **cluster_config(4, {"train": {"n_molecules": 1, "count": 1}}),
        "source": {"train": "water_clusters", "val": "xyz", "test": "xyz"},
        "xyz": {"val": ["test/big.xyz"], "test": ["copy.xyz"]},
    }
    (xyz_dir / "copy.xyz").write_text((xyz_dir / "test" / "big.xyz").read_text())
    with pytest.raises(ValueError, match="the same geometry"):
        structure_plans(cfg, base_dir=xyz_dir)


def test_a_file_named_like_a_generated_cluster_is_refused(tmp_path):
    (tmp_path / "w1_train_0000.xyz").write_text(WATER_XYZ.format(comment=""))
    cfg = {
        **cluster_config(4, {"train": {"n_molecules": 1, "count": 1}}),
        "source": {"train": "water_clusters", "test": "xyz"},
        "xyz": {"test": ["*.xyz"]},
    }
    with pytest.raises(
        ValueError, match="structure id 'w1_train_0000' of split 'test' \\(xyz\\) is also in split 'train'"
    ):
        structure_plans(cfg, base_dir=tmp_path)


def test_the_schema_takes_one_source_or_one_per_split():
    import yaml
    from snakemake.utils import validate

    schema = str(Path(__file__).resolve().parents[1] / "e3hier" / "schemas" / "config.schema.yaml")
    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    for source in ("xyz", {"train": "water_clusters", "test": "xyz"}):
        validate({**base, "structures": {**base["structures"], "source": source}}, schema)
    for bad in ({"train": "pdb"}, {}, "pdb"):
        with pytest.raises(Exception, match="source"):
            validate({**base, "structures": {**base["structures"], "source": bad}}, schema)

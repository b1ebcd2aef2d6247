import numpy as np

from e3hier.basis import build_mol, fit_basis, function_table, irreps_counts, irreps_string, make_auxmol


def test_decontracted_universal_jfit_irreps():
    basis = fit_basis("def2-universal-jfit", ["O", "H"], decontract=True)
    assert irreps_string(irreps_counts(basis["O"])) == "12x0e+5x1o+4x2e+2x3o+1x4e"
    assert irreps_string(irreps_counts(basis["H"])) == "5x0e+2x1o+1x2e"
    # every primitive is its own shell
    assert all(len(shell) == 2 for shell in basis["O"])


def test_function_table_is_m_ordered_and_points_at_pyscf_columns(water):
    symbols, pos = water
    mol = build_mol(symbols, pos, "cc-pvdz")
    auxmol = make_auxmol(mol, fit_basis("def2-universal-jfit", symbols, True))
    table = function_table(auxmol)
    assert len(table) == auxmol.nao_nr()
    assert sorted(table["ao_index"]) == list(range(auxmol.nao_nr()))
    p = table[(table.atom == 0) & (table.l == 1) & (table.shell == 0)]
    assert list(p["m"]) == [-1, 0, 1]
    # PySCF's p columns are (x, y, z): m=-1 is y (column +1), m=0 is z (+2), m=+1 is x (+0)
    first = auxmol.ao_loc_nr()[[ib for ib in range(auxmol.nbas) if auxmol.bas_angular(ib) == 1][0]]
    assert list(p["ao_index"]) == [first + 1, first + 2, first]
    # the p_x function is odd in x: check on two points mirrored in x
    centre = mol.atom_coord(0)
    pts = np.array([centre + [0.3, 0.1, 0.05], centre + [-0.3, 0.1, 0.05]])
    values = auxmol.eval_gto("GTOval_sph", pts)[:, p["ao_index"].to_numpy()]
    np.testing.assert_allclose(values[0, 2], -values[1, 2])  # m=+1 ↔ x
    np.testing.assert_allclose(values[0, 0], values[1, 0])  # m=-1 ↔ y

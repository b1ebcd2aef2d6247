"""A bare PySCF script doing the DFT rule's science: density-fitted RKS, then the charge-constrained
Coulomb-metric fit onto the decontracted fit basis. Only numpy and PySCF; writes the coefficients (.npy).

Usage: python dft_bare.py XYZ OUT_NPY SETTINGS_JSON
"""

import json
import sys
from pathlib import Path

import numpy as np
from pyscf import df, dft, gto, lib
from pyscf.dft import radi

xyz, out_npy, settings_json = sys.argv[1:4]
settings = json.loads(Path(settings_json).read_text())
lib.num_threads(1)

lines = Path(xyz).read_text().splitlines()
atom = [(f.split()[0], tuple(map(float, f.split()[1:4]))) for f in lines[2 : 2 + int(lines[0])]]
mol = gto.M(atom=atom, unit="Angstrom", basis=settings["basis"], verbose=0)

mf = dft.RKS(mol)
mf.xc = settings["xc"]
mf = mf.density_fit(auxbasis=settings["scf_auxbasis"])
mf.grids.atom_grid = (settings["grid"]["radial"], settings["grid"]["angular"])
mf.grids.radi_method = {"treutler": radi.treutler, "becke": radi.becke}[settings["grid"]["radial_scheme"]]
if not settings["grid"]["prune"]:
    mf.grids.prune = None
mf.conv_tol = settings["conv_tol"]
mf.max_cycle = settings["max_cycle"]
mf.kernel()
assert mf.converged
dm = mf.make_rdm1()

elements = sorted({a[0] for a in atom})
basis = {
    el: gto.uncontract(gto.basis.load(settings["fit_auxbasis"], el))
    if settings["decontract"]
    else gto.basis.load(settings["fit_auxbasis"], el)
    for el in elements
}
auxmol = gto.M(atom=mol._atom, unit="Bohr", basis=basis, verbose=0)

metric = auxmol.intor("int2c2e")
projection = np.einsum("ijP,ij->P", df.incore.aux_e2(mol, auxmol, intor="int3c2e", aosym="s1"), dm)
w, v = np.linalg.eigh(metric)
keep = w > 1e-10
j_inv = (v[:, keep] / w[keep]) @ v[:, keep].T
d = j_inv @ projection
# ∫χ_P: non-zero for s shells only, χ(0)·(π/α)^{3/2} with χ(0) read from eval_gto (one primitive per shell)
q = np.zeros(auxmol.nao_nr())
ao_loc = auxmol.ao_loc_nr()
for ib in range(auxmol.nbas):
    if auxmol.bas_angular(ib) == 0:
        centre = auxmol.atom_coord(auxmol.bas_atom(ib))[None, :]
        coeffs, exps = auxmol._libcint_ctr_coeff(ib)[:, 0], auxmol.bas_exp(ib)
        shape = coeffs / coeffs.sum() if len(exps) > 1 else np.ones(1)
        value = auxmol.eval_gto("GTOval_sph", centre, shls_slice=(ib, ib + 1))[0, 0]
        q[ao_loc[ib]] = value * float(np.sum(shape * (np.pi / exps) ** 1.5))
j_inv_q = j_inv @ q
d = d + (mol.nelectron - q @ d) / (q @ j_inv_q) * j_inv_q
np.save(out_npy, d)

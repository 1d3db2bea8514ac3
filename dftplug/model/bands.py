"""Band energies for the model's band loss and evaluation, through the toolkit (dftplug.kspace).

Phase convention (that of the index in ``../shared/fixtures/README.md``):
H(k) = Σ_R H(R) e^{i 2π k·R}, k in fractional reciprocal coordinates, R integer lattice vectors;
bands solve the generalized problem H(k) c = ε S(k) c with cᴴ S(k) c = 1.
"""
from __future__ import annotations

import numpy as np

from dftplug.blocksparse import BlockSparse
from dftplug.kspace import BlochSum, solve_generalized


def band_energies(h: BlockSparse, s: BlockSparse, k, spin: int = 0, vectors: bool = False):
    """Eigenvalues (eV, ascending) of H(k) c = ε S(k) c at one k-point, and the S-normalised
    eigenvectors (columns) when ``vectors`` (the toolkit's overlap guard applies). nspin 4: the
    2·nao spinor levels of H(k) with S(k) ⊗ 1₂ (``spin`` ignored)."""
    k = np.asarray(k, float).reshape(1, 3)
    spinor = h.nspin == 4
    hk = BlochSum(h).dense(k, spinor=spinor)[0 if spinor else min(spin, h.nspin - 1), 0]
    sk = BlochSum(s).dense(k, spinor=spinor)[0, 0]
    sol = solve_generalized(hk, sk, vectors=vectors)
    return (sol.energies, sol.vectors) if vectors else sol.energies


def sample_kpoints(nk: int, rng: np.random.Generator, periodic=(True, True, True)) -> np.ndarray:
    """Γ followed by ``nk − 1`` uniformly random fractional k-points (zero along non-periodic axes)."""
    ks = np.zeros((max(nk, 1), 3))
    if nk > 1:
        ks[1:] = rng.uniform(-0.5, 0.5, size=(nk - 1, 3)) * np.asarray(periodic, float)
    return ks

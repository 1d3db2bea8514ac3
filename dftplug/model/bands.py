"""Bloch sums and band energies of block-sparse real-space matrices (small dense solver).

Phase convention (that of the index in ``../shared/fixtures/README.md``):
H(k) = Σ_R H(R) e^{i 2π k·R}, k in fractional reciprocal coordinates, R integer lattice vectors;
bands solve the generalized problem H(k) c = ε S(k) c with cᴴ S(k) c = 1.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from dftplug.blocksparse import BlockSparse


def bloch_sum(m: BlockSparse, k, spin: int = 0) -> np.ndarray:
    """Dense complex (nao, nao) matrix M(k) of spin channel ``spin`` (channel 0 if M has one)."""
    rows, cols, cells, values = m.to_orbital_coo()
    nao = int(m.orbital_offsets()[-1])
    out = np.zeros((nao, nao), complex)
    phase = np.exp(2j * np.pi * cells @ np.asarray(k, float))
    np.add.at(out, (rows, cols), values[min(spin, m.nspin - 1)] * phase)
    return out


def band_energies(h: BlockSparse, s: BlockSparse, k, spin: int = 0, vectors: bool = False):
    """Eigenvalues (eV, ascending) of H(k) c = ε S(k) c, and the S-normalised eigenvectors
    (columns) when ``vectors``."""
    hk, sk = bloch_sum(h, k, spin), bloch_sum(s, k)
    hk = 0.5 * (hk + hk.conj().T)
    sk = 0.5 * (sk + sk.conj().T)
    if vectors:
        return scipy.linalg.eigh(hk, sk)
    return scipy.linalg.eigh(hk, sk, eigvals_only=True)


def sample_kpoints(nk: int, rng: np.random.Generator, periodic=(True, True, True)) -> np.ndarray:
    """Γ followed by ``nk − 1`` uniformly random fractional k-points (zero along non-periodic axes)."""
    ks = np.zeros((max(nk, 1), 3))
    if nk > 1:
        ks[1:] = rng.uniform(-0.5, 0.5, size=(nk - 1, 3)) * np.asarray(periodic, float)
    return ks

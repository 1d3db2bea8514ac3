"""Spinor (nspin-4, spin-orbit) Bloch sums and band energies.

Dense k-space matrices use the spinor index 2 a + s (orbital a of the unit cell, spin s = 0 up,
1 down; spin fastest, as ``kron(orbital, spin)``): M(k)[2a+s, 2b+s'] = sum_R M^{ss'}_ab(R)
exp(+2 pi i k.R) with k in reduced reciprocal coordinates (lattice gauge, the atoms' positions do not
enter the phase). A one-channel real overlap S enters as S(k) x 1_2. Eigenvalues come from the
generalized problem H(k) c = e S(k) c. The collinear nspin 1/2 toolkit is :mod:`dftplug.kspace`.
"""
from __future__ import annotations

import numpy as np
from .blocksparse import BlockSparse
from .errors import MismatchError
from .hamiltonian import Hamiltonian


def dense_by_cell(m: BlockSparse) -> tuple[np.ndarray, np.ndarray]:
    """The matrix as dense per-R arrays: (cells (nR, 3), dense (nR, nspin, nao, nao))."""
    rows, cols, cells, values = m.to_orbital_coo()
    ucells, inv = np.unique(cells.reshape(-1, 3), axis=0, return_inverse=True)
    nao = int(m.norb.sum())
    dense = np.zeros((len(ucells), m.nspin, nao, nao), dtype=np.result_type(values, np.complex128))
    dense[inv.reshape(-1), :, rows, cols] = values.T
    return ucells, dense


def spinor_bloch_sum(m: BlockSparse, kpts: np.ndarray) -> np.ndarray:
    """M(k) on the spinor index 2 a + s, shape (nk, 2 nao, 2 nao), for a 4-channel spinor matrix
    (uu, ud, du, dd) or a one-channel spin-independent one (S -> S(k) x 1_2)."""
    if m.nspin not in (1, 4):
        raise MismatchError(f"a spinor Bloch sum needs nspin 4 (or one spin-independent channel), got {m.nspin}")
    cells, dense = dense_by_cell(m)
    kpts = np.atleast_2d(np.asarray(kpts, float))
    phase = np.exp(2j * np.pi * kpts @ cells.T)                      # (nk, nR)
    mk = np.einsum("kr,rsab->ksab", phase, dense, optimize=True)      # (nk, nspin, nao, nao)
    nk, nao = len(kpts), mk.shape[-1]
    if m.nspin == 1:
        return np.einsum("kab,st->kasbt", mk[:, 0], np.eye(2)).reshape(nk, 2 * nao, 2 * nao)
    spin = mk.reshape(nk, 2, 2, nao, nao)                             # [k, s, s', a, b]
    return spin.transpose(0, 3, 1, 4, 2).reshape(nk, 2 * nao, 2 * nao)


def band_energies(h: Hamiltonian, kpts: np.ndarray, which: str = "H") -> np.ndarray:
    """Eigenvalues (eV, ascending) of the spinor matrix ``which`` (H or H0) of ``h`` at the k-points
    ``kpts`` (nk, 3) in reduced reciprocal coordinates, shape (nk, 2 nao)."""
    m = getattr(h, which)
    if m is None or h.S is None:
        raise MismatchError(f"band energies need {which} and S")
    if m.nspin != 4:
        raise MismatchError(f"{which} has nspin {m.nspin}: use dftplug.kspace for collinear matrices")
    return generalized_eigh(spinor_bloch_sum(m, kpts), spinor_bloch_sum(h.S, kpts))


def generalized_eigh(hk: np.ndarray, sk: np.ndarray, vectors: bool = False):
    """H c = e S c for stacks (nk, n, n) of Hermitian H and positive-definite S, batched over k
    (Cholesky S = L L^dagger, then eigh(L^-1 H L^-dagger): one LAPACK call per step, not per k).

    Returns the ascending eigenvalues (nk, n) or, with ``vectors``, (values, c) where c[k][:, n] is
    the S-normalized eigenvector of band n (c^dagger S c = 1)."""
    low = np.linalg.cholesky(sk)
    half = np.linalg.solve(low, hk)                                   # L^-1 H
    reduced = np.linalg.solve(low, half.conj().swapaxes(1, 2))        # L^-1 H L^-dagger
    if not vectors:
        return np.linalg.eigvalsh(reduced)
    values, y = np.linalg.eigh(reduced)
    return values, np.linalg.solve(low.conj().swapaxes(1, 2), y)       # c = L^-dagger y


def density_matrix(h: Hamiltonian, kpts: np.ndarray, occupation, cells: np.ndarray) -> np.ndarray:
    """DM^{ss'}_ab(R) = sum_k e^{-2 pi i k.R} sum_n f_kn c_{as,n} conj(c_{bs',n}) from the eigenvectors of
    (H(k), S(k)) at ``kpts``, with f = ``occupation(energies)`` (nk, 2 nao) including the k weights,
    on the lattice vectors ``cells`` (nR, 3); dense channels (nR, 4, nao, nao) as :func:`dense_by_cell`."""
    kpts = np.atleast_2d(np.asarray(kpts, float))
    energies, c = generalized_eigh(spinor_bloch_sum(h.H, kpts), spinor_bloch_sum(h.S, kpts), vectors=True)
    rho_k = np.einsum("kan,kn,kbn->kab", c, occupation(energies), c.conj())
    rho = np.einsum("kr,kab->rab", np.exp(-2j * np.pi * kpts @ np.asarray(cells).T), rho_k, optimize=True)
    n = rho.shape[-1] // 2
    return rho.reshape(len(cells), n, 2, n, 2).transpose(0, 2, 4, 1, 3).reshape(len(cells), 4, n, n)

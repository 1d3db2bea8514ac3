"""Bloch sums M(k) = Σ_R M(R) e^{i2πk·R} and the generalized eigenproblem H(k) c = ε S(k) c.

k is in reduced (reciprocal-lattice) coordinates, R in integer lattice coordinates, so k·R is
the plain dot product; this is the convention H(k) = Σ_R H(R) e^{ik·R} of every code we read.
The inverse transform M(R) = Re Σ_k w_k M(k) e^{−i2πk·R} (used for DM(R)) lives here as well.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from tqdm import tqdm

from .blocksparse import BlockSparse

OVERLAP_TOLERANCE = 1e-5
"""Overlap eigenvalues below this are dropped (near-linear dependence of the basis).

Real bases have min eig S(k) ≈ 2e-4 (SIESTA graphene) to 7e-3 (ABACUS Si); directions much
below that turn tiny errors of H into ghost states far outside the bands."""


class BlochSum:
    """One :class:`BlockSparse` arranged for repeated Bloch sums and their inverse.

    Attributes
    ----------
    nao : int                 orbitals in the unit cell.
    nspin : int               spin channels of the matrix.
    cells : (nR, 3) int       distinct lattice vectors R of the stored elements.
    """

    def __init__(self, mat: BlockSparse):
        rows, cols, cells, values = mat.to_orbital_coo()
        self.nao = int(mat.norb.sum())
        self.nspin = mat.nspin
        self.values = values                       # (nspin, nnz), element order of ``mat.data``
        self.rows, self.cols = rows, cols
        span = 2 * np.abs(cells).max(initial=0) + 1                    # integer code of each R
        code = ((cells[:, 0] * span + cells[:, 1]) * span + cells[:, 2])
        _, first, self.cell_index = np.unique(code, return_index=True, return_inverse=True)
        self.cells, self.cell_index = cells[first], self.cell_index.reshape(-1)
        self._csr = None
        self._stack = None

    def _skeleton(self):
        """CSR skeleton of the union over R of the stored (row, col) positions, and the slot
        of every stored element in it."""
        if self._csr is None:
            pos, slot = np.unique(self.rows * self.nao + self.cols, return_inverse=True)
            indptr = np.searchsorted(pos // self.nao, np.arange(self.nao + 1))
            self._csr = (slot.reshape(-1), pos % self.nao, indptr)
        return self._csr

    def phases(self, kpts) -> np.ndarray:
        """e^{i2πk·R}, shape (nk, nR)."""
        return np.exp(2j * np.pi * np.atleast_2d(kpts) @ self.cells.T)

    def sparse(self, k, spin: int = 0) -> sp.csr_matrix:
        """M(k) of one k-point as a CSR matrix (nao, nao); memory ∝ stored elements."""
        slot, indices, indptr = self._skeleton()
        ph = self.phases(k)[0][self.cell_index] * self.values[spin]
        vals = np.bincount(slot, ph.real, len(indices)) + 1j * np.bincount(slot, ph.imag, len(indices))
        return sp.csr_matrix((vals, indices, indptr), shape=(self.nao, self.nao))

    def dense(self, kpts) -> np.ndarray:
        """M(k) for many k-points, shape (nspin, nk, nao, nao); one matrix product over R.

        Holds M(R) densely, (nspin, nR, nao²) floats: for small cells (the dense path)."""
        if self._stack is None:
            flat = self.cell_index * self.nao ** 2 + self.rows * self.nao + self.cols
            self._stack = np.zeros((self.nspin, len(self.cells) * self.nao ** 2))
            self._stack[:, flat] = self.values
            self._stack = self._stack.reshape(self.nspin, len(self.cells), -1)
        ph = self.phases(kpts)
        out = np.einsum("kr,srx->skx", ph, self._stack, optimize=True)
        return out.reshape(self.nspin, len(ph), self.nao, self.nao)

    def real_space(self, mk: np.ndarray, weights: np.ndarray, kpts) -> np.ndarray:
        """Inverse Bloch sum on this matrix's pattern: Re Σ_k w_k M_ij(k) e^{−i2πk·R}.

        mk (nk, nao, nao) complex, weights (nk,), kpts (nk, 3) -> values (nnz,) in the element
        order of the BlockSparse this was built from (use it as that matrix's ``data``)."""
        ph = np.conj(self.phases(kpts)) * np.asarray(weights)[:, None]          # (nk, nR)
        per_cell = np.einsum("kr,kx->rx", ph, mk.reshape(len(ph), -1), optimize=True)
        return per_cell.reshape(len(self.cells), self.nao, self.nao)[
            self.cell_index, self.rows, self.cols].real


@dataclass
class Eigensolution:
    """Solutions of H(k) c = ε S(k) c for a batch of k-points.

    energies : (..., nao) eV, ascending; NaN for dropped overlap directions (at the top).
    vectors : (..., nao, nao) columns c_n with c_n† S c_m = δ_nm (zero for dropped directions),
              or None when not asked for.
    dropped : (...,) int  overlap directions removed per k-point (eig S < tolerance).
    """

    energies: np.ndarray
    vectors: np.ndarray | None
    dropped: np.ndarray


def solve_generalized(hk: np.ndarray, sk: np.ndarray, tolerance: float = OVERLAP_TOLERANCE,
                      vectors: bool = True) -> Eigensolution:
    """Batched H c = ε S c, guarded against a near-singular S.

    hk (..., n, n) and sk (..., n, n) Hermitian, broadcast against each other (e.g. hk with a
    leading spin axis, one S for both spins); ``vectors`` False skips the eigenvectors (``vectors``
    of the result is then None). Where every S(k) has all eigenvalues above ``tolerance``, LAPACK's
    Cholesky-based solver (scipy ``eigh(H, S)``) is used; otherwise canonical orthogonalisation
    (Löwdin 1970): S = U s U†, X = U s^{-1/2} restricted to s > ``tolerance``, H' = X† H X,
    c = X v. The dropped directions get energy NaN (counted in ``dropped``) instead of becoming
    ghost states.
    """
    if np.all(np.linalg.eigvalsh(sk)[..., 0] > tolerance):
        hb, sb = np.broadcast_arrays(hk, sk)
        n = hb.shape[-1]
        flat = [scipy.linalg.eigh(h, s, eigvals_only=not vectors, check_finite=False)
                for h, s in zip(hb.reshape(-1, n, n), sb.reshape(-1, n, n))]
        energies = np.stack([f[0] for f in flat] if vectors else flat).reshape(hb.shape[:-1])
        vecs = np.stack([f[1] for f in flat]).reshape(hb.shape) if vectors else None
        return Eigensolution(energies, vecs, np.zeros(sk.shape[:-2], dtype=np.int64))
    s, u = np.linalg.eigh(sk)
    keep = s > tolerance
    x = u * np.where(keep, 1.0 / np.sqrt(np.where(keep, s, 1.0)), 0.0)[..., None, :]
    hp = np.conj(np.swapaxes(x, -1, -2)) @ hk @ x
    # dropped directions become decoupled rows/columns: give them an energy above every band
    big = 1e6 * (1.0 + np.abs(hk).max())
    idx = np.arange(hk.shape[-1])
    hp[..., idx, idx] += np.where(keep, 0.0, big)
    e, v = np.linalg.eigh(hp) if vectors else (np.linalg.eigvalsh(hp), None)
    ghost = e > 0.5 * big
    return Eigensolution(np.where(ghost, np.nan, e), (x @ v) * ~ghost[..., None, :] if vectors else None,
                         np.sum(~keep, axis=-1))


def eigenvalues_near(hk: sp.spmatrix, sk: sp.spmatrix, energy: float, count: int) -> np.ndarray:
    """The ``count`` eigenvalues of H c = ε S c closest to ``energy`` (eV), ascending.

    Shift-invert Lanczos (ARPACK via scipy ``eigsh``, SuperLU of H − energy·S): cost and memory
    follow the fill-in of that LU, not nao³ — small for elongated or slab-like cells, larger for
    compact 3D ones (``scripts/bench_bands.py`` measures both)."""
    vals = spla.eigsh(hk.tocsc(), k=count, M=sk.tocsc(), sigma=energy, which="LM",
                      return_eigenvectors=False)
    return np.sort(vals.real)


def solve_at(H: BlockSparse, S: BlockSparse, kpts, vectors: bool = True,
             tolerance: float = OVERLAP_TOLERANCE, progress: bool = False) -> Eigensolution:
    """Dense H(k) c = ε S(k) c for every spin channel of H at every k-point.

    kpts (nk, 3) reduced. Returns energies (nspin, nk, nao), vectors (nspin, nk, nao, nao) or
    None when ``vectors`` is False, dropped (nk,). k-points go in batches of bounded memory;
    ``progress`` shows a tqdm bar over them.
    """
    kpts = np.atleast_2d(np.asarray(kpts, dtype=float))
    hsum, ssum = BlochSum(H), BlochSum(S)
    n, nk = hsum.nao, len(kpts)
    energies = np.empty((H.nspin, nk, n))
    vecs = np.empty((H.nspin, nk, n, n), complex) if vectors else None
    dropped = np.zeros(nk, dtype=np.int64)
    step = max(1, min(64, 2 ** 22 // (n * n)))
    with tqdm(total=nk, disable=not progress, desc="k-points", unit="k") as bar:
        for a in range(0, nk, step):
            k = kpts[a:a + step]
            sol = solve_generalized(hsum.dense(k), ssum.dense(k)[0], tolerance, vectors)
            energies[:, a:a + step] = sol.energies
            if vectors:
                vecs[:, a:a + step] = sol.vectors
            dropped[a:a + step] = sol.dropped
            bar.update(len(k))
    return Eigensolution(energies, vecs, dropped)

"""Density matrix DM(R) from H(R), S(R): the starting guess a restarted SCF reads.

DM_ij(R) = Σ_k w_k ρ_ij(k) e^{−i2πk·R},  ρ(k) = Σ_n f_nk c_nk c_nk†,  f_nk = g θ_nk
with H(k) c = ε S(k) c, H(k) = Σ_R H(R) e^{i2πk·R} and one Fermi level for all channels;
g electrons per state (:func:`~dftplug.kspace.electrons_per_state`). nspin 1: spin-summed,
Tr(DM S) = N; nspin 2: one DM per spin; both real (Re of the sum over a time-reversal-symmetric
mesh). nspin 4: ρ(k) on the spinor index 2a + s, DM^{ss'}_ab(R) complex channels uu, ud, du, dd
summed over the full mesh (spinor time reversal is not complex conjugation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocksparse import BlockSparse
from .errors import DftplugError
from .hamiltonian import Hamiltonian
from .kspace import OVERLAP_TOLERANCE, BlochSum, electrons_per_state, solve_at, spinor_to_channels
from .occupations import Smearing, fermi_level, monkhorst_pack


@dataclass
class DensityMatrix:
    """DM(R) (nspin channels, on the requested block pattern), the Fermi level (eV) it was
    filled to, and the overlap directions dropped at the worst k-point."""

    DM: BlockSparse
    fermi_level: float
    dropped: int


def run_mesh(h: Hamiltonian, mesh=None, shift=None, smearing: Smearing | None = None, nelec: float | None = None):
    """(mesh, shift, smearing, nelec): the arguments given, else the run's (``settings['kmesh']``,
    ``settings['kmesh_shift']`` — only with the run's own mesh —, its smearing, ``h.nelec``)."""
    if mesh is None:
        mesh = h.settings.get("kmesh")
        shift = h.settings.get("kmesh_shift", (0, 0, 0)) if shift is None else shift
    shift = (0, 0, 0) if shift is None else shift
    nelec = nelec if nelec is not None else h.nelec
    if mesh is None or nelec is None or h.H is None or h.S is None:
        raise DftplugError("filling a k-mesh needs H, S, a k-mesh and an electron count")
    return mesh, shift, smearing or Smearing.from_settings(h.settings), nelec


def mesh_fermi_level(h: Hamiltonian, mesh=None, smearing: Smearing | None = None, nelec: float | None = None,
                     shift=None, tolerance: float = OVERLAP_TOLERANCE) -> float:
    """E_F (eV) of ``h.H`` filled with ``nelec`` electrons on ``mesh`` (defaults: :func:`run_mesh`)."""
    mesh, shift, smearing, nelec = run_mesh(h, mesh, shift, smearing, nelec)
    kpts, weights = monkhorst_pack(mesh, shift)
    sol = solve_at(h.H, h.S, kpts, vectors=False, tolerance=tolerance)
    return fermi_level(sol.energies, weights, nelec, smearing, per_state=electrons_per_state(h.H.nspin))


def fold_density(pattern: BlockSparse, vectors: np.ndarray, occupations: np.ndarray, kpts, weights) -> np.ndarray:
    """DM(R) values on ``pattern`` from eigenvectors (nch, nk, m, nb) and occupations (nch, nk, nb)
    (electrons per state, k weights apart): nch 1 or 2 real channels, or one spinor channel
    (m = 2 nao) -> four complex channels uu, ud, du, dd. Returns data (nspin, nnz) of ``pattern``."""
    fold = BlochSum(pattern)
    rho = np.einsum("ckin,ckn,ckjn->ckij", vectors, occupations, np.conj(vectors), optimize=True)
    spinor = vectors.shape[-2] == 2 * fold.nao
    channels = spinor_to_channels(rho[0]) if spinor else rho
    return np.stack([fold.real_space(c, weights, kpts, real=not spinor) for c in channels])


def density_matrix(h: Hamiltonian, mesh=None, smearing: Smearing | None = None, nelec: float | None = None,
                   pairs: np.ndarray | None = None, shift=None, tolerance: float = OVERLAP_TOLERANCE,
                   progress: bool = False) -> DensityMatrix:
    """DM(R) of ``h.H``, ``h.S`` filled with ``nelec`` electrons on ``mesh`` (defaults: :func:`run_mesh`).

    ``pairs`` (E, 5) is the block pattern of the result (default: that of H, which covers every pair of
    overlapping orbitals; a code may store more, e.g. ABACUS graphene's DM has 48 blocks
    between orbitals that do not overlap, which add nothing to the density).
    """
    mesh, shift, smearing, nelec = run_mesh(h, mesh, shift, smearing, nelec)
    kpts, weights = monkhorst_pack(mesh, shift, time_reversal=h.H.nspin != 4)
    sol = solve_at(h.H, h.S, kpts, tolerance=tolerance, progress=progress)
    g = electrons_per_state(h.H.nspin)
    ef = fermi_level(sol.energies, weights, nelec, smearing, per_state=g)
    pairs = h.H.pairs if pairs is None else np.asarray(pairs)
    size = int(np.sum(h.H.norb[pairs[:, 0]] * h.H.norb[pairs[:, 1]]))
    pattern = BlockSparse(h.H.norb, pairs, np.zeros((1, size)))
    data = fold_density(pattern, sol.vectors, g * smearing.occupation(sol.energies, ef), kpts, weights)
    return DensityMatrix(pattern.copy(data), ef, int(sol.dropped.max(initial=0)))

"""Density matrix DM(R) from H(R), S(R): the starting guess a restarted SCF reads.

DM_ij(R) = Re Σ_k w_k ρ_ij(k) e^{−i2πk·R},  ρ(k) = Σ_n f_nk c_nk c_nk†,  f_nk = (2/nspin) θ_nk
(nspin 1: spin-summed, Tr(DM S) = N; nspin 2: one DM per spin, Tr = N_up, N_down), with
H(k) c = ε S(k) c, H(k) = Σ_R H(R) e^{i2πk·R} and one Fermi level for both spins.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocksparse import BlockSparse
from .errors import DftplugError
from .hamiltonian import Hamiltonian
from .kspace import OVERLAP_TOLERANCE, BlochSum, solve_at
from .occupations import Smearing, fermi_level, monkhorst_pack


@dataclass
class DensityMatrix:
    """DM(R) (nspin channels, on the requested block pattern), the Fermi level (eV) it was
    filled to, and the overlap directions dropped at the worst k-point."""

    DM: BlockSparse
    fermi_level: float
    dropped: int


def _mesh_settings(h: Hamiltonian, mesh, smearing, nelec):
    """The run's k-mesh, smearing and electron count where not given explicitly."""
    mesh = mesh if mesh is not None else h.settings.get("kmesh")
    nelec = nelec if nelec is not None else h.nelec
    if mesh is None or nelec is None or h.H is None or h.S is None:
        raise DftplugError("filling a k-mesh needs H, S, a k-mesh and an electron count")
    return mesh, smearing or Smearing.from_settings(h.settings), nelec


def mesh_fermi_level(h: Hamiltonian, mesh=None, smearing: Smearing | None = None, nelec: float | None = None,
                     tolerance: float = OVERLAP_TOLERANCE) -> float:
    """E_F (eV) of ``h.H`` filled with ``nelec`` electrons on a Γ-centred ``mesh`` (run defaults)."""
    mesh, smearing, nelec = _mesh_settings(h, mesh, smearing, nelec)
    kpts, weights = monkhorst_pack(mesh)
    sol = solve_at(h.H, h.S, kpts, vectors=False, tolerance=tolerance)
    return fermi_level(sol.energies, weights, nelec, smearing)


def density_matrix(h: Hamiltonian, mesh=None, smearing: Smearing | None = None, nelec: float | None = None,
                   pairs: np.ndarray | None = None, tolerance: float = OVERLAP_TOLERANCE,
                   progress: bool = False) -> DensityMatrix:
    """DM(R) of ``h.H``, ``h.S`` filled with ``nelec`` electrons on a Γ-centred ``mesh``.

    Defaults come from the run: ``h.settings['kmesh']``, its smearing, ``h.nelec``. ``pairs``
    (E, 5) is the block pattern of the result (default: that of H, which covers every pair of
    overlapping orbitals; a code may store more, e.g. ABACUS graphene's DM has 48 blocks
    between orbitals that do not overlap, which add nothing to the density).
    """
    mesh, smearing, nelec = _mesh_settings(h, mesh, smearing, nelec)
    kpts, weights = monkhorst_pack(mesh)
    sol = solve_at(h.H, h.S, kpts, tolerance=tolerance, progress=progress)
    ef = fermi_level(sol.energies, weights, nelec, smearing)
    occ = (2.0 / h.H.nspin) * smearing.occupation(sol.energies, ef)          # (nspin, nk, nb)
    pairs = h.H.pairs if pairs is None else np.asarray(pairs)
    size = int(np.sum(h.H.norb[pairs[:, 0]] * h.H.norb[pairs[:, 1]]))
    pattern = BlockSparse(h.H.norb, pairs, np.zeros((1, size)))
    fold = BlochSum(pattern)
    data = np.stack([
        fold.real_space(np.einsum("kin,kn,kjn->kij", c, f, np.conj(c), optimize=True), weights, kpts)
        for c, f in zip(sol.vectors, occ)])
    return DensityMatrix(pattern.copy(data), ef, int(sol.dropped.max(initial=0)))

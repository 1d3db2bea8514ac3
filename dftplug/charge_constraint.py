"""Per-atom potential shifts that give a Hamiltonian prescribed Mulliken charges.

A starting guess whose charges sit on the wrong atoms costs a restarted SCF most of its iterations:
the Hartree response amplifies charge moved between atoms, while the SCF density itself is nearly
neutral atom by atom (Kohn's nearsightedness: Mulliken charges of converged rattled Si cells deviate
from 4 by 0.003 e RMS, those of the zeroth-step H0 by 0.01–0.025 e). This module adds to H the
on-site-like potential shifts v_a (eV, one per atom, spin independent)

    H_ij(R) ← H_ij(R) + ½ (v_a + v_b) S_ij(R),   i ∈ a, j ∈ b,

chosen by Newton iterations so that the Mulliken charges q_a = Σ_{i∈a} Σ_k w_k Re (D(k) S(k))_ii of
the density matrix of H on the run's k-mesh and smearing equal the targets. The Jacobian is the
first-order response of :mod:`dftplug.model.density_response`:

    ∂q_a/∂v_b = g Σ_k w_k Re Σ_nm F_nm X^b_nm Z^a_mn,   Z^a = W_aᴴ C_a,  X^b = ½ (Z^b + Z^bᴴ),

with W = S(k) C and C_a the rows of atom a's orbitals (plus the rank-one term that keeps N fixed).
A constant v changes nothing (gauge): the shifts are reported with mean zero.
(DFTB's self-consistent-charge shifts, Elstner et al., Phys. Rev. B 58, 7260 (1998), are of this form.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocksparse import BlockSparse
from .errors import DftplugError
from .hamiltonian import Hamiltonian
from .kspace import BlochSum, electrons_per_state, solve_generalized
from .occupations import Smearing, fermi_level, monkhorst_pack, response_kernel


@dataclass
class ChargeConstraint:
    """Result of :func:`constrain_charges`: the shifted H, the shifts v (natoms,) eV (mean 0), the
    Mulliken charges reached and the largest remaining |q − target| (e), and the Newton steps taken."""

    H: BlockSparse
    shifts: np.ndarray
    charges: np.ndarray
    residual: float
    iterations: int


def atom_shift_matrix(S: BlockSparse, shifts: np.ndarray) -> BlockSparse:
    """½ (v_a + v_b) S_ij(R) on S's pattern, one channel (eV)."""
    pairs = S.pairs
    per_block = 0.5 * (shifts[pairs[:, 0]] + shifts[pairs[:, 1]])
    return S.copy(S.data[:1] * np.repeat(per_block, S.block_sizes())[None])


class _MeshState:
    """Eigenpairs of H on the k-mesh with E_F, Mulliken charges and (on demand) ∂q/∂v."""

    def __init__(self, H: BlockSparse, S: BlockSparse, kpts, weights, nelec, smearing: Smearing, atom_of_orbital):
        hk = BlochSum(H).dense(kpts)                                   # (S, nk, nao, nao)
        self.sk = BlochSum(S).dense(kpts)[0]                           # (nk, nao, nao)
        sol = solve_generalized(hk, self.sk[None])
        self.g = electrons_per_state(H.nspin)
        self.fermi = fermi_level(sol.energies, weights, nelec, smearing, per_state=self.g)
        self.energies, self.vectors, self.weights = sol.energies, sol.vectors, weights
        self.smearing, self.atom_of_orbital = smearing, atom_of_orbital
        self.natoms = int(atom_of_orbital.max()) + 1
        occ = smearing.occupation(sol.energies, self.fermi)
        w_vec = self.sk[None] @ sol.vectors                            # W = S C, (S, nk, nao, nb)
        per_orbital = self.g * np.einsum("k,skin,skn,skin->i", weights, sol.vectors, occ, np.conj(w_vec)).real
        self.charges = np.bincount(atom_of_orbital, per_orbital, self.natoms)
        self._w = w_vec

    def jacobian(self) -> np.ndarray:
        """∂q_a/∂v_b (natoms, natoms) in e/eV (module docstring)."""
        chi = np.zeros((self.natoms, self.natoms))
        fermi_num = np.zeros(self.natoms)   # Σ w f' Z^a_nn  and the same for X^b (equal: Re of the same trace)
        fermi_den = 0.0
        rows = [np.nonzero(self.atom_of_orbital == a)[0] for a in range(self.natoms)]
        for s in range(self.vectors.shape[0]):
            for k, wk in enumerate(self.weights):
                c, w = self.vectors[s, k], self._w[s, k]
                f = response_kernel(self.energies[s, k], self.fermi, self.smearing)
                z = np.stack([np.conj(w[r]).T @ c[r] for r in rows])   # (natoms, nb, nb)
                x = 0.5 * (z + np.conj(np.swapaxes(z, 1, 2)))
                nb2 = f.size
                chi += wk * self.g * np.real(np.swapaxes(z, 1, 2).reshape(self.natoms, nb2)
                                             @ (f[None] * x).reshape(self.natoms, nb2).T)
                diag_f = np.diag(f)
                fermi_num += wk * np.real(np.einsum("n,ann->a", diag_f, z))
                fermi_den += wk * diag_f.sum()
        if abs(fermi_den) > 1e-12:
            chi -= self.g * np.outer(fermi_num, fermi_num) / fermi_den
        return chi


def constrain_charges(h: Hamiltonian, target: np.ndarray, tolerance: float = 1e-5, max_steps: int = 8,
                      mesh=None) -> ChargeConstraint:
    """Shift ``h.H`` atom by atom (module docstring) until its Mulliken charges on the run's k-mesh
    (``h.settings``, or ``mesh``) and smearing equal ``target`` (natoms,) e within ``tolerance``.
    ``target`` is rescaled to sum to ``h.nelec``. nspin 1 and 2 (charges summed over spins)."""
    if h.H is None or h.S is None or h.nelec is None:
        raise DftplugError("a charge constraint needs H, S and the electron count")
    if h.H.nspin == 4:
        raise DftplugError("charge constraint: spin-orbit (nspin 4) Hamiltonians are not supported")
    target = np.asarray(target, float)
    if target.shape != (h.natoms,):
        raise DftplugError(f"charge constraint: {target.shape} target charges for {h.natoms} atoms")
    target = target + (h.nelec - target.sum()) / h.natoms
    mesh = mesh or h.settings.get("kmesh") or (1, 1, 1)
    kpts, weights = monkhorst_pack(mesh, h.settings.get("kmesh_shift", (0, 0, 0)))
    smearing = Smearing.from_settings(h.settings)
    atom_of_orbital = np.repeat(np.arange(h.natoms), h.norb())
    S = h.S.with_pairs(h.S.pairs)
    shifts = np.zeros(h.natoms)
    H = h.H
    for step in range(max_steps + 1):
        state = _MeshState(H, S, kpts, weights, h.nelec, smearing, atom_of_orbital)
        miss = state.charges - target
        if np.abs(miss).max() < tolerance or step == max_steps:
            break
        chi = state.jacobian()
        # χ Δv = −miss with Σ Δv = 0 (χ's null space is the uniform shift)
        lhs = np.vstack([chi, np.ones((1, h.natoms))])
        dv = np.linalg.lstsq(lhs, np.concatenate([-miss, [0.0]]), rcond=None)[0]
        shifts = shifts + dv
        H = h.H + _spin_copies(atom_shift_matrix(S, shifts), h.H.nspin)
    shifts = shifts - shifts.mean()
    return ChargeConstraint(H, shifts, state.charges, float(np.abs(miss).max()), step)


def _spin_copies(m: BlockSparse, nspin: int) -> BlockSparse:
    """One-channel ``m`` repeated on ``nspin`` channels."""
    return m if nspin == 1 else m.copy(np.repeat(m.data, nspin, axis=0))

"""How good an SCF starting guess is: the density matrix of a guess H against that of H_scf.

What costs a restarted SCF iterations is the error of the starting *density*, not of H element by
element (issue 16: noise of the model's size on H costs 6–7 iterations, the model's coherent errors 10).
For a guess H_g and the converged H both are filled like the run (its k-mesh, smearing and electron
count, :mod:`dftplug.density`), giving ρ_g(k) and ρ(k), ΔD(k) = ρ_g(k) − ρ(k) (ρ(k) = Σ_n f_n c_n c_n†,
spin-summed for nspin 1, per channel for nspin 2, spinor for nspin 4). Reported:

* Mulliken gross orbital populations q_μ = Σ_k w_k Re[ρ(k) S(k)]_μμ (Mulliken 1955), per atom
  Q_a = Σ_{μ∈a} q_μ; the charge error δQ_a = Q_a^g − Q_a (electrons): max |δQ_a| and RMS over the atoms;
* the population error Σ_μ |δq_μ| / N_e, the orbital-resolved analogue of ABACUS's first-iteration
  density residual ∫|Δρ| d³r / N_e;
* ‖ΔD‖_S = [Σ_k w_k Σ_spin Tr(ΔD S ΔD S) / N_e]^{1/2}, the S-metric (occupied-subspace) distance per
  electron, dimensionless: ‖ρ‖²_S = 2 N_e for a spin-summed insulator;
* the Hartree energy (meV) of the charge error, the δQ_a spread as Gaussians of width ``charge_width``
  (Å): E = (2π e²/V) Σ_{G≠0} |Σ_a δQ_a e^{−iG·τ_a}|² e^{−G² s²} / G² for a periodic cell (Ewald's
  reciprocal sum; Gaussian charges need no real-space part), ½ Σ_ab δQ_a δQ_b e² erf(r_ab/2s)/r_ab
  for a molecule (``pbc`` all False); None for slabs and wires. Charge moved coherently between atoms
  costs more than the same amount scattered.

Everything is invariant under H_g → H_g + μS (a constant potential moves E_F, not the density).
The converged state can be prepared once (:class:`GuessReference`, the fast path a training loop
calls per validation step); each guess then costs one diagonalisation on the run's k-mesh, the rest
works on the occupied states only (O(m² n_occ) per k-point, not O(m³)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.units import Bohr, Hartree
from scipy.special import erf

from .blocksparse import BlockSparse
from .density import run_mesh
from .errors import DftplugError
from .hamiltonian import Hamiltonian
from .kspace import OVERLAP_TOLERANCE, BlochSum, electrons_per_state, solve_at
from .occupations import Smearing, fermi_level, monkhorst_pack

COULOMB_EV_ANGSTROM = Hartree * Bohr
"""e²/(4πε₀) in eV·Å (14.3996)."""


@dataclass
class FilledState:
    """One H filled like the run, kept on its occupied subspace: ``vectors`` (nch, nk, m, nb) the
    lowest nb eigenvectors (c_n† S c_m = δ_nm), ``occupations`` (nch, nk, nb) electrons per state,
    ``overlap_vectors`` S(k) c_n (same shape), the Fermi level (eV); nb covers every state holding
    more than 1e-14 electrons, so ρ(k) = Σ_n f_n c_n c_n† is exact on it."""

    vectors: np.ndarray
    occupations: np.ndarray
    overlap_vectors: np.ndarray
    fermi_level: float

    def s_norm2(self, other: "FilledState") -> np.ndarray:
        """‖ρ − ρ'‖²_S = Tr(ΔD S ΔD S) per k-point, summed over channels, shape (nk,):
        Σf² + Σf'² − 2 Σ_nm f_n f'_m |c_n† S c'_m|² (both sets S-orthonormal)."""
        cross = np.conj(np.swapaxes(self.vectors, -1, -2)) @ other.overlap_vectors    # (nch, nk, nb, nb')
        mixed = np.einsum("ckn,ckm,cknm->k", self.occupations, other.occupations, np.abs(cross) ** 2)
        return (np.einsum("ckn->k", self.occupations ** 2) + np.einsum("ckn->k", other.occupations ** 2)
                - 2 * mixed)


@dataclass
class GuessReference:
    """The converged state a guess is compared with, prepared once.

    kpts (nk, 3), weights (nk,): the run's mesh (time-reversal pairs merged except for nspin 4);
    S (BlockSparse), sk (nk, m, m) S(k) (⊗ 1₂ for spinors); state: the occupied states of H_scf;
    populations (m,) Mulliken q_μ of it; orbital_atom (m,) the atom of each orbital (spinor) index;
    positions (natoms, 3) Å, cell (3, 3) Å, pbc (3,) for the Hartree energy; m = nao, or 2 nao for nspin 4.
    """

    kpts: np.ndarray
    weights: np.ndarray
    S: BlockSparse
    sk: np.ndarray
    smearing: Smearing
    nelec: float
    nspin: int
    state: FilledState
    populations: np.ndarray
    orbital_atom: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    tolerance: float = OVERLAP_TOLERANCE

    @classmethod
    def from_hamiltonian(cls, h: Hamiltonian, mesh=None, smearing: Smearing | None = None,
                         nelec: float | None = None, shift=None,
                         tolerance: float = OVERLAP_TOLERANCE) -> "GuessReference":
        """The reference of ``h.H`` (converged), ``h.S`` on the run's mesh and smearing
        (defaults as :func:`dftplug.density.run_mesh`)."""
        mesh, shift, smearing, nelec = run_mesh(h, mesh, shift, smearing, nelec)
        nspin = h.H.nspin
        kpts, weights = monkhorst_pack(mesh, shift, time_reversal=nspin != 4)
        sk = BlochSum(h.S).dense(kpts, spinor=nspin == 4)[0]
        orbital_atom = np.repeat(np.arange(h.natoms), h.norb())
        if nspin == 4:
            orbital_atom = np.repeat(orbital_atom, 2)
        ref = cls(kpts, weights, h.S, sk, smearing, float(nelec), nspin, None, None, orbital_atom,
                  h.atoms.positions.copy(), h.atoms.cell.array.copy(), np.asarray(h.atoms.pbc), tolerance)
        ref.state = ref.fill(h.H)
        ref.populations = ref.mulliken(ref.state)
        return ref

    def fill(self, H: BlockSparse) -> FilledState:
        """The occupied states of ``H`` (eV) with this overlap, mesh, smearing and electron count."""
        if H.nspin != self.nspin:
            raise DftplugError(f"a guess with {H.nspin} spin channels for a reference with {self.nspin}")
        sol = solve_at(H, self.S, self.kpts, tolerance=self.tolerance)
        g = electrons_per_state(self.nspin)
        ef = fermi_level(sol.energies, self.weights, self.nelec, self.smearing, per_state=g)
        occ = g * self.smearing.occupation(sol.energies, ef)
        nb = int(np.max(np.nonzero(np.any(occ > 1e-14, axis=(0, 1)))[0], initial=-1)) + 1
        vectors = sol.vectors[..., :nb]
        return FilledState(vectors, occ[..., :nb], self.sk @ vectors, ef)

    def mulliken(self, state: FilledState) -> np.ndarray:
        """Gross orbital populations q_μ = Σ_k w_k Σ_ch Re[ρ(k) S(k)]_μμ
        = Σ_k w_k Σ_ch,n f_n Re[c_μn conj((S c_n)_μ)], shape (m,) (electrons)."""
        return np.einsum("ckin,ckin,ckn,k->i", state.vectors, np.conj(state.overlap_vectors),
                         state.occupations, self.weights, optimize=True).real

    def charge_error_energy(self, dq: np.ndarray, width: float) -> float | None:
        """Hartree energy (eV) of per-atom charges ``dq`` (natoms,) as Gaussians of width ``width`` Å."""
        if np.all(self.pbc):
            return periodic_gaussian_energy(dq, self.positions, self.cell, width)
        if not np.any(self.pbc):
            r = np.linalg.norm(self.positions[:, None] - self.positions[None], axis=-1)
            kernel = np.where(r > 0, erf(r / (2 * width)) / np.where(r > 0, r, 1.0), 1 / (width * np.sqrt(np.pi)))
            return float(0.5 * COULOMB_EV_ANGSTROM * dq @ kernel @ dq)
        return None


def periodic_gaussian_energy(q: np.ndarray, positions: np.ndarray, cell: np.ndarray, width: float,
                             accuracy: float = 1e-12) -> float:
    """Electrostatic energy (eV) per cell of neutral periodic Gaussian charges q (natoms,) e of width
    ``width`` Å at ``positions`` (natoms, 3) Å: (2π e²/V) Σ_{G≠0} |Σ_a q_a e^{−iG·τ_a}|² e^{−G²w²}/G²,
    G up to e^{−G²w²} = ``accuracy``."""
    recip = 2 * np.pi * np.linalg.inv(cell).T                           # rows b_i, a_i·b_j = 2π δ_ij
    gmax = np.sqrt(-np.log(accuracy)) / width
    nmax = np.ceil(gmax * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in nmax], indexing="ij"), -1).reshape(-1, 3)
    g = grid @ recip
    g2 = np.einsum("gi,gi->g", g, g)
    keep = (g2 > 0) & (g2 <= gmax * gmax)
    g, g2 = g[keep], g2[keep]
    rho = np.exp(-1j * g @ positions.T) @ q
    volume = abs(np.linalg.det(cell))
    return float(2 * np.pi * COULOMB_EV_ANGSTROM / volume * np.sum(np.abs(rho) ** 2 * np.exp(-g2 * width ** 2) / g2))


@dataclass
class GuessQuality:
    """Density error of one starting guess against the converged state (module docstring).

    charge_errors (natoms,) δQ_a in electrons; charge_error_max, charge_error_rms (e);
    population_error Σ|δq_μ|/N_e; dm_error_s ‖ΔD‖_S per electron (dimensionless);
    hartree_meV the Hartree energy of δQ (meV, None for mixed boundary conditions);
    fermi_shift_eV E_F(guess) − E_F(H_scf) (a constant shift of H_g moves only this).
    """

    charge_errors: np.ndarray
    charge_error_max: float
    charge_error_rms: float
    population_error: float
    dm_error_s: float
    hartree_meV: float | None
    fermi_shift_eV: float

    def as_dict(self) -> dict:
        """The scalar numbers (for JSON)."""
        return {"charge_error_max_e": self.charge_error_max, "charge_error_rms_e": self.charge_error_rms,
                "population_error": self.population_error, "dm_error_s": self.dm_error_s,
                "hartree_meV": self.hartree_meV, "fermi_shift_eV": self.fermi_shift_eV}


def guess_quality(h_guess: BlockSparse, reference: GuessReference | Hamiltonian,
                  charge_width: float = 1.0) -> GuessQuality:
    """Density error of the starting guess ``h_guess`` (H in eV, BlockSparse of the structure,
    the reference's spin channels) against ``reference``: a prepared :class:`GuessReference` (fast:
    one diagonalisation per call) or a converged :class:`Hamiltonian` (H, S, k-mesh, electron count;
    prepared here). ``charge_width``: Gaussian width (Å) of the charges in the Hartree energy."""
    ref = reference if isinstance(reference, GuessReference) else GuessReference.from_hamiltonian(reference)
    guess = ref.fill(h_guess)
    dq_orb = ref.mulliken(guess) - ref.populations
    dq = np.bincount(ref.orbital_atom, dq_orb, minlength=len(ref.positions))
    norm2 = float(ref.weights @ guess.s_norm2(ref.state))
    energy = ref.charge_error_energy(dq, charge_width)
    return GuessQuality(dq, float(np.abs(dq).max(initial=0.0)), float(np.sqrt(np.mean(dq ** 2))),
                        float(np.abs(dq_orb).sum() / ref.nelec), float(np.sqrt(max(norm2, 0.0) / ref.nelec)),
                        None if energy is None else 1e3 * energy, guess.fermi_level - ref.state.fermi_level)

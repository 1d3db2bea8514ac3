"""Density of states on a k-mesh, total and projected (Mulliken) per species and shell.

DOS_s(E) = (2/nspin) Σ_kn w_k δ_σ(E − ε_skn),  PDOS_s,g(E) = (2/nspin) Σ_kn w_k q_skn,g δ_σ(E − ε_skn)
with the Mulliken weight q_kn,g = Σ_{μ∈g} Re(c_μ* (S(k) c)_μ) (Σ_g q = 1) and the Gaussian
δ_σ(x) = e^{−(x/σ)²}/(σ√π) — the derivative of the Gaussian occupation of the same σ
(:meth:`Smearing.delta`), so ∫_{−∞}^{E_F} DOS = N exactly when E_F comes from that smearing.
States / eV / cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .basis import L_LETTERS
from .errors import DftplugError
from .hamiltonian import Hamiltonian
from .kspace import OVERLAP_TOLERANCE, BlochSum, solve_at
from .occupations import Smearing, fermi_level, monkhorst_pack

_REACH = 40.0  # states farther than this many σ from E add < e^{-40} (Fermi-Dirac tails) to DOS(E)


@dataclass
class DensityOfStates:
    """energy (ne,) eV; total (nspin, ne) states/eV/cell (nspin 1: both spins);
    projected {"Si:p": (nspin, ne)}; fermi_level (eV) from the mesh's own occupations."""

    energy: np.ndarray
    total: np.ndarray
    fermi_level: float | None
    projected: dict[str, np.ndarray] = field(default_factory=dict)

    def integrated(self) -> np.ndarray:
        """Running integral ∫_{E_0}^{E} DOS (trapezoid), shape (nspin, ne)."""
        de = np.diff(self.energy)
        steps = 0.5 * (self.total[:, 1:] + self.total[:, :-1]) * de
        return np.concatenate([np.zeros((self.total.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)

    def electrons_below(self, level: float | None = None) -> float:
        """∫_{E_0}^{level} DOS summed over spins (default level: the Fermi level)."""
        level = self.fermi_level if level is None else level
        return float(sum(np.interp(level, self.energy, run) for run in self.integrated()))


def orbital_groups(h: Hamiltonian) -> dict[str, np.ndarray]:
    """Orbital indices (unit cell) of every species/shell type, e.g. {"Si:s": [...], "Si:p": [...]}."""
    groups: dict[str, list[int]] = {}
    start = 0
    for sym in h.symbols:
        ls = h.basis.orbital_l(sym)
        for k, l in enumerate(ls):
            groups.setdefault(f"{sym}:{L_LETTERS[l]}", []).append(start + k)
        start += len(ls)
    return {g: np.array(v) for g, v in groups.items()}


def smeared_dos(energies, weights, grid, smearing: Smearing, projections=None) -> np.ndarray:
    """(2/nspin) Σ_kn w_k p_kn δ_σ(E − ε_kn)/σ on ``grid``; energies (nspin, nk, nb),
    projections (nspin, nk, nb) or None (p = 1). Returns (nspin, ne)."""
    e = np.asarray(energies)
    p = np.ones_like(e) if projections is None else projections
    wk = (2.0 / e.shape[0]) * np.asarray(weights)[None, :, None] * p
    ok = np.isfinite(e)
    out = np.empty((e.shape[0], len(grid)))
    reach = _REACH * smearing.sigma
    for s in range(e.shape[0]):
        order = np.argsort(e[s][ok[s]])
        states, wts = e[s][ok[s]][order], wk[s][ok[s]][order]
        for a in range(0, len(grid), 256):                                   # grid chunks: only the
            g = grid[a:a + 256]                                              # states within reach
            lo, hi = np.searchsorted(states, [g[0] - reach, g[-1] + reach])
            x = (g[:, None] - states[None, lo:hi]) / smearing.sigma
            out[s, a:a + 256] = smearing.delta(x) @ wts[lo:hi] / smearing.sigma
    return out


def density_of_states(h: Hamiltonian, mesh, sigma: float = 0.1, grid: np.ndarray | None = None,
                      occupation_smearing: Smearing | None = None, projected: bool = True,
                      tolerance: float = OVERLAP_TOLERANCE, progress: bool = False) -> DensityOfStates:
    """Total (and Mulliken-projected) DOS of ``h`` on a Γ-centred ``mesh``.

    ``sigma`` (eV) is the Gaussian width of the DOS (δ = e^{−x²}/(σ√π)); the Fermi level is
    found on the same mesh with ``occupation_smearing`` (default: the run's) for ``h.nelec``.
    ``grid`` defaults to steps of σ/4 from 5σ below the lowest to 5σ above the highest band.
    """
    if h.H is None or h.S is None:
        raise DftplugError("the DOS needs H and S")
    kpts, weights = monkhorst_pack(mesh)
    sol = solve_at(h.H, h.S, kpts, vectors=projected, tolerance=tolerance, progress=progress)
    occ_smearing = occupation_smearing or Smearing.from_settings(h.settings)
    ef = fermi_level(sol.energies, weights, h.nelec, occ_smearing) if h.nelec else None
    if grid is None:
        lo, hi = np.nanmin(sol.energies) - 5 * sigma, np.nanmax(sol.energies) + 5 * sigma
        grid = np.linspace(lo, hi, int(np.ceil((hi - lo) / (sigma / 4))) + 1)
    dos_smearing = Smearing("gaussian", sigma)
    out = DensityOfStates(grid, smeared_dos(sol.energies, weights, grid, dos_smearing), ef)
    if projected:
        sk = BlochSum(h.S).dense(kpts)[0]                                  # (nk, n, n)
        # q_skn,mu = Re(conj(c_mu) (S c)_mu)
        q = np.real(np.conj(sol.vectors) * (sk[None] @ sol.vectors))      # (nspin, nk, n_mu, n_band)
        for name, idx in orbital_groups(h).items():
            out.projected[name] = smeared_dos(sol.energies, weights, grid, dos_smearing,
                                              q[:, :, idx, :].sum(axis=2))
    return out

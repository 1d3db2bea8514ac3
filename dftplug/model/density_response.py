"""First-order density response to an error of H: the part of the loss that a restarted SCF sees.

A guess H_scf + δH is turned by the code into a density matrix; to first order in δH (eigenpairs
H(k) c_n = ε_n S(k) c_n of the converged H on the run's k-mesh, c_nᴴ S c_m = δ_nm, occupations
f_n = θ((E_F − ε_n)/σ) of the run's smearing):

    X(k)   = Cᴴ δH(k) C                               (δH in the eigenbasis)
    Y_nm   = F_nm X_nm,   F_nm = (f_n − f_m)/(ε_n − ε_m),   F_nn = f'(ε_n)  (n ≠ m degenerate: f')
    Y_nn   = f'(ε_n) (X_nn − δE_F),  δE_F = Σ_kn w_k f'_n X_nn / Σ_kn w_k f'_n   (N conserved)
    δDM(k) = g C Y Cᴴ                                 (g electrons per state)

(Adler–Wiser / Sternheimer linear response at fixed electron count.) Two numbers of it:

* ‖δDM‖²_S = Σ_k w_k Tr(δD S δD S) = g² Σ_k w_k Σ_nm |Y_nm|²  — the density error in the overlap
  metric, needing X alone (because Cᴴ S C = 1);
* the Mulliken charge error of each atom, δq_a = Σ_k w_k Σ_{i∈a} Re (δD(k) S(k))_ii
  = g Σ_k w_k Re Σ_{i∈a} Σ_n C_in (Y P)_ni,  P = Cᴴ S(k): charge moved between atoms, the coherent
  error that the SCF's Hartree response amplifies.

A constant shift δH = μ S gives X = μ 1, Y = 0: both are gauge invariant. Everything but δH is fixed
per structure (:func:`density_response_data`, computed once from the DFT H), so the loss terms are
linear in δH before squaring, cheap and exactly differentiable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dftplug.hamiltonian import Hamiltonian
from dftplug.kspace import BlochSum, electrons_per_state, solve_at
from dftplug.occupations import Smearing, fermi_level, monkhorst_pack, response_kernel

from .bloch import bloch_dense, bloch_index

ACTIVE = 1e-6  # bands with occupation or f'·σ above this are active: F_nm = 0 between two inactive ones


@dataclass
class DensityResponseData:
    """The converged H's eigenpairs on the run's k-mesh, for :func:`first_order_density`.

    Shapes: nk k-points (time-reversal reduced), S spin channels, nao orbitals = nb bands, of which
    the lowest na are active (occupied or at E_F; F_nm vanishes between two inactive bands, so X is needed
    on the active rows only: na ≈ N_e/2 ≪ nb, the cost of the loss drops by nb/na).
    phase : list over edge types of (nk, E_t) complex  e^{i2πk·R} of the structure's edges
    orbital_index : list over edge types of (E_t, dim_t) long  row·nao + column of each block element
    weights : (nk,)  k weights (sum 1);  vectors : (nk, S, nao, nb) complex C
    projector : (nk, S, nb, nao) complex  P = Cᴴ S(k)
    response : (nk, S, na, nb)  F_nm of the active rows, with f'(ε_n) on the diagonal (1/eV)
    atom_of_orbital : (nao,) long;  electrons_per_state : g
    baseline : (2,)  ‖δDM‖²_S and Σ_a δq_a² of the H0 guess (δH = H0 − H_scf), the scales of the loss
    """

    nao: int
    phase: list
    orbital_index: list
    weights: torch.Tensor
    vectors: torch.Tensor
    projector: torch.Tensor
    response: torch.Tensor
    atom_of_orbital: torch.Tensor
    electrons_per_state: float
    baseline: torch.Tensor


def density_response_data(h: Hamiltonian, pairs: np.ndarray, type_edges: list, layout) -> DensityResponseData:
    """Eigenpairs of ``h.H`` (converged) on the run's k-mesh and smearing (``h.settings``), and the
    H0 guess's first-order errors as the scale (module docstring). ``pairs``/``type_edges``: the
    graph's edges (:func:`.graph.build_graph`)."""
    mesh = h.settings.get("kmesh") or (1, 1, 1)
    kpts, weights = monkhorst_pack(mesh, h.settings.get("kmesh_shift", (0, 0, 0)))
    smearing = Smearing.from_settings(h.settings)
    sol = solve_at(h.H, h.S, kpts)
    g = electrons_per_state(h.H.nspin)
    ef = fermi_level(sol.energies, weights, h.nelec, smearing, per_state=g)
    sk = BlochSum(h.S).dense(kpts)[0]                                  # (nk, nao, nao)
    vectors = np.swapaxes(sol.vectors, 0, 1)                           # (nk, S, nao, nb)
    projector = np.conj(np.swapaxes(vectors, -1, -2)) @ sk[:, None]
    x = (ef - sol.energies) / smearing.sigma
    active = (smearing.occupation(sol.energies, ef) > ACTIVE) | (smearing.delta(x) > ACTIVE)
    na = max(1, int(active.sum(-1).max()))                             # a prefix: energies ascend
    response = np.swapaxes(response_kernel(sol.energies, ef, smearing)[..., :na, :], 0, 1)
    norb = h.norb()
    phase, orbital_index, nao = bloch_index(kpts, pairs, type_edges, layout, norb)
    data = DensityResponseData(
        nao, phase, orbital_index, torch.from_numpy(weights), torch.from_numpy(vectors),
        torch.from_numpy(projector), torch.from_numpy(response),
        torch.from_numpy(np.repeat(np.arange(h.natoms), norb)), g, torch.ones(2, dtype=torch.float64))
    h0_error = BlochSum(h.delta_h()).dense(kpts)                      # (S, nk, nao, nao), −(H0 − H_scf)
    dm2, dq = _response_from_dense(torch.from_numpy(np.swapaxes(h0_error, 0, 1)), data, h.natoms)
    data.baseline = torch.stack([dm2, (dq ** 2).sum()]).double()
    # single precision from here: the loss needs no more, and a 64-atom cell's eigenvectors are 44 MB so
    data.vectors, data.projector = data.vectors.to(torch.complex64), data.projector.to(torch.complex64)
    data.response = data.response.float()
    return data


def _response_from_dense(dh: torch.Tensor, d: DensityResponseData, natoms: int):
    """(‖δDM‖²_S, δq (natoms,)) of δH(k) (nk, S, nao, nao) (module docstring), from the active rows
    Y_{A,:} of the Hermitian Y (the rows of inactive bands are the conjugates of the active columns)."""
    c = d.vectors.to(dh.dtype)
    na = d.response.shape[-2]
    ca, rest = c[..., :na], c[..., na:]
    x = ca.conj().transpose(-1, -2) @ dh @ c                           # (nk, S, na, nb)
    w = d.weights.to(d.response.dtype)
    f = d.response.to(x.real.dtype)
    diag_f = torch.diagonal(f[..., :na], dim1=-2, dim2=-1)             # f'(ε_n)
    x_diag = torch.diagonal(x[..., :na], dim1=-2, dim2=-1).real
    norm = (w[:, None, None] * diag_f).sum()
    shift = (w[:, None, None] * diag_f * x_diag).sum() / norm if bool(norm.abs() > 1e-12) else x_diag.new_zeros(())
    y = f * x
    y = torch.cat([y[..., :na] - torch.diag_embed(diag_f * shift).to(y.dtype), y[..., na:]], dim=-1)
    g = d.electrons_per_state
    wk = w[:, None, None, None]
    sq = y.real ** 2 + y.imag ** 2                                      # |Y|², smooth at Y = 0 (unlike abs)
    dm2 = g * g * ((wk * sq[..., :na]).sum() + 2 * (wk * sq[..., na:]).sum())
    p = d.projector.to(y.dtype)
    cw = w.to(y.dtype)
    per_orbital = torch.einsum("k,ksin,ksni->i", cw, ca, y @ p)
    per_orbital = per_orbital + torch.einsum("k,ksin,ksni->i", cw, rest,
                                             y[..., na:].conj().transpose(-1, -2) @ p[..., :na, :])
    per_orbital = g * per_orbital.real
    dq = torch.zeros(natoms, dtype=per_orbital.dtype, device=per_orbital.device)
    return dm2, dq.index_add(0, d.atom_of_orbital, per_orbital)


def first_order_density(res_blocks: list, type_graph: list, n: int, d: DensityResponseData, natoms: int):
    """(‖δDM‖²_S, δq per atom) of structure ``n`` for the residual blocks δH = H_pred − H_scf (eV),
    T × (E_t, S, dim_t) row-major (module docstring)."""
    dh = bloch_dense(res_blocks, type_graph, n, d.phase, d.orbital_index, d.nao)
    return _response_from_dense(dh, d, natoms)

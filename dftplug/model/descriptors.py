"""Atomic-environment descriptors of each edge for the closed-form linear response.

The atom density of atom i in radial channel n, neighbour species s and angular momentum L
(the ACE / SOAP "A basis", Drautz, PRB 99, 014104 (2019); Bartók et al., PRB 87, 184115 (2013)):

    A_i^{(n s L)}_M = (1/n̄) Σ_{k ≠ i, species s} R_n(|r_ik|) Y_LM(r̂_ik)          (parity (−1)^L)

with R_n Gaussians on [0, r_max] times a cosine envelope and Y e3nn's real harmonics
("component" normalisation). From it:

* invariants of each atom: the two-body density u_i^{(n s)} = A_i^{(n s 0)} and the power
  spectrum p_i^{(n s, n' s', L)} = Σ_M A_i^{(n s L)}_M A_i^{(n' s' L)}_M / (2L + 1) (three-body:
  bond angles around i); an edge (i, j) gets u_i + u_j and p_i + p_j;
* bond-angle invariants of an edge (i, j), L ≥ 1 (three-body, relative to the bond itself):
  a_ij^{(n s L)} = Σ_M Y_LM(r̂_ij) A_i^{(n s L)}_M / (2L + 1) = (1/n̄) Σ_k R_n(r_ik) P_L(cos θ_jik),
  and a_ji likewise at j (with r̂_ji = −r̂_ij); the edge gets a_ij + a_ji and a_ij a_ji, both
  unchanged when i and j are swapped (zero on-site);
* equivariant channels of an edge (i, j) for every L: Y_L(r̂_ij) (zero on-site), A_i^{(L)} and
  A_j^{(L)} — vectors of irrep (L, (−1)^L) that the linear response may combine with the blocks'
  irreps of the same type (the two-centre Slater–Koster direction and the crystal field of
  the neighbours).

Shapes: N atoms, E edges; invariants (E, num_invariants), equivariants L → (E, channels, 2L + 1).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import RadialBasis, scatter_sum
from .convolution import edge_harmonics
from .graph import Graph


class EdgeDescriptors(nn.Module):
    """Invariant and equivariant descriptors of every edge of a graph (module docstring)."""

    def __init__(self, nspecies: int, r_max: float, num_radial: int, lmax: int, avg_neighbors: float):
        super().__init__()
        self.nspecies, self.lmax, self.norm = nspecies, lmax, 1.0 / max(avg_neighbors, 1.0)
        self.radial = RadialBasis(r_max, num_radial)
        self.num_radial = num_radial
        nch = num_radial * nspecies
        self.num_invariants = nch + (lmax + 1) * nch * (nch + 1) // 2 + 2 * lmax * nch
        self.num_equivariant = 1 + 2 * nch  # Y(r̂_ij), A_i, A_j
        iu = torch.triu_indices(nch, nch)
        self.register_buffer("pair_rows", iu[0], persistent=False)
        self.register_buffer("pair_cols", iu[1], persistent=False)

    def atom_density(self, g: Graph, sh: torch.Tensor) -> list[torch.Tensor]:
        """A_i per L: (N, num_radial · nspecies, 2L + 1); ``sh`` = :func:`.convolution.edge_harmonics` of the edges."""
        r = g.edge_vec.norm(dim=-1)
        onehot = nn.functional.one_hot(g.species[g.edge_dst], self.nspecies).to(sh.dtype)
        rad = (self.radial(r) * (r > 1e-8).to(sh.dtype)[:, None])[:, None, :] * onehot[:, :, None]  # (E, species, n)
        rad = rad.flatten(1) * self.norm
        return [scatter_sum(rad[:, :, None] * y[:, None, :], g.edge_src, len(g.species)) for y in self._by_l(sh)]

    def _by_l(self, sh: torch.Tensor) -> list[torch.Tensor]:
        """(E, (lmax+1)²) → [Y_L (E, 2L + 1) for L = 0..lmax]."""
        return list(torch.split(sh, [2 * L + 1 for L in range(self.lmax + 1)], dim=-1))

    def forward(self, g: Graph):
        """(invariants (E, num_invariants), equivariants [L → (E, num_equivariant, 2L + 1)])."""
        sh = edge_harmonics(g.edge_vec, self.lmax).to(g.edge_vec.dtype)
        a = self.atom_density(g, sh)
        src, dst = g.edge_src, g.edge_dst
        spectrum = [(x[:, self.pair_rows] * x[:, self.pair_cols]).sum(-1) / (2 * L + 1) for L, x in enumerate(a)]
        atom_inv = torch.cat([a[0][:, :, 0]] + spectrum, dim=-1)  # (N, nch + spectrum)
        sh = sh * (g.edge_vec.norm(dim=-1, keepdim=True) > 1e-8).to(sh.dtype)  # Y(r̂_ij) = 0 on-site
        equi, angles = [], []
        for L, (x, y) in enumerate(zip(a, self._by_l(sh))):
            equi.append(torch.cat([y[:, None, :], x[src], x[dst]], dim=1))
            if L > 0:  # Y_L(r̂_ji) = (−1)^L Y_L(r̂_ij)
                a_ij = (x[src] * y[:, None, :]).sum(-1) / (2 * L + 1)
                a_ji = (-1) ** L * (x[dst] * y[:, None, :]).sum(-1) / (2 * L + 1)
                angles += [a_ij + a_ji, a_ij * a_ji]
        invariants = torch.cat([atom_inv[src] + atom_inv[dst]] + angles, dim=-1)
        return invariants, equi

"""Equivariant building blocks (e3nn); each declares its irreps in and out.

Conventions: node features (N, node_irreps), edge features (E, edge_irreps), spherical harmonics
Y(r̂_ij) (E, sh_irreps) with e3nn's "component" normalisation, radial features (E, num_basis).
"""
from __future__ import annotations

import math

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import nn

from .chunked import edge_chunks
from .convolution import make_convolution


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """out[k] = Σ_{e: index[e] = k} src[e], shape (n, *src.shape[1:])."""
    out = src.new_zeros((n,) + src.shape[1:])
    return out.index_add_(0, index, src)


def irreps_by_l(muls, irreps_needed: o3.Irreps, lmax: int, both_parities: bool) -> o3.Irreps:
    """Hidden irreps with multiplicity ``muls[l]`` (last value repeated for larger l) for every
    l ≤ ``lmax``: 0e plus, for l ≥ 1, both parities or (not ``both_parities``) only those in
    ``irreps_needed``, 0o included when needed (spin-vector channels of p-shells, :mod:`.spinor`).
    Sorted by (l, parity) except that 0e comes first (before 0o): :class:`GatedLinear` outputs its 0e
    scalars first, and the models read the invariants from the leading 0e block."""
    needed = {ir for _, ir in irreps_needed}
    out = []
    for l in range(lmax + 1):
        mul = muls[min(l, len(muls) - 1)]
        for p in (1, -1):
            ir = o3.Irrep(l, p)
            if ir == o3.Irrep(0, 1) or (both_parities and l > 0) or (not both_parities and ir in needed):
                out.append((mul, ir))
    irreps = o3.Irreps(out).sort().irreps.simplify()
    scalar = o3.Irrep(0, 1)
    return o3.Irreps([x for x in irreps if x.ir == scalar] + [x for x in irreps if x.ir != scalar])


class RadialBasis(nn.Module):
    """Gaussians on [0, r_max] times the envelope ½(cos(π r / r_max) + 1): (E,) Å → (E, num_basis).
    Smooth at r = 0 (on-site blocks) and zero beyond r_max."""

    def __init__(self, r_max: float, num_basis: int):
        super().__init__()
        self.r_max = float(r_max)
        self.register_buffer("centers", torch.linspace(0.0, r_max, num_basis))
        self.width = r_max / max(num_basis, 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        g = torch.exp(-0.5 * ((r[:, None] - self.centers) / self.width) ** 2)
        env = 0.5 * (torch.cos(math.pi * r / self.r_max) + 1.0) * (r < self.r_max)
        return g * env[:, None]


class ResponseBasis(nn.Module):
    """Coefficient functions b(e) of the closed-form linear responses: (E,) Å, (E, num_inv) →
    (E, size) = [Gaussians of r (num_radial), on-site indicator,
                 (shell functions of r (num_shells), on-site indicator) ⊗ v],
    v = the leading ``num_components`` principal components of the standardised invariants
    (:meth:`fit_invariants`; bounds the size when many species make many invariants) and the
    products v_a v_b (a ≤ b) of the leading ``num_quadratic`` of them (second order in the
    environment). The
    environment enters multiplied by a few broad Gaussians of the bond length (zero beyond
    r_max) or by the on-site indicator, so that its effect depends on the bond and vanishes
    where ΔH does."""

    def __init__(self, r_max: float, num_radial: int, num_inv: int, num_shells: int, num_components: int,
                 num_quadratic: int = 0):
        super().__init__()
        self.radial = RadialBasis(r_max, num_radial)
        self.shells = RadialBasis(r_max, num_shells)
        k = min(num_components, num_inv)
        q = torch.triu_indices(min(num_quadratic, k), min(num_quadratic, k))
        self.register_buffer("quad_a", q[0], persistent=False)
        self.register_buffer("quad_b", q[1], persistent=False)
        self.size = num_radial + 1 + (num_shells + 1) * (k + q.shape[1])
        self.register_buffer("inv_mean", torch.zeros(num_inv))
        self.register_buffer("inv_projection", torch.eye(num_inv, k))

    @torch.no_grad()
    def fit_invariants(self, inv: torch.Tensor) -> None:
        """Standardise and project on the principal axes of the training edges' invariants (E, num_inv)."""
        inv = inv.double()
        mean = inv.mean(0)
        std = inv.std(0)
        # invariants (nearly) constant over the training edges carry no information: dropped
        # (standardising them would amplify rounding noise into the prediction)
        std = torch.where(std > 1e-6 * float(std.max().clamp_min(1e-300)), std, torch.full_like(std, math.inf))
        z = (inv - mean) / std
        axes = torch.linalg.eigh(z.T @ z)[1].flip(-1)  # principal axes, largest variance first
        self.inv_mean.copy_(mean)
        self.inv_projection.copy_(axes[:, :self.inv_projection.shape[1]] / std[:, None])

    def forward(self, r: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        v = (inv - self.inv_mean.to(inv.dtype)) @ self.inv_projection.to(inv.dtype)  # the fits run in float64
        v = torch.cat([v, v[:, self.quad_a] * v[:, self.quad_b]], dim=-1)
        onsite = (r < 1e-8).to(r.dtype)[:, None]
        gate = torch.cat([self.shells(r), onsite], dim=-1)
        return torch.cat([self.radial(r), onsite, (gate[:, :, None] * v[:, None, :]).flatten(1)], dim=-1)


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / RMS(x) per row: one invariant factor per atom or pair, so it is equivariant. Used on
    the inputs of each sub-layer (pre-norm) to keep deep stacks of tensor products bounded."""
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class GatedLinear(nn.Module):
    """Linear map irreps_in → irreps_out followed by a gate nonlinearity (NequIP / HamGNN):
    scalars (0e) pass through SiLU, every other irrep (pseudoscalars 0o included: SiLU is not odd)
    is multiplied by sigmoid of its own scalar gate."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps):
        super().__init__()
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir == o3.Irrep(0, 1)])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir != o3.Irrep(0, 1)])
        gates = o3.Irreps(f"{gated.num_irreps}x0e")
        self.gate = e3nn_nn.Gate(scalars, [torch.nn.functional.silu] * len(scalars),
                                 gates, [torch.sigmoid], gated)
        self.linear = o3.Linear(irreps_in, self.gate.irreps_in)
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), self.gate.irreps_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.linear(x))


class PairProduct(nn.Module):
    """h_i ⊗ h_j → irreps_out with learned path weights (the two-centre term of HamGNN's
    pair interaction): (E, node_irreps) × (E, node_irreps) → (E, irreps_out)."""

    def __init__(self, irreps_node: o3.Irreps, irreps_out: o3.Irreps):
        super().__init__()
        self.tp = o3.FullyConnectedTensorProduct(irreps_node, irreps_node, irreps_out)

    def forward(self, hi, hj):
        return self.tp(hi, hj)


class Interaction(nn.Module):
    """One message-passing layer updating atoms and atom pairs.

    Atoms:  m_i = (1/n̄) Σ_{j ∈ N(i)} [Conv(ĥ_j, Y(r̂_ij); w(r_ij, z_ij⁰)) + W ẑ_ij],
            h_i ← h_i + Gate(W'[ĥ_i, m_i]).
    Pairs:  z_ij ← z_ij + Gate(W''[ẑ_ij, ĥ_i ⊗ ĥ_j]).
    x̂ = :func:`rms_norm` (x); the residual streams h, z keep their magnitudes.
    The pair features need no convolution of their own: they start from the H0 and S blocks,
    which already carry the bond's direction in all their irreps.
    (E(3)-equivariant message passing as in NequIP / HamGNN; n̄ = mean neighbour count.)
    Conv is the back-end ``tensor_product`` of :mod:`.convolution`; with ``max_edges`` set
    (:func:`.chunked.chunked`) the per-edge work runs in edge chunks, messages summed chunk by chunk."""

    max_edges: int | None = None  # edge chunk size (None: all edges at once)
    progress = None               # tqdm bar advanced once per chunk, or None

    def __init__(self, irreps_node, irreps_edge, irreps_sh, n_inv, radial_hidden, avg_neighbors,
                 tensor_product="cg"):
        super().__init__()
        self.node_conv = make_convolution(tensor_product, irreps_node, irreps_sh, irreps_node, n_inv, radial_hidden)
        self.edge_to_node = o3.Linear(irreps_edge, irreps_node)
        self.node_update = GatedLinear(irreps_node + irreps_node, irreps_node)
        self.pair = PairProduct(irreps_node, irreps_edge)
        self.edge_update = GatedLinear(irreps_edge + irreps_edge, irreps_edge)
        self.norm = 1.0 / max(avg_neighbors, 1.0)

    def forward(self, h, z, geometry, invariants, src, dst):
        """h (N, irreps_node), z (E, irreps_edge), geometry EdgeGeometry (E), invariants (E, n_inv)."""
        hn, zn = rms_norm(h), rms_norm(z)
        chunks = edge_chunks(len(src), self.max_edges)
        m = h.new_zeros(h.shape)
        for sl in chunks:
            msg = self.node_conv(hn[dst[sl]], geometry[sl], invariants[sl]) + self.edge_to_node(zn[sl])
            m = m.index_add(0, src[sl], msg)
            self._tick()
        h = h + self.node_update(torch.cat([hn, m * self.norm], dim=-1))
        hn = rms_norm(h)
        out = []
        for sl in chunks:
            upd = torch.cat([zn[sl], self.pair(hn[src[sl]], hn[dst[sl]])], dim=-1)
            out.append(z[sl] + self.edge_update(upd))
            self._tick()
        return h, torch.cat(out) if len(out) > 1 else out[0]

    def _tick(self):
        if self.progress is not None:
            self.progress.update()


class SlotLeastSquares:
    """Normal equations of the closed-form responses, one per irrep slot: the features of an
    edge are b(e) ⊗ x (coefficient functions × input channels), one weight for all 2L+1
    components. :meth:`add` accumulates FᵀF and Fᵀy over batches, :meth:`solve` gives W
    (basis, channels in, channels out) or None where the slot saw no data (W stays 0)."""

    def __init__(self, num_slots: int):
        self.normal = [None] * num_slots
        self.rhs = [None] * num_slots

    def add(self, n: int, phi: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        """phi (E, K), x (E, C_in, 2L+1), y (E, C_out, 2L+1), all float64."""
        feats = torch.einsum("ek,eid->edki", phi, x).flatten(2).flatten(0, 1)
        y = y.transpose(1, 2).flatten(0, 1)
        self.normal[n] = feats.T @ feats if self.normal[n] is None else self.normal[n] + feats.T @ feats
        self.rhs[n] = feats.T @ y if self.rhs[n] is None else self.rhs[n] + feats.T @ y

    def solve(self, n: int, ridge: float, standardise: bool) -> torch.Tensor | None:
        """Ridge solution of slot n, penalty ``ridge`` × the mean diagonal of the (standardised)
        normal matrix. Standardised: features 1e6 below the slot's largest are noise (e.g. the
        antisymmetric p-p part of symmetric blocks) and must not get huge weights."""
        a = self.normal[n]
        if a is None or float(a.diagonal().max()) <= 0:
            return None  # no edges, or inputs all zero in this slot (e.g. an H–H pair's d channels)
        eye = torch.eye(len(a), dtype=a.dtype)
        if not standardise:
            return torch.linalg.solve(a + ridge * float(a.diagonal().mean()) * eye, self.rhs[n])
        scale = a.diagonal().clamp_min(0).sqrt()
        scale = scale.clamp_min(1e-6 * float(scale.max().clamp_min(1e-300)))
        a_std = a / scale[:, None] / scale[None, :]
        a_std = a_std + ridge * eye * a_std.diagonal().mean()
        return torch.linalg.solve(a_std, self.rhs[n] / scale[:, None]) / scale[:, None]


class BlockLinearResponse(nn.Module):
    """Equivariant linear map from a pair's own H0 and S blocks and the edge's equivariant
    descriptors to its ΔH block, modulated by invariants of the bond and its surroundings (a
    "linear response" baseline the network then corrects):

        ΔH^{(L,p)}_{e,o,M} = Σ_k b_k(e) Σ_c W^{(L,p)}_{k,c,o} x^{(L,p)}_{e,c,M}

    x = irreps features of [H0 (each spin), S] of edge e (channels c of one irrep type (L, p)),
    plus, for the natural parity p = (−1)^L, the equivariant descriptors of the edge (bond
    direction Y_L(r̂), atom densities A_i, A_j: :mod:`.descriptors`);
    b(e) = :class:`ResponseBasis` of r_e (Å) and the edge's invariants (two-body densities, power
    spectra and bond angles, :mod:`.descriptors`). Only channels of the same irrep
    are mixed, with the same weight for all 2L+1 components M: equivariant. W is the closed-form
    ridge-regression fit to the training targets (:meth:`fit`), kept fixed while the network
    learns what it leaves (buffers, not parameters: gradient steps would only blur the optimum).

    forward: h0 (E, S, dim), s (E, dim), r (E,), inv (E, num_inv), equi [L → (E, num_equi, 2L+1)]
    → (E, S, dim) eV.
    """

    def __init__(self, irreps: o3.Irreps, nspin: int, basis: ResponseBasis, num_equi: int = 0):
        super().__init__()
        self.irreps, self.nspin = o3.Irreps(irreps), nspin
        self.basis = basis
        self.num_equi = num_equi
        for n, (mul, ir) in enumerate(self.irreps):
            extra = num_equi if ir.p == (-1) ** ir.l else 0
            self.register_buffer(f"weight_{n}", torch.zeros(basis.size, (nspin + 1) * mul + extra, nspin * mul))

    @property
    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"weight_{n}") for n in range(len(self.irreps))]

    def _slots(self, x):
        """(E, C, dim) irreps features → per irrep slot (E, C·mul, 2L+1)."""
        return [x[:, :, sl].reshape(len(x), x.shape[1], mul, ir.dim).flatten(1, 2)
                for (mul, ir), sl in zip(self.irreps, self.irreps.slices())]

    def _inputs(self, h0, s, equi):
        """Per irrep slot: (E, channels, 2L+1) of [H0 spins, S] and the slot's descriptors."""
        out = self._slots(torch.cat([h0, s[:, None]], dim=1))
        if self.num_equi:
            out = [torch.cat([x, equi[ir.l].to(x.dtype)], dim=1) if ir.p == (-1) ** ir.l else x
                   for x, (_, ir) in zip(out, self.irreps)]
        return out

    def forward(self, h0, s, r, inv, equi=None):
        phi = self.basis(r, inv)
        outs = [torch.einsum("ek,eid,kio->eod", phi, x, w).reshape(len(r), self.nspin, w.shape[-1] // self.nspin
                                                                   * x.shape[-1])  # explicit: E may be 0
                for x, w in zip(self._inputs(h0, s, equi), self.weights)]
        return torch.cat(outs, dim=-1)

    @torch.no_grad()
    def fit(self, batches, ridge: float = 1e-3) -> None:
        """Least squares W from (h0, s, r, inv, equi, target) tuples, features standardised
        (:class:`SlotLeastSquares`)."""
        lsq = SlotLeastSquares(len(self.weights))
        for h0, s, r, inv, equi, target in batches:
            phi = self.basis(r, inv).double()
            equi = None if equi is None else [x.double() for x in equi]
            for n, (x, y) in enumerate(zip(self._inputs(h0.double(), s.double(), equi), self._slots(target))):
                lsq.add(n, phi, x, y.double())
        for n, w in enumerate(self.weights):
            sol = lsq.solve(n, ridge, standardise=True)
            if sol is not None:
                w.copy_(sol.reshape(w.shape).to(w.dtype))

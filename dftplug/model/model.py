"""The ΔH model: an E(3)-equivariant network on atoms and atom pairs that predicts H − H0.

Architecture (HamGNN-style message passing fed with NextHAM's H0 descriptors):

1. Encoding. Every block (i, j, R) of H0 (eV) and S is decomposed into irreps
   (:mod:`.irreps`), divided by its channel's RMS over the training set and mapped by a linear
   layer specific to the species pair to the hidden pair features z_ij. Atoms start from a
   species embedding plus a linear map of their on-site pair features z_ii(0).
2. ``num_layers`` :class:`~.blocks.Interaction` layers exchange information between atoms and pairs
   through tensor products with Y(r̂_ij), with radial weights from Gaussians of |r_ij| (Å) and the
   invariant pair features.
3. Readout. A species-pair linear layer maps z_ij to the irreps of the ΔH block, scaled per irrep
   channel and per bond-length bin by the RMS of what the linear response leaves (so the network
   works at the size of the error it must fix: meV on-site, µeV at 10 Å), and adds the linear
   response (:class:`~.blocks.BlockLinearResponse`: an equivariant linear map of the pair's own
   H0 and S blocks, modulated by the bond length and the two atoms' environment invariants,
   fitted in closed form before training; on ABACUS si8 alone it brings the held-out MAE from
   1.17 meV (H0) to ~0.07 meV). The block is made Hermitian by construction:
       ΔH_ij(R) ← ½ [X_ij(R) + X_ji(−R)ᵀ]
   (the transpose acts on irreps features as the fixed orthogonal map of
   :meth:`.irreps.PairLayout.transpose_matrix`), then a per-structure constant is added:
       ΔH_ij(R) += μ S_ij(R),  μ = mean over atoms of a scalar readout (one per spin) times
   the RMS over the training structures of the best μ left by the linear response (eV).
   The μ·S channel carries the shift of the potential's zero reference between H0 and H_scf
   (0.28 eV on ABACUS si8, ~2.9 eV on ABACUS graphene) as one intensive number instead of
   asking every block to learn it (NextHAM's gauge-aware target, 2025).

References: HamGNN, Zhong et al., npj Comput. Mater. 9, 182 (2023); DeepH-E3, Gong et al.,
Nat. Commun. 14, 2848 (2023); NequIP, Batzner et al., Nat. Commun. 13, 2453 (2022).

Every operation is O(3)-equivariant (rotations and inversion, parity of each irrep tracked by e3nn)
and uses only relative positions, so predictions are translation invariant.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from e3nn import o3
from torch import nn

from .blocks import (BlockLinearResponse, GatedLinear, Interaction, RadialBasis, ResponseBasis, irreps_by_l,
                     scatter_sum)
from .descriptors import EdgeDescriptors
from .convolution import EdgeGeometry
from .graph import Graph
from .irreps import BasisLayout


@dataclass
class ModelConfig:
    """Hyper-parameters (all stored in the checkpoint)."""

    num_layers: int = 2
    node_mul: tuple = (16, 8, 4)      # multiplicity of node irreps for l = 0, 1, 2 (both parities)
    edge_mul: tuple = (16, 8, 4, 2)   # multiplicity of pair irreps by l (up to the blocks' lmax)
    num_basis: int = 10               # Gaussians of |r_ij|
    radial_hidden: int = 32           # hidden width of the radial-weight MLPs
    r_max: float = 10.0               # Å, radial envelope cutoff (set from the data by training)
    avg_neighbors: float = 100.0      # mean edges per atom (set from the data by training)
    linear_response: bool = True      # fit and add the closed-form linear response of H0/S
    response_basis: int = 12          # Gaussians of |r_ij| of the linear response
    response_r_max: float = 12.0      # Å, its cutoff (set by training: 99.9 % of Σ|ΔH| lies inside)
    response_ridge: float = 1e-3      # its ridge penalty (relative; 1e-3 generalises on si8)
    response_shells: int = 3          # broad Gaussians of |r_ij| that modulate the environment invariants
    response_components: int = 24     # principal components of the invariants the linear response uses
    response_quadratic: int = 0       # ... and the pairwise products of the leading ones
    env_basis: int = 3                # radial channels per neighbour species of the atom densities
    env_r_max: float = 6.0            # Å, cutoff of the atom densities (:mod:`.descriptors`)
    dtype: str = "float32"
    tensor_product: str = "cg"        # node convolution back-end: "cg" (e3nn) or "local_frame" (SO(2))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@contextmanager
def default_dtype(dtype: torch.dtype):
    """e3nn computes its Clebsch–Gordan buffers in the default dtype: build float64 models under
    float64 so that they are exact to ~1e-15, not to float32's 1e-7."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _rms(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean().sqrt()) if x.numel() else 0.0


def _channel_rms(x: torch.Tensor, chan: torch.Tensor) -> torch.Tensor:
    """RMS over rows and over the components of each irrep channel, per feature (dim,); tiny or
    empty channels get 1e-3 × the largest (so that dividing by them is safe)."""
    nchan = int(chan.max()) + 1
    if len(x) == 0:
        return torch.ones(len(chan), dtype=torch.float64)
    ms = torch.zeros(nchan, dtype=torch.float64).index_add_(0, chan, x.double().pow(2).mean(0))
    cnt = torch.zeros(nchan, dtype=torch.float64).index_add_(0, chan, torch.ones(len(chan), dtype=torch.float64))
    rms = (ms / cnt).sqrt()
    floor = 1e-3 * rms.max().clamp_min(1e-12)
    return torch.where(rms > floor, rms, floor)[chan]


class DeltaHModel(nn.Module):
    """Predicts ΔH = H − H0 (eV) on every edge of a :class:`~.graph.Graph` (see module docstring).

    ``forward(graph)`` returns (blocks, mu): blocks is a list over edge types t of
    (E_t, nspin, dim_t) irreps features of ΔH (Hermitian by construction), mu (n_graphs, nspin) eV.
    Spin–orbit data (nspin 4) uses the subclass :class:`.spinor_model.SpinorDeltaHModel`
    (:func:`.build.make_model`); this class then carries its Re h_0 channel.
    """

    def __init__(self, layout: BasisLayout, config: ModelConfig | None = None):
        super().__init__()
        self.layout = layout
        self.config = config = config or ModelConfig()
        dtype = getattr(torch, config.dtype)
        with default_dtype(dtype):
            self._build(layout, config)
        self.to(dtype)

    def _build(self, layout: BasisLayout, c: ModelConfig):
        nspin, pairs = layout.block_channels, layout.pairs
        self.irreps_node = irreps_by_l(c.node_mul, layout.block_irreps, min(2, layout.lmax), True)
        self.irreps_sh = o3.Irreps.spherical_harmonics(self.irreps_node.lmax)
        self.irreps_edge = irreps_by_l(c.edge_mul, layout.block_irreps, layout.lmax, False)
        n_scalar_edge = self.irreps_edge.count("0e")
        self.radial = RadialBasis(c.r_max, c.num_basis)
        n_inv = c.num_basis + n_scalar_edge
        self.species_embedding = nn.Embedding(len(layout.species), self.irreps_node.count("0e"))
        self.encoders = nn.ModuleList(
            [o3.Linear(p.irreps * (nspin + 1), self.irreps_edge) for p in pairs])
        self.onsite_to_node = o3.Linear(self.irreps_edge, self.irreps_node)
        self.layers = nn.ModuleList([
            Interaction(self.irreps_node, self.irreps_edge, self.irreps_sh, n_inv, c.radial_hidden,
                        c.avg_neighbors, c.tensor_product) for _ in range(c.num_layers)])
        self.readout_edge = GatedLinear(self.irreps_edge, self.irreps_edge)
        self.readouts = nn.ModuleList([o3.Linear(self.irreps_edge, p.irreps * nspin) for p in pairs])
        self.descriptors = EdgeDescriptors(len(layout.species), c.env_r_max, c.env_basis, layout.lmax,
                                           c.avg_neighbors)
        self.response_functions = ResponseBasis(c.response_r_max, c.response_basis, self.descriptors.num_invariants,
                                                c.response_shells, c.response_components, c.response_quadratic)
        self.response = nn.ModuleList([BlockLinearResponse(p.irreps, nspin, self.response_functions,
                                                           self.descriptors.num_equivariant) for p in pairs])
        self.mu_readout = nn.Linear(self.irreps_node.count("0e"), nspin)  # in units of mu_scale
        self.register_buffer("mu_scale", torch.tensor(1e-2))  # eV, set from the data
        with torch.no_grad():  # start from ΔH = 0, i.e. exactly the H0 baseline
            for lin in self.readouts:
                lin.weight.zero_()
            self.mu_readout.weight.zero_()
            self.mu_readout.bias.zero_()
        self._scalar_edge = self.irreps_edge.slices()[0]  # 0e comes first after sorting
        for t, p in enumerate(pairs):
            q = layout.pairs[layout.partner_type(t)]
            self.register_buffer(f"transpose_{t}", torch.as_tensor(q.transpose_matrix(p)))
            self.register_buffer(f"input_scale_{t}", torch.ones(nspin + 1, p.dim))
            self.register_buffer(f"output_scale_{t}", torch.ones(p.dim))
            self.register_buffer(f"bond_scale_{t}", torch.ones(self._bond_bins(torch.tensor([c.r_max])).item() + 1))

    # ----------------------------------------------------------------- statistics
    @torch.no_grad()
    def set_statistics(self, graphs: list[Graph], descriptors: list | None = None) -> dict:
        """Fit everything that has a closed form on the training ``graphs``: the channel RMS of
        the H0/S inputs, the linear-response weights (ridge regression), and the channel RMS of
        what is left of ΔH after it (the network's output scale). RMS are shared by the 2l+1
        components of an irrep and by the spin channels, so the scaling stays equivariant.
        ``descriptors``: :class:`.descriptors.EdgeDescriptors` of each graph, when already computed.
        Returns, per species pair, the RMS (eV) of ΔH and of the residual of the linear part."""
        summary = {}
        rs = torch.zeros(len(graphs), dtype=torch.float64)  # ⟨rest, S⟩ and ⟨S, S⟩ per structure
        ss = torch.zeros(len(graphs), dtype=torch.float64)
        desc = descriptors or [self.descriptors(g.to(dtype=self.mu_scale.dtype)) for g in graphs]
        self.response_functions.fit_invariants(torch.cat([d[0] for d in desc]))
        for t, p in enumerate(self.layout.pairs):
            chan = torch.as_tensor(p.channel_of_feature)
            edges = [g.type_edges[t] for g in graphs]
            h0 = [g.h0[t] for g in graphs]
            s = [g.s[t] for g in graphs]
            r = [g.edge_vec[e].norm(dim=-1) for g, e in zip(graphs, edges)]
            inv = [d[0][e] for d, e in zip(desc, edges)]
            equi = [[x[e] for x in d[1]] for d, e in zip(desc, edges)]
            dh = [g.target[t] for g in graphs]
            getattr(self, f"input_scale_{t}").copy_(torch.cat([
                _channel_rms(torch.cat(h0).flatten(0, 1), chan).expand(self.layout.block_channels, -1),
                _channel_rms(torch.cat(s), chan)[None]]))
            dtype = getattr(self, f"input_scale_{t}").dtype
            if self.config.linear_response:
                self.response[t].fit(zip(h0, s, r, inv, equi, dh), self.config.response_ridge)
            rest = [y - self.response[t](a.to(dtype), b.to(dtype), c.to(dtype), d, q).double()
                    for a, b, c, d, q, y in zip(h0, s, r, inv, equi, dh)]
            for n, (x, b) in enumerate(zip(rest, s)):
                rs[n] += float((x * b.double()[:, None]).sum())
                ss[n] += float(x.shape[1] * b.double().pow(2).sum())
            bins = self._bond_bins(torch.cat(r))
            per_edge = torch.cat([x.pow(2).mean((1, 2)) for x in rest])
            rest = torch.cat(rest).flatten(0, 1)
            getattr(self, f"output_scale_{t}").copy_(_channel_rms(rest, chan))
            scale = getattr(self, f"bond_scale_{t}")
            ms = torch.zeros(len(scale), dtype=torch.float64).index_add_(0, bins, per_edge)
            cnt = torch.zeros(len(scale), dtype=torch.float64).index_add_(0, bins, torch.ones_like(per_edge))
            rel = (ms / cnt.clamp_min(1)).sqrt() / max(_rms(rest), 1e-30)
            scale.copy_(torch.where(cnt > 0, rel.clamp_min(1e-3), torch.ones_like(rel)))
            summary[f"{p.a}-{p.b}"] = {"target_rms_eV": _rms(torch.cat(dh)),
                                       "after_linear_response_rms_eV": _rms(rest)}
        mu = rs / ss.clamp_min(1e-300)
        self.mu_scale.fill_(max(_rms(mu), 1e-4))
        summary["mu_after_linear_response_rms_eV"] = _rms(mu)
        return summary

    BOND_BIN = 0.5  # Å, width of the bond-length bins of the network's output scale

    def _bond_bins(self, r: torch.Tensor) -> torch.Tensor:
        """Bin of each bond length: 0 on-site, then 0.5 Å bins, the last one open-ended."""
        last = int(math.ceil(self.config.r_max / self.BOND_BIN)) + 1
        return torch.where(r < 1e-8, 0, (r / self.BOND_BIN).long().clamp_max(last - 1) + 1)

    # ----------------------------------------------------------------- forward
    def forward(self, g: Graph):
        n_nodes = len(g.species)
        z = self._encode(g)
        r = g.edge_vec.norm(dim=-1)
        geometry = EdgeGeometry(g.edge_vec, self.irreps_sh.lmax)
        invariants = torch.cat([self.radial(r), z[:, self._scalar_edge]], dim=-1)
        onsite = (g.edge_src == g.edge_dst) & (r < 1e-8)
        h = self.species_embedding(g.species)
        h = torch.cat([h, h.new_zeros(n_nodes, self.irreps_node.dim - h.shape[1])], dim=-1)
        h = h + scatter_sum(self.onsite_to_node(z[onsite]), g.edge_src[onsite], n_nodes)
        for layer in self.layers:
            h, z = layer(h, z, geometry, invariants, g.edge_src, g.edge_dst)
        z = self.readout_edge(z)
        raw = self._readout(g, z, r, self.descriptors(g), self._bond_bins(r))
        mu = scatter_sum(self.mu_readout(h[:, : self.mu_readout.in_features]), g.node_graph, g.n_graphs)
        mu = self.mu_scale * mu / scatter_sum(torch.ones_like(h[:, :1]), g.node_graph, g.n_graphs)
        return self._hermitian(g, raw, mu), mu

    def _encode(self, g: Graph) -> torch.Tensor:
        """Pair features (E, irreps_edge) from the scaled H0 and S blocks of every edge."""
        z = g.edge_vec.new_zeros(g.n_edges, self.irreps_edge.dim)
        for t, edges in enumerate(g.type_edges):
            if len(edges):
                x = torch.cat([g.h0[t], g.s[t][:, None]], dim=1) / getattr(self, f"input_scale_{t}")
                z = z.index_copy(0, edges, self.encoders[t](x.flatten(1)))
        return z

    def _readout(self, g: Graph, z, r, descriptors, bins) -> list:
        """Per edge type, (E_t, channels, dim_t) features before the symmetrisation: scaled network
        readout + linear response. z (E, irreps_edge), r (E,) Å, descriptors (invariants,
        equivariants) of :class:`.descriptors.EdgeDescriptors`, bins (E,)."""
        nspin = self.layout.block_channels
        inv, equi = descriptors
        return [self.readouts[t](z[edges]).view(len(edges), nspin, p.dim) * getattr(self, f"output_scale_{t}")
                * getattr(self, f"bond_scale_{t}")[bins[edges]][:, None, None]
                + self.response[t](g.h0[t], g.s[t], r[edges], inv[edges], [x[edges] for x in equi])
                for t, (edges, p) in enumerate(zip(g.type_edges, self.layout.pairs))]

    def _hermitian(self, g: Graph, raw: list, mu: torch.Tensor) -> list:
        """½ [X_ij(R) + X_ji(−R)ᵀ] + μ S_ij(R) per edge type."""
        position = torch.empty(g.n_edges, dtype=torch.long, device=g.edge_vec.device)
        for edges in g.type_edges:
            position[edges] = torch.arange(len(edges), device=position.device)
        out = []
        for t, edges in enumerate(g.type_edges):
            tp = self.layout.partner_type(t)
            partner = raw[tp][position[g.partner[edges]]]
            sym = 0.5 * (raw[t] + partner @ getattr(self, f"transpose_{t}").T)
            out.append(sym + mu[g.type_graph[t]][:, :, None] * g.s[t][:, None, :])
        return out

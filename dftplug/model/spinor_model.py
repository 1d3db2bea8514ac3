"""The spin–orbit ΔH model (nspin 4): :class:`DeltaHModel` extended to the 8 real spin channels.

Graph features of nspin-4 data are the 8 real channels of :mod:`.spinor` (T × (E_t, 8, dim_t), each
channel as block irreps features, vector channels one Cartesian component per channel):

* T-even channels go through the network. Re h_0 of H0 and S are encoded as an ordinary block
  (exactly the nspin-1 path of :class:`DeltaHModel`, closed-form linear response included); the
  vector irreps of Im h_a(H0) (:class:`.spinor.VectorLayout`) are an additional encoder input. The
  readouts give Re h_0 (block irreps) and Im h_a (vector irreps) of ΔH; the gauge μ·S goes to Re h_0.
* T-odd channels (Im h_0, Re h_a) are a linear response of the T-odd channels of H0 only
  (:class:`OddLinearResponse`, invariant-modulated weights): a time-reversal-invariant input gives
  exactly zero, and flipping the T-odd inputs flips the output, so the prediction commutes with θ.
* Hermiticity by construction: ½ [X_ij(R) ± X_ji(−R)ᵀ], + for the real (symmetric) and − for the
  imaginary (antisymmetric) channels (:data:`.spinor.TRANSPOSE_SIGN`).

Every map is a per-irrep linear map or an e3nn layer, and the vector irreps carry 1e (axial), so the
prediction rotates with D^l ⊗ D^{1/2}, inversion included (tests/test_soc_model.py).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from e3nn import o3
from torch import nn

from .blocks import ResponseBasis, SlotLeastSquares
from .graph import Graph
from .irreps import BasisLayout
from .model import DeltaHModel, ModelConfig, _channel_rms, _rms
from .spinor import EVEN_VECTOR, ODD_SCALAR, ODD_VECTOR, TRANSPOSE_SIGN, VectorLayout


def ordinary_part(g: Graph) -> Graph:
    """The graph with only the Re h_0 channel of H0 and ΔH: what :class:`DeltaHModel` reads."""
    return replace(g, h0=[x[:, :1] for x in g.h0],
                   target=None if g.target is None else [x[:, :1] for x in g.target])


class OddLinearResponse(nn.Module):
    """T-odd ΔH features as an equivariant linear map of the T-odd H0 features of the same edge:

        y^{(slot)}_{e,o,M} = Σ_k b_k(e) Σ_c W^{(slot)}_{k,c,o} x^{(slot)}_{e,c,M}

    per slot (mul, irrep) of ``irreps`` (copies of one irrep mixed with one weight for all 2L+1
    components), b(e) = :class:`.blocks.ResponseBasis` of r_e (Å) and the invariants of :mod:`.descriptors`. Odd in x
    by construction (no bias, no overlap input). W is a closed-form ridge fit (:meth:`fit`).

    forward: x (E, dim), r (E,), env (E, num_env) → (E, dim) eV.
    """

    def __init__(self, irreps: o3.Irreps, basis: ResponseBasis):
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        self.basis = basis
        for n, (mul, _) in enumerate(self.irreps):
            self.register_buffer(f"weight_{n}", torch.zeros(basis.size, mul, mul))

    @property
    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"weight_{n}") for n in range(len(self.irreps))]

    def _slots(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x[:, sl].reshape(len(x), mul, ir.dim) for (mul, ir), sl in zip(self.irreps, self.irreps.slices())]

    def forward(self, x, r, env):
        phi = self.basis(r, env)
        return torch.cat([torch.einsum("ek,eid,kio->eod", phi, xs, w).flatten(1)
                          for xs, w in zip(self._slots(x), self.weights)], dim=-1)

    @torch.no_grad()
    def fit(self, batches, ridge: float) -> None:
        """Ridge least squares from (x, r, env, y) tuples (float64, :class:`.blocks.SlotLeastSquares`);
        slots whose inputs are all zero in the data (e.g. non-magnetic H0) keep W = 0."""
        lsq = SlotLeastSquares(len(self.weights))
        for x, r, env, y in batches:
            phi = self.basis(r, env).double()
            for n, (xs, ys) in enumerate(zip(self._slots(x.double()), self._slots(y.double()))):
                lsq.add(n, phi, xs, ys)
        for n, w in enumerate(self.weights):
            sol = lsq.solve(n, ridge, standardise=False)
            if sol is not None:
                w.copy_(sol.reshape(w.shape).to(w.dtype))


class SpinorDeltaHModel(DeltaHModel):
    """ΔH model of nspin-4 data (see module docstring). ``forward(graph)`` returns (blocks, mu):
    blocks T × (E_t, 8, dim_t) real spin channels (:data:`.spinor.REAL_CHANNELS`) as block irreps
    features, Hermitian by construction; mu (n_graphs, 1) eV, the gauge shift of Re h_0."""

    def __init__(self, layout: BasisLayout, config: ModelConfig | None = None):
        if layout.nspin != 4:
            raise ValueError(f"the spinor model is for nspin 4, not {layout.nspin}")
        super().__init__(layout, config)

    def _build(self, layout: BasisLayout, c: ModelConfig):
        super()._build(layout, c)
        vectors = [VectorLayout(p) for p in layout.pairs]
        self.vector_encoders = nn.ModuleList([o3.Linear(v.irreps, self.irreps_edge) for v in vectors])
        self.vector_readouts = nn.ModuleList([o3.Linear(self.irreps_edge, v.irreps) for v in vectors])
        self.odd_response = nn.ModuleList([OddLinearResponse(p.irreps + v.irreps, self.response_functions)
                                           for p, v in zip(layout.pairs, vectors)])
        with torch.no_grad():
            for lin in self.vector_readouts:
                lin.weight.zero_()
        self.register_buffer("transpose_sign", torch.tensor(TRANSPOSE_SIGN))
        for t, v in enumerate(vectors):
            self.register_buffer(f"vector_basis_{t}", torch.as_tensor(v.V))
            self.register_buffer(f"vector_channel_{t}", torch.as_tensor(v.channel_of_feature), persistent=False)
            self.register_buffer(f"vector_input_scale_{t}", torch.ones(v.dim))
            self.register_buffer(f"vector_output_scale_{t}", torch.ones(v.dim))

    # ----------------------------------------------------------------- vector channels
    def to_vector(self, t: int, c: torch.Tensor) -> torch.Tensor:
        """Cartesian components (E, 3, dim_t) of a vector channel → its vector irreps (E, 3 dim_t)."""
        v = getattr(self, f"vector_basis_{t}")
        return c.flatten(1).to(v.dtype) @ v.T

    def from_vector(self, t: int, f: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_vector`: (E, 3 dim_t) → (E, 3, dim_t)."""
        return (f @ getattr(self, f"vector_basis_{t}")).reshape(len(f), 3, f.shape[1] // 3)

    def _odd_input(self, t: int, h0: torch.Tensor) -> torch.Tensor:
        """T-odd features of H0 in the irreps of the odd response: [Im h_0 | Re h_a vector irreps]."""
        return torch.cat([h0[:, ODD_SCALAR], self.to_vector(t, h0[:, ODD_VECTOR])], dim=1)

    def _odd_blocks(self, t: int, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_odd_input`: (E, 4 dim_t) → the 4 T-odd channels (E, 4, dim_t)."""
        dim = self.layout.pairs[t].dim
        return torch.cat([y[:, None, :dim], self.from_vector(t, y[:, dim:])], dim=1)

    # ----------------------------------------------------------------- statistics
    @torch.no_grad()
    def set_statistics(self, graphs: list[Graph]) -> dict:
        """The closed-form fits of :meth:`DeltaHModel.set_statistics` on Re h_0, then the channel
        RMS of the Im h_a vector irreps of H0 (encoder input scale) and of ΔH (readout scale), and
        the ridge fit of the T-odd response. Returns the RMS summary per species pair (eV)."""
        desc = [self.descriptors(g.to(dtype=self.mu_scale.dtype)) for g in graphs]  # geometry only: computed once
        summary = super().set_statistics([ordinary_part(g) for g in graphs], desc)
        invariants = [d[0] for d in desc]
        for t, p in enumerate(self.layout.pairs):
            chan = getattr(self, f"vector_channel_{t}")
            edges = [g.type_edges[t] for g in graphs]
            h0 = [g.h0[t].double() for g in graphs]
            dh = [g.target[t].double() for g in graphs]
            vec_in = torch.cat([self.to_vector(t, x[:, EVEN_VECTOR]) for x in h0]).double()
            vec_out = torch.cat([self.to_vector(t, y[:, EVEN_VECTOR]) for y in dh]).double()
            for name, x in (("input", vec_in), ("output", vec_out)):
                scale = _channel_rms(x, chan) if _rms(x) > 0 else torch.ones(len(chan), dtype=torch.float64)
                getattr(self, f"vector_{name}_scale_{t}").copy_(scale)
            r = [g.edge_vec[e].norm(dim=-1) for g, e in zip(graphs, edges)]
            env = [inv[e] for inv, e in zip(invariants, edges)]
            self.odd_response[t].fit(
                [(self._odd_input(t, x), ri.double(), ei.double(), self._odd_input(t, y))
                 for x, ri, ei, y in zip(h0, r, env, dh)], self.config.response_ridge)
            summary[f"{p.a}-{p.b}"].update(
                {"spin_vector_rms_eV": _rms(vec_out),
                 "t_odd_rms_eV": _rms(torch.cat([self._odd_input(t, y) for y in dh]))})
        return summary

    # ----------------------------------------------------------------- forward
    def _encode(self, g: Graph) -> torch.Tensor:
        z = super()._encode(ordinary_part(g))
        for t, edges in enumerate(g.type_edges):
            if len(edges):
                x = self.to_vector(t, g.h0[t][:, EVEN_VECTOR]) / getattr(self, f"vector_input_scale_{t}")
                z = z.index_add(0, edges, self.vector_encoders[t](x))
        return z

    def _readout(self, g: Graph, z, r, descriptors, bins) -> list:
        ordinary = super()._readout(ordinary_part(g), z, r, descriptors, bins)
        env = descriptors[0]
        out = []
        for t, edges in enumerate(g.type_edges):
            bond = getattr(self, f"bond_scale_{t}")[bins[edges]][:, None]
            vector = self.vector_readouts[t](z[edges]) * getattr(self, f"vector_output_scale_{t}") * bond
            odd = self.odd_response[t](self._odd_input(t, g.h0[t]), r[edges], env[edges])
            out.append(torch.cat([ordinary[t], self.from_vector(t, vector), self._odd_blocks(t, odd)], dim=1))
        return out

    def _hermitian(self, g: Graph, raw: list, mu: torch.Tensor) -> list:
        """½ [X_ij(R) ± X_ji(−R)ᵀ] per channel (X − ½[X + Xᵀ] is the antisymmetric half), and
        μ S_ij(R) added to Re h_0."""
        symmetric = super()._hermitian(g, raw, torch.zeros_like(mu))
        sign = self.transpose_sign[:, None]
        out = []
        for t, (x, sym) in enumerate(zip(raw, symmetric)):
            h = torch.where(sign > 0, sym, x - sym)
            gauge = mu[g.type_graph[t]][:, :, None] * g.s[t][:, None, :]
            out.append(torch.cat([h[:, :1] + gauge, h[:, 1:]], dim=1))
        return out

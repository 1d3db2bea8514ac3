"""Training loss and error metrics of predicted ΔH (gauge-aware, real + reciprocal space).

Notation per structure: r = ΔH_pred − ΔH_true (eV) on every stored element, S the overlap.

Gauge. A constant shift of the potential, H → H + μ S, changes no eigenvector and no occupation
(all eigenvalues move by μ), and H0 and H_scf differ by such a shift (0.28 eV on ABACUS si8, ~2.9
eV on ABACUS graphene, 2.4 eV on SIESTA molecules). Like NextHAM (2025) the loss
splits the residual into its best constant and the rest, with μ* in closed form:

    μ* = ⟨r, S⟩ / ⟨S, S⟩   (sums over all elements and spin channels of the structure),
    r' = r − μ* S.

For spin–orbit data (nspin 4, the 8 real spin channels of :mod:`.spinor`) S ⊗ 1₂ lives in Re h_0
only: μ* and the shift use that channel, and the other seven enter r' unchanged.

Loss (dimensionless; σ = RMS of the training targets ΔH, eV):

    L_real  = mean(r'²) / σ² + mean(|r'|) / σ
    L_gauge = w_gauge · Σ_structures μ*² ⟨S, S⟩ / (N_elements σ²)
    L_k     = w_k · mean_{structure, k, spin, n ∈ window} (c_nᴴ R'(k) c_n)² / σ_k²
    L       = L_real + L_gauge + L_k + L_ρ + L_q   (the last two below)

mean(r'²) is the usual MSE (DeepH, HamGNN); the L1 term keeps a constant pull on the many small
elements whose squared error vanishes next to the large on-site and nearest-neighbour blocks, so
small and large blocks both matter. L_gauge with w_gauge = 1 would give back the plain MSE of r
(‖r‖² = ‖r'‖² + μ*² ‖S‖²); a small weight lets the model's μ·S channel learn the shift
without letting it dominate.

Reciprocal space (NextHAM's band term): with the DFT eigenpairs S(k) c_n = ..., H(k) c_n = ε_n S(k) c_n,
cᴴ S c = 1, of the bands within a window around E_F at a few k-points, the predicted H projected
on c_n must give back ε_n:  c_nᴴ H_pred(k) c_n − ε_n = c_nᴴ R(k) c_n, R(k) = Σ_R r(R) e^{i2πk·R}.
Using r' (so the gauge shift is not counted twice), L_k = mean |c_nᴴ R'(k) c_n|² / σ_k², σ_k = 10 meV.
It penalises the error along the occupied and near-gap states that a small real-space MAE hides.

Density (what a restarted SCF sees, :mod:`.density_response`): the first-order change of the density
matrix caused by the residual, in the overlap metric and as Mulliken charges moved between atoms,
each divided by the same number for the H0 guess of the structure (so 1e-2 means 10× closer to the
SCF density than H0):  L_ρ = w_ρ · mean ‖δDM‖²_S / ‖δDM_H0‖²_S,  L_q = w_q · mean Σ δq² / Σ δq_H0².
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .blocks import scatter_sum
from .bloch import bloch_dense
from .density_response import first_order_density
from .graph import Graph
from .spinor import spinor_magnitude

BAND_SCALE = 0.010  # eV, σ_k of the reciprocal-space term


@dataclass
class LossWeights:
    gauge: float = 0.1
    kspace: float = 0.0
    density: float = 0.0   # w_ρ: first-order ‖δDM‖²_S relative to the H0 guess's
    charge: float = 0.0    # w_q: first-order Σ_a δq_a² relative to the H0 guess's


def residuals(pred: list, g: Graph, gauge_channels: int):
    """Gauge-split residuals: (r' per edge type (E_t, S, dim_t), μ* (n_graphs,) eV, ⟨S,S⟩ per
    structure counted over spin channels). μ S lives in the first ``gauge_channels`` channels
    (:attr:`.irreps.BasisLayout.block_channels`: every spin of nspin 1/2, Re h_0 of nspin 4)."""
    n = gauge_channels
    rs = g.edge_vec.new_zeros(g.n_graphs)
    ss = g.edge_vec.new_zeros(g.n_graphs)
    res = [p - t for p, t in zip(pred, g.target)]
    for r, s, graph in zip(res, g.s, g.type_graph):
        rs = rs + scatter_sum((r[:, :n] * s[:, None]).sum((1, 2)), graph, g.n_graphs)
        ss = ss + scatter_sum(n * (s * s).sum(1), graph, g.n_graphs)
    mu = rs / ss.clamp_min(1e-30)
    fixed = [torch.cat([r[:, :n] - mu[graph][:, None, None] * s[:, None], r[:, n:]], dim=1)
             for r, s, graph in zip(res, g.s, g.type_graph)]
    return fixed, mu, ss


def band_residuals(res_blocks: list, g: Graph, n: int) -> torch.Tensor:
    """c_nᴴ R'(k) c_n (eV) of structure ``n`` for its stored k-points/bands, shape (nk, S, nb),
    zero at padded bands. ``res_blocks``: residuals as blocks, T × (E_t, S, dim_t)."""
    kd = g.kspace[n]
    dense = bloch_dense(res_blocks, g.type_graph, n, kd.phase, kd.orbital_index, kd.nao)
    proj = torch.einsum("ksan,ksab,ksbn->ksn", kd.vectors.conj(), dense, kd.vectors).real
    return proj * kd.mask


def to_blocks(features: list, layout) -> list:
    """Irreps features → row-major blocks, per edge type: (E_t, S, dim_t) @ Q."""
    return [f @ torch.as_tensor(p.Q, dtype=f.dtype, device=f.device) for f, p in zip(features, layout.pairs)]


def loss_terms(pred: list, g: Graph, layout, sigma: float, weights: LossWeights) -> dict:
    """The loss L and its parts (module docstring); ``pred``/targets as irreps features."""
    res, mu, ss = residuals(pred, g, layout.block_channels)
    flat = torch.cat([r.reshape(-1) for r in res])
    n_el = flat.numel()
    terms = {"real": (flat ** 2).mean() / sigma ** 2 + flat.abs().mean() / sigma,
             "gauge": weights.gauge * (mu ** 2 * ss).sum() / (n_el * sigma ** 2)}
    if weights.kspace > 0 and any(k is not None for k in g.kspace):
        blocks = to_blocks(res, layout)
        bands = [band_residuals(blocks, g, n) for n, k in enumerate(g.kspace) if k is not None]
        sq = torch.cat([(b ** 2).reshape(-1) for b in bands])
        cnt = sum(int(g.kspace[n].mask.sum()) for n, k in enumerate(g.kspace) if k is not None)
        terms["kspace"] = weights.kspace * sq.sum() / max(cnt, 1) / BAND_SCALE ** 2
    if (weights.density > 0 or weights.charge > 0) and any(d is not None for d in g.density):
        ratios = density_ratios(to_blocks(res, layout), g)
        terms["density"] = weights.density * ratios[:, 0].mean()
        terms["charge"] = weights.charge * ratios[:, 1].mean()
    terms["total"] = sum(terms.values())
    return terms


def density_ratios(res_blocks: list, g: Graph) -> torch.Tensor:
    """(n, 2): first-order ‖δDM‖²_S and Σ_a δq_a² of the residual blocks (T × (E_t, S, dim_t), eV) of
    each structure n that carries density-response data, divided by those of the H0 guess
    (:mod:`.density_response`): 1 is as far from the SCF density as H0, 0 is exact."""
    rows = []
    for n, d in enumerate(g.density):
        if d is None:
            continue
        natoms = int((g.node_graph == n).sum())
        dm2, dq = first_order_density(res_blocks, g.type_graph, n, d, natoms)
        rows.append(torch.stack([dm2, (dq ** 2).sum()]) / d.baseline.to(dm2.dtype))
    return torch.stack(rows)


@torch.no_grad()
def error_sums(pred: list, g: Graph, layout) -> dict:
    """Sums for MAE in eV over block elements: |ΔH_pred − ΔH| (raw), after removing μ*·S
    (gauge-fixed) and the H0 baseline |ΔH|, with the element count; per structure as well.
    nspin 4: over the complex spinor elements (|Δ| of uu, ud, du, dd)."""
    res, mu, _ = residuals(pred, g, layout.block_channels)
    size = spinor_magnitude if layout.nspin == 4 else torch.abs
    raw = [size(x) for x in to_blocks([p - t for p, t in zip(pred, g.target)], layout)]
    fixed = [size(x) for x in to_blocks(res, layout)]
    base = [size(x) for x in to_blocks(g.target, layout)]
    out = {k: g.edge_vec.new_zeros(g.n_graphs, dtype=torch.float64) for k in ("raw", "fixed", "base", "count")}
    for t, graph in enumerate(g.type_graph):
        for key, x in (("raw", raw[t]), ("fixed", fixed[t]), ("base", base[t])):
            out[key] += scatter_sum(x.sum((1, 2)).double(), graph, g.n_graphs)
        out["count"] += scatter_sum(torch.full_like(graph, raw[t].shape[1] * raw[t].shape[2], dtype=torch.float64), graph, g.n_graphs)
    out["mu"] = mu
    return out

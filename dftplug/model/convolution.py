"""Edge geometry shared by the layers, and the choice of tensor-product back-end of the node convolution.

``ModelConfig.tensor_product`` selects how a neighbour's features are coupled to the bond direction:

* ``"cg"`` — :class:`WeightedConvolution`: e3nn Clebsch–Gordan product with Y(r̂_ij)
  ("uvu" paths, then a linear mix), O(L^6) per channel pair;
* ``"local_frame"`` — :class:`LocalFrameWeightedConvolution`: the SO(2) convolution of
  :mod:`.local_frame` (rotate into the bond frame, per-m linear maps, rotate back), O(L^3), with the
  span of e3nn's fully connected product with Y^{≤2L}.

Both are O(3)-equivariant and map (E, irreps_x) × geometry × (E, n_inv) → (E, irreps_out).
"""
from __future__ import annotations

from functools import cached_property

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import nn

from .local_frame import LocalFrameConvolution

TENSOR_PRODUCTS = ("cg", "local_frame")


def edge_harmonics(vec: torch.Tensor, lmax: int) -> torch.Tensor:
    """Y_l(r̂) for l = 0..lmax, (E, 3) → (E, (lmax+1)²); on-site edges (r = 0) get Y_0 = 1 and
    zero for l ≥ 1 (the only rotation-invariant choice)."""
    r = vec.norm(dim=-1, keepdim=True)
    unit = vec / torch.where(r > 1e-8, r, torch.ones_like(r))
    return o3.spherical_harmonics(list(range(lmax + 1)), unit, normalize=False, normalization="component")


class WeightedConvolution(nn.Module):
    """x ⊗ Y(r̂) → irreps_out with per-edge path weights from an MLP of invariant edge features
    (the NequIP convolution; "uvu" paths: every input channel keeps its multiplicity).

    x (E, irreps_x), Y (E, sh), invariants (E, n_inv) → (E, irreps_out)."""

    def __init__(self, irreps_x: o3.Irreps, irreps_sh: o3.Irreps, irreps_out: o3.Irreps, n_inv: int,
                 hidden: int):
        super().__init__()
        mid, instructions = [], []
        for i, (mul, ir_x) in enumerate(irreps_x):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir in ir_x * ir_sh:
                    if ir in o3.Irreps(irreps_out):
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir))
        self.tp = o3.TensorProduct(irreps_x, irreps_sh, o3.Irreps(mid), instructions,
                                   shared_weights=False, internal_weights=False)
        self.weights = e3nn_nn.FullyConnectedNet([n_inv, hidden, self.tp.weight_numel], torch.nn.functional.silu)
        self.linear = o3.Linear(o3.Irreps(mid), irreps_out)
        self.irreps_out = o3.Irreps(irreps_out)

    def forward(self, x, geometry, invariants):
        """``geometry``: :class:`EdgeGeometry` of the E edges."""
        return self.linear(self.tp(x, geometry.sh, self.weights(invariants)))


class EdgeGeometry:
    """Bond vectors r_ij (E, 3) Å and what the convolutions derive from them, computed on first use:
    ``sh`` (E, (lmax+1)²) spherical harmonics (component normalisation, Y_0 = 1 and Y_{l>0} = 0 on
    on-site edges), ``dmats`` {l: (E, 2l+1, 2l+1)} bond-frame rotations, ``onsite`` (E,) bool.
    ``geometry[sl]`` is the geometry of a slice of edges (for chunked layers)."""

    def __init__(self, vec: torch.Tensor, lmax: int):
        self.vec, self.lmax = vec, lmax

    def __getitem__(self, sl: slice) -> "EdgeGeometry":
        if sl == slice(0, len(self)):  # the whole graph: keep what is already computed
            return self
        return EdgeGeometry(self.vec[sl], self.lmax)

    def __len__(self) -> int:
        return len(self.vec)

    @cached_property
    def onsite(self) -> torch.Tensor:
        return self.vec.norm(dim=-1) < 1e-8

    @cached_property
    def sh(self) -> torch.Tensor:
        return edge_harmonics(self.vec, self.lmax).to(self.vec.dtype)

    @cached_property
    def dmats(self) -> dict:
        # on-site edges have no direction: any frame will do, their messages are dropped
        safe = torch.where(self.onsite[:, None], torch.tensor([0.0, 1.0, 0.0], dtype=self.vec.dtype,
                                                               device=self.vec.device), self.vec)
        alpha, beta = o3.xyz_to_angles(safe)
        zero = torch.zeros_like(alpha)
        return {l: o3.Irrep(l, 1).D_from_angles(alpha, beta, zero) for l in range(1, self.lmax + 1)}


class LocalFrameWeightedConvolution(nn.Module):
    """x ⊗ Y(r̂) → irreps_out in the bond's local frame, per-edge weights from an MLP of invariant
    edge features. Drop-in for :class:`WeightedConvolution` (same irreps in and out).

    On-site edges (r = 0) get no message: a bond frame needs a direction (their CG counterpart is the
    l_f = 0 path, a per-channel rescaling of h_i, which the node update already sees through h_i).

    x (E, irreps_x), geometry :class:`EdgeGeometry` (E edges), invariants (E, n_inv) → (E, irreps_out).
    """

    def __init__(self, irreps_x: o3.Irreps, irreps_out: o3.Irreps, n_inv: int, hidden: int):
        super().__init__()
        self.conv = LocalFrameConvolution(irreps_x, irreps_out)
        self.weights = e3nn_nn.FullyConnectedNet([n_inv, hidden, self.conv.num_weights], torch.nn.functional.silu)
        self.irreps_out = o3.Irreps(irreps_out)

    def forward(self, x, geometry: EdgeGeometry, invariants):
        w = self.weights(invariants) * (~geometry.onsite)[:, None].to(x.dtype)
        return self.conv(x, geometry.vec, w, dmats=geometry.dmats)


def make_convolution(kind: str, irreps_x, irreps_sh, irreps_out, n_inv: int, hidden: int) -> nn.Module:
    """The node convolution of back-end ``kind`` (one of :data:`TENSOR_PRODUCTS`)."""
    if kind == "cg":
        return WeightedConvolution(irreps_x, irreps_sh, irreps_out, n_inv, hidden)
    if kind == "local_frame":
        return LocalFrameWeightedConvolution(irreps_x, irreps_out, n_inv, hidden)
    raise ValueError(f"tensor_product must be one of {', '.join(TENSOR_PRODUCTS)}, not {kind!r}")

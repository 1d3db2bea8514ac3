"""Spin–orbit (nspin 4) blocks as four real spin irreps: the channels the ΔH model works with.

A spinor block (i, j, R), channels uu, ud, du, dd of :class:`~dftplug.blocksparse.BlockSparse`
(channel (s, s') = <i s|H|j s' (R)>), is written with the Pauli matrices (σ_y = [[0, −i], [i, 0]]) as

    H_ij(R) = Σ_{a = 0, x, y, z} h_a ⊗ σ_a,   h_0 = (uu + dd)/2,  h_z = (uu − dd)/2,
                                             h_x = (ud + du)/2,  h_y = i (ud − du)/2,

(uu = h_0 + h_z, dd = h_0 − h_z, ud = h_x − i h_y, du = h_x + i h_y), h_a complex orbital blocks.
The model's 8 real channels, :data:`REAL_CHANNELS`, are their real and imaginary parts, grouped by
time reversal:

    T-even: Re h_0, Im h_x, Im h_y, Im h_z        T-odd: Im h_0, Re h_x, Re h_y, Re h_z

(the "four real spin irreps" of HamGNN and DeepH-E3: everything stays real for e3nn). Symmetries,
with real orbitals (each checked numerically in tests/test_soc_model.py):

* rotation R (U = D^{1/2}(R) on spin, D^l on orbitals): U σ_a U† = Σ_b R_ba σ_b, so h_0 → D h_0 Dᵀ
  like any block and h_b → Σ_a R_ba D h_a Dᵀ: (h_x, h_y, h_z) is an axial vector (e3nn 1e) times
  the block. Its irreps: (L, p) ⊗ 1e = L' ∈ |L − 1| … L + 1, parity p unchanged (:class:`VectorLayout`).
* inversion: the orbital parity (−1)^{l1+l2} only (spin is axial, D^{1/2}(−R) = D^{1/2}(R)).
* time reversal θ = −iσ_y K: θHθ⁻¹ = σ_y H* σ_y, so h_0 → h_0*, h_a → −h_a*: the T-even channels
  are unchanged, the T-odd ones change sign.
* Hermiticity H_ij(R) = H_ji(−R)†: h_a,ij(R) = h_a,ji(−R)† for every a, so the real parts are
  symmetric and the imaginary parts antisymmetric under (i, j, R) → (j, i, −R) with the block
  transposed (:data:`TRANSPOSE_SIGN`).

Features of a channel are its block's irreps features (:class:`.irreps.PairLayout` Q, one set per
Cartesian component for the vector channels); :class:`VectorLayout` maps the 3 × dim features of a
vector channel to the irreps of (block irreps) ⊗ 1e.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from e3nn import o3

from dftplug.blocksparse import BlockSparse

from .irreps import PairLayout, irrep_channels

REAL_CHANNELS = ("Re h0", "Im hx", "Im hy", "Im hz", "Im h0", "Re hx", "Re hy", "Re hz")
T_ODD = slice(4, 8)                                 # Im h_0, Re h_x, Re h_y, Re h_z
EVEN_VECTOR, ODD_VECTOR = slice(1, 4), slice(5, 8)  # (x, y, z) components of Im h_a, Re h_a
ODD_SCALAR = 4                                      # Im h_0
TRANSPOSE_SIGN = (1.0, -1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0)  # + real (symmetric), − imaginary parts

# [Re uu, Re ud, Re du, Re dd, Im uu, Im ud, Im du, Im dd] = SPINOR_FROM_REAL @ REAL_CHANNELS;
# SPINOR_FROM_REAL @ SPINOR_FROM_REALᵀ = 2·1, so the inverse is the transpose / 2.
SPINOR_FROM_REAL = np.array([
    [1, 0, 0, 0, 0, 0, 0, 1],    # Re uu = Re h0 + Re hz
    [0, 0, 1, 0, 0, 1, 0, 0],    # Re ud = Re hx + Im hy
    [0, 0, -1, 0, 0, 1, 0, 0],   # Re du = Re hx − Im hy
    [1, 0, 0, 0, 0, 0, 0, -1],   # Re dd = Re h0 − Re hz
    [0, 0, 0, 1, 1, 0, 0, 0],    # Im uu = Im h0 + Im hz
    [0, 1, 0, 0, 0, 0, -1, 0],   # Im ud = Im hx − Re hy
    [0, 1, 0, 0, 0, 0, 1, 0],    # Im du = Im hx + Re hy
    [0, 0, 0, -1, 1, 0, 0, 0],   # Im dd = Im h0 − Im hz
], dtype=float)


def to_real_channels(m: BlockSparse) -> BlockSparse:
    """A complex nspin-4 spinor matrix → the same blocks as 8 real channels (:data:`REAL_CHANNELS`)."""
    m._require_spinor("the real spin channels")
    parts = np.concatenate([m.data.real, m.data.imag])
    return m.copy(0.5 * SPINOR_FROM_REAL.T @ parts)


def from_real_channels(m: BlockSparse) -> BlockSparse:
    """Inverse of :func:`to_real_channels`: 8 real channels → complex spinor channels uu, ud, du, dd."""
    parts = SPINOR_FROM_REAL @ m.data
    return m.copy(parts[:4] + 1j * parts[4:])


def spinor_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|uu|, |ud|, |du|, |dd| of blocks given as real channels: (E, 8, d) → (E, 4, d)."""
    parts = torch.einsum("ab,ebd->ead", torch.as_tensor(SPINOR_FROM_REAL, dtype=x.dtype, device=x.device), x)
    return torch.sqrt(parts[:, :4] ** 2 + parts[:, 4:] ** 2)


@dataclass(frozen=True)
class VectorLayout:
    """Irreps of a spin-vector channel of the blocks of one species pair: the 3 Cartesian components
    (x, y, z) of (h_x, h_y, h_z), each as block irreps features, ⊗ 1e → irreps L' ∈ L ⊗ 1.

    features = V @ vec(c), c (3, dim) Cartesian-major; V orthogonal (3 dim, 3 dim), built from
    c_{L',M'} = sqrt(2L' + 1) Σ_{M,m} W^{L 1 L'}_{M m M'} f_{M, m} (``e3nn.o3.wigner_3j``), as
    :class:`.irreps.PairLayout` builds Q."""

    pair: PairLayout

    @property
    def dim(self) -> int:
        return 3 * self.pair.dim

    @cached_property
    def _entries(self) -> list[tuple[int, int, int, int]]:
        """(L', parity, L, first feature of the block irrep copy), sorted by (L', parity)."""
        out, offset = [], 0
        for mul, ir in self.pair.irreps:
            for _ in range(mul):
                out += [(lp, ir.p, ir.l, offset) for lp in range(abs(ir.l - 1), ir.l + 2)]
                offset += ir.dim
        return sorted(out, key=lambda e: (e[0], -e[1]))

    @cached_property
    def irreps(self) -> o3.Irreps:
        return o3.Irreps([(1, (lp, p)) for lp, p, _, _ in self._entries]).simplify()

    @cached_property
    def V(self) -> np.ndarray:
        """Orthogonal (3 dim, 3 dim) matrix: vector irreps features = V @ vec(c)."""
        dim = self.pair.dim
        v = np.zeros((self.dim, 3, dim))
        row = 0
        for lp, _, l, offset in self._entries:
            w = o3.wigner_3j(l, 1, lp, dtype=torch.float64).numpy() * np.sqrt(2 * lp + 1)  # (M, m, M')
            for cart in range(3):
                v[row:row + 2 * lp + 1, cart, offset:offset + 2 * l + 1] = w[:, cart, :].T
            row += 2 * lp + 1
        return v.reshape(self.dim, self.dim)

    @cached_property
    def channel_of_feature(self) -> np.ndarray:
        """Index of the irrep channel each feature belongs to, (3 dim,)."""
        return irrep_channels(self.irreps)

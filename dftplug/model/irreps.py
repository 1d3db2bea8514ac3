"""Orbital blocks ⇄ irreducible representations of O(3), per ordered pair of species.

A block between shells of angular momenta (l1, l2) transforms as D^{l1} B D^{l2}ᵀ (internal
e3nn orbital convention, :mod:`dftplug.orbitals`). It decomposes into irreps
L = |l1 − l2| … l1 + l2 of parity (−1)^{l1+l2} with the Clebsch–Gordan (Wigner 3j) coefficients:

    c_{L,M} = sqrt(2L + 1) Σ_{m1,m2} W^{l1 l2 L}_{m1 m2 M} B_{m1 m2}

(``e3nn.o3.wigner_3j``, normalised so that Σ W² = 1; the sqrt(2L + 1) makes the map orthogonal).
This is the DeepH-E3 (Gong et al., Nat. Commun. 14, 2848 (2023)) / HamGNN (Zhong et al.,
npj Comput. Mater. 9, 182 (2023)) construction. For a species pair (a, b) the whole block
(norb_a × norb_b, row-major) maps to one feature vector laid out as an ``e3nn.o3.Irreps`` sorted
by (L, parity), multiplicity-major inside each irrep, through one orthogonal matrix Q:
features = Q · vec(B), vec(B) = Qᵀ · features.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from e3nn import o3

from dftplug.basis import L_LETTERS, Basis
from dftplug.errors import MismatchError


def _shell_offsets(ls) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([2 * l + 1 for l in ls])]).astype(int)


@dataclass(frozen=True)
class PairLayout:
    """Irreps layout of the blocks between species ``a`` (rows) and ``b`` (columns)."""

    a: str
    b: str
    ls_a: tuple[int, ...]
    ls_b: tuple[int, ...]

    @property
    def n_a(self) -> int:
        return int(sum(2 * l + 1 for l in self.ls_a))

    @property
    def n_b(self) -> int:
        return int(sum(2 * l + 1 for l in self.ls_b))

    @cached_property
    def _entries(self) -> list[tuple[int, int, int, int]]:
        """(L, parity, shell index in a, shell index in b), sorted by irrep then shell pair."""
        out = []
        for s1, l1 in enumerate(self.ls_a):
            for s2, l2 in enumerate(self.ls_b):
                for L in range(abs(l1 - l2), l1 + l2 + 1):
                    out.append((L, (-1) ** (l1 + l2), s1, s2))
        return sorted(out, key=lambda e: (e[0], -e[1]))

    @cached_property
    def irreps(self) -> o3.Irreps:
        """Irreps of one block, e.g. ``9x0e+12x1o+5x1e+...`` for Si 2s2p1d ⊗ 2s2p1d."""
        return o3.Irreps([(1, (L, p)) for L, p, _, _ in self._entries]).simplify()

    @property
    def dim(self) -> int:
        return self.n_a * self.n_b

    @cached_property
    def Q(self) -> np.ndarray:
        """Orthogonal (dim, dim) matrix: irrep features = Q @ vec(block)."""
        off_a, off_b = _shell_offsets(self.ls_a), _shell_offsets(self.ls_b)
        q = np.zeros((self.dim, self.n_a, self.n_b))
        row = 0
        for L, _, s1, s2 in self._entries:
            l1, l2 = self.ls_a[s1], self.ls_b[s2]
            w = o3.wigner_3j(l1, l2, L, dtype=torch.float64).numpy() * np.sqrt(2 * L + 1)  # (m1, m2, M)
            for M in range(2 * L + 1):
                q[row + M, off_a[s1]:off_a[s1 + 1], off_b[s2]:off_b[s2 + 1]] = w[:, :, M]
            row += 2 * L + 1
        return q.reshape(self.dim, self.dim)

    @cached_property
    def channel_of_feature(self) -> np.ndarray:
        """Index of the irrep channel (one multiplicity copy) each feature belongs to, (dim,)."""
        return irrep_channels(self.irreps)

    @cached_property
    def orbital_pair_type(self) -> np.ndarray:
        """Label index l_row * 10 + l_col of every block element (row-major), for per-type metrics."""
        la = np.concatenate([np.full(2 * l + 1, l) for l in self.ls_a])
        lb = np.concatenate([np.full(2 * l + 1, l) for l in self.ls_b])
        return (la[:, None] * 10 + lb[None, :]).ravel()

    def transpose_matrix(self, other: "PairLayout") -> np.ndarray:
        """(dim, dim) matrix T with features_ba(Bᵀ) = T @ features_ab(B); ``other`` is (b, a)."""
        perm = np.arange(self.dim).reshape(self.n_a, self.n_b).T.ravel()  # vec(Bᵀ) = vec(B)[perm]
        return other.Q[:, :] @ np.eye(self.dim)[perm] @ self.Q.T


def irrep_channels(irreps: o3.Irreps) -> np.ndarray:
    """Index of the irrep channel (one multiplicity copy) of every component of ``irreps``."""
    sizes = [ir.dim for mul, ir in irreps for _ in range(mul)]
    return np.repeat(np.arange(len(sizes)), sizes)


def pair_type_label(code: int) -> str:
    """'s-p' for the label index of :attr:`PairLayout.orbital_pair_type`."""
    return f"{L_LETTERS[code // 10]}-{L_LETTERS[code % 10]}"


@dataclass(frozen=True)
class BasisLayout:
    """Species, their shells and the spin channels a model covers; ordered pairs = edge types."""

    species: tuple[str, ...]
    ls: tuple[tuple[int, ...], ...]
    nspin: int

    @classmethod
    def from_basis(cls, basis: Basis, species, nspin: int) -> "BasisLayout":
        if nspin not in (1, 2, 4):
            raise MismatchError(f"nspin {nspin}: the ΔH model covers nspin 1, 2 and 4 (spin-orbit)")
        species = tuple(species)
        return cls(species, tuple(tuple(basis.ls(s)) for s in species), int(nspin))

    @property
    def channels(self) -> int:
        """Real channels of the graph's H0/ΔH features: nspin for nspin 1/2; for nspin 4 the 8 real
        spin channels of :mod:`.spinor` (Re h_0, Im h_x,y,z, Im h_0, Re h_x,y,z)."""
        return 8 if self.nspin == 4 else self.nspin

    @property
    def block_channels(self) -> int:
        """Channels that are ordinary blocks, carry the gauge μ·S and go through the core network
        (:class:`.model.DeltaHModel`): nspin for nspin 1/2, Re h_0 alone for nspin 4."""
        return 1 if self.nspin == 4 else self.nspin

    @cached_property
    def pairs(self) -> list[PairLayout]:
        """One layout per ordered species pair; edge type t = a * nspecies + b."""
        return [PairLayout(a, b, la, lb) for a, la in zip(self.species, self.ls)
                for b, lb in zip(self.species, self.ls)]

    def pair_type(self, a: int, b: int) -> int:
        return a * len(self.species) + b

    def partner_type(self, t: int) -> int:
        n = len(self.species)
        return (t % n) * n + t // n

    @cached_property
    def lmax(self) -> int:
        """Largest irrep L appearing in any block (2 × the largest shell l; + 1 for the spin
        vector channels of nspin 4)."""
        return max(ir.l for _, ir in self.block_irreps)

    @cached_property
    def block_irreps(self) -> o3.Irreps:
        """Every irrep (L, parity) some block needs, multiplicity 1; for nspin 4 also those of the
        spin-vector channels, (L, p) ⊗ 1e = L' ∈ |L − 1| … L + 1 with the parity p (:mod:`.spinor`)."""
        irs = {ir for p in self.pairs for _, ir in p.irreps}
        if self.nspin == 4:
            irs |= {o3.Irrep(l, ir.p) for ir in irs for l in range(abs(ir.l - 1), ir.l + 2)}
        return o3.Irreps([(1, ir) for ir in sorted(irs, key=lambda ir: (ir.l, -ir.p))])

    def to_dict(self) -> dict:
        return {"species": list(self.species), "ls": [list(x) for x in self.ls], "nspin": self.nspin}

    @classmethod
    def from_dict(cls, d: dict) -> "BasisLayout":
        return cls(tuple(d["species"]), tuple(tuple(x) for x in d["ls"]), int(d["nspin"]))

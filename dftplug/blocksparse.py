"""Block-sparse real-space matrices M_ij(R) between atom-centred orbital blocks.

Every parser turns its code's sparse storage (CSR per R, supercell columns, per-atom neighbour
blocks) into orbital-level COO triplets and calls :meth:`BlockSparse.from_orbital_coo`; every
writer goes back with :meth:`BlockSparse.to_orbital_coo`. Nothing here knows a DFT code.

Convention: block (i, j, R) holds <phi_i,a (r - tau_i) | M | phi_j,b (r - tau_j - R)>, with R in
integer lattice coordinates (R_cart = R @ cell). Hermiticity reads M_ij(R) = M_ji(-R)^T.

Spin channels (``data`` rows):
* nspin 1: one real channel (spin-restricted H, DM summed over spin; also every overlap S);
* nspin 2: collinear (up, down), real;
* nspin 4: spin-orbit / non-collinear spinor matrices, complex128, channels
  :data:`SPINOR_CHANNELS` = (uu, ud, du, dd): channel (s, s') of block (i, j, R) is
  <phi_i s | M | phi_j s' (R)>, i.e. channel index 2 s + s' with s = 0 (up), 1 (down) along z.
  The full spinor matrix is M[(a, s), (b, s')]; an overlap stays one real channel (S x 1_2 implied).
  Hermiticity then reads M^{ss'}_ij(R) = conj(M^{s's}_ji(-R))^T (:meth:`BlockSparse.adjoint`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import MismatchError

SPINOR_CHANNELS = ("uu", "ud", "du", "dd")  # nspin-4 channel order: index 2 s + s'
_SPIN_SWAP = np.array([0, 2, 1, 3])          # channel (s, s') -> (s', s)
_KEY_SHIFT = np.int64(1 << 12)  # lattice indices must lie in (-2048, 2048)


def _encode(pairs: np.ndarray, natoms: int) -> np.ndarray:
    """One sortable int64 key per (i, j, R1, R2, R3) row; order = lexicographic order of rows."""
    p = np.asarray(pairs, dtype=np.int64)
    half = _KEY_SHIFT // 2
    if p.size and (np.abs(p[:, 2:]).max() >= half):
        raise ValueError("lattice vector index out of range (|R| >= 2048)")
    key = p[:, 0] * natoms + p[:, 1]
    for c in (2, 3, 4):
        key = key * _KEY_SHIFT + (p[:, c] + half)
    return key


@dataclass
class BlockSparse:
    """Real-space block-sparse matrix, one dense block per stored (i, j, R).

    Attributes
    ----------
    norb : (natoms,) int  orbitals per atom; block (i, j, R) has shape (norb[i], norb[j]).
    pairs : (E, 5) int64  rows (i, j, R1, R2, R3), unique and sorted lexicographically.
    data : (nspin, nnz) float64 (complex128 for nspin-4 spinor channels)  the blocks' elements,
                          row-major, block after block.
    """

    norb: np.ndarray
    pairs: np.ndarray
    data: np.ndarray

    def __post_init__(self):
        self.norb = np.asarray(self.norb, dtype=np.int64)
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 5)
        self.data = np.asarray(self.data)
        if self.data.ndim == 1:
            self.data = self.data[None]
        sizes = self.block_sizes()
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if self.data.shape[1] != self.offsets[-1]:
            raise ValueError(
                f"data holds {self.data.shape[1]} elements per spin, blocks need {self.offsets[-1]}"
            )
        self._keys = _encode(self.pairs, self.natoms)
        if len(self._keys) > 1 and np.any(np.diff(self._keys) <= 0):
            raise ValueError("pairs must be unique and sorted (use BlockSparse.from_blocks)")

    # ----------------------------------------------------------------- basic properties
    @property
    def natoms(self) -> int:
        return len(self.norb)

    @property
    def nspin(self) -> int:
        return self.data.shape[0]

    @property
    def nedges(self) -> int:
        return len(self.pairs)

    def block_sizes(self) -> np.ndarray:
        return self.norb[self.pairs[:, 0]] * self.norb[self.pairs[:, 1]]

    def orbital_offsets(self) -> np.ndarray:
        """First orbital of every atom in the unit cell, shape (natoms + 1,)."""
        return np.concatenate([[0], np.cumsum(self.norb)])

    def copy(self, data: np.ndarray | None = None) -> "BlockSparse":
        return BlockSparse(self.norb.copy(), self.pairs.copy(), self.data.copy() if data is None else data)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_orbital_coo(cls, norb, rows, cols, cells, values) -> "BlockSparse":
        """Build from orbital-level triplets.

        rows, cols : (n,) unit-cell orbital indices (0-based) of the row and column orbital.
        cells : (n, 3) lattice vector R of the column orbital's cell.
        values : (nspin, n) or (n,) matrix elements. Elements of a touched block that are not
        given are zero; duplicates are an error.
        """
        norb = np.asarray(norb, dtype=np.int64)
        values = np.asarray(values)
        if values.ndim == 1:
            values = values[None]
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
        offs = np.concatenate([[0], np.cumsum(norb)])
        nao = offs[-1]
        if rows.size and (rows.min() < 0 or rows.max() >= nao or cols.min() < 0 or cols.max() >= nao):
            raise ValueError(f"orbital index outside 0..{nao - 1}")
        atom_of = np.repeat(np.arange(len(norb)), norb)
        ia, ja = atom_of[rows], atom_of[cols]
        pairs_all = np.column_stack([ia, ja, cells])
        keys = _encode(pairs_all, len(norb))
        ukeys, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        pairs = pairs_all[first]
        sizes = norb[pairs[:, 0]] * norb[pairs[:, 1]]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        pos = starts[inv] + (rows - offs[ia]) * norb[ja] + (cols - offs[ja])
        if len(np.unique(pos)) != len(pos):
            raise ValueError("duplicate (row, column, R) entries")
        data = np.zeros((values.shape[0], starts[-1]), dtype=values.dtype)
        data[:, pos] = values
        return cls(norb, pairs, data)

    @classmethod
    def from_blocks(cls, norb, pairs, blocks) -> "BlockSparse":
        """Build from a list of (nspin, ni, nj) arrays (any order of ``pairs``)."""
        norb = np.asarray(norb, dtype=np.int64)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 5)
        order = np.argsort(_encode(pairs, len(norb)), kind="stable")
        flat = [np.asarray(blocks[k]).reshape(np.asarray(blocks[k]).shape[0], -1) for k in order]
        nspin = flat[0].shape[0] if flat else 1
        data = np.concatenate(flat, axis=1) if flat else np.zeros((nspin, 0))
        return cls(norb, pairs[order], data)

    def to_orbital_coo(self):
        """Orbital-level triplets (rows, cols, cells, values[nspin, n]) of every stored element,
        ordered block after block, row-major inside a block."""
        offs = self.orbital_offsets()
        ni = self.norb[self.pairs[:, 0]]
        nj = self.norb[self.pairs[:, 1]]
        sizes = ni * nj
        edge = np.repeat(np.arange(self.nedges), sizes)
        local = np.arange(self.offsets[-1]) - self.offsets[edge]
        rows = offs[self.pairs[edge, 0]] + local // nj[edge]
        cols = offs[self.pairs[edge, 1]] + local % nj[edge]
        return rows, cols, self.pairs[edge, 2:5], self.data

    # ----------------------------------------------------------------- lookup
    def find(self, pairs) -> np.ndarray:
        """Edge index of every row of ``pairs`` (E', 5); -1 where the block is not stored."""
        keys = _encode(np.asarray(pairs).reshape(-1, 5), self.natoms)
        idx = np.searchsorted(self._keys, keys)
        idx = np.minimum(idx, max(self.nedges - 1, 0))
        found = (self.nedges > 0) & (self._keys[idx] == keys) if self.nedges else np.zeros(len(keys), bool)
        return np.where(found, idx, -1)

    def block(self, i: int, j: int, R=(0, 0, 0)) -> np.ndarray:
        """Block (nspin, norb[i], norb[j]); zeros when not stored."""
        e = self.find(np.array([[i, j, *R]]))[0]
        if e < 0:
            return np.zeros((self.nspin, self.norb[i], self.norb[j]), self.data.dtype)
        return self.data[:, self.offsets[e]:self.offsets[e + 1]].reshape(self.nspin, self.norb[i], self.norb[j])

    def gather(self, edges: np.ndarray) -> np.ndarray:
        """Blocks of ``edges`` (all of one shape) as an array (nspin, len(edges), ni, nj)."""
        ni, nj = self.norb[self.pairs[edges[0], 0]], self.norb[self.pairs[edges[0], 1]]
        idx = self.offsets[edges][:, None] + np.arange(ni * nj)
        return self.data[:, idx].reshape(self.nspin, len(edges), ni, nj)

    def shape_groups(self, kinds: np.ndarray | None = None):
        """Yield (edges, kind_i, kind_j) groups of edges whose atoms have the same kinds.

        ``kinds`` (natoms,) labels atoms (e.g. species index); default: orbital count.
        """
        kinds = self.norb if kinds is None else np.asarray(kinds)
        ki, kj = kinds[self.pairs[:, 0]], kinds[self.pairs[:, 1]]
        code = ki.astype(np.int64) * (int(kinds.max(initial=0)) + 1) + kj
        for c in np.unique(code):
            edges = np.nonzero(code == c)[0]
            yield edges, ki[edges[0]], kj[edges[0]]

    # ----------------------------------------------------------------- algebra
    def transform(self, kinds: np.ndarray, umats) -> "BlockSparse":
        """Return blocks U_ki M_ij(R) U_kj^T with ``umats[kinds[i]]`` per atom (basis change)."""
        out = np.empty_like(self.data, dtype=np.result_type(self.data, umats[0]))
        for edges, ki, kj in self.shape_groups(kinds):
            blocks = self.gather(edges)
            new = np.einsum("ab,sebc,dc->sead", umats[ki], blocks, umats[kj], optimize=True)
            idx = self.offsets[edges][:, None] + np.arange(new.shape[2] * new.shape[3])
            out[:, idx] = new.reshape(self.nspin, len(edges), -1)
        return self.copy(out)

    def partner_index(self) -> np.ndarray:
        """For each edge (i, j, R), the edge index of (j, i, -R); -1 if not stored."""
        p = self.pairs
        partner = np.column_stack([p[:, 1], p[:, 0], -p[:, 2:5]])
        return self.find(partner)

    def transposed(self) -> "BlockSparse":
        """M'_ij(R) = M_ji(-R)^T per channel, on the same pattern (requires a symmetric pattern)."""
        partner = self.partner_index()
        if np.any(partner < 0):
            raise MismatchError(f"{np.sum(partner < 0)} blocks have no (j, i, -R) partner")
        out = np.empty_like(self.data)
        for edges, _, _ in self.shape_groups():
            pb = self.gather(partner[edges])  # (s, e, nj, ni) blocks of the partners
            idx = self.offsets[edges][:, None] + np.arange(pb.shape[2] * pb.shape[3])
            out[:, idx] = pb.transpose(0, 1, 3, 2).reshape(self.nspin, len(edges), -1)
        return self.copy(out)

    def adjoint(self) -> "BlockSparse":
        """The Hermitian adjoint M^dagger on the same pattern: M'_ij(R) = conj(M_ji(-R))^T per
        channel, and for nspin 4 also the spin indices swap (channel ud <- du).
        Real nspin 1/2 matrices: the same as :meth:`transposed`."""
        t = self.transposed()
        data = np.conj(t.data) if np.iscomplexobj(t.data) else t.data
        return t.copy(data[_SPIN_SWAP] if self.nspin == 4 else data)

    def block_max_abs(self) -> np.ndarray:
        """max |element| of every block over its elements and spin channels, shape (E,)."""
        if not self.nedges:
            return np.zeros(0)
        return np.maximum.reduceat(np.abs(self.data).max(axis=0), self.offsets[:-1])

    def hermiticity_error(self) -> float:
        """max |M - M^dagger| (blocks without a (j, i, -R) partner count as the block itself);
        NaN when any element is not finite (``max`` would silently skip a NaN)."""
        if not np.isfinite(self.data).all():
            return float("nan")
        partner = self.partner_index()
        err = 0.0
        if np.any(partner < 0):
            lone = np.nonzero(partner < 0)[0]
            idx = np.concatenate([np.arange(self.offsets[e], self.offsets[e + 1]) for e in lone])
            err = float(np.abs(self.data[:, idx]).max(initial=0.0))
        full = self.with_pairs(self.symmetric_pairs())
        return max(err, float(np.abs(full.data - full.adjoint().data).max(initial=0.0)))

    def hermitized(self) -> "BlockSparse":
        """(M + M^dagger)/2 on the symmetric closure of the pattern."""
        full = self.with_pairs(self.symmetric_pairs())
        return full.copy(0.5 * (full.data + full.adjoint().data))

    def spin_transform(self, u: np.ndarray) -> "BlockSparse":
        """nspin 4: M' = (1 x u) M (1 x u)^dagger, i.e. M'^{ab} = sum u_ac M^{cd} conj(u_bd),
        for a 2x2 matrix ``u`` acting on the spin index (e.g. an SU(2) rotation)."""
        self._require_spinor("a spin transformation")
        m = self.data.reshape(2, 2, -1)
        return self.copy(np.einsum("ac,cdn,bd->abn", u, m, np.conj(u)).reshape(4, -1))

    def time_reversed(self) -> "BlockSparse":
        """theta M theta^-1 with theta = -i sigma_y K (K: complex conjugation; the orbitals are
        real, so K acts on the coefficients only). nspin 4: M' = J conj(M) J^T with
        J = -i sigma_y = [[0, -1], [1, 0]], i.e. M'uu = conj(Mdd), M'dd = conj(Muu),
        M'ud = -conj(Mdu), M'du = -conj(Mud). nspin 2: up and down swap; nspin 1: unchanged."""
        if self.nspin == 4:
            return self.conj().spin_transform(np.array([[0.0, -1.0], [1.0, 0.0]]))
        return self.copy(self.data[::-1].copy())

    def conj(self) -> "BlockSparse":
        return self.copy(np.conj(self.data))

    def _require_spinor(self, what: str) -> None:
        if self.nspin != 4:
            raise MismatchError(f"{what} needs a 4-channel spinor matrix, this one has nspin {self.nspin}")

    def symmetric_pairs(self) -> np.ndarray:
        p = self.pairs
        return union_pairs(p, np.column_stack([p[:, 1], p[:, 0], -p[:, 2:5]]), natoms=self.natoms)

    def with_pairs(self, pairs: np.ndarray, strict: bool = False) -> "BlockSparse":
        """The same matrix on another (sorted, unique) block pattern: new blocks are zero,
        blocks not in ``pairs`` are dropped (``strict``: refuse to drop nonzero blocks)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 5)
        new = BlockSparse(self.norb, pairs, np.zeros((self.nspin, int(np.sum(
            self.norb[pairs[:, 0]] * self.norb[pairs[:, 1]]))), self.data.dtype))
        src = self.find(pairs)
        have = np.nonzero(src >= 0)[0]
        if strict:
            kept = np.zeros(self.nedges, bool)
            kept[src[have]] = True
            lost = np.nonzero(~kept)[0]
            if len(lost):
                idx = np.concatenate([np.arange(self.offsets[e], self.offsets[e + 1]) for e in lost])
                if np.abs(self.data[:, idx]).max(initial=0) > 0:
                    raise MismatchError(f"{len(lost)} nonzero blocks are outside the target pattern")
        if len(have):
            sizes = new.offsets[have + 1] - new.offsets[have]
            dst_idx = np.repeat(new.offsets[have], sizes) + _ranges(sizes)
            src_idx = np.repeat(self.offsets[src[have]], sizes) + _ranges(sizes)
            new.data[:, dst_idx] = self.data[:, src_idx]
        return new

    def _aligned(self, other: "BlockSparse"):
        if not np.array_equal(self.norb, other.norb):
            raise MismatchError("matrices have different orbital counts per atom")
        if self.nspin != other.nspin and 1 not in (self.nspin, other.nspin):
            raise MismatchError(f"nspin {self.nspin} vs {other.nspin}")
        if self.nedges == other.nedges and np.array_equal(self.pairs, other.pairs):
            return self, other
        p = union_pairs(self.pairs, other.pairs, natoms=self.natoms)
        return self.with_pairs(p), other.with_pairs(p)

    def __add__(self, other: "BlockSparse") -> "BlockSparse":
        a, b = self._aligned(other)
        return a.copy(a.data + b.data)

    def __sub__(self, other: "BlockSparse") -> "BlockSparse":
        a, b = self._aligned(other)
        return a.copy(a.data - b.data)

    def scaled(self, factor: float) -> "BlockSparse":
        return self.copy(self.data * factor)

    def allclose(self, other: "BlockSparse", atol: float) -> bool:
        return float(np.abs((self - other).data).max(initial=0.0)) <= atol

    def contract(self, other: "BlockSparse") -> np.ndarray:
        """sum_{ijR} A_ij(R) B_ij(R) per spin, e.g. Tr(DM S) = electron count per spin."""
        a, b = self._aligned(other)
        return np.sum(a.data * b.data, axis=1)


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s) for s in sizes."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total) - starts


def union_pairs(*pair_sets, natoms: int) -> np.ndarray:
    """Sorted union of several (E, 5) block patterns."""
    allp = np.concatenate([np.asarray(p, dtype=np.int64).reshape(-1, 5) for p in pair_sets])
    _, idx = np.unique(_encode(allp, natoms), return_index=True)
    return allp[idx]

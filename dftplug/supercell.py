"""Supercells of a Hamiltonian: tile every real-space matrix n1 x n2 x n3 times.

Atom a of image m = (m1, m2, m3) becomes atom (index(m)·natoms + a), images in ase's
``Atoms.repeat`` order (m3 fastest). Block (i, j, R) of image m couples to image
m' = (m + R) mod n in supercell lattice vector R' = floor((m + R)/n).
"""
from __future__ import annotations

import numpy as np

from .blocksparse import BlockSparse, _ranges
from .hamiltonian import Hamiltonian


def _image_index(m: np.ndarray, reps: np.ndarray) -> np.ndarray:
    return (m[..., 0] * reps[1] + m[..., 1]) * reps[2] + m[..., 2]


def tile_matrix(mat: BlockSparse, reps) -> BlockSparse:
    """The block-sparse matrix of the n1 x n2 x n3 supercell (same nspin, same block values)."""
    reps = np.asarray(reps, dtype=np.int64)
    images = np.stack(np.meshgrid(*[np.arange(n) for n in reps], indexing="ij"), -1).reshape(-1, 3)
    target = images[:, None, :] + mat.pairs[None, :, 2:5]                  # (nimg, E, 3)
    cell, image_j = target // reps, target % reps
    nat = mat.natoms
    i_new = _image_index(images, reps)[:, None] * nat + mat.pairs[None, :, 0]
    j_new = _image_index(image_j, reps) * nat + mat.pairs[None, :, 1]
    pairs = np.column_stack([np.broadcast_to(i_new, j_new.shape).ravel(), j_new.ravel(),
                             cell.reshape(-1, 3)])
    order = np.lexsort(pairs.T[::-1])                                         # (i, j, R) lexicographic
    source = order % mat.nedges                                               # edge of the unit cell
    sizes = mat.block_sizes()[source]
    index = np.repeat(mat.offsets[source], sizes) + _ranges(sizes)
    return BlockSparse(np.tile(mat.norb, len(images)), pairs[order], mat.data[:, index])


def tile(h: Hamiltonian, reps) -> Hamiltonian:
    """``h`` repeated n1 x n2 x n3 times: atoms (ase ``repeat``), every matrix, electron count;
    the k-mesh setting shrinks to ceil(mesh / n). Fermi level and basis are unchanged."""
    reps = np.asarray(reps, dtype=np.int64)
    settings = dict(h.settings)
    if "kmesh" in settings:
        settings["kmesh"] = [int(-(-k // n)) for k, n in zip(settings["kmesh"], reps)]
    return Hamiltonian(h.atoms.repeat(tuple(int(n) for n in reps)), h.basis,
                       fermi_level=h.fermi_level, nelec=None if h.nelec is None else h.nelec * int(reps.prod()),
                       h0_kind=h.h0_kind, provenance={**h.provenance, "supercell": reps.tolist()},
                       settings=settings, **{n: tile_matrix(m, reps) for n, m in h.matrices().items()})

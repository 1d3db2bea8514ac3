"""Bloch sums of per-edge blocks as torch tensors, for the losses that work in reciprocal space.

M(k) = Σ_R M(R) e^{i2πk·R} (the phase convention of :mod:`dftplug.kspace`), assembled from the
model's per-edge-type blocks with an index computed once per structure, so that it stays
differentiable with respect to the blocks.
"""
from __future__ import annotations

import numpy as np
import torch


def bloch_index(kpts: np.ndarray, pairs: np.ndarray, type_edges: list, layout, norb: np.ndarray):
    """(phase, orbital_index, nao) of a structure's edges ``pairs`` (E, 5) grouped by ``type_edges``:
    phase T × (nk, E_t) complex e^{i2πk·R}, orbital_index T × (E_t, dim_t) long row·nao + column of
    each (row-major) block element; kpts (nk, 3) reduced, norb (natoms,)."""
    offs = np.concatenate([[0], np.cumsum(norb)])
    nao = int(offs[-1])
    phase, orbital_index = [], []
    for t, edges in enumerate(type_edges):
        p = layout.pairs[t]
        phase.append(torch.from_numpy(np.exp(2j * np.pi * kpts @ pairs[edges, 2:5].T.astype(float))))
        rows = offs[pairs[edges, 0]][:, None] + np.arange(p.n_a)[None, :]
        cols = offs[pairs[edges, 1]][:, None] + np.arange(p.n_b)[None, :]
        orbital_index.append(torch.from_numpy((rows[:, :, None] * nao + cols[:, None, :]).reshape(len(edges), p.dim)))
    return phase, orbital_index, nao


def bloch_dense(blocks: list, type_graph: list, n: int, phase: list, orbital_index: list, nao: int) -> torch.Tensor:
    """M(k) (nk, S, nao, nao) of structure ``n`` of a batch from its blocks, T × (E_t, S, dim_t) row-major
    block elements, with that structure's ``phase``/``orbital_index`` (:func:`bloch_index`); ``type_graph``
    T × (E_t,) the structure of each edge."""
    nk = phase[0].shape[0]
    nspin = blocks[0].shape[1]
    dense = torch.zeros(nk, nspin, nao * nao, dtype=phase[0].dtype, device=phase[0].device)
    for t, (r, graph) in enumerate(zip(blocks, type_graph)):
        sel = graph == n
        if not bool(sel.any()):
            continue
        vals = r[sel].to(phase[t].dtype)[None] * phase[t][:, :, None, None]  # (nk, E, S, dim)
        dense = dense.index_add(2, orbital_index[t].reshape(-1), vals.permute(0, 2, 1, 3).reshape(nk, nspin, -1))
    return dense.view(nk, nspin, nao, nao)

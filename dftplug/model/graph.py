"""A :class:`~dftplug.Hamiltonian` as the tensors the model reads: one graph per structure.

Nodes are atoms; edges are the blocks (i, j, R) where ΔH = H − H0 can be nonzero (those of S,
see :func:`graph_pairs`), closed under (i, j, R) → (j, i, −R) and including the on-site blocks.
Each edge carries its bond vector r_ij = τ_j + R·cell − τ_i (Å), its type t = (species_i, species_j) and its H0 (eV) and S
blocks as irreps features (:mod:`dftplug.model.irreps`). Edges of one type are kept together so
that per-type tensors (whose width depends on the two species' shells) can be stacked.

For the reciprocal-space loss a graph may also carry, at a few k-points, the DFT eigenvectors and
eigenvalues of the bands near the Fermi level (computed once here, they do not depend on the model).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, fields, is_dataclass, replace

import numpy as np
import torch

from dftplug.blocksparse import BlockSparse, union_pairs
from dftplug.hamiltonian import Hamiltonian

from .bands import band_energies, sample_kpoints
from .bloch import bloch_index
from .density_response import density_response_data
from .irreps import BasisLayout
from .spinor import to_real_channels


@dataclass
class KspaceData:
    """DFT bands of one structure at a few k-points, for the reciprocal-space loss.

    phase : list over edge types of (nk, E_t) complex  e^{i 2π k·R} of the structure's edges
    orbital_index : list over edge types of (E_t, dim_t) long  row·nao + column of each block element
    vectors : (nk, nspin, nao, nb) complex  S-normalised eigenvectors of the bands in the window
    energies : (nk, nspin, nb) eV;  mask : (nk, nspin, nb) bool (padding of the band window)
    """

    nao: int
    phase: list
    orbital_index: list
    vectors: torch.Tensor
    energies: torch.Tensor
    mask: torch.Tensor


@dataclass
class Graph:
    """One structure, or a batch of several (see :func:`collate`). Shapes: N atoms, E edges,
    T = nspecies² edge types, E_t edges of type t, dim_t = norb_a·norb_b, S = nspin (nspin 1/2) or
    the 8 real spin channels of :mod:`.spinor` (nspin 4, spin–orbit)."""

    names: list[str]
    species: torch.Tensor          # (N,) long, index into the layout's species
    node_graph: torch.Tensor       # (N,) long, structure of each atom
    edge_src: torch.Tensor         # (E,) long, atom i
    edge_dst: torch.Tensor         # (E,) long, atom j
    edge_vec: torch.Tensor         # (E, 3) Å, r_ij
    partner: torch.Tensor          # (E,) long, edge (j, i, −R)
    type_edges: list               # T × (E_t,) long, edges of each type (structure-major)
    type_graph: list               # T × (E_t,) long, structure of each of these edges
    h0: list                       # T × (E_t, S, dim_t) eV, H0 blocks as irreps features
    s: list                        # T × (E_t, dim_t), S blocks as irreps features
    target: list | None = None     # T × (E_t, S, dim_t) eV, ΔH = H − H0 as irreps features
    kspace: list = field(default_factory=list)  # per structure: KspaceData or None
    density: list = field(default_factory=list)  # per structure: .density_response.DensityResponseData or None

    @property
    def n_graphs(self) -> int:
        return len(self.names)

    @property
    def n_edges(self) -> int:
        return len(self.edge_src)

    def to(self, device=None, dtype=None) -> "Graph":
        """Move to ``device``; real floating tensors become ``dtype`` (complex ones follow)."""
        cdtype = None if dtype is None else (torch.complex128 if dtype == torch.float64 else torch.complex64)

        def move(x):
            if isinstance(x, torch.Tensor):
                if x.is_complex():
                    return x.to(device=device, dtype=cdtype)
                return x.to(device=device, dtype=dtype if x.is_floating_point() else None)
            if isinstance(x, list):
                return [move(v) for v in x]
            if is_dataclass(x):  # KspaceData, DensityResponseData
                return replace(x, **{f.name: move(getattr(x, f.name)) for f in fields(x)
                                     if isinstance(getattr(x, f.name), (torch.Tensor, list))})
            return x

        return replace(self, **{f.name: move(getattr(self, f.name)) for f in fields(self)})


def graph_pairs(h: Hamiltonian) -> np.ndarray:
    """The model's edge pattern (E, 5): the blocks where the orbitals of the two atoms overlap
    (S_ij(R) not identically zero) and every on-site block (i, i, 0), closed under
    (i, j, R) → (j, i, −R).

    Only these blocks change in SCF: H − H0 is the change of the local (Hartree + xc) potential,
    whose matrix elements vanish where the two orbitals do not overlap, while the kinetic and the
    nonlocal pseudopotential terms (which give H its longer range) are the same in H0 and H.
    Measured on ABACUS si8: |H − H0| ≤ 1e-10 eV beyond the overlap range; see
    :func:`dftplug.model.train.data_description` for the check on every training set."""
    n = h.natoms
    s = h.S
    overlap = s.block_max_abs() > 0
    onsite = np.column_stack([np.arange(n), np.arange(n), np.zeros((n, 3), np.int64)])
    p = union_pairs(s.pairs[overlap], onsite, natoms=n)
    return union_pairs(p, np.column_stack([p[:, 1], p[:, 0], -p[:, 2:5]]), natoms=n)


def _irreps_of(m: BlockSparse, type_edges, layout: BasisLayout, types) -> list:
    """Blocks of ``m`` as irreps features per edge type: T × (E_t, nspin, dim_t) float64."""
    out = []
    for t, edges in zip(types, type_edges):
        p = layout.pairs[t]
        if len(edges) == 0:
            out.append(torch.zeros(0, m.nspin, p.dim, dtype=torch.float64))
            continue
        blocks = m.gather(edges).reshape(m.nspin, len(edges), p.dim)
        out.append(torch.from_numpy(np.einsum("sed,fd->esf", blocks, p.Q)))
    return out


def _real_channels(m: BlockSparse) -> BlockSparse:
    """The model's real channels of a matrix: itself (nspin 1/2), or the 8 real spin channels of a
    spin–orbit spinor matrix (nspin 4, :func:`.spinor.to_real_channels`)."""
    return to_real_channels(m) if m.nspin == 4 else m


def build_graph(h: Hamiltonian, layout: BasisLayout, name: str = "", with_target: bool = True,
                kpoints: int = 0, band_window: float = 3.0, seed: int = 0, density: bool = False) -> Graph:
    """Tensors of ``h`` (with H0 and S; H too when ``with_target``) for a model of ``layout``.

    ``kpoints`` > 0 adds the DFT bands within ``band_window`` eV of the Fermi level at Γ and
    ``kpoints`` − 1 random k-points (seeded by ``seed`` and ``name``) for the reciprocal-space loss;
    ``density`` the converged H's eigenpairs on the run's k-mesh for the density-response loss
    (:mod:`.density_response`).
    """
    pairs = graph_pairs(h)
    norb = h.norb()
    kind = np.array([layout.species.index(s) for s in h.symbols], dtype=np.int64)
    h0 = _real_channels(h.H0.with_pairs(pairs))
    s = h.S.with_pairs(pairs)
    ntypes = len(layout.pairs)
    etype = kind[pairs[:, 0]] * len(layout.species) + kind[pairs[:, 1]]
    type_edges = [np.nonzero(etype == t)[0] for t in range(ntypes)]
    vec = h.bond_vectors(pairs)
    s_irr = [x[:, 0] for x in _irreps_of(s, type_edges, layout, range(ntypes))]
    target = None
    if with_target:
        target = _irreps_of(_real_channels((h.H - h.H0).with_pairs(pairs)), type_edges, layout, range(ntypes))
    kdata = None
    if kpoints > 0 and with_target and h.fermi_level is not None:
        kdata = _kspace_data(h, pairs, norb, type_edges, layout, kpoints, band_window,
                             np.random.default_rng([seed, zlib.crc32(name.encode())]))
    ddata = density_response_data(h, pairs, type_edges, layout) if density and with_target else None
    partner = h0.partner_index()
    return Graph(
        names=[name], species=torch.from_numpy(kind), node_graph=torch.zeros(h.natoms, dtype=torch.long),
        edge_src=torch.from_numpy(pairs[:, 0].copy()), edge_dst=torch.from_numpy(pairs[:, 1].copy()),
        edge_vec=torch.from_numpy(vec), partner=torch.from_numpy(partner),
        type_edges=[torch.from_numpy(e) for e in type_edges],
        type_graph=[torch.zeros(len(e), dtype=torch.long) for e in type_edges],
        h0=_irreps_of(h0, type_edges, layout, range(ntypes)), s=s_irr, target=target, kspace=[kdata],
        density=[ddata])


def _kspace_data(h, pairs, norb, type_edges, layout, nk, window, rng) -> KspaceData:
    kpts = sample_kpoints(nk, rng, h.atoms.pbc)
    hs = h.H.with_pairs(pairs)
    s = h.S.with_pairs(pairs)
    nao = int(norb.sum())
    vecs, eps = [], []
    for k in kpts:
        for spin in range(hs.nspin):
            e, c = band_energies(hs, s, k, spin, vectors=True)
            sel = np.abs(e - h.fermi_level) <= window
            vecs.append(c[:, sel])
            eps.append(e[sel])
    nb = max(1, max(len(e) for e in eps))
    shape = (len(kpts), hs.nspin)
    vectors = np.zeros(shape + (nao, nb), complex)
    energies = np.zeros(shape + (nb,))
    mask = np.zeros(shape + (nb,), bool)
    for n, (c, e) in enumerate(zip(vecs, eps)):
        ik, sp = divmod(n, hs.nspin)
        vectors[ik, sp, :, :len(e)] = c
        energies[ik, sp, :len(e)] = e
        mask[ik, sp, :len(e)] = True
    phase, orbital_index, _ = bloch_index(kpts, pairs, type_edges, layout, norb)
    return KspaceData(nao, phase, orbital_index, torch.from_numpy(vectors), torch.from_numpy(energies),
                      torch.from_numpy(mask))


def collate(graphs: list[Graph]) -> Graph:
    """Stack structures into one disconnected graph (indices shifted, per-type lists joined)."""
    node_off = np.cumsum([0] + [len(g.species) for g in graphs])
    edge_off = np.cumsum([0] + [g.n_edges for g in graphs])
    ntypes = len(graphs[0].type_edges)

    def cat(name, shift=None):
        return torch.cat([getattr(g, name) + (0 if shift is None else int(shift[n])) for n, g in enumerate(graphs)])

    def cat_types(name, shift=None):
        return [torch.cat([getattr(g, name)[t] + (0 if shift is None else int(shift[n]))
                           for n, g in enumerate(graphs)]) for t in range(ntypes)]

    graph_ids = np.arange(len(graphs))
    return Graph(
        names=[n for g in graphs for n in g.names],
        species=cat("species"),
        node_graph=torch.cat([torch.full((len(g.species),), n, dtype=torch.long) for n, g in enumerate(graphs)]),
        edge_src=cat("edge_src", node_off), edge_dst=cat("edge_dst", node_off),
        edge_vec=cat("edge_vec"), partner=cat("partner", edge_off),
        type_edges=cat_types("type_edges", edge_off), type_graph=cat_types("type_graph", graph_ids),
        h0=cat_types("h0"), s=cat_types("s"),
        target=cat_types("target") if all(g.target is not None for g in graphs) else None,
        kspace=[k for g in graphs for k in g.kspace],
        density=[d for g in graphs for d in g.density])

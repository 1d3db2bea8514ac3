"""Bridge to sisl: :func:`to_sisl` and :func:`from_sisl` between the common object and
``sisl.Hamiltonian`` (with overlap and collinear spin).

On the sisl side the orbitals are ``sisl.AtomicOrbital`` (n, l, m, zeta, P, R) in SIESTA's order and
with SIESTA's real-harmonic signs (see :mod:`dftplug.parsers.siesta`), so sisl's orbital names, its
projections and any file sisl writes are right for SIESTA. Energies stay in the common object's eV
(SIESTA's raw H converted with SIESTA's 1 Ry = 13.60580 eV; no E_F shift): ``to_sisl(h).eigh(k)``
gives the energies SIESTA printed. sisl's own SIESTA readers instead return H - E_F S converted
with 13.6056931 eV/Ry; undo that before :func:`from_sisl` if you need SIESTA's raw reference.
"""
from __future__ import annotations

import ase
import numpy as np
import scipy.sparse as sp
import sisl

from .basis import Basis, Shell
from .blocksparse import BlockSparse
from .errors import MismatchError
from .hamiltonian import Hamiltonian
from .parsers.siesta import orbital_transform, siesta_blocks


def _geometry(h: Hamiltonian, nsc) -> sisl.Geometry:
    pol = h.settings.get("siesta_polarization", {})
    atoms = {}
    for sym in dict.fromkeys(h.symbols):
        flags = pol.get(sym, [False] * len(h.basis.shells[sym]))
        orbs = [sisl.AtomicOrbital(n=s.n if s.n is not None else s.l + 1, l=s.l, m=m, zeta=s.zeta, P=p,
                                   R=s.rcut if s.rcut is not None else -1.0)
                for s, p in zip(h.basis.shells[sym], flags) for m in range(-s.l, s.l + 1)]
        atoms[sym] = sisl.Atom(ase.data.atomic_numbers[sym], orbs, tag=sym)
    lattice = sisl.Lattice(h.atoms.cell.array, nsc=nsc)
    return sisl.Geometry(h.atoms.positions, [atoms[s] for s in h.symbols], lattice=lattice)


def to_sisl(h: Hamiltonian, matrix: str = "H") -> sisl.Hamiltonian:
    """``h.<matrix>`` (H, or H0 for a zeroth-step run; eV) with h.S as a non-orthogonal
    ``sisl.Hamiltonian`` (spin "polarized" when nspin = 2)."""
    ham, s = siesta_blocks(h, matrix), siesta_blocks(h, "S")
    cells = np.concatenate([ham.pairs[:, 2:], s.pairs[:, 2:]])
    nsc = 2 * np.abs(cells).max(axis=0, initial=0) + 1
    geom = _geometry(h, nsc)
    no = geom.no
    shape = (no, no * geom.n_s)

    def csr(mat: BlockSparse, spin: int) -> sp.csr_matrix:
        rows, cols, R, values = mat.to_orbital_coo()
        col = cols + no * geom.lattice.sc_index(R)
        return sp.csr_matrix((values[spin], (rows, col)), shape=shape)

    spin = {1: "unpolarized", 2: "polarized"}.get(ham.nspin)
    if spin is None:
        raise MismatchError(f"to_sisl handles nspin 1 or 2, got {ham.nspin}")
    return sisl.Hamiltonian.fromsp(geom, [csr(ham, k) for k in range(ham.nspin)], S=csr(s, 0), spin=spin)


def from_sisl(H: sisl.Hamiltonian) -> Hamiltonian:
    """The common object (eV, internal orbital convention) of a sisl Hamiltonian whose atoms carry
    ``AtomicOrbital`` (n, l, m, zeta) in SIESTA's order and signs (as :func:`to_sisl` and sisl's
    fdf reader produce)."""
    geom = H.geometry
    shells, pol = {}, {}
    for atom in geom.atoms.atom:
        sym = ase.data.chemical_symbols[atom.Z]
        got, flags = _shells(atom)
        if sym in shells and (shells[sym] != got):
            raise MismatchError(f"two different bases for element {sym}")
        shells[sym], pol[sym] = got, flags
    symbols = [ase.data.chemical_symbols[z] for z in geom.atoms.Z]
    atoms = ase.Atoms(symbols, positions=geom.xyz, cell=geom.cell, pbc=True)
    basis = Basis(shells)
    norb = np.array([basis.norb(s) for s in symbols], dtype=np.int64)
    if norb.sum() != geom.no:
        raise MismatchError(f"the orbitals give {norb.sum()} functions, the geometry has {geom.no}")
    names = list(dict.fromkeys(symbols))
    kinds = np.array([names.index(s) for s in symbols])
    umats = [orbital_transform(basis.ls(s)) for s in names]
    sc_off = geom.lattice.sc_off

    def blocks(dims) -> BlockSparse:
        mats = [H.tocsr(d).tocoo() for d in dims]
        pattern = sum(abs(m) for m in mats).tocoo()
        rows, cols = pattern.row, pattern.col
        values = np.stack([np.asarray(H.tocsr(d)[rows, cols]).ravel() for d in dims])
        raw = BlockSparse.from_orbital_coo(norb, rows, cols % geom.no, sc_off[cols // geom.no], values)
        return raw.transform(kinds, umats)

    if not (H.spin.is_unpolarized or H.spin.is_polarized):
        raise MismatchError("from_sisl handles unpolarized and collinear-polarized Hamiltonians")
    mats = {"H": blocks(range(1 if H.spin.is_unpolarized else 2))}
    if not H.orthogonal:
        mats["S"] = blocks([H.S_idx])
    return Hamiltonian(atoms=atoms, basis=basis, provenance={"code": "sisl", "source": repr(H)[:80]},
                       settings={"siesta_polarization": pol}, **mats)


def _shells(atom: sisl.Atom) -> tuple[tuple[Shell, ...], list[bool]]:
    """Shells of a sisl atom: consecutive AtomicOrbitals m = -l..l of one (n, l, zeta, P)."""
    shells, flags, k = [], [], 0
    orbs = atom.orbitals
    while k < len(orbs):
        o = orbs[k]
        if not isinstance(o, sisl.AtomicOrbital):
            raise MismatchError(f"atom {atom.tag}: orbital {k} has no (n, l, m); pass a geometry with a basis")
        group = orbs[k:k + 2 * o.l + 1]
        if [g.m for g in group] != list(range(-o.l, o.l + 1)) or any(
                (g.n, g.l, g.zeta, g.P) != (o.n, o.l, o.zeta, o.P) for g in group):
            raise MismatchError(f"atom {atom.tag}: orbitals {k}.. are not one shell with m = -l..l")
        shells.append(Shell(o.l, o.zeta, o.n, o.R if o.R > 0 else None))
        flags.append(bool(o.P))
        k += len(group)
    return tuple(shells), flags

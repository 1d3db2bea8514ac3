"""Electron density on a periodic real-space grid from a density matrix of atomic orbitals.

    rho_s(r) = sum_{(i, j, R)} sum_{a in i, b in j} DM^s_ab(R) sum_L phi_a(r - tau_i - L) phi_b(r - tau_j - R - L)

with phi_a(r) = R_shell(|r|) Y_lm(r/|r|), Y the internal (e3nn-convention, orthonormal) real
harmonics of :func:`dftplug.orbitals.real_sh`, so the internal DM is used as it is (a code's orbital
order and signs were converted at its parser). nspin 1 gives the spin-summed density, nspin 2 one
density per spin; spinor (nspin 4) matrices are refused. Units: Å, radial functions in Å^-3/2,
densities in electrons/Å³.

Each atom's orbitals are evaluated once on the grid points inside its cutoff sphere (unwrapped
integer grid indices, so periodic images are index shifts by R * shape); a block (i, j, R) then adds
DM_ij(R) phi_j to the points the two spheres share, found by the lookup tables over both atoms'
bounding boxes, sliced to the boxes' intersection.
The sum is wrapped onto the periodic grid at the end (cost ~ sum over blocks of
2 norb_i norb_j x shared points). sisl's ``DensityMatrix.density`` does the same for sisl objects, in
sisl's orbital convention with its own radial interpolation; here the internal harmonics and any
radial callable (OpenMX's interpolation reproduces its ``.crst`` to 1e-8) are used without conversion.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from .blocksparse import BlockSparse
from .errors import MismatchError
from .hamiltonian import Hamiltonian
from .orbitals import real_sh


@dataclass(frozen=True)
class RealSpaceGrid:
    """A grid dividing the periodic cell into ``shape`` steps: point n = (n1, n2, n3) sits at
    ``origin + n @ step`` (Å), step = cell / shape (rows); point indices wrap modulo ``shape``."""

    shape: tuple[int, int, int]
    cell: np.ndarray    # (3, 3) Å, rows a1, a2, a3
    origin: np.ndarray  # (3,) Å

    @property
    def step(self) -> np.ndarray:
        return np.asarray(self.cell, float) / np.asarray(self.shape, float)[:, None]

    @property
    def voxel_volume(self) -> float:
        """Volume per grid point, Å³."""
        return abs(float(np.linalg.det(self.step)))

    def sphere(self, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Unwrapped indices (n, 3) of the points within ``radius`` (Å) of ``centre``, and the
        displacements r_n - centre (n, 3), Å."""
        inv = np.linalg.inv(self.step)
        frac = (np.asarray(centre, float) - self.origin) @ inv
        half = radius * np.linalg.norm(inv, axis=0)  # extent of the sphere along each index
        axes = [np.arange(int(np.floor(f - w)), int(np.ceil(f + w)) + 1) for f, w in zip(frac, half)]
        index = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        disp = self.origin + index @ self.step - centre
        inside = np.einsum("ij,ij->i", disp, disp) <= radius * radius
        return index[inside], disp[inside]

    def wrap(self, index: np.ndarray) -> np.ndarray:
        """C-order linear index of unwrapped point indices (n, 3)."""
        return np.ravel_multi_index(tuple(np.mod(index, self.shape).T), self.shape)


@dataclass(frozen=True)
class RadialFunction:
    """One radial function R(r): ``values(r)`` in Å^-3/2 at r in Å, zero beyond ``rcut`` (Å)."""

    rcut: float
    values: Callable[[np.ndarray], np.ndarray]


RadialTable = Mapping[str, Sequence[RadialFunction]]  # species -> one function per shell, basis order


@dataclass
class _Support:
    """An atom's orbitals on the points of its cutoff sphere."""

    index: np.ndarray   # (n, 3) unwrapped grid indices
    values: np.ndarray  # (norb, n)
    corner: np.ndarray  # (3,) smallest index of the bounding box
    lookup: np.ndarray  # bounding box -> column of ``values`` (-1 outside the sphere)

    def shared(self, other: "_Support", shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(columns here, columns of ``other``) of the points this support shares with ``other``
        translated by ``shift`` grid steps: the lookups of both over the intersection of their boxes."""
        low = np.maximum(self.corner, other.corner + shift)
        high = np.minimum(self.corner + self.lookup.shape, other.corner + shift + other.lookup.shape)
        if np.any(high <= low):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        start, stop = low - other.corner - shift, high - other.corner - shift
        here = self.lookup[tuple(slice(a, b) for a, b in zip(low - self.corner, high - self.corner))]
        there = other.lookup[tuple(slice(a, b) for a, b in zip(start, stop))]
        both = (here >= 0) & (there >= 0)
        return here[both], there[both]


def _support(grid: RealSpaceGrid, centre: np.ndarray, shells, radials: Sequence[RadialFunction]) -> _Support:
    rcut = max(f.rcut for f in radials)
    index, disp = grid.sphere(centre, rcut)
    r = np.linalg.norm(disp, axis=1)
    direction = np.where(r[:, None] > 0, disp, (0.0, 0.0, 1.0))  # R_l(0) = 0 for l > 0
    values = np.concatenate([f.values(r)[None] * real_sh(s.l, direction).T for s, f in zip(shells, radials)])
    corner = index.min(axis=0) if len(index) else np.zeros(3, int)
    lookup = np.full(tuple(index.max(axis=0) - corner + 1) if len(index) else (0, 0, 0), -1, np.int64)
    lookup[tuple((index - corner).T)] = np.arange(len(index))
    return _Support(index, values, corner, lookup)


def check_radials(h: Hamiltonian, radials: RadialTable) -> None:
    """Every species of ``h`` needs one radial function per shell of its basis."""
    for symbol in dict.fromkeys(h.symbols):
        have, need = len(radials.get(symbol, ())), len(h.basis.shells[symbol])
        if have != need:
            raise MismatchError(f"species {symbol}: {have} radial functions for the {need} shells of its basis")


def orbital_density(h: Hamiltonian, radials: RadialTable, grid: RealSpaceGrid, dm: BlockSparse | None = None,
                    progress: bool = False) -> np.ndarray:
    """rho (nspin, *grid.shape), electrons/Å³, of ``dm`` (default ``h.DM``; nspin 1 or 2) with the
    orbitals of ``h.basis`` built from ``radials`` (see the module docstring)."""
    dm = h.DM if dm is None else dm
    if dm is None:
        raise MismatchError("a grid density needs a density matrix")
    if dm.nspin not in (1, 2) or np.iscomplexobj(dm.data):
        raise MismatchError(f"grid density of a {dm.nspin}-channel DM: only nspin 1 and 2 (collinear) are "
                            "supported, not non-collinear/spin-orbit spinor densities")
    if not np.array_equal(dm.norb, h.norb()):
        raise MismatchError(f"DM orbitals per atom {dm.norb.tolist()} vs the basis's {h.norb().tolist()}")
    check_radials(h, radials)
    positions, symbols = h.atoms.positions, h.symbols
    supports = [_support(grid, positions[k], h.basis.shells[symbols[k]], radials[symbols[k]])
                for k in range(len(symbols))]
    shape = np.asarray(grid.shape)
    rho = np.zeros((dm.nspin, int(np.prod(shape))))
    for i in tqdm(range(len(supports)), desc="grid density", unit="atom", disable=not progress):
        home = supports[i]
        mixed = np.zeros((dm.nspin,) + home.values.shape)  # sum_jR DM_ij(R) phi_j(r - R), on i's points
        for e in np.nonzero(dm.pairs[:, 0] == i)[0]:
            j, cell = dm.pairs[e, 1], dm.pairs[e, 2:]
            cols, rows = home.shared(supports[j], cell * shape)
            if len(cols):
                block = dm.data[:, dm.offsets[e]:dm.offsets[e + 1]].reshape(dm.nspin, dm.norb[i], dm.norb[j])
                mixed[:, :, cols] += block @ supports[j].values[:, rows]
        on_points = np.einsum("op,sop->sp", home.values, mixed)
        flat = grid.wrap(home.index)
        for s in range(dm.nspin):
            rho[s] += np.bincount(flat, on_points[s], minlength=rho.shape[1])
    return rho.reshape((dm.nspin, *grid.shape))


def spherical_sum(h: Hamiltonian, functions: Mapping[str, RadialFunction], grid: RealSpaceGrid) -> np.ndarray:
    """sum over atoms and images of f_species(|r - tau|) on the grid, shape ``grid.shape`` (e.g. the
    superposed neutral-atom density from each species' radial density, electrons/Å³)."""
    out = np.zeros(int(np.prod(grid.shape)))
    for centre, symbol in zip(h.atoms.positions, h.symbols):
        f = functions[symbol]
        index, disp = grid.sphere(centre, f.rcut)
        out += np.bincount(grid.wrap(index), f.values(np.linalg.norm(disp, axis=1)), minlength=len(out))
    return out.reshape(grid.shape)

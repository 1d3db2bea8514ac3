"""OpenMX 3.9 restart folder ``<name>_rst/``: the SCF starting guess OpenMX itself reads (``scf.restart on``).

What OpenMX reads (``RestartFileDFT.c``; ``../shared/fixtures/openmx/README.md``, issue 20)
-------------------------------------------------------------------------------------------
* ``<name>.crst_check``: text ``numprocs N1 N2 N3 SpinP_switch``; the restart needs the same grid;
* ``<name>.crst<spin>_<proc>_<hist>``: raw float64, for spin 0 (and 1) the grid density of that spin
  minus ``.adrst``, electrons/bohr³; hist 0 is the newest (older ones only extrapolate MD steps);
  process p holds the C-order points [ceil(p N1N2/P) N3, ceil((p+1) N1N2/P) N3) of the [n1][n2][n3] grid
  (truncation.c, ``My_NumGridB_AB``);
* ``<name>.adrst<proc>``: half the superposed neutral-atom density (``ADensity_Grid_B``, Set_Aden_Grid.c);
* ``<name>.rst<N>`` per atom (header, neighbour table, Uele, H, DM) and ``.cc``, ``.ft*``: structure data,
  whose H and DM values OpenMX does not use in an ordinary restart: it rebuilds H from the grid density.

So the guess is rho_s(r) = sum DM_s phi phi on OpenMX's grid (``dftplug.grid_density``) minus ``.adrst``,
on the template of the zeroth-step run's own ``<name>_rst/`` (every file but the ``.crst`` is copied).

Conventions converted here
--------------------------
* PAO files (``DFT_DATA19/PAO/<X>.pao``, Read_PAO in SetPara_DFT.c): ``<pseudo.atomic.orbitals.L=l``
  blocks of columns ln r, r (bohr), R_0 .. R_{Mul-1} (R(r) itself, bohr^-3/2); a basis ``C6.0-s2p2d1``
  takes the first 2, 2, 1 columns of l = 0, 1, 2; ``radial.cutoff.pao`` is the support radius (bohr).
  OpenMX interpolates R(r) by cubic Hermite with three-point slopes (Set_Orbitals_Grid.c) = scipy's
  CubicHermiteSpline with numpy's second-order gradient, and below the first mesh point by its
  polynomial through R and R' at the fifth point; the neutral-atom density
  (``<valence.charge.density``) by Catmull-Rom in ln r (KumoF.c), the same spline on the uniform ln r mesh.
  (Inside the first mesh interval, r < 6e-4 bohr, OpenMX's edge slope differs from numpy's.)
  OpenMX's harmonics are orthonormal (Get_Orbitals.c), so the internal DM gives the same density.
* grid (truncation.c): step gtv_k = a_k / N_k; origin = centroid of the atoms minus
  sum_k (floor(N_k/2) - ((N_k+1) mod 2)/2) gtv_k for Cartesian coordinates, (0, 0, 0) for fractional
  ones (Input_std.c), ``scf.fixed.grid`` (bohr) when given.
* units: 1 bohr = 0.529177249 Å (OpenMX's BohrR); spin: SpinP_switch 0 stores one spin's density
  (half the common object's spin-summed one). SpinP_switch 3 (non-collinear) is refused.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicHermiteSpline

from dftplug.blocksparse import BlockSparse
from dftplug.density import density_matrix
from dftplug.errors import MismatchError, ParseError
from dftplug.fileio import atomic_folder, find_file, read_text
from dftplug.grid_density import RadialFunction, RealSpaceGrid, orbital_density, spherical_sum
from dftplug.hamiltonian import Hamiltonian

from .openmx import BOHR_TO_ANG, Scfout, _input_blocks

ATOMIC_DENSITY_RTOL = 1e-6  # |our superposed atomic density - the template's .adrst| / max (grid, origin, structure)
CRST = re.compile(r"\.crst(\d+)_(\d+)_(\d+)$")


# ============================================================================ PAO files
@dataclass
class Pao:
    """One OpenMX PAO file: the radial mesh (bohr), R_l,mul(r) (bohr^-3/2), the neutral-atom valence
    density (electrons/bohr³) and the orbitals' cutoff radius (bohr)."""

    path: Path
    r: np.ndarray                     # (M,)
    orbitals: dict[int, np.ndarray]   # l -> (Mul, M)
    density: np.ndarray               # (M,)
    rcut: float

    def radial(self, l: int, zeta: int) -> RadialFunction:
        """Shell (l, zeta >= 1) in Å: R(r) as OpenMX evaluates it on its grid."""
        if l not in self.orbitals or zeta > len(self.orbitals[l]):
            raise ParseError(self.path, f"no radial function l = {l}, multiplicity {zeta} (the basis needs it)")
        y = self.orbitals[l][zeta - 1]
        spline = _hermite(self.r, y)
        slope = np.gradient(y, self.r)
        rm, f, df = self.r[4], y[4], slope[4]  # OpenMX's polynomial below the mesh (Set_Orbitals_Grid.c)
        if l == 0:
            near = (0.0, 0.5 * df / rm, 0.0, f - 0.5 * df * rm)
        elif l == 1:
            a = (rm * df - f) / (2 * rm ** 3)
            near = (a, 0.0, df - 3 * a * rm * rm, 0.0)
        else:
            b = (3 * f - rm * df) / rm ** 2
            near = ((f - b * rm * rm) / rm ** 3, b, 0.0, 0.0)
        return RadialFunction(self.rcut * BOHR_TO_ANG, lambda r: _bohr_values(r, self, spline, near, 1.5))

    def atomic_density(self, charge: float) -> RadialFunction:
        """The neutral atom's valence density in electrons/Å³, scaled to ``charge`` electrons by
        OpenMX's rectangle rule in ln r (SetPara_DFT.c), interpolated as in KumoF.c."""
        dx = np.log(self.r[-1] / self.r[0]) / (len(self.r) - 1)
        x = np.log(self.r[0]) + np.arange(len(self.r)) * dx
        density = self.density * charge / (4 * np.pi * dx * np.sum(self.density * self.r ** 3))
        spline = _hermite(x, density)
        rm, f, df = self.r[4], density[4], np.gradient(density, self.r)[4]
        near = (0.0, 0.5 * df / rm, 0.0, f - 0.5 * df * rm)
        return RadialFunction(self.rcut * BOHR_TO_ANG,
                              lambda r: _bohr_values(r, self, lambda rb: spline(np.log(rb)), near, 3.0))


def _hermite(x: np.ndarray, y: np.ndarray) -> CubicHermiteSpline:
    return CubicHermiteSpline(x, y, np.gradient(y, x), extrapolate=False)


def _bohr_values(r_ang: np.ndarray, pao: Pao, inside, near, power: float) -> np.ndarray:
    """f(r) in Å units of a function tabulated in bohr: bohr^-power -> Å^-power; zero beyond the
    cutoff and the mesh, OpenMX's cubic ``near`` = (a, b, c, d) below the mesh."""
    r = np.asarray(r_ang, float) / BOHR_TO_ANG
    out = np.zeros_like(r)
    mesh = (r >= pao.r[0]) & (r <= min(pao.r[-1], pao.rcut))
    out[mesh] = inside(r[mesh])
    small = r < pao.r[0]
    a, b, c, d = near
    out[small] = ((a * r[small] + b) * r[small] + c) * r[small] + d
    return out / BOHR_TO_ANG ** power


def _keyword(text: str, key: str, path) -> str:
    m = re.search(rf"^\s*{re.escape(key)}\s+(\S+)", text, re.M | re.I)
    if not m:
        raise ParseError(path, f"no '{key}' line: not an OpenMX PAO file")
    return m.group(1)


def read_pao(path) -> Pao:
    """Read an OpenMX PAO file (``.xz``/``.gz`` too)."""
    path = find_file(path)
    text = read_text(path)
    try:
        nmesh, lmax, mul = (int(_keyword(text, k, path)) for k in ("grid.num.output", "PAO.Lmax", "PAO.Mul"))
        rcut = float(_keyword(text, "radial.cutoff.pao", path))
    except ValueError as exc:
        raise ParseError(path, f"unreadable header value: {exc}") from exc

    def table(tag: str, columns: int) -> np.ndarray:
        m = re.search(rf"<{re.escape(tag)}\s*\n(.*?)\n\s*{re.escape(tag)}>", text, re.S)
        if not m:
            raise ParseError(path, f"no <{tag} block")
        try:
            return np.array(m.group(1).split(), float).reshape(nmesh, columns)
        except ValueError as exc:
            raise ParseError(path, f"block {tag}: expected {nmesh} rows of {columns} numbers") from exc

    density = table("valence.charge.density", 3)
    orbitals = {}
    for l in range(lmax + 1):
        block = table(f"pseudo.atomic.orbitals.L={l}", mul + 2)
        orbitals[l] = block[:, 2:].T.copy()
    r = density[:, 1]
    if np.any(np.diff(r) <= 0) or r[0] <= 0:
        raise ParseError(path, "radial mesh is not increasing and positive")
    return Pao(path, r, orbitals, density[:, 2].copy(), rcut)


def pao_directory(scf: Scfout, run: Path, pao_dir=None) -> Path:
    """The folder holding the PAO files: ``pao_dir`` (a DFT_DATA19 folder or its PAO/), else the input's
    ``DATA.PATH`` (relative to the run folder) + ``/PAO``."""
    if pao_dir is None:
        keys, _ = _input_blocks(scf.input_text())
        base = Path(keys.get("data.path", "../DFT_DATA19"))
        pao_dir = base if base.is_absolute() else run / base
    pao_dir = Path(pao_dir)
    return pao_dir / "PAO" if (pao_dir / "PAO").is_dir() else pao_dir


def species_paos(h: Hamiltonian, scf: Scfout, folder: Path) -> dict[str, Pao]:
    """The PAO file of every species of ``h`` (``<X>.pao`` for a basis ``<X>-s2p2d1``), read."""
    _, blocks = _input_blocks(scf.input_text())
    basis_of = {row[0]: row[1] for row in blocks.get("definition.of.atomic.species", []) if len(row) >= 2}
    labels = [row[1] for row in blocks.get("atoms.speciesandcoordinates", []) if len(row) >= 5]
    paos = {}
    for label, symbol in zip(labels, h.symbols):
        if symbol not in paos:
            paos[symbol] = read_pao(folder / (basis_of[label].split("-")[0] + ".pao"))
    return paos


def species_radials(h: Hamiltonian, paos: dict[str, Pao]) -> dict[str, list[RadialFunction]]:
    """One radial function per shell of ``h.basis`` (internal order: l, then zeta)."""
    return {s: [paos[s].radial(sh.l, sh.zeta) for sh in h.basis.shells[s]] for s in paos}


# ============================================================================ the grid
def openmx_grid(scf: Scfout, shape) -> RealSpaceGrid:
    """OpenMX's real-space grid of the structure in ``scf`` with ``shape`` points (Å)."""
    keys, _ = _input_blocks(scf.input_text())
    shape = tuple(int(n) for n in shape)
    cell = scf.tv[:, 1:4]
    step = cell / np.array(shape, float)[:, None]
    fixed = keys.get("scf.fixed.grid")
    if fixed:
        origin = np.array(fixed.split()[:3], float)
    elif keys.get("atoms.speciesandcoordinates.unit", "ang").lower() == "frac":
        origin = np.zeros(3)
    else:
        centre = np.array([(n // 2) - 0.5 * ((n + 1) % 2) for n in shape])
        origin = scf.gxyz[:, 1:4].mean(axis=0) - centre @ step
    return RealSpaceGrid(shape, cell * BOHR_TO_ANG, origin * BOHR_TO_ANG)


def process_slices(shape, numprocs: int) -> list[slice]:
    """The C-order grid points each MPI process stores (truncation.c, partition B)."""
    n2d, n3 = shape[0] * shape[1], shape[2]
    starts = [-(-p * n2d // numprocs) * n3 for p in range(numprocs + 1)]
    return [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]


# ============================================================================ the template folder
@dataclass
class RestartTemplate:
    """A ``<name>_rst/`` folder written by OpenMX: grid, processes and half the atomic density."""

    folder: Path
    name: str
    numprocs: int
    shape: tuple[int, int, int]
    spinp_switch: int
    half_atomic: np.ndarray  # (N1 N2 N3,) electrons/bohr³, C order
    core_charges: np.ndarray  # (natoms,) valence charge of each atom's pseudopotential (.cc)

    def file(self, suffix: str) -> Path:
        return self.folder / f"{self.name}.{suffix}"


def _check_atom_file(path: Path, atom: int, scf: Scfout) -> None:
    """``<name>.rst<N>`` must describe the same atom and neighbour list as the .scfout."""
    if not path.is_file():
        raise ParseError(path, "missing: the restart template needs one .rst file per atom")
    first = np.cumsum(np.concatenate([[0], scf.fnan + 1]))[atom]
    fnan = int(scf.fnan[atom])
    head = np.fromfile(path, "<i4", count=10 + 6 * (fnan + 1))
    if len(head) < 10 + 6 * (fnan + 1):
        raise ParseError(path, f"truncated: {4 * len(head)} bytes, the header and neighbour table need "
                               f"{4 * (10 + 6 * (fnan + 1))}")
    seg = slice(first, first + fnan + 1)
    expected_head = [scf.natoms, int(scf.tno[atom]), fnan]
    if [head[5], head[7], head[8]] != expected_head or head[0] != scf.spinp_switch:
        raise MismatchError(f"{path}: header (SpinP_switch, atoms, orbitals, neighbours) = "
                            f"{[int(head[k]) for k in (0, 5, 7, 8)]}, the "
                            f"zeroth-step .scfout has {[scf.spinp_switch, *expected_head]}: another structure")
    table = head[10:].reshape(6, fnan + 1)
    expected = np.vstack([scf.natn[seg], scf.atv_ijk[scf.ncn[seg], 1:4].T, scf.tno[scf.natn[seg] - 1]])
    if not np.array_equal(table[[0, 1, 2, 3, 5]], expected):
        raise MismatchError(f"{path}: its neighbour list differs from the zeroth-step .scfout's: another structure")


def read_restart_template(folder, name: str, scf: Scfout) -> RestartTemplate:
    """Read and check OpenMX's own ``<name>_rst/`` of the structure of ``scf`` (per-atom files,
    grid, process layout and atomic density; collinear runs only)."""
    folder = Path(folder)
    if scf.spinp_switch == 3:
        raise MismatchError(f"{folder}: non-collinear OpenMX runs (SpinP_switch 3) are not supported: their "
                            "restart density holds spinor components (Re/Im rho_ud) that dftplug does not build")
    check = folder / f"{name}.crst_check"
    if not check.is_file():
        raise ParseError(check, "missing: not an OpenMX restart folder (the zeroth-step run writes "
                                f"{name}_rst/ at its end)")
    try:
        numprocs, n1, n2, n3, spinp = (int(v) for v in check.read_text().split()[:5])
    except ValueError as exc:
        raise ParseError(check, "expected 'numprocs N1 N2 N3 SpinP_switch'") from exc
    if spinp != scf.spinp_switch:
        raise MismatchError(f"{check}: SpinP_switch {spinp}, the zeroth-step .scfout {scf.spinp_switch}")
    shape = (n1, n2, n3)
    parts = []
    for p, part in enumerate(process_slices(shape, numprocs)):
        path = folder / f"{name}.adrst{p}"
        if not path.is_file() or path.stat().st_size != 8 * (part.stop - part.start):
            raise ParseError(path, f"missing or not {part.stop - part.start} float64: grid {shape} over "
                                   f"{numprocs} processes (.crst_check) does not match")
        parts.append(np.fromfile(path, "<f8"))
    for atom in range(scf.natoms):
        _check_atom_file(folder / f"{name}.rst{atom + 1}", atom, scf)
    charges = folder / f"{name}.cc"
    if not charges.is_file() or charges.stat().st_size != 8 * (scf.natoms + 1):
        raise ParseError(charges, f"missing or not {scf.natoms + 1} float64 (system charge, core charges)")
    return RestartTemplate(folder, name, numprocs, shape, spinp, np.concatenate(parts),
                           np.fromfile(charges, "<f8")[1:])


# ============================================================================ writing
def restart_density(h: Hamiltonian, paos: dict[str, Pao], template: RestartTemplate, scf: Scfout,
                    dm: BlockSparse | None = None, progress: bool = False) -> np.ndarray:
    """The ``.crst`` arrays (OpenMX spin channels, N1 N2 N3) of ``dm`` (default ``h.DM``):
    rho_s - .adrst, electrons/bohr³.

    Checks first that the superposed atomic density of the PAO files on this grid is the template's
    ``.adrst`` (same grid, origin, positions and PAO files), else MismatchError naming the file.
    """
    grid = openmx_grid(scf, template.shape)
    charge = dict(zip(h.symbols, template.core_charges))
    densities = {s: p.atomic_density(charge[s]) for s, p in paos.items()}
    atomic = spherical_sum(h, densities, grid).ravel() * BOHR_TO_ANG ** 3
    deviation = np.abs(0.5 * atomic - template.half_atomic).max() / np.abs(template.half_atomic).max()
    if deviation > ATOMIC_DENSITY_RTOL:
        raise MismatchError(f"{template.file('adrst0')}: the atomic density on OpenMX's grid {template.shape} "
                            f"differs from this one by {deviation:.2g} of its maximum: a restart folder of "
                            "another structure, grid or PAO set")
    rho = orbital_density(h, species_radials(h, paos), grid, dm, progress) * BOHR_TO_ANG ** 3
    per_spin = rho / 2 if len(rho) == 1 else rho
    return per_spin.reshape(len(per_spin), -1) - template.half_atomic


def write_restart_folder(crst: np.ndarray, template: RestartTemplate, out_dir) -> Path:
    """``out_dir/<name>_rst/``: the template's files with ``crst`` (spins, N1 N2 N3) as the newest
    ``.crst`` (older history dropped). Written to a temporary folder, then renamed (replacing an old one)."""
    target = Path(out_dir) / template.folder.name
    with atomic_folder(target, force=True) as tmp:
        for src in sorted(template.folder.iterdir()):
            if src.is_file() and not CRST.search(src.name):
                shutil.copy2(src, tmp / src.name)
        for spin, values in enumerate(crst):
            for p, part in enumerate(process_slices(template.shape, template.numprocs)):
                np.ascontiguousarray(values[part], "<f8").tofile(tmp / f"{template.name}.crst{spin}_{p}_0")
    return target


def write_restart_guess(h: Hamiltonian, out_dir, name: str, pao_dir=None, progress: bool = False) -> Path | None:
    """``out_dir/<name>_rst/`` (``name``: System.Name) on the template ``<run>/<name>_rst/`` of the
    zeroth-step run ``h`` was read from, with the grid density of ``h.DM`` (when None: the DM of ``h.H``
    by :func:`dftplug.density.density_matrix`, the run's k-mesh and smearing); None when the run has no
    such folder. Errors (nothing written): a template of another structure or grid, missing PAO files,
    a non-collinear run."""
    scf: Scfout = h.file_layout
    run = Path(h.provenance["source"])
    if not (run / f"{name}_rst").is_dir():
        return None
    template = read_restart_template(run / f"{name}_rst", name, scf)
    paos = species_paos(h, scf, pao_directory(scf, run, pao_dir))
    dm = h.DM if h.DM is not None else density_matrix(h, progress=progress).DM
    return write_restart_folder(restart_density(h, paos, template, scf, dm, progress), template, out_dir)

"""SIESTA (4.x and 5.x) run folders: read ``.TSHS``/``.HSX``/``.DM`` and the standard output, write
``.DM``, ``.TSHS``, ``.HSX`` and ``H_IN``.

Files read
----------
* ``<label>.TSHS`` (``TS.HS.Save true``, version 1 in 4.1 and 5.1, one layout): H (Ry) and S in double
  precision, the cell and positions (Bohr), E_F, the electron count, kT, the k grid and ``isc_off``.
* ``<label>.HSX`` (``SaveHS true``). 4.x (version 0): H, S and xij in **float32**, no cell, no E_F; the
  cell and positions come from ``<label>.XV``, E_F from the standard output. 5.x (versions 1, 2;
  sisl's ``hsx_read.f90``): double precision (``is_dp``), cell, positions, ``isc_off``, E_F, Q, kT,
  species and (n, l, zeta) per orbital (version 2: the k grid); on 5.1 it holds bit for bit the
  TSHS's numbers. Its E_F is Fortran's ``huge`` when SIESTA never computed one (H.Setup.Only, sisl
  issue 828): then E_F comes from the standard output or stays None, and an HSX E_F that differs
  from the printed one is refused. TSHS is preferred when both exist (``provenance["matrix_file"]``).
* ``<label>.DM`` (``WriteDM true``): density matrix, SIESTA's column order, ``nsc`` in the header.
* the standard output, **whatever its name** (``RUN.out``, ``<label>.out``, ``job.log``):
  :func:`find_stdout` takes the folder's file whose first 64 kB hold SIESTA's version line (4.x
  ``Siesta Version :``, 5.x ``Version :``) and welcome banner and whose ``reinit: System Label:`` is
  the run's label; two such files are refused, naming both. It gives the version, electron count,
  printed E_F, SCF iteration count, species and the ``PAO.Basis`` block printed by ``prinput``.
* ``<label>.XV`` (species index, Z), ``<label>.ORB_INDX`` (checked against the printed basis).
* the run's ``.fdf`` (its SystemLabel): OccupationFunction / OccupationMPOrder when the standard
  output does not echo the input (5.x).
Without a standard output the folder is still read: the basis (n, l, zeta, polarisation, rc) and
species labels from ``.ORB_INDX``, Z from ``.XV``, E_F, Q, kT and the k grid from the TSHS (or a 5.x
HSX), and the unit generation from the ``.EIG``'s E_F (below). Only the standard output gives the
version and the SCF iteration count (None without it), and spin-orbit files need the version
(refused without it); a 4.x HSX without it has no E_F; a folder with neither ``.ORB_INDX`` nor a
standard output, or with neither ``.EIG`` nor a standard output, is refused naming what is missing.
All binary files are Fortran sequential records; they are read here with numpy rather than
with sisl because sisl (0.20) (a) shifts H by E_F and converts with its own Ry (13.6056931 eV),
(b) renumbers and sorts the supercell columns, losing SIESTA's per-row column order that a file
SIESTA reads back must keep (a sorted ``H_IN`` crashes SIESTA 4.1.5), (c) writes a TSHS with E_F = 0,
Q = 1 and a dummy k grid, and (d) reports a truncated file as a Fortran iostat, not as the file.

Conventions converted here (and nowhere else)
---------------------------------------------
* energy: H is SIESTA's raw H (not shifted by E_F: the energy reference of the code, the one its
  printed E_F uses) times SIESTA's own Ry, which depends on the version (:data:`UNITS`): 4.x
  1 Ry = 13.60580 eV, 1 Bohr = 0.529177 Å (``Src/units.f90``); 5.x CODATA 2018, 13.605693122994 eV
  and 0.529177210903 Å (measured on 5.1: the .EIG's eigenvalues over those of the TSHS's H in Ry
  give 13.6056931220 +- 1.3e-8, the XV of a 20 Å box 0.52917721090). The two differ by 8e-6
  relative (35 ueV on E_F, 0.8 meV at -100 eV); the version decides, else the ``.EIG``'s E_F (9
  digits) over the binary file's. ``settings["siesta_units"]`` keeps them for the writers.
* sparsity: row ``io`` (unit-cell orbital), column ``jo_sc`` (1-based supercell orbital): j = (jo_sc-1)
  mod no_u, supercell ``is = (jo_sc-1) // no_u`` and R = ``isc_off[is]``, the TSHS's own list (a DM
  must have the run's sparsity and uses the same list; for an HSX R is solved from
  xij = tau_j + R.cell - tau_i, which must come out integer: it equals the TSHS's R on si_diamond).
  The element is <phi_io(r - tau_i)| M |phi_j(r - tau_j - R)>, R in integer lattice coordinates.
  SIESTA's H and S are symmetric only to ~1e-8 eV / 2e-9 (not symmetrised); sisl reads the
  transpose (rows as columns), which moves eigenvalues of the top DZP bands by up to 1e-5 eV.
* orbital order within an atom: SIESTA's order (``.ORB_INDX``): the non-polarisation shells in the
  order of the PAO.Basis block, each zeta after the other, then the polarisation shells; inside a
  shell m = -l..l with m < 0 -> sin(|m| phi), m >= 0 -> cos(m phi), i.e. p = (y, z, x) and
  d = (xy, yz, z^2, xz, x^2-y^2) up to signs.
* signs: SIESTA's orbital m is (-1)^m Y^std_lm (the Condon-Shortley phase on sin and cos types):
  p = (-y, z, -x), d = (xy, -yz, z^2, -xz, x^2-y^2). Measured, not assumed (p and d; no fixture has
  f, for which the same (-1)^m rule is extrapolated):
  (1) the signed permutation of each l was fitted on the rotation pair
  ``fixtures/rotations/siesta/si_diamond`` (rotated s-l and l-l blocks of S = Wigner-D-rotated
  original; best of all 48 (p) / 3840 (d) signed permutations: 1.6e-11 (p), 1.0e-9 (d), next best
  0.39 / 0.31; the fit is unique up to one overall sign per l), (2) that sign was fixed with the
  two-centre overlap <s_A|phi_lm,B> = g(d) Y_lm(tau_A - tau_B), g > 0 for the nodeless first-zeta
  orbitals: cosine +1.000000 on all 68 s-p and s-d bonds of si_diamond with nonzero overlap.
  ``tests/test_siesta.py`` proves both on the real files, with a guard that a flipped sign fails.

Spin-orbit (``Spin spin-orbit``, nspin 8; verified on SIESTA 4.1.5 and 5.1)
---------------------------------------------------------------------------
Every element holds 8 real components c1..c8 (SIESTA's ``H(:,1..8)``, ``Dscf(:,1..8)``) that SIESTA
combines into one complex 2x2 spin box X (``Src/diag3k.F``; ``dftu_so.F`` spells it out for the DM):
  X11 = c1 + i c5,  X12 = c3 - i c4,  X21 = c7 + i c8,  X22 = c2 + i c6      (:data:`SOC_PARTS`).
* DM: X^{ss'} of element (io, jo) is the common object's DM^{ss'}_{io,jo} as it stands
  (DM^{ss'}_ij(R) = sum_k e^{-2 pi i k.R} sum_n f c_{is} conj(c_{js'})): measured by rebuilding the DM
  from H's eigenvectors with SIESTA's occupations (5e-9); the non-magnetic fixture cannot tell
  X12 from -conj(X21) and the like, which the source decides.
* H: the element holds the box of <jo|H|io> (column orbital on the left), so the common object's
  H^{ss'}_{io,jo} = <io s|H|jo s'> = conj(X^{s's}): uu = c1 - i c5, ud = c7 - i c8, du = c3 + i c4,
  dd = c2 - i c6. Its sign of i is pinned by the cubic symmetry of fcc Pt ((D x U) H (D x U)^dagger = H
  fails for conj(H)), the eigenvalues by the ``.EIG`` (tests/test_soc_siesta.py).
* SIESTA 5.1 (``siesta5/Pt2_soc``: off-site spin-orbit, magnetic, moment 1.857 muB along x): the same
  layout in TSHS, DM and the double-precision HSX (which holds the TSHS's numbers bit for bit); the
  Gamma levels equal the .EIG to 3.5e-7 eV (no spin transposition: 8.7 eV off), C4 about the
  bond and moment axis maps H and DM onto themselves to 2.7e-9 eV (conj(H): 9.2 eV off), the DM of
  H's eigenvectors is SIESTA's to 2.9e-6 (its DM.Tolerance 1e-5; conj: 0.25), and the DM's moment
  is the printed {1.85672, 0, 0}: this pins the DM's up-down components too (tests/test_siesta5.py).
  sisl reads 4.x and 5.x with one convention (``_mat_siesta2sisl``).
* Refused, no fixture verifies them: non-collinear files without SOC (nspin 4), spin-orbit 4.x HSX
  files (float32), spin-orbit files of other versions (4.0, 4.2, 6, ...) or of unknown version (no
  standard output).

Writing
-------
``write_dm`` / ``write_tshs`` / ``write_hsx`` write on the sparsity the matrices were read with, in
SIESTA's own per-row column order (``layout``: the :class:`SiestaLayout` of the run, its
``Hamiltonian.file_layout``) or on that of ``like`` (a TSHS of the same structure); a matrix with no
SIESTA layout gets a new pattern with sorted columns and the regular supercell list. Rewriting a fixture gives SIESTA's layout byte for byte and its
values to <= 1e-14 (the trip through the internal d basis is not bit-exact); H goes back to Ry with
the run's constant (SIESTA 4's for a matrix of another code). ``write_hsx`` writes the 5.x layout
(version 1, double precision).
"""
from __future__ import annotations

import gzip
import lzma
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import ase
import numpy as np

from dftplug.basis import Basis, Shell
from dftplug.blocksparse import BlockSparse
from dftplug.errors import MismatchError, ParseError
from dftplug.fileio import atomic_write, file_exists, find_file, read_bytes, read_text
from dftplug.hamiltonian import Hamiltonian

from .base import CodeIO, ScfGuess, register, relabel_h0, shell_transform

CODE = "siesta"


# ============================================================================ units
@dataclass(frozen=True)
class SiestaUnits:
    """SIESTA's own conversion constants, which changed between major versions."""

    generation: str     # "4" (4.x and older) or "5" (5.x)
    ry_ev: float        # eV per Ry
    bohr_ang: float     # Å per Bohr


UNITS = {"4": SiestaUnits("4", 13.60580, 0.529177),                  # 4.1 Src/units.f90
         "5": SiestaUnits("5", 13.605693122994, 0.529177210903)}    # 5.x: CODATA 2018 (measured on 5.1)
RY_TO_EV = UNITS["4"].ry_ev        # the 4.x constants, kept for callers of the 4.1 reader
BOHR_TO_ANG = UNITS["4"].bohr_ang


def version_key(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a SIESTA version string ("4.1.5", "5.1-MaX-42-gb6955e60a"), else None."""
    m = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def units_of_version(version: str | None) -> SiestaUnits | None:
    """The unit constants of a SIESTA version: 4.x and older, 5.x; None for another or no version number."""
    key = version_key(version)
    return None if key is None or key[0] > 5 else UNITS["5" if key[0] == 5 else "4"]


def units_from_eig(eig_path, fermi_ry: float) -> SiestaUnits | None:
    """The unit constants that turn the binary file's E_F (Ry) into the ``.EIG``'s first line (eV,
    9 significant digits): the two generations differ by 8e-6 relative, the print by 1e-9."""
    try:
        fermi_ev = float(read_text(eig_path).split()[0])
    except (ParseError, IndexError, ValueError):
        return None
    if not np.isfinite(fermi_ry) or abs(fermi_ry) < 1e-6:
        return None
    found = [u for u in UNITS.values() if abs(fermi_ev / (fermi_ry * u.ry_ev) - 1) < 1e-6]
    return found[0] if len(found) == 1 else None


# ============================================================================ spin-orbit components
# SOC_PARTS[k] = (box, f): component c_{k+1} = Re(f X[box]) and X[box] = sum of conj(f) c_{k+1}, box in
# the channel order (11, 12, 21, 22) = (uu, ud, du, dd); see the module docstring.
SOC_PARTS = ((0, 1), (3, 1), (1, 1), (1, 1j), (0, -1j), (3, -1j), (2, 1), (2, -1j))
_SWAP_SPIN = [0, 2, 1, 3]  # box (s, s') -> (s', s)


def soc_channels(components: np.ndarray, name: str) -> np.ndarray:
    """SIESTA's 8 spin-orbit components (8, n) -> the common object's channels (4, n) complex:
    the box X for a DM, conj(X^{s's}) for H (the element holds <jo|H|io>)."""
    box = np.zeros((4, components.shape[1]), complex)
    for k, (b, f) in enumerate(SOC_PARTS):
        box[b] += np.conj(f) * components[k]
    return box if name == "DM" else np.conj(box[_SWAP_SPIN])


def soc_components(channels: np.ndarray, name: str) -> np.ndarray:
    """Inverse of :func:`soc_channels`: channels (4, n) -> SIESTA's components (8, n) real."""
    box = channels if name == "DM" else np.conj(channels[_SWAP_SPIN])
    return np.stack([np.real(f * box[b]) for b, f in SOC_PARTS])


def _from_file(values: np.ndarray, name: str) -> np.ndarray:
    """File components (nspin_file, n) -> common-object channels (1, 2 as stored; 8 -> 4 spinor)."""
    return soc_channels(values, name) if len(values) == 8 else values


def _to_file(values: np.ndarray, name: str) -> np.ndarray:
    """Common-object channels -> file components (spinor 4 -> SIESTA's 8)."""
    return soc_components(values, name) if len(values) == 4 else np.real(values)


def spin_orbit_verified(version: str | None) -> bool:
    """SIESTA versions whose spin-orbit layout (nspin 8) is verified: 4.1 (on 4.1.5) and 5.x (on 5.1;
    the TSHS, DM and double-precision HSX layouts are those of 4.1, as sisl reads them)."""
    key = version_key(version)
    return key is not None and (key == (4, 1) or key[0] == 5)


def _check_spin(hs: "SparseFile", version: str | None) -> None:
    """Accept nspin 1, 2 and the verified spin-orbit layouts (nspin 8); refuse the rest."""
    if hs.nspin == 4:
        raise ParseError(hs.path, "nspin 4 (non-collinear spin without spin-orbit) is not supported: "
                                  "no fixture verifies its component signs")
    if hs.nspin == 8 and hs.kind == "HSX" and hs.header.get("hsx_version", 0) == 0:
        raise ParseError(hs.path, "spin-orbit from a SIESTA 4 HSX (float32) is not supported: its layout "
                                  "is not verified; save the TSHS (TS.HS.Save true)")
    if hs.nspin == 8 and not spin_orbit_verified(version):
        which = f"SIESTA {version}" if version else "a run without its standard output (version unknown)"
        raise ParseError(hs.path, f"spin-orbit (nspin 8) from {which}: only the 4.1 and 5.x layouts "
                                  "(verified on 4.1.5 and 5.1) are supported")
    if hs.nspin not in (1, 2, 8):
        raise ParseError(hs.path, f"nspin {hs.nspin} is not a SIESTA spin configuration")


# ============================================================================ orbital convention
def _siesta_order(l: int) -> tuple[tuple[int, int], ...]:
    """SIESTA's m = -l..l as (m_std, sign) with sign (-1)^m (see the module docstring)."""
    return tuple((m, (-1) ** m) for m in range(-l, l + 1))


def orbital_transform(ls) -> np.ndarray:
    """U (norb x norb) with phi_internal = U phi_siesta for an atom with shells ``ls``."""
    return shell_transform(ls, _siesta_order)


def siesta_isc_off(nsc) -> np.ndarray:
    """Regular supercell offsets (n_s, 3) for ``nsc``: x fastest, each axis 0, 1, .., -1 (sisl's
    ``siesta_sc_off``). The list in a SIESTA 4.1.5 TSHS is NOT always this one (fe_bcc, nsc 9:
    0 1 2 3 -3 4 -4 -2 -1 along x for y = z = 0), but on every fixture it differs only in supercells
    that no stored column uses. Columns are mapped with the TSHS's own list (or the HSX's xij);
    this one serves new sparsity patterns, as in sisl."""
    axes = [np.array(list(range(n // 2 + 1)) + list(range(-(n // 2), 0))) for n in nsc]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.column_stack([x.ravel(), y.ravel(), z.ravel()]).astype(np.int64)


# ============================================================================ Fortran records
class _Records:
    """Sequential reader of a Fortran unformatted file (4-byte little-endian record markers)."""

    def __init__(self, path):
        self.path = find_file(path)
        self.buf = read_bytes(self.path)
        self.pos = 0
        self.count = 0

    def next(self, dtype, what: str, count: int | None = None) -> np.ndarray:
        """The next record as an array of ``dtype`` (``count`` items when given)."""
        self.count += 1
        b, p = self.buf, self.pos
        if p + 4 > len(b):
            raise ParseError(self.path, f"truncated: file ends before record {self.count} ({what})")
        n = int(np.frombuffer(b, "<i4", 1, p)[0])
        if n < 0 or p + 8 + n > len(b):
            raise ParseError(self.path, f"truncated or corrupt inside record {self.count} ({what})")
        if int(np.frombuffer(b, "<i4", 1, p + 4 + n)[0]) != n:
            raise ParseError(self.path, f"corrupt record markers at record {self.count} ({what})")
        self.pos = p + 8 + n
        dt = np.dtype(dtype)
        if n % dt.itemsize or (count is not None and n != count * dt.itemsize):
            expect = "" if count is None else f", expected {count} x {dt.itemsize}"
            raise ParseError(self.path, f"record {self.count} ({what}) has {n} bytes{expect}")
        return np.frombuffer(b, dt, n // dt.itemsize, p + 4).copy()

    def at_end(self) -> bool:
        return self.pos == len(self.buf)

    def rows(self, dtype, ncol, what: str) -> np.ndarray:
        """One record per orbital row (``ncol[io]`` items each), concatenated."""
        return np.concatenate([self.next(dtype, f"{what}, row {io + 1}", int(n)) for io, n in
                               enumerate(ncol)]) if len(ncol) else np.zeros(0, dtype)


def _record(fh, *arrays) -> None:
    """Write one Fortran record holding ``arrays`` back to back."""
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    marker = np.int32(len(body)).tobytes()
    fh.write(marker + body + marker)


def _row_slices(ncol) -> list[slice]:
    """One slice of the CSR arrays per orbital row (one Fortran record each)."""
    starts = np.concatenate([[0], np.cumsum(ncol)])
    return [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]


# ============================================================================ binary files
@dataclass
class SparseFile:
    """One TSHS, HSX or DM file as stored (SIESTA units, order and column numbering).

    ``col`` is 0-based over the supercell orbitals; ``values`` maps "H"/"S"/"DM" to (nspin, nnz)
    or (nnz,) arrays; lengths in Bohr, energies in Ry. Header fields not used for the physics are
    kept so that a rewrite is byte-identical.
    """

    kind: str
    no_u: int
    nspin: int
    ncol: np.ndarray
    col: np.ndarray
    values: dict
    nsc: np.ndarray | None = None
    isc_off: np.ndarray | None = None
    xij: np.ndarray | None = None          # HSX: (nnz, 3) Bohr
    cell: np.ndarray | None = None         # TSHS: (3, 3) rows = lattice vectors, Bohr
    xa: np.ndarray | None = None           # TSHS: (na, 3) Bohr
    lasto: np.ndarray | None = None        # TSHS: (na + 1,)
    header: dict = field(default_factory=dict)
    path: str = ""

    @property
    def rows(self) -> np.ndarray:
        return np.repeat(np.arange(self.no_u), self.ncol)

    def same_pattern(self, other: "SparseFile") -> bool:
        return (self.no_u == other.no_u and np.array_equal(self.ncol, other.ncol)
                and np.array_equal(self.col, other.col))


def _check_pattern(path, no_u, no_s, ncol, col):
    if np.any(ncol < 0) or (len(col) and (col.min() < 0 or col.max() >= no_s)):
        raise ParseError(path, f"column index outside 1..{no_s} (corrupt sparsity)")


def read_tshs(path) -> SparseFile:
    """Parse a SIESTA 4.x TSHS file (version 1)."""
    r = _Records(path)
    version = r.next("<i4", "version", 1)[0]
    if version != 1:
        raise ParseError(r.path, f"TSHS version {version} not supported (SIESTA 4.x writes 1)")
    na, no_u, no_s, nspin, nnz = (int(x) for x in r.next("<i4", "sizes", 5))
    nsc = r.next("<i4", "nsc", 3).astype(np.int64)
    geo = r.next("<f8", "cell and positions", 9 + 3 * na)
    flags = r.next("<i4", "Gamma flags", 3)
    kgrid = r.next("<V60", "k grid", 1)[0]
    ef, qtot, temp = r.next("<f8", "Ef, Qtot, Temp", 3)
    istep_ia1 = r.next("<i4", "istep, ia1", 2)
    lasto = r.next("<i4", "lasto", na + 1).astype(np.int64)
    ncol = r.next("<i4", "ncol", no_u).astype(np.int64)
    if ncol.sum() != nnz:
        raise ParseError(r.path, f"header announces {nnz} nonzeros, the rows hold {ncol.sum()}")
    col = r.rows("<i4", ncol, "column indices").astype(np.int64) - 1
    _check_pattern(r.path, no_u, no_s, ncol, col)
    s = r.rows("<f8", ncol, "S")
    h = np.stack([r.rows("<f8", ncol, f"H spin {k + 1}") for k in range(nspin)])
    if flags[1]:  # Gamma-only run: unit-cell columns, no supercell offsets stored
        isc_off = np.zeros((1, 3), np.int64)
    else:
        isc_off = r.next("<i4", "isc_off", 3 * (no_s // max(no_u, 1))).reshape(-1, 3).astype(np.int64)
    if not r.at_end():
        raise ParseError(r.path, "unexpected data after the supercell offsets")
    if no_s != no_u * int(np.prod(nsc)) or lasto[-1] != no_u:
        raise ParseError(r.path, "inconsistent sizes (no_s, nsc, lasto)")
    header = {"flags": flags, "kgrid": kgrid, "ef": ef, "qtot": qtot, "temp": temp, "istep_ia1": istep_ia1}
    return SparseFile("TSHS", no_u, nspin, ncol, col, {"H": h, "S": s}, nsc, isc_off,
                      cell=geo[:9].reshape(3, 3), xa=geo[9:].reshape(na, 3), lasto=lasto,
                      header=header, path=str(r.path))


def write_tshs_file(path, f: SparseFile) -> None:
    """Write ``f`` in SIESTA 4.x's TSHS layout (atomic)."""
    hd = f.header
    na = len(f.xa)
    with atomic_write(path) as fh:
        _record(fh, np.int32(1))
        _record(fh, np.array([na, f.no_u, f.no_u * int(np.prod(f.nsc)), f.nspin, len(f.col)], "<i4"))
        _record(fh, f.nsc.astype("<i4"))
        _record(fh, f.cell.astype("<f8").ravel(), f.xa.astype("<f8").ravel())
        _record(fh, np.asarray(hd["flags"], "<i4"))
        _record(fh, np.asarray(hd["kgrid"]))
        _record(fh, np.array([hd["ef"], hd["qtot"], hd["temp"]], "<f8"))
        _record(fh, np.asarray(hd["istep_ia1"], "<i4"))
        _record(fh, f.lasto.astype("<i4"))
        _record(fh, f.ncol.astype("<i4"))
        per_row = _row_slices(f.ncol)
        for sl in per_row:
            _record(fh, (f.col[sl] + 1).astype("<i4"))
        for sl in per_row:
            _record(fh, f.values["S"][sl].astype("<f8"))
        for spin in range(f.nspin):
            for sl in per_row:
                _record(fh, f.values["H"][spin, sl].astype("<f8"))
        if not hd["flags"][1]:
            _record(fh, f.isc_off.astype("<i4").ravel())


def read_dm(path) -> SparseFile:
    """Parse a SIESTA ``.DM`` file (4.1 layout with ``nsc``; the 4.0 layout without it too)."""
    r = _Records(path)
    head = r.next("<i4", "sizes")
    if len(head) not in (2, 5):
        raise ParseError(r.path, f"not a SIESTA DM file (first record holds {len(head)} integers)")
    no_u, nspin = int(head[0]), int(head[1])
    nsc = head[2:5].astype(np.int64) if len(head) == 5 else None
    if no_u <= 0 or nspin not in (1, 2, 4, 8):
        raise ParseError(r.path, f"not a SIESTA DM file (no_u={no_u}, nspin={nspin})")
    ncol = r.next("<i4", "numd", no_u).astype(np.int64)
    col = r.rows("<i4", ncol, "column indices").astype(np.int64) - 1
    no_s = no_u * int(np.prod(nsc)) if nsc is not None else int(col.max(initial=0)) + 1
    _check_pattern(r.path, no_u, no_s, ncol, col)
    dm = np.stack([r.rows("<f8", ncol, f"DM spin {k + 1}") for k in range(nspin)])
    if not r.at_end():
        raise ParseError(r.path, "unexpected data after the density matrix")
    return SparseFile("DM", no_u, nspin, ncol, col, {"DM": dm}, nsc, path=str(r.path))


def write_dm_file(path, f: SparseFile) -> None:
    """Write ``f`` in SIESTA 4.1's DM layout (atomic): the file ``DM.UseSaveDM`` reads."""
    with atomic_write(path) as fh:
        _record(fh, np.array([f.no_u, f.nspin, *f.nsc], "<i4"))
        _record(fh, f.ncol.astype("<i4"))
        per_row = _row_slices(f.ncol)
        for sl in per_row:
            _record(fh, (f.col[sl] + 1).astype("<i4"))
        for spin in range(f.nspin):
            for sl in per_row:
                _record(fh, f.values["DM"][spin, sl].astype("<f8"))


def read_hsx(path) -> SparseFile:
    """Parse a SIESTA HSX file: the 4.x layout (version 0: float32, xij, no cell, no E_F) or the
    5.x layouts (versions 1 and 2, see :func:`_read_hsx_v12`)."""
    r = _Records(path)
    head = r.next("<i4", "sizes")
    if len(head) == 4:
        return _read_hsx_v0(r, head)
    if len(head) != 1 or int(head[0]) not in (1, 2):
        raise ParseError(r.path, f"not a SIESTA HSX file of a known version (first record {head[:4].tolist()})")
    return _read_hsx_v12(r, int(head[0]))


def _read_hsx_v0(r: _Records, head: np.ndarray) -> SparseFile:
    """SIESTA 4.x HSX: float32 H, S and xij; no cell, no E_F."""
    no_u, no_s, nspin, nnz = (int(x) for x in head)
    gamma = r.next("<i4", "gamma", 1)
    indxuo = r.next("<i4", "indxuo", no_s)
    ncol = r.next("<i4", "numh", no_u).astype(np.int64)
    if ncol.sum() != nnz:
        raise ParseError(r.path, f"header announces {nnz} nonzeros, the rows hold {ncol.sum()}")
    col = r.rows("<i4", ncol, "column indices").astype(np.int64) - 1
    _check_pattern(r.path, no_u, no_s, ncol, col)
    h = np.stack([r.rows("<f4", ncol, f"H spin {k + 1}") for k in range(nspin)]).astype(np.float64)
    s = r.rows("<f4", ncol, "S").astype(np.float64)
    qtot, temp = r.next("<f8", "Qtot, Temp", 2)
    xij = np.concatenate([r.next("<f4", f"xij, row {io + 1}", 3 * int(n)).reshape(-1, 3)
                          for io, n in enumerate(ncol)]).astype(np.float64)
    # the trailing species/orbital records are not needed: the log and ORB_INDX give the basis
    if np.any(indxuo[col] - 1 != col % no_u):
        raise ParseError(r.path, "indxuo does not map supercell columns onto unit-cell orbitals")
    return SparseFile("HSX", no_u, nspin, ncol, col, {"H": h, "S": s}, xij=xij,
                      header={"hsx_version": 0, "gamma": gamma, "qtot": qtot, "temp": temp}, path=str(r.path))


def _read_hsx_v12(r: _Records, version: int) -> SparseFile:
    """SIESTA 5.x HSX (the layout of sisl's ``hsx_read.f90``): version, is_dp, sizes and nsc; cell,
    E_F, Qtot, kT; isc_off, xa, isa, lasto(1:na); species (label, zval, norb); (n, l, zeta) of every
    orbital of each species; version 2 only: the k grid; then numh, columns, H per spin, S (float64
    when is_dp, else float32). E_F is ``huge`` when SIESTA never computed it (H.Setup.Only)."""
    is_dp = bool(r.next("<i4", "is_dp", 1)[0])
    na, no_u, nspin, nspecies, *nsc = (int(x) for x in r.next("<i4", "sizes and nsc", 7))
    geo = r.next("<f8", "cell, Ef, Qtot, Temp", 12)
    n_s = int(np.prod(nsc))
    raw = r.next("u1", "isc_off, xa, isa, lasto", 12 * n_s + 24 * na + 8 * na).tobytes()
    isc_off = np.frombuffer(raw, "<i4", 3 * n_s).reshape(-1, 3).astype(np.int64)
    xa = np.frombuffer(raw, "<f8", 3 * na, 12 * n_s).reshape(na, 3)
    isa = np.frombuffer(raw, "<i4", na, 12 * n_s + 24 * na).astype(np.int64)
    lasto = np.frombuffer(raw, "<i4", na, 12 * n_s + 28 * na).astype(np.int64)
    raw = r.next("u1", "species", 32 * nspecies).tobytes()
    species = [(raw[32 * k:32 * k + 20].decode("ascii", "replace").strip(),
                float(np.frombuffer(raw, "<f8", 1, 32 * k + 20)[0]), int(np.frombuffer(raw, "<i4", 1, 32 * k + 28)[0]))
               for k in range(nspecies)]
    orbitals = [r.next("<i4", f"orbitals of species {k + 1}", 3 * n).reshape(-1, 3)
                for k, (_, _, n) in enumerate(species)]
    header = {"hsx_version": version, "is_dp": is_dp, "ef": float(geo[9]), "qtot": float(geo[10]),
              "temp": float(geo[11]), "species": species, "orbitals": orbitals, "isa": isa}
    if version == 2:
        header["kgrid"] = r.next("<V60", "k grid", 1)[0]
    ncol = r.next("<i4", "numh", no_u).astype(np.int64)
    col = r.rows("<i4", ncol, "column indices").astype(np.int64) - 1
    _check_pattern(r.path, no_u, no_u * n_s, ncol, col)
    real = "<f8" if is_dp else "<f4"
    h = np.stack([r.rows(real, ncol, f"H spin {k + 1}") for k in range(nspin)]).astype(np.float64)
    s = r.rows(real, ncol, "S").astype(np.float64)
    if not r.at_end():
        raise ParseError(r.path, "unexpected data after S")
    if lasto[-1] != no_u or np.any(np.diff(lasto) <= 0):
        raise ParseError(r.path, "inconsistent sizes (lasto, no_u)")
    return SparseFile("HSX", no_u, nspin, ncol, col, {"H": h, "S": s}, np.array(nsc, np.int64), isc_off,
                      cell=geo[:9].reshape(3, 3), xa=xa, lasto=np.concatenate([[0], lasto]),
                      header=header, path=str(r.path))


def hsx_fermi_level(hs: SparseFile) -> float | None:
    """E_F (Ry) stored in a 5.x HSX, or None: version 0 has none, and SIESTA writes Fortran's
    ``huge`` when it never computed E_F (H.Setup.Only; sisl issue 828)."""
    ef = hs.header.get("ef")
    return ef if ef is not None and np.isfinite(ef) and abs(ef) < 1e3 else None


# ============================================================================ text files
_VERSION_LINE = re.compile(r"^\s*(?:Siesta\s+)?Version\s*:\s*(\S+)", re.M)   # 4.x "Siesta Version", 5.x "Version"
_LABEL_LINE = re.compile(r"^reinit: System Label:\s*(\S+)", re.M)
_BANNER = "WELCOME TO SIESTA"
_HEAD_BYTES = 1 << 16


def _head(path: Path, nbytes: int = _HEAD_BYTES) -> str:
    """The first ``nbytes`` of a (possibly .xz/.gz) file as text; "" when it cannot be read."""
    opener = {".xz": lzma.open, ".gz": gzip.open}.get(path.suffix, open)
    try:
        with opener(path, "rb") as fh:
            return fh.read(nbytes).decode("utf-8", errors="replace")
    except (OSError, EOFError, lzma.LZMAError):
        return ""


def is_siesta_stdout(path, label: str | None = None) -> bool:
    """True when ``path`` is SIESTA's standard output (its version line and welcome banner at the
    top) of the run with SystemLabel ``label`` (its ``reinit: System Label:`` line)."""
    path = Path(path)
    head = _head(path)
    if _BANNER not in head or not _VERSION_LINE.search(head):
        return False
    if label is None:
        return True
    m = _LABEL_LINE.search(head) or _LABEL_LINE.search(read_text(path))
    return m is not None and m.group(1) == label


def find_stdout(folder, label: str) -> Path | None:
    """SIESTA's standard output of the run ``label`` in ``folder``, found by content whatever its name
    (``RUN.out``, ``<label>.out``, ``job.log``, ...); None when there is none. Several -> ParseError
    naming them (they may be outputs of different runs)."""
    folder = Path(folder)
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and is_siesta_stdout(p, label)]
    if len(found) > 1:
        raise ParseError(folder, f"{len(found)} SIESTA standard outputs of SystemLabel {label}: "
                                 f"{', '.join(p.name for p in found)}; keep the one of this run")
    return found[0] if found else None


def read_log(path) -> dict:
    """Numbers SIESTA (4.x or 5.x) printed in its standard output: version, nelec, fermi_level (eV,
    last printed), scf_iterations, converged, occupation_function / mp_order (4.x input echo),
    species {index: (Z, label)} and the PAO.Basis shells (both absent from an incomplete output)."""
    path = find_file(path)
    text = read_text(path)
    info: dict = {"path": str(path)}
    if m := _VERSION_LINE.search(text):
        info["version"] = m.group(1)
    if m := re.search(r"Total number of electrons:\s*([-\d.Ee+]+)", text):
        info["nelec"] = float(m.group(1))
    if found := re.findall(r"siesta:\s+Fermi(?: energy)?\s*=\s*([-\d.Ee+]+)", text):
        info["fermi_level"] = float(found[-1])
    info.update(_occupation_keys(text))
    if m := re.search(r"SCF cycle converged after\s+(\d+) iterations", text):
        info["scf_iterations"], info["converged"] = int(m.group(1)), True
    else:
        info["scf_iterations"] = len(re.findall(r"^\s*scf:\s+\d+", text, re.M)) or None
        info["converged"] = False
    info["species"] = {int(i): (int(z), lab) for i, z, lab in
                       re.findall(r"Species number:\s*(\d+)\s+Atomic number:\s*(\d+)\s+Label:\s*(\S+)", text)}
    if m := re.search(r"%block PAO.Basis\s+# Define Basis set\n(.*?)%endblock PAO.Basis", text, re.S):
        units = units_of_version(info.get("version")) or UNITS["4"]
        info["shells"] = _parse_basis_block(path, m.group(1), units.bohr_ang)
    return info


def _occupation_keys(text: str) -> dict:
    """OccupationFunction (lower case) and OccupationMPOrder of an fdf text (or of its echo in a 4.x log)."""
    info = {}
    if m := re.search(r"^\s*Occupation[._-]?Function\s+(\S+)", text, re.M | re.I):
        info["occupation_function"] = m.group(1).lower()
    if m := re.search(r"^\s*Occupation[._-]?MP[._-]?Order\s+(\d+)", text, re.M | re.I):
        info["mp_order"] = int(m.group(1))
    return info


def _parse_basis_block(path, block: str, bohr_ang: float) -> dict[str, list[tuple[Shell, bool]]]:
    """Shells per species label in SIESTA's orbital order, each with its polarisation flag.

    SIESTA's order: the shells of the block (each zeta after the other), then the polarisation
    shells (l + 1 of the shells marked ``P``, n = max(n, l + 2)) in the same order (checked
    against ORB_INDX on every fixture)."""
    lines = [l.split("#")[0].split() for l in block.splitlines()]
    lines = [l for l in lines if l]
    out: dict[str, list[tuple[Shell, bool]]] = {}
    k = 0
    try:
        while k < len(lines):
            label, nshell = lines[k][0], int(lines[k][1])
            k += 1
            normal, pol = [], []
            for _ in range(nshell):
                tok = lines[k]
                n, l, nzeta = int(tok[0].replace("n=", "")), int(tok[1]), int(tok[2])
                rcs = [float(x) * bohr_ang for x in lines[k + 1][:nzeta]]
                k += 3
                normal += [Shell(l, z + 1, n, rcs[z] or None) for z in range(nzeta)]
                if "P" in tok:
                    rest = tok[tok.index("P") + 1:]
                    npol = int(rest[0]) if rest and rest[0].isdigit() else 1
                    pol += [Shell(l + 1, z + 1, max(n, l + 2), rcs[0] or None) for z in range(npol)]
            out[label] = [(s, False) for s in normal] + [(s, True) for s in pol]
    except (IndexError, ValueError) as exc:
        raise ParseError(path, f"malformed PAO.Basis block in the log: {exc}") from None
    return out


def _orb_indx_rows(path) -> list[list[str]]:
    """Tokens of the unit-cell rows of ``.ORB_INDX``: io ia is spec iao n l m z p sym rc isc(3) iuo."""
    path = find_file(path)
    lines = read_text(path).splitlines()
    try:
        no_u = int(lines[0].split()[0])
        rows = [l.split() for l in lines[3:3 + no_u]]
        if len(rows) != no_u or any(len(r) < 12 for r in rows):
            raise ValueError(f"{no_u} orbitals announced, {len(rows)} complete rows found")
        return rows
    except (IndexError, ValueError) as exc:
        raise ParseError(path, f"malformed ORB_INDX: {exc}") from None


def read_orb_indx(path) -> list[tuple[int, int, int, int, int, bool]]:
    """Unit-cell rows of ``.ORB_INDX``: (atom, n, l, m, zeta, polarisation), atom 0-based."""
    try:
        return [(int(r[1]) - 1, int(r[5]), int(r[6]), int(r[7]), int(r[8]), r[9] == "T")
                for r in _orb_indx_rows(path)]
    except ValueError as exc:
        raise ParseError(path, f"malformed ORB_INDX: {exc}") from None


def basis_from_orb_indx(path, bohr_ang: float) -> tuple[list[str], dict[str, list[tuple[Shell, bool]]]]:
    """(species label of each atom, shells of each species label with their polarisation flag) from
    ``.ORB_INDX`` (SIESTA's orbital order; rc in Bohr): the basis of a run without its standard output."""
    labels: dict[int, str] = {}
    shells: dict[str, list[tuple[Shell, bool]]] = {}
    first_atom: dict[str, int] = {}
    try:
        for r in _orb_indx_rows(path):
            atom, label = int(r[1]) - 1, r[3]
            labels.setdefault(atom, label)
            if first_atom.setdefault(label, atom) != atom:
                continue
            n, l, m, zeta, rc = int(r[5]), int(r[6]), int(r[7]), int(r[8]), float(r[11])
            if m == -l:  # a shell starts (its orbitals run m = -l..l)
                shells.setdefault(label, []).append((Shell(l, zeta, n, rc * bohr_ang or None), r[9] == "T"))
    except ValueError as exc:
        raise ParseError(path, f"malformed ORB_INDX: {exc}") from None
    if sorted(labels) != list(range(len(labels))):
        raise ParseError(path, "atoms are not numbered 1..na")
    return [labels[a] for a in range(len(labels))], shells


def read_xv(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``.XV``: cell (3, 3) Bohr, species index (na,) 1-based, positions (na, 3) Bohr."""
    cell, spec, _, xyz = read_xv_table(path)
    return cell, spec, xyz


def read_xv_table(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``.XV``: cell (3, 3) Bohr, species index (na,) 1-based, atomic number (na,), positions (na, 3) Bohr."""
    path = find_file(path)
    try:
        rows = [l.split() for l in read_text(path).splitlines() if l.strip()]
        cell = np.array([[float(x) for x in r[:3]] for r in rows[:3]])
        na = int(rows[3][0])
        spec = np.array([int(r[0]) for r in rows[4:4 + na]])
        z = np.array([int(r[1]) for r in rows[4:4 + na]])
        xyz = np.array([[float(x) for x in r[2:5]] for r in rows[4:4 + na]])
        if len(spec) != na:
            raise ValueError(f"{na} atoms announced, {len(spec)} found")
    except (IndexError, ValueError) as exc:
        raise ParseError(path, f"malformed XV file: {exc}") from None
    return cell, spec, z, xyz


# ============================================================================ run folders
def _label(folder: Path) -> str:
    names = sorted({re.sub(r"\.(TSHS|HSX)(\.xz|\.gz)?$", "", p.name) for ext in ("TSHS", "HSX")
                    for p in folder.glob(f"*.{ext}*")})
    if len(names) == 1:
        return names[0]
    for fdf in folder.glob("*.fdf"):
        if m := re.search(r"^\s*SystemLabel\s+(\S+)", read_text(fdf), re.M | re.I):
            if m.group(1) in names:
                return m.group(1)
    raise ParseError(folder, "no single <label>.TSHS or <label>.HSX (SystemLabel) in this folder"
                     if not names else f"several labels {names}: set SystemLabel in the .fdf")


def is_run_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and any(path.glob("*.fdf")) and any(
        p for ext in ("TSHS", "HSX") for p in path.glob(f"*.{ext}*"))


def _cells_from_xij(f: SparseFile, cell, xa, atom_of) -> np.ndarray:
    """isc_off of an HSX: R solved from xij = tau_j + R.cell - tau_i, one R per supercell index."""
    rows = f.rows
    d = f.xij - (xa[atom_of[f.col % f.no_u]] - xa[atom_of[rows]])
    frac = d @ np.linalg.inv(cell)
    R = np.rint(frac).astype(np.int64)
    if np.abs(frac - R).max(initial=0.0) > 1e-3:
        raise ParseError(f.path, "xij is not a lattice vector away from the unit-cell positions "
                                 "(HSX of another structure?)")
    isc = f.col // f.no_u
    isc_off = np.zeros((int(isc.max(initial=0)) + 1, 3), np.int64)
    isc_off[isc] = R
    if np.any(isc_off[isc] != R):
        raise ParseError(f.path, "one supercell index maps onto two lattice vectors")
    return isc_off


def _to_blocks(f: SparseFile, values: np.ndarray, norb, kinds, umats) -> BlockSparse:
    """SIESTA CSR values (nspin, nnz) -> BlockSparse in the internal orbital convention."""
    cells = f.isc_off[f.col // f.no_u]
    raw = BlockSparse.from_orbital_coo(norb, f.rows, f.col % f.no_u, cells, values)
    return raw.transform(kinds, umats)


def read_run(folder, with_matrices=("H", "S", "DM")) -> Hamiltonian:
    """Read a SIESTA (4.x or 5.x) run folder into the common object: ``<label>.TSHS`` (preferred) or
    ``.HSX``, ``.XV``, ``.DM``, the standard output whatever its name (:func:`find_stdout`) and, when
    there is no standard output, ``.ORB_INDX`` (basis) and ``.EIG`` (unit generation)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ParseError(folder, "not a folder")
    label = _label(folder)
    base = folder / label
    files: dict[str, str] = {}
    stdout = find_stdout(folder, label)
    log = read_log(stdout) if stdout is not None else {}
    if stdout is not None:
        files["log"] = str(stdout)
    hs = _read_matrix_file(base)
    files[hs.kind] = hs.path
    _check_spin(hs, log.get("version"))
    units, units_source = run_units(log.get("version"), base, hs)
    xv_cell, spec, znum, xv_xyz = read_xv_table(base.with_suffix(".XV"))
    files["XV"] = str(find_file(base.with_suffix(".XV")))
    cell, xa = (hs.cell, hs.xa) if hs.cell is not None else (xv_cell, xv_xyz)
    if len(spec) != len(xa):
        raise ParseError(files["XV"], f"{len(spec)} atoms, {hs.path} has {len(xa)}")
    if file_exists(base.with_suffix(".ORB_INDX")):
        files["ORB_INDX"] = str(find_file(base.with_suffix(".ORB_INDX")))
    symbols, shells = _species_shells(log, files, spec, znum, units)

    basis = Basis({sym: tuple(s for s, _ in sh) for sym, sh in shells.items()})
    atoms = ase.Atoms(symbols, positions=xa * units.bohr_ang, cell=cell * units.bohr_ang, pbc=True)
    norb = np.array([basis.norb(s) for s in symbols], dtype=np.int64)
    if norb.sum() != hs.no_u or (hs.lasto is not None and not np.array_equal(np.diff(hs.lasto), norb)):
        raise ParseError(hs.path, f"{hs.no_u} orbitals, the basis gives {list(norb)} per atom")
    if "ORB_INDX" in files and "log" in files:
        _check_orb_indx(files["ORB_INDX"], symbols, shells)
    if hs.isc_off is None:  # 4.x HSX: R from xij
        hs.isc_off = _cells_from_xij(hs, cell, xa, np.repeat(np.arange(len(xa)), norb))
        hs.nsc = 2 * np.abs(hs.isc_off).max(axis=0) + 1
    names = list(dict.fromkeys(symbols))
    kinds = np.array([names.index(s) for s in symbols])
    umats = [orbital_transform(basis.ls(s)) for s in names]

    mats = {}
    if "H" in with_matrices:
        mats["H"] = _to_blocks(hs, _from_file(hs.values["H"], "H") * units.ry_ev, norb, kinds, umats)
    if "S" in with_matrices:
        mats["S"] = _to_blocks(hs, hs.values["S"], norb, kinds, umats)
    dm_pattern = None
    if "DM" in with_matrices and file_exists(base.with_suffix(".DM")):
        dm = read_dm(base.with_suffix(".DM"))
        files["DM"] = dm.path
        _check_dm(dm, hs)
        dm.isc_off = hs.isc_off
        mats["DM"] = _to_blocks(dm, _from_file(dm.values["DM"], "DM"), norb, kinds, umats)
        dm_pattern = None if dm.same_pattern(hs) else replace(dm, values={}, xij=None)

    fermi, fermi_source = run_fermi_level(hs, log, units)
    nelec = log.get("nelec", hs.header.get("qtot"))
    settings = {"smearing_kT_eV": float(hs.header["temp"]) * units.ry_ev,
                "siesta_polarization": {s: [p for _, p in sh] for s, sh in shells.items()},
                "siesta_units": {"generation": units.generation, "ry_eV": units.ry_ev,
                                 "bohr_Ang": units.bohr_ang, "from": units_source}}
    settings.update(_kgrid_settings(hs))
    settings.update(_smearing(_occupation(log, folder, label), settings["smearing_kT_eV"]))
    prov = {"code": CODE, "version": log.get("version"), "source": str(folder.resolve()),
            "files": files, "matrix_file": hs.kind, "scf_iterations": log.get("scf_iterations"),
            "converged": log.get("converged"), "fermi_level_log": log.get("fermi_level"),
            "fermi_level_from": fermi_source, "units": f"SIESTA {units.generation}.x ({units_source})"}
    layout = SiestaLayout(label, replace(hs, values={}, xij=None), dm_pattern)
    return Hamiltonian(atoms=atoms, basis=basis, fermi_level=fermi, nelec=nelec, provenance=prov,
                       settings=settings, file_layout=layout, **mats)


def _read_matrix_file(base: Path) -> SparseFile:
    """``<label>.TSHS`` when present (4.x: double precision where the HSX is float32), else ``.HSX``."""
    if file_exists(base.with_suffix(".TSHS")):
        return read_tshs(base.with_suffix(".TSHS"))
    if file_exists(base.with_suffix(".HSX")):
        return read_hsx(base.with_suffix(".HSX"))
    raise ParseError(base.with_suffix(".TSHS"), "neither a TSHS nor an HSX file")


def run_units(version: str | None, base: Path, hs: SparseFile) -> tuple[SiestaUnits, str]:
    """SIESTA's unit constants for this run and where they were decided: the standard output's
    version, else the ``.EIG``'s E_F (eV) against the binary file's (Ry)."""
    if (units := units_of_version(version)) is not None:
        return units, f"version {version}"
    ef = hs.header.get("ef") if hs.kind == "TSHS" else hsx_fermi_level(hs)
    eig = base.with_suffix(".EIG")
    if ef is not None and file_exists(eig) and (units := units_from_eig(eig, ef)) is not None:
        return units, f"E_F of {find_file(eig).name}"
    raise ParseError(base.parent, "SIESTA 4 and 5 use different Ry and Bohr constants and this run's "
                                  "version is unknown: no standard output (a file with SIESTA's banner and "
                                  f"'System Label: {base.name}') and no {base.name}.EIG matching the E_F of "
                                  f"{Path(hs.path).name}")


def run_fermi_level(hs: SparseFile, log: dict, units: SiestaUnits) -> tuple[float | None, str | None]:
    """(E_F in eV, its source). TSHS: its own E_F. HSX: a 5.x HSX's E_F when SIESTA computed one and
    the standard output (if any) printed the same; else the standard output's; else None. A 5.x HSX
    E_F that differs from the printed one is refused (sisl issue 828: an HSX E_F can be unusable)."""
    printed = log.get("fermi_level")
    if hs.kind == "TSHS":
        return hs.header["ef"] * units.ry_ev, "TSHS"
    ef = hsx_fermi_level(hs)
    if ef is not None:
        if printed is not None and abs(ef * units.ry_ev - printed) > 1e-5:
            raise ParseError(hs.path, f"E_F {ef * units.ry_ev:.6f} eV differs from the {printed:.6f} eV printed "
                                      f"in {log['path']}: files of different runs?")
        return ef * units.ry_ev, "HSX"
    if printed is not None:
        why = ("a SIESTA 4 HSX stores no E_F" if hs.header["hsx_version"] == 0
               else "the HSX holds no E_F: H.Setup.Only run?")
        return printed, f"standard output ({why})"
    return None, None


def _species_shells(log: dict, files: dict, spec, znum, units: SiestaUnits):
    """(chemical symbol of each atom, {symbol: [(Shell, polarisation)]}): species and PAO.Basis of the
    standard output, else the species labels and shells of ``.ORB_INDX`` with the ``.XV``'s Z."""
    if log.get("species") and log.get("shells"):
        species, by_label = log["species"], log["shells"]
        if not set(spec) <= set(species):
            raise ParseError(files["XV"], f"species {sorted(set(spec))} are not the standard output's "
                                          f"{sorted(species)}")
        symbols = [ase.data.chemical_symbols[species[s][0]] for s in spec]
        labels = {ase.data.chemical_symbols[z]: lab for z, lab in species.values()}
        where = files["log"]
        same_element = len(labels) != len(species)
    elif "ORB_INDX" in files:
        atom_labels, by_label = basis_from_orb_indx(files["ORB_INDX"], units.bohr_ang)
        if len(atom_labels) != len(spec):
            raise ParseError(files["ORB_INDX"], f"{len(atom_labels)} atoms, {files['XV']} has {len(spec)}")
        symbols = [ase.data.chemical_symbols[z] for z in znum]
        labels = dict(zip(symbols, atom_labels))
        where = files["ORB_INDX"]
        same_element = len(set(zip(symbols, atom_labels))) != len(labels)
    else:
        raise ParseError(Path(files["XV"]).with_suffix(""), "the basis is unknown: no standard output with "
                                                            "the PAO.Basis block and no .ORB_INDX")
    if same_element:
        raise ParseError(where, "two SIESTA species of the same element are not supported")
    shells = {sym: by_label[lab] for sym, lab in labels.items() if lab in by_label}
    if set(shells) != set(labels):
        raise ParseError(where, f"no basis entry for {sorted(set(labels) - set(shells))}")
    return symbols, shells


def _kgrid_settings(hs: SparseFile) -> dict:
    """The run's k grid (TSHS, 5.x HSX version 2): kgrid, kdispl and, for a diagonal grid, the
    toolkit's kmesh / kmesh_shift (SIESTA: k = (i + d)/n, checked on .KP)."""
    if "kgrid" not in hs.header:
        return {}
    raw = hs.header["kgrid"].tobytes()
    kg = np.frombuffer(raw, "<i4", 9).reshape(3, 3)
    out = {"kgrid": kg.tolist(), "kdispl": np.frombuffer(raw, "<f8", 3, 36).tolist()}
    if np.count_nonzero(kg - np.diag(np.diag(kg))) == 0:
        out["kmesh"] = np.diag(kg).tolist()
        out["kmesh_shift"] = [2 * d for d in out["kdispl"]]
    return out


def _occupation(log: dict, folder: Path, label: str) -> dict:
    """OccupationFunction / OccupationMPOrder: the 4.x standard output's input echo, else the run's fdf."""
    if "occupation_function" in log:
        return log
    fdf = run_fdf(folder, label)
    return _occupation_keys(read_text(fdf)) if fdf is not None else {}


def run_fdf(folder: Path, label: str) -> Path | None:
    """The ``.fdf`` of the run ``label`` (its SystemLabel; "siesta" when it sets none), or None."""
    found = []
    for fdf in sorted(Path(folder).glob("*.fdf")):
        m = re.search(r"^\s*System[._-]?Label\s+(\S+)", read_text(fdf), re.M | re.I)
        if (m.group(1) if m else "siesta") == label:
            found.append(fdf)
    return found[0] if len(found) == 1 else None


def _smearing(keys: dict, kt_ev: float) -> dict:
    """The toolkit's smearing keys: SIESTA's OccupationFunction (FD default, MP with OccupationMPOrder,
    default 1), width = ElectronicTemperature (k_B T for FD)."""
    if keys.get("occupation_function", "fd") == "mp":
        return {"smearing_method": f"mp{keys.get('mp_order', 1)}", "smearing_sigma_eV": kt_ev}
    return {"smearing_method": "fermi-dirac", "smearing_sigma_eV": kt_ev}


def _check_orb_indx(path, symbols, shells) -> None:
    """The log's basis (order, l, zeta, n, polarisation) must be ORB_INDX's, orbital by orbital."""
    expect = []
    for a, sym in enumerate(symbols):
        for shell, pol in shells[sym]:
            expect += [(a, shell.n, shell.l, m, shell.zeta, pol) for m in range(-shell.l, shell.l + 1)]
    got = read_orb_indx(path)
    if got != expect:
        bad = next(k for k, (x, y) in enumerate(zip(got + [None] * len(expect), expect)) if x != y)
        raise ParseError(path, f"orbital {bad + 1} is {got[bad] if bad < len(got) else 'missing'}, "
                               f"the log's PAO.Basis gives {expect[bad]}")


def _check_dm(dm: SparseFile, hs: SparseFile) -> None:
    """A DM belongs to the run when it has the run's orbitals, supercell and sparsity."""
    if dm.no_u != hs.no_u:
        raise MismatchError(f"{dm.path}: {dm.no_u} orbitals, {hs.path} has {hs.no_u} (DM of another structure?)")
    if hs.nspin != dm.nspin:
        raise MismatchError(f"{dm.path}: nspin {dm.nspin}, {hs.path} has {hs.nspin}")
    if dm.nsc is not None and hs.nsc is not None and not np.array_equal(dm.nsc, hs.nsc):
        raise MismatchError(f"{dm.path}: supercell {list(dm.nsc)}, {hs.path} has {list(hs.nsc)}")
    if not dm.same_pattern(hs):
        raise MismatchError(f"{dm.path}: sparsity differs from {hs.path} (DM of another structure?)")


def read_h0(folder) -> Hamiltonian:
    """Read a zeroth-step run (h0/: one diagonalisation of H[DM_atomic]); its DM is not kept
    (it is the output DM of H0, not an SCF quantity)."""
    return relabel_h0(read_run(folder, with_matrices=("H", "S")))


# ============================================================================ writing
def units_of(h: Hamiltonian) -> SiestaUnits:
    """The unit constants of the SIESTA run ``h`` was read from (SIESTA 4's for any other matrix)."""
    u = h.settings.get("siesta_units")
    return UNITS["4"] if u is None else SiestaUnits(u["generation"], u["ry_eV"], u["bohr_Ang"])


def siesta_blocks(h: Hamiltonian, name: str) -> BlockSparse:
    """Matrix ``name`` of ``h`` in SIESTA's orbital order and signs (energies still in eV).

    The one conversion shared by the file writers here and by :mod:`dftplug.sislio`."""
    mat = getattr(h, name)
    if mat is None:
        raise MismatchError(f"no {name} to write")
    species, kinds = h.species_index()
    return mat.transform(kinds, [orbital_transform(h.basis.ls(s)).T for s in species])


@dataclass(frozen=True)
class SiestaLayout:
    """What SIESTA's writers need of the run the matrices were read from: its SystemLabel, the
    sparsity of its H and S (``pattern``: per-row column order and supercell, values dropped) and,
    where the ``.DM`` has its own, the DM's (``dm_pattern``)."""

    label: str
    pattern: SparseFile
    dm_pattern: SparseFile | None = None


def _pattern(h: Hamiltonian, layout: SiestaLayout | None, like, mats, dm: bool = False) -> SparseFile:
    """The sparsity to write on: ``like`` (a SIESTA TSHS of this structure), else ``layout``'s (SIESTA's
    own column order; ``dm``: the DM's where it differs), else a new one from the blocks of ``mats``."""
    if like is not None:
        pat = read_tshs(like)
    else:
        pat = None if layout is None else (layout.dm_pattern if dm else None) or layout.pattern
    norb = h.norb()
    if pat is None:
        return _new_pattern(norb, mats)
    if pat.no_u != norb.sum() or (pat.lasto is not None and not np.array_equal(np.diff(pat.lasto), norb)):
        raise MismatchError(f"{pat.path}: sparsity of {pat.no_u} orbitals cannot hold a structure with "
                            f"{list(norb)} orbitals per atom")
    return pat


def _new_pattern(norb, mats) -> SparseFile:
    """Every element of every block of ``mats``, columns sorted within each row."""
    pairs = np.unique(np.concatenate([m.pairs for m in mats]), axis=0)
    full = BlockSparse(norb, pairs, np.zeros((1, int(np.sum(norb[pairs[:, 0]] * norb[pairs[:, 1]])))))
    rows, cols, cells, _ = full.to_orbital_coo()
    nsc = 2 * np.abs(cells).max(axis=0, initial=0) + 1
    isc_off = siesta_isc_off(nsc)
    isc = {tuple(c): k for k, c in enumerate(isc_off)}
    no_u = int(norb.sum())
    col = cols + no_u * np.array([isc[tuple(c)] for c in cells], dtype=np.int64)
    order = np.lexsort((col, rows))
    gamma = int(np.all(nsc == 1))
    kgrid = np.zeros(1, "V60")
    header = {"flags": np.array([gamma, gamma, 0]), "kgrid": kgrid, "ef": 0.0, "qtot": 0.0, "temp": 0.0,
              "istep_ia1": np.zeros(2, np.int64)}
    return SparseFile("new", no_u, 1, np.bincount(rows, minlength=no_u), col[order], {}, nsc, isc_off,
                      header=header, path="(new sparsity)")


def _values_on(mat: BlockSparse, pat: SparseFile, what: str) -> np.ndarray:
    """Values (nspin, nnz) of ``mat`` at the elements of ``pat``, in ``pat``'s order.

    Elements of a block that ``pat`` does not list are dropped (outside SIESTA's orbital range);
    a nonzero block that ``pat`` does not touch at all is a MismatchError."""
    norb = mat.norb
    offs = mat.orbital_offsets()
    atom_of = np.repeat(np.arange(mat.natoms), norb)
    rows, cols = pat.rows, pat.col % pat.no_u
    cells = pat.isc_off[pat.col // pat.no_u]
    ia, ja = atom_of[rows], atom_of[cols]
    edge = mat.find(np.column_stack([ia, ja, cells]))
    have = edge >= 0
    idx = mat.offsets[np.where(have, edge, 0)] + (rows - offs[ia]) * norb[ja] + (cols - offs[ja])
    values = np.where(have, mat.data[:, idx], 0.0)
    untouched = np.ones(mat.nedges, bool)
    untouched[edge[have]] = False
    if untouched.any():
        lost = np.concatenate([np.arange(mat.offsets[e], mat.offsets[e + 1]) for e in np.nonzero(untouched)[0]])
        if np.abs(mat.data[:, lost]).max(initial=0.0) > 0:
            bad = mat.pairs[np.nonzero(untouched)[0][0]]
            raise MismatchError(f"{what}: {int(untouched.sum())} nonzero blocks (i, j, R), e.g. {bad.tolist()}, "
                                f"lie outside the SIESTA sparsity of {pat.path}")
    return values


def write_dm(h: Hamiltonian, path, like=None, layout: SiestaLayout | None = None) -> Path:
    """Write h.DM as ``<label>.DM`` for ``DM.UseSaveDM true`` (SIESTA's own layout and column order
    from ``layout``, the run's; ``like``: a TSHS of the same structure to take them from)."""
    dm = siesta_blocks(h, "DM")
    pat = _pattern(h, layout, like, [dm], dm=True)
    values = _to_file(_values_on(dm, pat, f"DM of {path}"), "DM")
    out = replace(pat, kind="DM", nspin=len(values), values={"DM": values})
    write_dm_file(path, out)
    return Path(path)


def write_h_in(h: Hamiltonian, path, like=None, matrix: str = "H", layout: SiestaLayout | None = None) -> Path:
    """Write ``h.<matrix>`` as SIESTA 4.1.5's ``H_IN`` (read in the first SCF step with the
    undocumented ``Read-H-from-file true`` and ``SCF.Mix Hamiltonian``): the DM layout with H in
    Ry, on SIESTA's own column order (a sorted-column H_IN crashes SIESTA, fixtures README (d''))."""
    ham = siesta_blocks(h, matrix)
    pat = _pattern(h, layout, like, [ham], dm=True)
    values = _to_file(_values_on(ham, pat, f"{matrix} of {path}"), "H") / units_of(h).ry_ev
    write_dm_file(path, replace(pat, kind="DM", nspin=len(values), values={"DM": values}))
    return Path(path)


def write_tshs(h: Hamiltonian, path, like=None, matrix: str = "H", layout: SiestaLayout | None = None) -> Path:
    """Write ``h.<matrix>`` (e.g. a predicted H, eV) and h.S as a SIESTA TSHS (the one layout of 4.x and
    5.x; H in Ry with the run's SIESTA constant, E_F = h.fermi_level, Q = h.nelec): readable by sisl,
    TBtrans and SIESTA's post-processing tools."""
    ham, s = siesta_blocks(h, matrix), siesta_blocks(h, "S")
    pat = _pattern(h, layout, like, [ham, s])
    units = units_of(h)
    gamma = int(np.all(pat.nsc == 1))
    header = {"flags": np.array([gamma, gamma, 0]), "istep_ia1": np.zeros(2, np.int64)}
    header.update({k: pat.header[k] for k in ("flags", "istep_ia1", "ef", "qtot", "temp") if k in pat.header})
    header.update(_energy_header(h, units, unknown_fermi=pat.header.get("ef", 0.0)), kgrid=_kgrid_record(h, pat))
    out = replace(pat, kind="TSHS", values=_hs_values(h, ham, s, pat, units, f"{matrix} of {path}"),
                  header=header, **_geometry_fields(h, units))
    write_tshs_file(path, replace(out, nspin=len(out.values["H"])))
    return Path(path)


def write_hsx(h: Hamiltonian, path, like=None, matrix: str = "H", layout: SiestaLayout | None = None) -> Path:
    """Write ``h.<matrix>`` and h.S as a SIESTA 5.x HSX (version 1, double precision; the file that
    replaces the TSHS from SIESTA 5.3 on, read by sisl): cell, supercell offsets, E_F (Fortran's
    ``huge`` when h has none, as SIESTA writes it), Q, kT, species and the (n, l, zeta) of every
    orbital. Species labels and valence charges are those of the 5.x HSX h was read from, else the
    element symbols and 0."""
    ham, s = siesta_blocks(h, matrix), siesta_blocks(h, "S")
    pat = _pattern(h, layout, like, [ham, s])
    if pat.isc_off is None or len(pat.isc_off) != int(np.prod(pat.nsc)):
        raise MismatchError(f"{pat.path}: its supercell list does not cover nsc {list(pat.nsc)} (a SIESTA 4 HSX "
                            "stores none): write the HSX on a TSHS's or a 5.x HSX's sparsity (like=...)")
    units = units_of(h)
    values = _hs_values(h, ham, s, pat, units, f"{matrix} of {path}")
    geo = _geometry_fields(h, units)
    names, kinds = h.species_index()
    known = pat.header.get("species")
    species = known if known and len(known) == len(names) else [(n, 0.0, h.basis.norb(n)) for n in names]
    header = _energy_header(h, units, unknown_fermi=np.finfo(np.float64).max)
    na, nspin = len(kinds), len(values["H"])
    with atomic_write(path) as fh:
        _record(fh, np.int32(1))
        _record(fh, np.int32(1))  # is_dp
        _record(fh, np.array([na, pat.no_u, nspin, len(names), *pat.nsc], "<i4"))
        _record(fh, geo["cell"].astype("<f8").ravel(), np.array([header["ef"], header["qtot"], header["temp"]], "<f8"))
        _record(fh, pat.isc_off.astype("<i4").ravel(), geo["xa"].astype("<f8").ravel(),
                (kinds + 1).astype("<i4"), geo["lasto"][1:].astype("<i4"))
        _record(fh, *[part for label, zval, norb in species for part in
                      (label.ljust(20)[:20].encode("ascii"), np.float64(zval), np.int32(norb))])
        for name in names:
            _record(fh, np.array([(sh.n or 0, sh.l, sh.zeta) for sh in h.basis.shells[name]
                                  for _ in range(2 * sh.l + 1)], "<i4"))
        _record(fh, pat.ncol.astype("<i4"))
        rows = _row_slices(pat.ncol)
        for sl in rows:
            _record(fh, (pat.col[sl] + 1).astype("<i4"))
        for spin in range(nspin):
            for sl in rows:
                _record(fh, values["H"][spin, sl].astype("<f8"))
        for sl in rows:
            _record(fh, values["S"][sl].astype("<f8"))
    return Path(path)


def _hs_values(h: Hamiltonian, ham: BlockSparse, s: BlockSparse, pat: SparseFile, units: SiestaUnits,
               what: str) -> dict:
    """File values of H (Ry, SIESTA's spin components) and S on the sparsity ``pat``."""
    return {"H": _to_file(_values_on(ham, pat, what), "H") / units.ry_ev, "S": _values_on(s, pat, f"S of {what}")[0]}


def _geometry_fields(h: Hamiltonian, units: SiestaUnits) -> dict:
    """cell, xa (Bohr) and lasto of ``h`` for a TSHS or HSX."""
    return {"cell": h.atoms.cell.array / units.bohr_ang, "xa": h.atoms.positions / units.bohr_ang,
            "lasto": np.concatenate([[0], np.cumsum(h.norb())])}


def _energy_header(h: Hamiltonian, units: SiestaUnits, unknown_fermi: float) -> dict:
    """E_F and kT in Ry (``unknown_fermi`` when h has no E_F), Q of ``h``."""
    return {"ef": unknown_fermi if h.fermi_level is None else h.fermi_level / units.ry_ev,
            "qtot": float(h.nelec or 0.0), "temp": h.settings.get("smearing_kT_eV", 0.0) / units.ry_ev}


def _kgrid_record(h: Hamiltonian, pat: SparseFile):
    """The 60-byte k-grid record (3x3 int32, 3 float64): the file's, else h's kgrid / kdispl, else zeros."""
    if "kgrid" in pat.header:
        return pat.header["kgrid"]
    if "kgrid" in h.settings:
        raw = np.asarray(h.settings["kgrid"], "<i4").tobytes() + np.asarray(h.settings["kdispl"], "<f8").tobytes()
        return np.frombuffer(raw, "V60")[0]
    return np.zeros(1, "V60")[0]


def write_scf_guess(h: Hamiltonian, out_dir, layout: SiestaLayout | None, label: str | None = None) -> ScfGuess:
    """``<label>.DM`` (``DM.UseSaveDM true``), ``<label>.TSHS`` and ``H_IN`` (``Read-H-from-file``)
    of h.H / h.DM in ``out_dir``, on the sparsity and column order of ``layout`` (the zeroth-step
    run's); ``label`` defaults to its SystemLabel."""
    label = label or (layout.label if layout is not None else None)
    if label is None:
        raise MismatchError("a SIESTA guess needs the SystemLabel: pass label= (or the run's layout)")
    out_dir = Path(out_dir)
    files = [write_dm(h, out_dir / f"{label}.DM", layout=layout),
             write_tshs(h, out_dir / f"{label}.TSHS", layout=layout),
             write_h_in(h, out_dir / "H_IN", layout=layout)]
    return ScfGuess(CODE, files, ["DM.UseSaveDM       true"],
                    notes=[f"copy {label}.DM into the SCF run folder; alternatively copy H_IN and set "
                           "'Read-H-from-file true' (SIESTA 4.1.5, undocumented; needs SCF.Mix Hamiltonian)"])


@register
class Siesta(CodeIO):
    """SIESTA 4.x / 5.x runs: ``<label>.fdf``, the standard output, ``.XV``, ``.TSHS`` or ``.HSX``,
    ``.DM`` (zeroth-step run: ``h0/``)."""

    name = CODE
    h0_siblings = ("h0",)
    writes_scf_guess = True
    detect_order = 20
    orbital_order = staticmethod(_siesta_order)

    is_run_folder = staticmethod(is_run_folder)

    def _read_run(self, path, matrices=("H", "S", "DM")):
        return read_run(path, with_matrices=matrices)

    def matrix_files(self, h):
        files = h.provenance.get("files", {})
        hs = files.get(h.provenance.get("matrix_file"))
        return {n: str(f) for n, f in (("H", hs), ("S", hs), ("H0", hs), ("DM", files.get("DM"))) if f}

    def guess_needs_dm(self, nspin, with_dm):
        return True  # <label>.DM is the file SIESTA restarts from

    def write_scf_guess(self, h, out_dir):
        return write_scf_guess(h, out_dir, layout=h.file_layout)

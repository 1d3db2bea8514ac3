"""OpenMX 3.9 run folders: read and write the ``.scfout`` binary (H, S, DM per atom pair).
(Registered as a code, with its SCF guess, in :mod:`.openmx_code`.)

Layout
------
``../shared/fixtures/openmx/SCFOUT_FORMAT.md`` (OpenMX 3.9 ``SCF2File.c``, SCFOUT_VERSION 3): an int32
header, the lattice translations ``atv``/``atv_ijk``, orbitals and neighbour lists per atom, cell and
positions (Bohr), then equal-sized blocks of float64 holding, for atom a and neighbour h, the dense
``TNO[a] x TNO[natn[a][h]]`` matrix <phi_i^a | M | phi_j^b(r - R)> (R = atv_ijk[ncn[a][h]]): H per
spin, iHNL (non-collinear only), S, position/momentum blocks, DM per spin, iDM; then Solver, ChemP,
temperature, dipoles, electron count, spin and the input file as 256-byte lines. :class:`Scfout` keeps
every field as stored, so an unchanged file is written back byte for byte, and only H (S, DM) are
replaced by :func:`write_scfout`. Byte-swapped files are detected by the version field and swapped,
as OpenMX's ``read_scfout.c`` does; the byte order is kept when writing.

The structure comes from the file (Gxyz, tv in Bohr), the species and basis names (``Si7.0-s2p2d1``:
cutoff 7.0 Bohr, shells s2 p2 d1) from the input file that OpenMX stores at the end of the .scfout
(so an ``h0/`` folder without a log reads too); the ``.out`` log adds the version and SCF iteration
count and must print the .scfout's ChemP (else it is another run's log and is refused).

H0 (zeroth-step Hamiltonian H[rho_atomic]) comes in two forms, recorded in ``provenance["h0_form"]``:
``"openmx:scf_iter1"`` (a standard .scfout of a run with ``scf.maxIter 1``) and
``"openmx:openmx_postprocess"`` (HamGNN's ``overlap.scfout``: position/momentum blocks replaced by
dS/dR and <i|L|j>, DM = 0, ChemP = -3 eV). The commit-9dbf2cd build of openmx_postprocess solves
Poisson's equation (its log prints ``<Poisson>``) and writes H[rho_atomic] including V_xc,
bit-identical to scf_iter1; HEAD's build stops earlier and writes H without V_xc
(``"H[rho_atomic]-no-Vxc"``). The log decides which; without the log the kind must be given.

Conventions converted here (and nowhere else)
---------------------------------------------
* energy: 1 Ha = 27.2113845 eV, OpenMX's own ``eV2Hartree`` (openmx_common.h). The .out prints ChemP in
  Ha only; the constant is confirmed by openmx_postprocess, which stores its initial ChemP of -3 eV as
  exactly -3/27.2113845 Ha (bit for bit), and by the fixture READMEs' ChemP in Ha and eV (7 digits).
* length: 1 Bohr = 0.529177249 Å (``BohrR``); S and DM are dimensionless.
* orbital order within an atom: l = 0..lmax, for each l its zetas, for each zeta the m in OpenMX order
  (``Get_Orbitals.c``; every function with a positive prefactor, no Condon-Shortley phase):
  p = (x, y, z); d = (3z^2-r^2, x^2-y^2, xy, xz, yz);
  f = (z(5z^2-3r^2), x(5z^2-r^2), y(5z^2-r^2), z(x^2-y^2), xyz, x(x^2-3y^2), y(3x^2-y^2)).
  p and d are proven on the rotation pair (``tests/test_openmx.py``); f is taken from the source.
* spin: SpinP_switch 0 stores the DM of ONE spin channel; the common object's DM holds 2 x DM (the
  spin-summed DM), so Tr(DM S) = N as for the other codes. SpinP_switch 1: channels (up, down) as
  stored. SpinP_switch 3 (non-collinear, with or without SOC; SCFOUT_FORMAT.md § 7): the spinor
  channels (uu, ud, du, dd) of the common object, <a s|M|b s' (R)> on the basis [all up, all down]
  (``Band_DFT_NonCol.c``), are
    H:  uu = H[0] + i iHNL[0],  dd = H[1] + i iHNL[1],  ud = H[2] + i (H[3] + iHNL[2]),
    DM: uu = DM[0] - i iDM[0],  dd = DM[1] - i iDM[1],  ud = DM[2] - i DM[3]  (OpenMX's DM is the
        complex conjugate of the common object's sum_n f c_{as} conj(c_{bs'})),
  and du, which the file does not store, is the adjoint of ud: du_ab(R) = conj(ud_ba(-R)). Measured:
  the eigenvalues equal OpenMX's ``.Band``, the cubic symmetry of fcc Pt holds for this H and fails
  for conj(H) (the sign of i), and the DM rebuilt from H's eigenvectors with OpenMX's occupations
  equals the DM read (``tests/test_soc_openmx.py``). Writing keeps the template's H[3] (see below)
  and puts the rest of Im ud into iHNL[2], Im uu and Im dd into iHNL[0..1]; du is not written (use ``H.hermitized()`` for a non-Hermitian prediction). The fixture is
  non-magnetic: H[3] (the non-collinear exchange field's part of Im ud) is <= 6.6e-10 Ha, so its sign
  is the source's, untested; files with |H[3]| > 1e-6 Ha (non-collinear magnetism) are refused.
* writing: a matrix element whose converted value equals the file's to 1e-13 of the matrix's largest
  element (the round-off of the unit and basis conversion is ~2e-15) is written with the file's own bits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import ase
import numpy as np
from ase.data import chemical_symbols

from dftplug.basis import Basis, Shell
from dftplug.blocksparse import BlockSparse
from dftplug.errors import MismatchError, ParseError
from dftplug.fileio import atomic_write, find_file, read_bytes, read_text
from dftplug.hamiltonian import Hamiltonian

from .base import relabel_h0, shell_transform

CODE = "openmx"
HARTREE_TO_EV = 27.2113845  # OpenMX eV2Hartree
BOHR_TO_ANG = 0.529177249  # OpenMX BohrR
KB_EV_PER_K = 8.617251324e-5  # OpenMX kB (eV/K)
SCFOUT_VERSION = 3
INIT_CHEMP_HA = -3.0 / HARTREE_TO_EV  # openmx_postprocess's stored initial ChemP
CLUSTER_SOLVERS = {2, 7, 9, 12}  # Cluster, Cluster-DIIS, Cluster2, Cluster-LNO: no periodicity
POSTPROCESS_FILE = "overlap.scfout"
WRITE_SNAP_RTOL = 1e-13
NONCOLLINEAR_XC_MAX_HA = 1e-6  # SpinP_switch 3: largest |H[3]| read (see _check_non_magnetic)

# OpenMX's m order per l as (m_std, sign): see the module docstring.
OPENMX_ORDER = {
    0: ((0, 1),),
    1: ((1, 1), (-1, 1), (0, 1)),
    2: ((0, 1), (2, 1), (-2, 1), (1, 1), (-1, 1)),
    3: ((0, 1), (1, 1), (-1, 1), (2, 1), (-2, 1), (3, 1), (-3, 1)),
}


def orbital_transform(ls) -> np.ndarray:
    """U (norb x norb) with phi_internal = U phi_openmx for an atom with shells ``ls``."""
    return shell_transform(ls, OPENMX_ORDER.__getitem__)


# ============================================================================ the binary file
def block_layout(spinp_switch: int, order_max: int) -> dict[str, slice]:
    """Which of the file's equal-sized sparse blocks hold which matrix (SCFOUT_FORMAT.md § 2)."""
    nsp = spinp_switch + 1
    counts = [("H", nsp), ("iHNL", 3 if spinp_switch == 3 else 0), ("S", 1), ("OLPpo", 3 * order_max),
              ("OLPmo", 3), ("DM", nsp), ("iDM", 2)]
    out, start = {}, 0
    for name, n in counts:
        out[name] = slice(start, start + n)
        start += n
    return out


@dataclass
class Scfout:
    """One ``.scfout`` file as stored: Hartree, Bohr, OpenMX orbital order, 1-based atom indices.

    Arrays are those of SCFOUT_FORMAT.md; (N = atomnum, C = TCpyCell + 1, E = sum(FNAN + 1)).
    """

    byteorder: str           # "<" (as written on x86-64) or ">"
    version: int
    spinp_switch: int
    negf_atoms: np.ndarray   # (3,) Catomnum, Latomnum, Ratomnum
    order_max: int
    atv: np.ndarray          # (C, 4) Bohr; column 0 uninitialised memory, kept verbatim
    atv_ijk: np.ndarray      # (C, 4) int; column 0 likewise
    tno: np.ndarray          # (N,) orbitals per atom
    fnan: np.ndarray         # (N,) neighbours per atom (itself not counted)
    natn: np.ndarray         # (E,) 1-based neighbour atom, atom after atom, h = 0 is the atom itself
    ncn: np.ndarray          # (E,) cell index of that neighbour (row of atv)
    tv: np.ndarray           # (3, 4) cell vectors in columns 1..3, Bohr
    rtv: np.ndarray          # (3, 4) reciprocal vectors, Bohr^-1
    gxyz: np.ndarray         # (N, 4) positions in columns 1..3, Bohr
    blocks: np.ndarray       # (n_blocks, Nel) every sparse block, in file order (see block_layout)
    solver: int
    trailer: np.ndarray      # (10,) ChemP (Ha), T (K), dipoles (6), electrons, spin S
    input_lines: bytes       # nlines x 256 bytes: the input file as stored (with fgets leftovers)

    # ------------------------------------------------------------------ derived quantities
    @property
    def natoms(self) -> int:
        return len(self.tno)

    @property
    def nspin(self) -> int:
        return self.spinp_switch + 1

    @property
    def layout(self) -> dict[str, slice]:
        return block_layout(self.spinp_switch, self.order_max)

    def matrix(self, name: str) -> np.ndarray:
        """Blocks of matrix ``name`` (see :func:`block_layout`), shape (channels, Nel), file order."""
        return self.blocks[self.layout[name]]

    @property
    def chemp(self) -> float:
        return float(self.trailer[0])

    @property
    def nelec(self) -> float:
        return float(self.trailer[8])

    def pairs(self) -> np.ndarray:
        """(E, 5) rows (i, j, R1, R2, R3), 0-based atoms, in file order."""
        atom = np.repeat(np.arange(self.natoms), self.fnan + 1)
        return np.column_stack([atom, self.natn - 1, self.atv_ijk[self.ncn, 1:4]]).astype(np.int64)

    def input_text(self) -> str:
        """The stored input file (each 256-byte line up to its NUL)."""
        raw = np.frombuffer(self.input_lines, "S256") if self.input_lines else []
        return "".join(line.split(b"\0")[0].decode("latin-1") for line in raw)

    def is_postprocess(self) -> bool:
        """True for HamGNN openmx_postprocess's overlap.scfout: DM all zero, ChemP the -3 eV guess."""
        return self.chemp == INIT_CHEMP_HA and not np.any(self.matrix("DM"))

    # ------------------------------------------------------------------ bytes
    def parts(self) -> list[np.ndarray]:
        """The file's sections in order, each with its on-disk dtype (byte order included)."""
        i4, f8 = np.dtype(self.byteorder + "i4"), np.dtype(self.byteorder + "f8")
        head = [self.natoms, self.spinp_switch + 4 * self.version, *self.negf_atoms, len(self.atv) - 1]
        arrays = [(head, i4), ([self.order_max], i4), (self.atv, f8), (self.atv_ijk, i4), (self.tno, i4),
                  (self.fnan, i4), (self.natn, i4), (self.ncn, i4), (self.tv, f8), (self.rtv, f8),
                  (self.gxyz, f8), (self.blocks, f8), ([self.solver], i4), (self.trailer, f8),
                  ([len(self.input_lines) // 256], i4)]
        out = [np.ascontiguousarray(np.asarray(a).astype(dt, copy=False)) for a, dt in arrays]
        return out + [np.frombuffer(self.input_lines, np.uint8)]

    def write(self, path) -> Path:
        """Write the file (atomic: temporary file, then rename)."""
        with atomic_write(path, "wb") as fh:
            for part in self.parts():
                fh.write(memoryview(part).cast("B"))
        return Path(path)


class _Cursor:
    """Sequential typed views into a byte buffer; a read past the end is a ParseError."""

    def __init__(self, data: bytes, byteorder: str, path):
        self.data, self.byteorder, self.path, self.pos = data, byteorder, path, 0

    def take(self, kind: str, count: int, what: str) -> np.ndarray:
        dt = np.dtype(self.byteorder + kind)
        end = self.pos + dt.itemsize * int(count)
        if count < 0 or end > len(self.data):
            raise ParseError(self.path, f"truncated: {what} ends at byte {end}, the file has {len(self.data)}")
        arr = np.frombuffer(self.data, dt, int(count), self.pos)
        self.pos = end
        return arr if dt.isnative else arr.astype(dt.newbyteorder("="))


def parse_scfout(data: bytes, path="<bytes>") -> Scfout:
    """Parse the bytes of a version-3 ``.scfout`` (either byte order) into a :class:`Scfout`."""
    if len(data) < 28:
        raise ParseError(path, f"truncated: {len(data)} bytes, not even the header")
    byteorder = "<"
    spin_version = int(np.frombuffer(data, "<i4", 6)[1])
    if not 0 <= spin_version <= 4 * SCFOUT_VERSION + 3:  # OpenMX's read_scfout test
        swapped = int(np.frombuffer(data, ">i4", 6)[1])
        if not 0 <= swapped <= 4 * SCFOUT_VERSION + 3:
            raise ParseError(path, f"header field SpinP_switch + 4*version = {spin_version} (byte-swapped "
                                   f"{swapped}): not an OpenMX .scfout")
        byteorder, spin_version = ">", swapped
    cur = _Cursor(data, byteorder, path)
    head = cur.take("i4", 6, "header")
    version, spinp = divmod(spin_version, 4)
    if version != SCFOUT_VERSION:
        raise ParseError(path, f"format version {version} (OpenMX {'3.8 or older' if version == 0 else '3.7.x dev'}); "
                               f"only version {SCFOUT_VERSION} (OpenMX 3.9) is supported")
    if spinp == 2:
        raise ParseError(path, "SpinP_switch = 2 does not exist in OpenMX: corrupt header")
    natoms, ncell = int(head[0]), int(head[5]) + 1
    if natoms <= 0 or ncell <= 0:
        raise ParseError(path, f"corrupt header: atomnum = {natoms}, TCpyCell = {ncell - 1}")
    order_max = int(cur.take("i4", 1, "order_max")[0])
    atv = cur.take("f8", 4 * ncell, "atv").reshape(ncell, 4)
    atv_ijk = cur.take("i4", 4 * ncell, "atv_ijk").reshape(ncell, 4)
    tno = cur.take("i4", natoms, "Total_NumOrbs")
    fnan = cur.take("i4", natoms, "FNAN")
    if tno.min() <= 0 or fnan.min() < 0 or order_max < 0:
        raise ParseError(path, "corrupt header: non-positive orbital count or negative FNAN/order_max")
    nent = int(np.sum(fnan + 1, dtype=np.int64))
    natn = cur.take("i4", nent, "natn")
    ncn = cur.take("i4", nent, "ncn")
    if natn.min() < 1 or natn.max() > natoms or ncn.min() < 0 or ncn.max() >= ncell:
        raise ParseError(path, "neighbour list refers to atoms or cells that do not exist: corrupt file")
    tv = cur.take("f8", 12, "tv").reshape(3, 4)
    rtv = cur.take("f8", 12, "rtv").reshape(3, 4)
    gxyz = cur.take("f8", 4 * natoms, "Gxyz").reshape(natoms, 4)
    nel = int(np.sum(np.repeat(tno, fnan + 1).astype(np.int64) * tno[natn - 1]))
    nblocks = block_layout(spinp, order_max)["iDM"].stop
    blocks = cur.take("f8", nblocks * nel, "matrix blocks").reshape(nblocks, nel)
    solver = int(cur.take("i4", 1, "Solver")[0])
    trailer = cur.take("f8", 10, "ChemP ... Total_SpinS")
    nlines = int(cur.take("i4", 1, "number of input lines")[0])
    expected = cur.pos + 256 * nlines
    if nlines < 0 or expected != len(data):
        state = "truncated" if expected > len(data) else "trailing bytes"
        raise ParseError(path, f"{state}: the header predicts {expected} bytes, the file has {len(data)}")
    return Scfout(byteorder, version, spinp, head[2:5].copy(), order_max, atv, atv_ijk, tno, fnan, natn, ncn,
                  tv, rtv, gxyz, blocks, solver, trailer, bytes(data[cur.pos:]))


def read_scfout_raw(path) -> Scfout:
    """Read a ``.scfout`` (``.xz``/``.gz`` too) as stored."""
    p = find_file(path)
    return parse_scfout(read_bytes(p), p)


# ============================================================================ input text, log
def _input_blocks(text: str) -> tuple[dict[str, str], dict[str, list[list[str]]]]:
    """Keywords (lower case) and <Block ... Block> contents of an OpenMX input file."""
    keys, blocks, current = {}, {}, None
    for raw in text.splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("<"):
            current = line[1:].split()[0].lower()
            blocks[current] = []
        elif line.endswith(">") and current is not None:
            current = None
        elif current is not None:
            blocks[current].append(line.split())
        else:
            parts = line.split(None, 1)
            keys[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
    return keys, blocks


def _element(label: str, pao: str, vps: str) -> str:
    """Chemical element of a species: the PAO/VPS file names start with it (Si7.0, Fe_PBE19S)."""
    for name in (vps, pao, label):
        m = re.match(r"([A-Z][a-z]?)", name)
        if m and m.group(1) in chemical_symbols:
            return m.group(1)
    return ""


def _shells(pao: str, path) -> tuple[Shell, ...]:
    """Shells of a basis name such as ``Si7.0-s2p2d1`` (cutoff in Bohr before the dash)."""
    m = re.match(r"^[A-Za-z]+([\d.]+)[A-Za-z]*-((?:[spdfg]\d+)+)$", pao)
    if not m:
        raise ParseError(path, f"cannot read the basis name {pao!r} (expected e.g. Si7.0-s2p2d1)")
    rcut = float(m.group(1)) * BOHR_TO_ANG
    counts = {"spdfg".index(letter): int(n) for letter, n in re.findall(r"([spdfg])(\d+)", m.group(2))}
    if max(counts) > 3:
        raise ParseError(path, f"basis {pao!r}: l > 3 is not supported")
    return tuple(Shell(l=l, zeta=z + 1, rcut=rcut) for l in sorted(counts) for z in range(counts[l]))


def structure_and_basis(scf: Scfout, path) -> tuple[ase.Atoms, Basis, dict]:
    """Atoms (Å) and basis from the file: positions and cell from Gxyz/tv, species and basis names
    from the input text stored at the end of the .scfout. Also returns the input keywords."""
    keys, blocks = _input_blocks(scf.input_text())
    species_rows = blocks.get("definition.of.atomic.species")
    coords = blocks.get("atoms.speciesandcoordinates")
    if not species_rows or not coords:
        raise ParseError(path, "the stored input has no Definition.of.Atomic.Species or "
                               "Atoms.SpeciesAndCoordinates block")
    species = {row[0]: (row[1], row[2] if len(row) > 2 else "") for row in species_rows if len(row) >= 2}
    labels = [row[1] for row in coords if len(row) >= 5]
    if len(labels) != scf.natoms:
        raise ParseError(path, f"the stored input lists {len(labels)} atoms, the header {scf.natoms}")
    unknown = sorted(set(labels) - set(species))
    if unknown:
        raise ParseError(path, f"atoms of species {unknown} that the input does not define")
    shells: dict[str, tuple[Shell, ...]] = {}
    element, norb = {}, {}
    for label in dict.fromkeys(labels):
        pao, vps = species[label]
        element[label] = _element(label, pao, vps)
        if not element[label]:
            raise ParseError(path, f"species {label!r} ({pao}, {vps}): cannot tell its chemical element")
        sh = _shells(pao, path)
        if shells.setdefault(element[label], sh) != sh:
            raise ParseError(path, f"two species of element {element[label]} with different bases are not supported")
        norb[label] = sum(s.size for s in sh)
    bad = np.nonzero(np.array([norb[x] for x in labels]) != scf.tno)[0]
    if len(bad):
        k = bad[0]
        raise ParseError(path, f"atom {k + 1}: basis {species[labels[k]][0]} has {norb[labels[k]]} orbitals, "
                               f"the file {scf.tno[k]}")
    symbols = [element[x] for x in labels]
    atoms = ase.Atoms(symbols=symbols, positions=scf.gxyz[:, 1:4] * BOHR_TO_ANG,
                      cell=scf.tv[:, 1:4] * BOHR_TO_ANG, pbc=scf.solver not in CLUSTER_SOLVERS)
    return atoms, Basis(shells), keys


def _log_info(text: str) -> dict:
    """ChemP (Ha), SCF iterations and version from an OpenMX .out (or openmx_postprocess log)."""
    info = {}
    chemp = re.findall(r"Chemical Potential \(Ha(?:r)?tree\)\s*=\s*(\S+)", text)
    if chemp:
        info["chemp_ha"] = float(chemp[-1])
    it = re.findall(r"^\s*SCF=\s*(\d+)", text, re.M)
    if it:
        info["scf_iterations"] = int(it[-1])
    ver = re.search(r"OpenMX\s+Ver\.\s*([\d.]+)", text)
    if ver:
        info["version"] = ver.group(1)
    return info


# ============================================================================ conversion
def _file_order(scf: Scfout, path) -> tuple[np.ndarray, np.ndarray]:
    """The file's blocks as a BlockSparse pattern: (pairs sorted lexicographically, perm) with
    perm[k] = position in the file's block data of the k-th element of the sorted pattern."""
    pairs = scf.pairs()
    sizes = scf.tno[pairs[:, 0]].astype(np.int64) * scf.tno[pairs[:, 1]]
    starts = np.cumsum(sizes) - sizes
    order = np.lexsort(pairs.T[::-1])
    pairs, sizes = pairs[order], sizes[order]
    dup = np.nonzero(np.all(pairs[1:] == pairs[:-1], axis=1))[0]
    if len(dup):
        raise ParseError(path, f"neighbour list holds block (i, j, R) = {pairs[dup[0]].tolist()} twice")
    first = np.cumsum(sizes) - sizes
    perm = np.repeat(starts[order] - first, sizes) + np.arange(int(sizes.sum()))
    return pairs, perm


# SpinP_switch 3: which file blocks hold the (real, imaginary) parts of the stored spinor channels
# (uu, ud, dd) of each matrix (a tuple of blocks is summed), and the sign of i: OpenMX's DM is the
# complex conjugate of the common object's (module docstring)
SPINOR_BLOCKS = {
    "H": ((("H", 0), (("iHNL", 0),)), (("H", 2), (("iHNL", 2), ("H", 3))), (("H", 1), (("iHNL", 1),))),
    "DM": ((("DM", 0), (("iDM", 0),)), (("DM", 2), (("DM", 3),)), (("DM", 1), (("iDM", 1),))),
}
SPINOR_SIGN = {"H": 1, "DM": -1}


def _spinor_from_file(scf: Scfout, name: str) -> np.ndarray:
    """SpinP_switch 3: the stored channels (uu, ud, dd) of H or DM, complex (3, Nel), file order."""
    return np.stack([scf.matrix(re[0])[re[1]] + 1j * SPINOR_SIGN[name] * sum(scf.matrix(g)[k] for g, k in im)
                     for re, im in SPINOR_BLOCKS[name]])


def _spinor_to_file(stored: np.ndarray, scf: Scfout, name: str) -> dict[str, np.ndarray]:
    """Inverse of :func:`_spinor_from_file`: channels (uu, ud, dd) -> the file's blocks per group.
    An imaginary part spread over two blocks keeps the template's second one (H[3])."""
    out = {group: scf.matrix(group).copy() for group in {"H": ("H", "iHNL"), "DM": ("DM", "iDM")}[name]}
    for channel, (re, im) in zip(stored, SPINOR_BLOCKS[name]):
        out[re[0]][re[1]] = channel.real
        kept = sum(out[g][k] for g, k in im[1:])
        out[im[0][0]][im[0][1]] = SPINOR_SIGN[name] * channel.imag - kept
    return out


def _check_non_magnetic(scf: Scfout, path) -> None:
    """Refuse SpinP_switch 3 files with a non-collinear exchange field: the sign of H[3] (its part of
    Im H_ud) follows the source only, the verified fixture has |H[3]| <= 6.6e-10 Ha."""
    h3 = float(np.abs(scf.matrix("H")[3]).max(initial=0.0))
    if h3 > NONCOLLINEAR_XC_MAX_HA:
        raise ParseError(path, f"non-collinear magnetism (|H[3]| up to {h3:.3g} Ha) is not supported: only "
                               "non-magnetic SpinP_switch 3 files are verified (the sign of H[3] is not)")


def _with_down_up(stored: BlockSparse) -> BlockSparse:
    """(uu, ud, dd) -> the common object's (uu, ud, du, dd), du = adjoint of ud (not stored)."""
    du = stored.copy(stored.data[1:2]).adjoint().data[0]
    return stored.copy(np.stack([stored.data[0], stored.data[1], du, stored.data[2]]))


def _unit(name: str, spinp_switch: int) -> float:
    """Factor from the file's value of matrix ``name`` to the common object's (eV; DM spin-summed)."""
    return {"H": HARTREE_TO_EV, "S": 1.0, "DM": 2.0 if spinp_switch == 0 else 1.0}[name]


def _kinds_umats(h: Hamiltonian, inverse: bool = False):
    species, kinds = h.species_index()
    umats = [orbital_transform(h.basis.ls(s)) for s in species]
    return kinds, [u.T for u in umats] if inverse else umats


def scfout_to_hamiltonian(scf: Scfout, path) -> Hamiltonian:
    """The common object of one .scfout: H (eV), S, DM (spin-summed for SpinP_switch 0) in the
    internal orbital convention; provenance, and the raw file as ``file_layout`` (the template of
    :func:`write_scfout`)."""
    atoms, basis, keys = structure_and_basis(scf, path)
    pairs, perm = _file_order(scf, path)
    h = Hamiltonian(atoms=atoms, basis=basis, nelec=scf.nelec)
    kinds, umats = _kinds_umats(h)
    postprocess = scf.is_postprocess()
    spinor = scf.spinp_switch == 3
    if spinor:
        _check_non_magnetic(scf, path)
    for name in ("H", "S") if postprocess else ("H", "S", "DM"):
        stored = _spinor_from_file(scf, name) if spinor and name != "S" else scf.matrix(name)
        mat = BlockSparse(scf.tno, pairs, stored[:, perm] * _unit(name, scf.spinp_switch))
        setattr(h, name, (_with_down_up(mat) if len(stored) == 3 else mat).transform(kinds, umats))
    if not postprocess:
        h.fermi_level = scf.chemp * HARTREE_TO_EV
    h.provenance = {"code": CODE, "version": "3.9", "source": str(Path(path).resolve().parent),
                    "files": {"scfout": str(path)},
                    "scfout_variant": "openmx_postprocess" if postprocess else "openmx"}
    h.file_layout = scf
    h.settings = {"solver": scf.solver, "electronic_temperature_K": float(scf.trailer[1]),
                  "system_name": keys.get("system.name"), "xc": keys.get("scf.xctype"),
                  "spin_polarization": keys.get("scf.spinpolarization", "off")}
    kgrid = re.fullmatch(r"(\d+)\s+(\d+)\s+(\d+)", keys.get("scf.kgrid", ""))
    if kgrid:
        # OpenMX: k_i = −1/2 + (2i + 1)/(2n), i = 0..n−1: Γ-centred for odd n, half-step shifted for even n
        h.settings["kmesh"] = [int(x) for x in kgrid.groups()]
        h.settings["kmesh_shift"] = [1 - n % 2 for n in h.settings["kmesh"]]
    h.settings.update(smearing_method="fermi-dirac",
                      smearing_sigma_eV=h.settings["electronic_temperature_K"] * KB_EV_PER_K)
    return h


def read_scfout(path) -> Hamiltonian:
    """Read one ``.scfout`` file (no log) into the common object."""
    p = find_file(path)
    return scfout_to_hamiltonian(parse_scfout(read_bytes(p), p), p)


# ============================================================================ run folders
def find_scfout(folder, postprocess: bool | None = None) -> Path:
    """The one .scfout of a run folder (``.xz``/``.gz`` too); ``postprocess`` True/False picks or
    excludes openmx_postprocess's ``overlap.scfout``."""
    folder = Path(folder)
    found = sorted({Path(str(p).removesuffix(".xz").removesuffix(".gz"))
                    for pat in ("*.scfout", "*.scfout.xz", "*.scfout.gz") for p in folder.glob(pat)})
    if postprocess is not None:
        found = [p for p in found if (p.name == POSTPROCESS_FILE) == postprocess]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ParseError(folder, f"{what} .scfout files here (expected exactly one; was HS.fileout on?)")
    return find_file(found[0])


def is_run_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and any(next(path.glob(pat), None) for pat in ("*.scfout", "*.scfout.xz", "*.scfout.gz"))


def _with_log(h: Hamiltonian, scfout_path: Path) -> Hamiltonian:
    """Add what the run's .out log says; refuse a log of another run (different ChemP)."""
    stem = scfout_path.name.split(".scfout")[0]
    try:
        out = find_file(scfout_path.with_name(stem + ".out"))
    except ParseError:
        return h
    info = _log_info(read_text(out))
    raw: Scfout = h.file_layout
    if "chemp_ha" in info and abs(info["chemp_ha"] - raw.chemp) > 1e-12:
        raise ParseError(out, f"ChemP {info['chemp_ha']} Ha differs from the .scfout's {raw.chemp!r}: "
                              "the log belongs to another run")
    h.provenance.update({k: info[k] for k in ("version", "scf_iterations") if k in info})
    h.provenance["files"]["out"] = str(out)
    return h


def read_run(folder) -> Hamiltonian:
    """Read an OpenMX run folder (``<name>.scfout`` and, when present, ``<name>.out``)."""
    folder = Path(folder)
    path = find_scfout(folder, postprocess=False)
    h = read_scfout(path)
    if h.provenance["scfout_variant"] != "openmx":
        raise ParseError(path, "this is an openmx_postprocess H0 file (DM = 0, ChemP = -3 eV): use read_h0")
    h.provenance["source"] = str(folder.resolve())
    return _with_log(h, path)


def read_h0(folder, h0_kind: str | None = None) -> Hamiltonian:
    """Read a zeroth-step run: a ``scf.maxIter 1`` folder (scf_iter1) or an openmx_postprocess
    folder (``overlap.scfout``). Returns H0 (and S) with ``h0_kind`` and ``provenance["h0_form"]``.

    ``h0_kind`` is needed only for an overlap.scfout without its ``openmx_postprocess.stdout``.
    """
    folder = Path(folder)
    try:
        path = find_scfout(folder, postprocess=True)
    except ParseError:
        path = None
    if path is not None:
        h = read_scfout(path)
        if h.provenance["scfout_variant"] != "openmx_postprocess":
            raise ParseError(path, "named overlap.scfout but holds a DM or a ChemP other than -3 eV: "
                                   "not an openmx_postprocess file")
        h.provenance["h0_form"] = "openmx:openmx_postprocess"
        log = folder / "openmx_postprocess.stdout"
        if log.is_file():
            h.provenance["files"]["log"] = str(log)
            text = read_text(log)
            h.provenance.update({k: v for k, v in _log_info(text).items() if k == "version"})
            found = "H[rho_atomic]" if "<Poisson>" in text else "H[rho_atomic]-no-Vxc"
            if h0_kind is not None and h0_kind != found:
                raise MismatchError(f"{log}: the log shows {found}, not the requested {h0_kind}")
            h0_kind = found
        elif h0_kind is None:
            raise ParseError(log, "missing: without openmx_postprocess's log the H0 kind (with or without "
                                  "V_xc) is unknown; pass h0_kind")
    else:
        path = find_scfout(folder, postprocess=False)
        h = _with_log(read_scfout(path), path)
        keys, _ = _input_blocks(h.file_layout.input_text())
        max_iter = keys.get("scf.maxiter", "40")
        if max_iter.split()[0] != "1" or keys.get("scf.restart", "off").lower() == "on":
            raise ParseError(path, f"not a zeroth-step run (scf.maxIter {max_iter}, scf.restart "
                                   f"{keys.get('scf.restart', 'off')}; H0 needs scf.maxIter 1 from atomic densities)")
        if h.provenance.get("scf_iterations", 1) != 1:
            raise ParseError(path, f"the log shows {h.provenance['scf_iterations']} SCF iterations, not 1")
        h.provenance["h0_form"] = "openmx:scf_iter1"
        h0_kind = h0_kind or "H[rho_atomic]"
    h.provenance["source"] = str(folder.resolve())
    return relabel_h0(h, h0_kind)


# ============================================================================ writing
def _code_blocks(mat: BlockSparse, h: Hamiltonian, scf: Scfout, layout: tuple, name: str) -> dict[str, np.ndarray]:
    """Matrix ``mat`` of ``h`` in OpenMX units, order and block layout: {block group: (blocks, Nel)}
    (SpinP_switch 3: H -> H and iHNL, DM -> DM and iDM)."""
    pairs, perm = layout
    missing = mat.find(pairs)
    if np.any(missing < 0):
        raise MismatchError(f"{name} lacks {int(np.sum(missing < 0))} of the (i, j, R) blocks of the OpenMX "
                            "neighbour list it is written onto; predict on the source's pattern")
    kinds, umats = _kinds_umats(h, inverse=True)
    code = mat.with_pairs(pairs, strict=True).transform(kinds, umats)
    spinor = scf.spinp_switch == 3 and name != "S"
    nspin = 4 if spinor else len(scf.matrix(name))
    if code.nspin != nspin:
        raise MismatchError(f"{name} has {code.nspin} spin channels, the OpenMX file {nspin}")
    values = code.data[[0, 1, 3]] if spinor else code.data  # du is the adjoint of ud: not stored
    out = np.empty(values.shape, values.dtype)
    out[:, perm] = values / _unit(name, scf.spinp_switch)
    groups = _spinor_to_file(out, scf, name) if spinor else {name: out}
    return {group: _snapped(new, scf.matrix(group)) for group, new in groups.items()}


def _snapped(new: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``new`` with the file's own bits wherever it equals ``raw`` to the conversion round-off."""
    tol = WRITE_SNAP_RTOL * max(float(np.abs(raw).max(initial=0.0)), 1e-300)
    return np.where(np.abs(new - raw) <= tol, raw, new)


def write_scfout(h: Hamiltonian, path, template: Scfout | str | Path) -> Path:
    """Write ``h`` as an OpenMX ``.scfout`` onto the layout of ``template``: a .scfout file of this
    structure, or its :class:`Scfout` (``h.file_layout`` of a run read here).

    H, S and DM of ``h`` replace the file's (those that are None keep the file's; SpinP_switch 3: H
    also replaces iHNL, DM also iDM, see the module docstring); every other field (H[3] of
    SpinP_switch 3, position/momentum blocks, ChemP, the stored input, ...) is the template's. Refuses
    (MismatchError) another structure, nspin, or a pattern lacking blocks of the template's
    neighbour list or holding nonzero blocks outside it.
    """
    if template is None:
        raise MismatchError("no OpenMX layout to write onto: read the structure's .scfout or pass its path")
    scf = template if isinstance(template, Scfout) else read_scfout_raw(template)
    if not np.array_equal(h.norb(), scf.tno):
        raise MismatchError(f"orbitals per atom {h.norb().tolist()} vs the OpenMX file's {scf.tno.tolist()}")
    dpos = np.abs(h.atoms.positions - scf.gxyz[:, 1:4] * BOHR_TO_ANG).max(initial=0.0)
    dcell = np.abs(h.atoms.cell.array - scf.tv[:, 1:4] * BOHR_TO_ANG).max()
    if max(dpos, dcell) > 1e-6:
        raise MismatchError(f"structure differs from the OpenMX file's (positions by {dpos:.3g} Å, "
                            f"cell by {dcell:.3g} Å): write onto a template of this structure")
    file_layout = _file_order(scf, path)
    blocks = scf.blocks.copy()
    layout = scf.layout
    for name in ("H", "S", "DM"):
        mat = getattr(h, name)
        if mat is not None:
            for group, values in _code_blocks(mat, h, scf, file_layout, name).items():
                blocks[layout[group]] = values
    return replace(scf, blocks=blocks).write(path)

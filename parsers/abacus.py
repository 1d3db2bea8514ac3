"""ABACUS (LCAO) run folders: read and write H(R), S(R), DM(R) in both csr file generations.

Generations
-----------
* v3.8.1 and older ("old"): ``OUT.<suffix>/data-HR-sparse_SPIN{0,1}.csr``,
  ``data-SR-sparse_SPIN0.csr``, ``data-DMR-sparse_SPIN{0,1}.csr``; 3 header lines, then per R a line
  ``Rx Ry Rz nnz`` and, when nnz > 0, one line each of values, column indices, row pointers.
* v3.11 and later ("new"): ``OUT.<suffix>/hrs{1,2}_nao.csr``, ``srs1_nao.csr``, ``dmrs{1,2}_nao.csr``;
  a header with the cell, then per R the same CSR data, 6 values / 16 integers per line. ABACUS
  reads ``hrs*`` back with ``init_chg hr`` and ``dmrs*`` with ``init_chg dm``.
Both: H in Ry, DM and S dimensionless, 0-based CSR, row = home-cell orbital, column = orbital in
cell R, |x| <= 1e-10 omitted, H(k) = sum_R H(R) exp(i 2pi k.R).

Conventions converted here (and nowhere else)
---------------------------------------------
* energy: 1 Ry = 13.605698 eV, ABACUS's own constant (``ModuleBase::Ry_to_eV``; its logs print
  E_Fermi in Ry and eV with exactly this ratio);
* orbital order within an atom: l = 0, 1, 2, 3; for each l its zetas; for each zeta the m in
  ABACUS order m = 0, +1, -1, +2, -2, +3, -3, i.e. the standard real harmonics with the
  Condon-Shortley sign (-1)^m: p = (z, -x, -y) (measured on the rotation fixture, see
  ``../shared/fixtures/rotations/abacus/README.md``), d = (z^2, -xz, -yz, x^2-y^2, xy),
  f likewise; ``tests/test_abacus.py`` proves p and d on the rotation pair.

Spin-orbit runs (``nspin 4``, new generation only; verified for ``lspinorb 1, noncolin 0``)
------------------------------------------------------------------------------------------
One file per matrix (``hrs1``, ``srs1``, ``dmrs1``; header "1 # number of spin directions") over
2 x norb basis functions, **index = 2 orbital + spin** (0 = up, 1 = down along z). H and S values
are complex, written ``(re,im)``; the spin box [2a + s, 2b + s'] of orbitals a, b becomes channel
2 s + s' (uu, ud, du, dd) of the common object (:mod:`dftplug.blocksparse`). S must be S x 1_2
(checked) and becomes one real channel. The DM file is **real and in Pauli form**
(ABACUS ``density_matrix.cpp``). With our DM^{ss'}_ij = sum_n f_n c_{is,n} conj(c_{js',n}) its box
entries are (0,0) = n = Re(uu + dd), (0,1) = m_x = Re(ud + du), (1,0) = Im ud - Im du = -m_y,
(1,1) = m_z = Re(uu - dd), where m_y = Re(i ud - i du) (= Re Tr sigma_y DM). The (1,0) sign is
measured: the DM rebuilt from H's eigenvectors on the ``h0`` fixture (m_x, m_y != 0) matches only
so (ABACUS's DM is the complex conjugate of ours; its formula -Im(ud) + Im(du) is m_y for it). The file
is read as the spinor DM (n + m.sigma)/2: uu = (n + m_z)/2, dd = (n - m_z)/2,
ud = (m_x - i m_y)/2, du = (m_x + i m_y)/2, and written back with the formulas above. ABACUS keeps
only this real (density-generating) part: the part of a DM that is odd under
(i, j, R) <-> (j, i, -R) (e.g. Im(uu + dd), the orbital currents of SOC) reads as zero.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import ase
import numpy as np

from dftplug.basis import Basis, Shell
from dftplug.blocksparse import BlockSparse, union_pairs
from dftplug.errors import MismatchError, ParseError
from dftplug.fileio import atomic_write, file_exists, find_file, read_text
from dftplug.hamiltonian import Hamiltonian, spin_identity

from .base import CodeIO, ScfGuess, register, relabel_h0, shell_transform

RY_TO_EV = 13.605698
BOHR_TO_ANG = 0.529177210903
CODE = "abacus"


def _abacus_order(l: int) -> tuple[tuple[int, int], ...]:
    """ABACUS m order 0, +1, -1, +2, -2, ... as (m_std, sign) with sign (-1)^m."""
    order = [(0, 1)]
    for m in range(1, l + 1):
        order += [(m, (-1) ** m), (-m, (-1) ** m)]
    return tuple(order)


def orbital_transform(ls) -> np.ndarray:
    """U (norb x norb) with phi_internal = U phi_abacus for an atom with shells ``ls``."""
    return shell_transform(ls, _abacus_order)


# ============================================================================ csr files
MATRIX_FILES = {
    # name: (new-generation pattern, old-generation pattern, per spin?)
    "H": ("hrs{s1}_nao.csr", "data-HR-sparse_SPIN{s0}.csr", True),
    "S": ("srs1_nao.csr", "data-SR-sparse_SPIN0.csr", False),
    "DM": ("dmrs{s1}_nao.csr", "data-DMR-sparse_SPIN{s0}.csr", True),
}
_NEW_TITLE = {"H": "H matrix in real space H(R)", "S": "S matrix in real space S(R)",
              "DM": "density matrix in real space DM(R)"}
_OLD_TITLE = {"H": "H(R)", "S": "S(R)", "DM": "DM(R)"}
_COMMENT_BOX = """ #----------------------------------------------------------------------#
 #                               CSR Format                             #
 # The outer loop corresponds to the number of Bravais lattice vectors. #
 # The first line contains the index of the Bravais lattice vector      #
 # (Rx, Ry, Rz), followed by the number of non-zero elements.           #
 # The subsequent lines consist of three blocks of data, which are      #
 # values, column indices, row pointers.                                #
 #----------------------------------------------------------------------#
"""


@dataclass
class CsrFile:
    """One ABACUS csr file as stored: per lattice vector a CSR matrix (code units and order)."""

    norb: int
    cells: np.ndarray                  # (nR, 3) in file order (includes empty R)
    rows: np.ndarray                   # (nnz,) row orbital of every stored element
    cols: np.ndarray                   # (nnz,)
    cell_of: np.ndarray                # (nnz,) index into ``cells``
    values: np.ndarray                 # (nnz,)
    generation: str = "new"
    nspin: int = 1
    ispin: int = 1
    cell_block: str = ""               # new generation: the lattice/positions text block
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CsrLayout:
    """How a run's csr files were laid out beyond their matrices, for a byte-identical rewrite:
    per matrix name the lattice vectors R of each spin file in file order (ABACUS lists empty R
    too) and the new generation's cell block (the lattice and positions text)."""

    cells: dict[str, list[np.ndarray]]
    cell_blocks: dict[str, str]

    def cell_block(self, name: str) -> str:
        """The cell block of matrix ``name``'s file, else of any file of the run ("" if none)."""
        return self.cell_blocks.get(name) or next((b for b in self.cell_blocks.values() if b), "")


def _ints(path, tokens, what):
    try:
        return np.array(tokens, dtype=np.int64)
    except ValueError as exc:
        raise ParseError(path, f"bad {what}: {exc}") from None


def read_csr(path) -> CsrFile:
    """Parse an old- or new-generation ABACUS csr file (``.xz``/``.gz`` also accepted)."""
    path = find_file(path)
    lines = read_text(path).splitlines()
    if not lines:
        raise ParseError(path, "empty file")
    if lines[0].startswith("STEP:"):
        gen, pos = "old", 3
        try:
            norb = int(lines[1].split(":")[1])
            nr = int(lines[2].split(":")[1])
        except (IndexError, ValueError):
            raise ParseError(path, "malformed old-generation header (expected 'Matrix Dimension/number')") from None
        nspin = ispin = 1
        cell_block = ""
    elif lines[0].strip().startswith("--- Ionic Step"):
        gen = "new"
        try:
            nspin, ispin, norb, nr = (int(lines[k].split("#")[0]) for k in (2, 3, 4, 5))
            box = lines.index(_COMMENT_BOX.splitlines()[0])
        except (IndexError, ValueError):
            raise ParseError(path, "malformed new-generation header") from None
        cell_block = "\n".join(lines[7:box - 1])
        pos = box + 9
    else:
        raise ParseError(path, "not an ABACUS csr file (unknown first line)")

    cells = np.zeros((nr, 3), np.int64)
    rows_l, cols_l, vals_l, cid_l = [], [], [], []
    rowptr_len = norb + 1
    for r in range(nr):
        if pos >= len(lines):
            raise ParseError(path, f"truncated: header announces {nr} lattice vectors, found {r}")
        head = lines[pos].split()
        if len(head) != 4:
            raise ParseError(path, f"line {pos + 1}: expected 'Rx Ry Rz nnz', got {lines[pos]!r}")
        cells[r] = _ints(path, head[:3], "lattice vector")
        nnz = int(_ints(path, head[3:], "nnz (element count)")[0])
        pos += 1
        if gen == "old":
            if nnz == 0:
                continue
            if pos + 3 > len(lines):
                raise ParseError(path, f"truncated inside R = {head[:3]}")
            vals = lines[pos].split()
            cols = lines[pos + 1].split()
            ptr = lines[pos + 2].split()
            pos += 3
        else:
            # new generation: fixed line counts (6 values / 16 integers per line; an empty R has
            # one empty line per data block and all row pointers on one line, no blank after)
            nlines = ((nnz + 5) // 6, (nnz + 15) // 16, (rowptr_len + 15) // 16) if nnz else (1, 1, 1)
            blocks = []
            for marker, nl in zip(("values", "column indices", "row pointers"), nlines):
                if pos + nl >= len(lines):
                    raise ParseError(path, f"truncated inside R = {' '.join(head[:3])}")
                if lines[pos].strip() != f"# CSR {marker}":
                    raise ParseError(path, f"line {pos + 1}: expected '# CSR {marker}' at R = "
                                           f"{' '.join(head[:3])} (does the header lie about nnz?)")
                blocks.append(" ".join(lines[pos + 1:pos + 1 + nl]).split())
                pos += 1 + nl
            vals, cols, ptr = blocks
            if nnz:
                pos += 1  # blank line after a non-empty R
            else:
                continue
        if len(vals) != nnz or len(cols) != nnz or len(ptr) != rowptr_len:
            raise ParseError(path, f"R = {' '.join(head[:3])}: header says nnz={nnz}, found "
                                   f"{len(vals)} values, {len(cols)} columns, {len(ptr)} row pointers "
                                   f"(expected {rowptr_len})")
        try:
            v = _parse_values(vals)
        except ValueError as exc:
            raise ParseError(path, f"bad value at R = {head[:3]}: {exc}") from None
        c = _ints(path, cols, "column index")
        p = _ints(path, ptr, "row pointer")
        if p[-1] != nnz or np.any(np.diff(p) < 0) or (nnz and (c.max() >= norb or c.min() < 0)):
            raise ParseError(path, f"R = {head[:3]}: inconsistent CSR (row pointers or column indices)")
        rows_l.append(np.repeat(np.arange(norb), np.diff(p)))
        cols_l.append(c)
        vals_l.append(v)
        cid_l.append(np.full(nnz, r))
    if any(line.strip() for line in lines[pos:]):
        raise ParseError(path, f"data after the {nr} lattice vectors the header announces (line {pos + 1})")
    cat = (lambda x, dt: np.concatenate(x) if x else np.zeros(0, dt))
    return CsrFile(norb, cells, cat(rows_l, np.int64), cat(cols_l, np.int64), cat(cid_l, np.int64),
                   cat(vals_l, np.float64), gen, nspin, ispin, cell_block)


def _parse_values(tokens: list[str]) -> np.ndarray:
    """Real tokens, or complex ones written ``(re,im)`` (nspin-4 H and S)."""
    if not tokens or not tokens[0].startswith("("):
        return np.array(tokens, dtype=np.float64)
    parts = " ".join(tokens).replace("(", " ").replace(")", " ").replace(",", " ").split()
    if len(parts) != 2 * len(tokens):
        raise ValueError("complex values must be written (re,im)")
    pairs = np.array(parts, dtype=np.float64).reshape(-1, 2)
    return pairs[:, 0] + 1j * pairs[:, 1]


def _fmt_values(vals: np.ndarray) -> list[str]:
    """ABACUS's ``%.8e`` tokens; complex values as ``(re,im)``."""
    if np.iscomplexobj(vals):
        return [f"({x.real:.8e},{x.imag:.8e})" for x in vals]
    return [f"{x:.8e}" for x in vals]


def _fmt_rows(tokens, per_line):
    return "".join(" " + " ".join(tokens[k:k + per_line]) + "\n" for k in range(0, len(tokens), per_line))


def write_csr(path, csr: CsrFile, kind: str) -> None:
    """Write ``csr`` in ABACUS's own layout of its generation (atomic: temp file + rename)."""
    order = np.lexsort((csr.cols, csr.rows, csr.cell_of))
    rows, cols, cid, vals = csr.rows[order], csr.cols[order], csr.cell_of[order], csr.values[order]
    counts = np.bincount(cid, minlength=len(csr.cells))
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    if csr.generation == "old":
        out.append(f"STEP: 0\nMatrix Dimension of {_OLD_TITLE[kind]}: {csr.norb}\n"
                   f"Matrix number of {_OLD_TITLE[kind]}: {len(csr.cells)}\n")
    else:
        out.append(f" --- Ionic Step 1 ---\n # print {_NEW_TITLE[kind]}\n {csr.nspin} # number of spin "
                   f"directions\n {csr.ispin} # spin index\n {csr.norb} # number of localized basis\n"
                   f" {len(csr.cells)} # number of Bravais lattice vector R\n\n{csr.cell_block}\n\n"
                   f"{_COMMENT_BOX}\n")
    for r, cell in enumerate(csr.cells):
        a, b = starts[r], starts[r + 1]
        nnz = b - a
        rx, ry, rz = (int(x) for x in cell)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(rows[a:b], minlength=csr.norb))])
        vtok = _fmt_values(vals[a:b])
        ctok = [str(x) for x in cols[a:b]]
        ptok = [str(x) for x in ptr]
        if csr.generation == "old":
            out.append(f"{rx} {ry} {rz} {nnz}\n")
            if nnz:
                out.append("".join(" " + t for t in vtok) + "\n" + "".join(" " + t for t in ctok) + "\n"
                           + "".join(" " + t for t in ptok) + "\n")
        elif nnz == 0:
            out.append(f" {rx} {ry} {rz} 0\n # CSR values\n\n # CSR column indices\n\n"
                       f" # CSR row pointers\n {' '.join(ptok)}\n")
        else:
            out.append(f" {rx} {ry} {rz} {nnz}\n # CSR values\n{_fmt_rows(vtok, 6)} # CSR column indices\n"
                       f"{_fmt_rows(ctok, 16)} # CSR row pointers\n{_fmt_rows(ptok, 16)}\n")
    with atomic_write(path, "w") as fh:
        fh.write("".join(out))


# ============================================================================ input files
def read_input(path) -> dict[str, str]:
    """INPUT key/value pairs (lower-case keys, comments dropped)."""
    params = {}
    for line in read_text(path).splitlines():
        line = line.split("#")[0].split("//")[0].strip()
        if not line or line.upper() == "INPUT_PARAMETERS":
            continue
        parts = line.split(None, 1)
        params[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
    return params


def read_stru(path):
    """Parse STRU: returns (atoms, orbital files per species, magnetic moments)."""
    path = find_file(path)
    text = read_text(path)
    sections: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.split("#")[0].split("//")[0].strip()
        if not line:
            continue
        if line.upper() in {"ATOMIC_SPECIES", "NUMERICAL_ORBITAL", "LATTICE_CONSTANT", "LATTICE_VECTORS",
                            "ATOMIC_POSITIONS", "LATTICE_PARAMETERS", "NUMERICAL_DESCRIPTOR", "ABFS_ORBITAL"}:
            current = line.upper()
            sections[current] = []
        elif current:
            sections[current].append(line)
    for need in ("ATOMIC_SPECIES", "LATTICE_CONSTANT", "ATOMIC_POSITIONS"):
        if need not in sections:
            raise ParseError(path, f"STRU has no {need} section")
    if "LATTICE_VECTORS" not in sections:
        raise ParseError(path, "only STRU files with LATTICE_VECTORS (latname user_defined) are supported")
    try:
        species = [l.split()[0] for l in sections["ATOMIC_SPECIES"]]
        orbfiles = [l.split()[0] for l in sections.get("NUMERICAL_ORBITAL", [])]
        alat = float(sections["LATTICE_CONSTANT"][0].split()[0]) * BOHR_TO_ANG
        cell = np.array([[float(x) for x in l.split()[:3]] for l in sections["LATTICE_VECTORS"][:3]]) * alat
        pos_lines = sections["ATOMIC_POSITIONS"]
        mode = pos_lines[0].lower()
        k = 1
        symbols, positions, mags = [], [], []
        while k < len(pos_lines):
            label = pos_lines[k].split()[0]
            mag = float(pos_lines[k + 1].split()[0])
            nat = int(pos_lines[k + 2].split()[0])
            for line in pos_lines[k + 3:k + 3 + nat]:
                positions.append([float(x) for x in line.split()[:3]])
                symbols.append(label)
                mags.append(mag)
            if len(positions) != len(symbols) or k + 3 + nat > len(pos_lines):
                raise ValueError("fewer positions than announced")
            k += 3 + nat
    except (IndexError, ValueError) as exc:
        raise ParseError(path, f"malformed STRU: {exc}") from None
    pos = np.array(positions).reshape(-1, 3)
    if mode == "direct":
        pos = pos @ cell  # back to fractional below (one rounding, ~1e-16)
    elif mode == "cartesian":
        pos = pos * alat
    elif mode == "cartesian_angstrom":
        pass
    elif mode in ("cartesian_au", "cartesian_bohr"):
        pos = pos * BOHR_TO_ANG
    else:
        raise ParseError(path, f"unsupported ATOMIC_POSITIONS mode {mode!r}")
    unknown = set(symbols) - set(species)
    if unknown:
        raise ParseError(path, f"atoms of undeclared species {sorted(unknown)}")
    elements = [re.sub(r"[^A-Za-z].*$", "", s) for s in symbols]
    try:
        atoms = ase.Atoms(symbols=elements, scaled_positions=wrap_into_cell(pos @ np.linalg.inv(cell)),
                          cell=cell, pbc=True)
    except KeyError as exc:
        raise ParseError(path, f"unknown chemical element {exc}") from None
    return atoms, dict(zip(species, orbfiles)), np.array(mags)


def wrap_into_cell(frac: np.ndarray) -> np.ndarray:
    """Fractional positions moved into [0, 1) as ABACUS does before it builds anything
    (``unitcell::periodic_boundary_adjustment``: taud < 0 → taud + 1, taud ≥ 1 → taud − 1).
    The lattice vectors R of its H(R), S(R), DM(R) files are relative to these wrapped positions:
    keeping the STRU's own (e.g. a rattled atom at −0.01) would put that atom's bonds one lattice
    vector off (a 2.4 Å bond read as 10.6 Å)."""
    frac = np.where(frac < 0, frac + 1.0, frac)
    return np.where(frac >= 1, frac - 1.0, frac)


def read_orb(path) -> tuple[Shell, ...]:
    """Shells of an ABACUS numerical-orbital file (.orb): l, zeta and cutoff (Å)."""
    text = read_text(path)
    rcut = re.search(r"Radius Cutoff\(a\.u\.\)\s+([\d.eE+-]+)", text)
    counts = re.findall(r"Number of ([SPDFGH])orbital-->\s+(\d+)", text)
    if not counts:
        raise ParseError(path, "no 'Number of Xorbital-->' lines: not an ABACUS .orb file")
    if not rcut:
        raise ParseError(path, "no 'Radius Cutoff(a.u.)' line: the basis cutoff is unknown")
    rc = float(rcut.group(1)) * BOHR_TO_ANG
    return tuple(Shell(l="SPDFGH".index(letter), zeta=z + 1, rcut=rc)
                 for letter, n in counts for z in range(int(n)))


# ============================================================================ run folders
@dataclass
class RunFolder:
    """Where the files of one ABACUS run are."""

    root: Path
    params: dict
    out_dir: Path
    log: Path | None

    @classmethod
    def locate(cls, root) -> "RunFolder":
        root = Path(root)
        if not (root / "INPUT").is_file():
            raise ParseError(root / "INPUT", "missing: not an ABACUS run folder")
        params = read_input(root / "INPUT")
        suffix = params.get("suffix", "ABACUS")
        out_dir = root / f"OUT.{suffix}"
        if not out_dir.is_dir():
            raise ParseError(out_dir, "missing output folder OUT.<suffix>")
        logs = sorted(p for p in out_dir.glob("running_*.log*") if p.suffix in (".log", ".xz", ".gz"))
        return cls(root, params, out_dir, logs[0] if logs else None)

    def matrix_files(self, name: str, nspin: int) -> tuple[list[Path], str] | None:
        new, old, per_spin = MATRIX_FILES[name]
        ns = nspin if per_spin and nspin != 4 else 1  # nspin 4: one spinor file
        for gen, pat in (("new", new), ("old", old)):
            paths = [self.out_dir / pat.format(s1=s + 1, s0=s) for s in range(ns)]
            try:
                return [find_file(p) for p in paths], gen
            except ParseError:
                if any(file_exists(p) for p in paths):
                    missing = [str(p) for p in paths if not file_exists(p)]
                    raise ParseError(missing[0], f"missing spin channel file of {name}") from None
        return None


def _log_info(text: str) -> dict:
    info = {}
    ef = re.findall(r"E_Fermi\s+(\S+)\s+(\S+)", text)
    if ef:
        info["fermi_level"] = float(ef[-1][1])
    ne = re.search(r"Autoset the number of electrons\s*=\s*([\d.]+)", text, re.I) or \
        re.search(r"AUTOSET number of electrons:\s*=\s*([\d.]+)", text)
    if ne:
        info["nelec"] = float(ne.group(1))
    it = re.findall(r"#ELEC ITER#\s+(\d+)", text) or re.findall(r"ELEC=\s*(\d+)", text)
    if it:
        info["scf_iterations"] = int(it[-1])
    ver = re.search(r"ABACUS\s+(?:version\s+)?(v\d+\.\d+[\w.\-]*)", text)
    if ver:
        info["version"] = ver.group(1)
    # v3.11 prints "#SCF IS CONVERGED#" or "!!SCF IS NOT CONVERGED!!"; v3.8 "charge density convergence is achieved"
    info["converged"] = ("NOT CONVERGED" not in text
                         and ("CONVERGED" in text or "charge density convergence is achieved" in text))
    info["autoset_magnetism"] = "Autoset magnetism" in text
    return info


def _channels_to_blocks(channels, atoms_norb: np.ndarray) -> BlockSparse:
    """Orbital triplets (rows, cols, cells, values), one per channel -> one BlockSparse on the
    union of the channels' block patterns (ABACUS order and units)."""
    mats = [BlockSparse.from_orbital_coo(atoms_norb, *ch) for ch in channels]
    if len(mats) == 1:
        return mats[0]
    pairs = union_pairs(*[m.pairs for m in mats], natoms=len(atoms_norb))
    return BlockSparse(atoms_norb, pairs, np.concatenate([m.with_pairs(pairs).data for m in mats]))


# nspin-4 DM: spin boxes (n, m_x, -m_y, m_z) at positions (00, 01, 10, 11) <-> channels (uu, ud, du, dd)
PAULI_TO_SPINOR = np.array([[0.5, 0, 0, 0.5], [0, 0.5, 0.5j, 0], [0, 0.5, -0.5j, 0], [0.5, 0, 0, -0.5]])
SPINOR_TO_PAULI = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [0, -1j, 1j, 0], [1, 0, 0, -1]])


def _spin_boxes(csr: CsrFile):
    """A spinor file (basis index 2 orbital + spin) as orbital triplets of its four spin-box
    positions (s, s'), in the order 2 s + s'."""
    out = []
    for s in (0, 1):
        for t in (0, 1):
            k = (csr.rows % 2 == s) & (csr.cols % 2 == t)
            out.append((csr.rows[k] // 2, csr.cols[k] // 2, csr.cells[csr.cell_of[k]], csr.values[k]))
    return out


def _spinor_from_boxes(name: str, boxes: BlockSparse, path) -> BlockSparse:
    """Spin boxes of an nspin-4 file (code units) -> the common object's channels (eV):
    H complex (uu, ud, du, dd); DM from its Pauli form; S checked to be S x 1_2, one real channel."""
    if name == "H":
        return boxes.scaled(RY_TO_EV)
    if name == "DM":
        return boxes.copy(PAULI_TO_SPINOR @ boxes.data)
    d = boxes.data
    if np.abs(d[1:3]).max(initial=0.0) > 0 or np.abs(d[0] - d[3]).max(initial=0.0) > 0 or \
            np.abs(d.imag).max(initial=0.0) > 0:
        raise ParseError(path, "nspin-4 overlap is not S x 1_2 (real, same for both spins, no up-down)")
    return boxes.copy(d[0].real)


def read_matrices(run: RunFolder, atoms, basis: Basis, nspin: int, names=("H", "S", "DM")):
    """Read the requested matrices of a run, converted to eV and the internal orbital order.

    Returns ({name: BlockSparse}, the files' :class:`CsrLayout`, {name: [file paths]}).
    """
    symbols = atoms.get_chemical_symbols()
    norb = np.array([basis.norb(s) for s in symbols])
    species = list(dict.fromkeys(symbols))
    kinds = np.array([species.index(s) for s in symbols])
    umats = [orbital_transform(basis.ls(s)) for s in species]
    nbasis = norb.sum() * (2 if nspin == 4 else 1)
    out, cells, blocks, files = {}, {}, {}, {}
    for name in names:
        found = run.matrix_files(name, nspin)
        if found is None:
            continue
        paths, gen = found
        csrs = [read_csr(p) for p in paths]
        for p, c in zip(paths, csrs):
            if c.norb != nbasis:
                raise MismatchError(f"{p}: {c.norb} basis functions in the file, the structure, basis and "
                                    f"nspin {nspin} give {nbasis}")
        if nspin == 4:
            if gen != "new":
                raise ParseError(paths[0], "nspin 4 is supported for the v3.11 csr generation only")
            code = _spinor_from_boxes(name, _channels_to_blocks(_spin_boxes(csrs[0]), norb), paths[0])
        else:
            code = _channels_to_blocks([(c.rows, c.cols, c.cells[c.cell_of], c.values) for c in csrs], norb)
            code = code.scaled(RY_TO_EV) if name == "H" else code
        out[name] = code.transform(kinds, umats)
        cells[name], blocks[name] = [c.cells for c in csrs], csrs[0].cell_block
        files[name] = [str(p) for p in paths]
    return out, CsrLayout(cells, blocks), files


def _check_spinor_run(run: RunFolder) -> None:
    """Refuse nspin-4 variants that no fixture verifies (the file layout may be the same, but the
    reader has been checked on ``lspinorb 1, noncolin 0`` only)."""
    lspinorb = run.params.get("lspinorb", "0").lower() in ("1", "true", ".true.")
    noncolin = run.params.get("noncolin", "0").lower() in ("1", "true", ".true.")
    if not lspinorb or noncolin:
        raise ParseError(run.root / "INPUT", f"nspin 4 with lspinorb {int(lspinorb)}, noncolin {int(noncolin)} "
                                             "is not supported (verified: lspinorb 1, noncolin 0 only)")


def read_run(folder, with_matrices=("H", "S", "DM")) -> Hamiltonian:
    """Read an ABACUS run folder (INPUT, STRU, OUT.<suffix>/) into a :class:`Hamiltonian`."""
    run = RunFolder.locate(folder)
    stru = run.root / run.params.get("stru_file", "STRU")
    atoms, orbfiles, mags = read_stru(stru)
    nspin = int(run.params.get("nspin", "1"))
    if nspin not in (1, 2, 4):
        raise ParseError(run.root / "INPUT", f"nspin {nspin} is not an ABACUS nspin (1, 2 and 4 are)")
    if nspin == 4:
        _check_spinor_run(run)
    log_text = read_text(run.log) if run.log else ""
    # the .orb files are required: they alone state the cutoff radius of each shell
    orb_dir = run.root / run.params.get("orbital_dir", ".")
    for fname in orbfiles.values():
        if not file_exists(orb_dir / fname):
            raise ParseError(orb_dir / fname, "orbital file not found (STRU's NUMERICAL_ORBITAL in INPUT's "
                                              "orbital_dir): it is needed for the basis and its cutoff radii")
    shells = {sp: read_orb(orb_dir / fname) for sp, fname in orbfiles.items()}
    labels = {re.sub(r"[^A-Za-z].*$", "", k): v for k, v in shells.items()}
    missing = set(atoms.get_chemical_symbols()) - set(labels)
    if missing:
        raise ParseError(stru, f"no basis found for species {sorted(missing)}")
    basis = Basis(labels)
    mats, layout, files = read_matrices(run, atoms, basis, nspin, with_matrices)
    if "H" in with_matrices and "H" not in mats:
        raise ParseError(run.out_dir, "no H(R) file (hrs1_nao.csr or data-HR-sparse_SPIN0.csr): "
                                      "was the run made with out_mat_hs2 1?")
    info = _log_info(log_text)
    stdout = run.root / "abacus.stdout"
    if "version" not in info and stdout.is_file():
        info.update({k: v for k, v in _log_info(read_text(stdout)).items() if k == "version"})
    settings = {k: run.params[k] for k in ("smearing_method", "smearing_sigma", "calculation", "ks_solver",
                                           "scf_thr", "init_chg", "suffix", "nspin", "lspinorb")
                if k in run.params}
    if "smearing_sigma" in settings:
        settings["smearing_sigma_eV"] = float(settings["smearing_sigma"]) * RY_TO_EV
    kpt = run.root / "KPT"
    if kpt.is_file():
        settings.update(read_kpt(kpt))
    prov = {"code": CODE, "version": info.get("version"), "source": str(Path(folder).resolve()),
            "files": files, "scf_iterations": info.get("scf_iterations"),
            "converged": info.get("converged"), "autoset_magnetism": info.get("autoset_magnetism")}
    return Hamiltonian(atoms=atoms, basis=basis, fermi_level=info.get("fermi_level"), nelec=info.get("nelec"),
                       provenance=prov, settings=settings, file_layout=layout, **mats)


def read_kpt(path) -> dict:
    """k-mesh settings of an automatic ``KPT`` file (Gamma / Monkhorst-Pack); {} for explicit lists."""
    kl = read_text(path).split("\n")
    if len(kl) <= 3 or kl[2].strip().lower() not in ("gamma", "monkhorst-pack", "mp"):
        return {}
    kind = kl[2].strip().lower()
    try:
        mesh = [int(x) for x in kl[3].split()[:3]]
        offset = [float(x) for x in kl[3].split()[3:6]] or [0.0, 0.0, 0.0]
    except ValueError:
        raise ParseError(path, f"line 4: expected three integers and three offsets, got {kl[3].strip()!r}") from None
    if len(mesh) != 3 or len(offset) != 3:
        raise ParseError(path, f"line 4: expected three integers and three offsets, got {kl[3].strip()!r}")
    # ABACUS K_Vectors::Monkhorst_Pack_formula, n = 1..N: Gamma k = (o + n − 1)/N,
    # MP k = (o + 2n − N − 1)/(2N); as k = (i + shift/2)/N: shift = 2o, resp. (1 − N + o) mod 2
    shift = [2 * o for o in offset] if kind == "gamma" else [(1 - n + o) % 2 for n, o in zip(mesh, offset)]
    return {"kmesh": mesh, "kmesh_type": kind, "kmesh_shift": shift}


def read_h0(folder) -> Hamiltonian:
    """Read a zeroth-step run (``scf_nmax 1``, ``init_chg atomic``): its H is H[rho_atomic].

    Refuses an nspin-4 run in which ABACUS auto-set a start moment (all STRU moments <= 1e-5 muB
    give (1, 1, 1) muB per atom): its atomic density, hence H0, is spin-polarised by a moment the
    converged system need not have (fcc Pb: m_z = 0.31 muB, Kramers degeneracy broken by 1.2 eV).
    Refuses a run whose INPUT does not stop after one step from atomic densities."""
    params = RunFolder.locate(folder).params
    nmax, start = params.get("scf_nmax", "100"), params.get("init_chg", "atomic").lower()
    if nmax != "1" or start != "atomic":
        raise ParseError(Path(folder) / "INPUT", f"not a zeroth-step run (scf_nmax {nmax}, init_chg {start}; "
                                                 "H0 needs scf_nmax 1 and init_chg atomic)")
    h = read_run(folder, with_matrices=("H", "S"))
    if h.nspin == 4 and h.provenance.get("autoset_magnetism"):
        raise ParseError(Path(folder), "ABACUS auto-set a start moment (1, 1, 1) muB ('Autoset magnetism' in "
                                       "the log): this H0 is spin-polarised; rerun the zeroth step with an "
                                       "explicit tiny moment on each atom line of STRU, e.g. 'mag 0.00002'")
    return relabel_h0(h)


# ============================================================================ writing
def to_csr_files(h: Hamiltonian, name: str, generation: str = "new",
                 layout: CsrLayout | None = None) -> list[CsrFile]:
    """Convert matrix ``name`` of ``h`` back to ABACUS units/order: one CsrFile per spin, or one
    spinor file (basis index 2 orbital + spin) for a spin-orbit Hamiltonian (see module docstring).
    ``layout``: the R lists and cell block of a run of this structure (``h.file_layout`` of a run
    read by :func:`read_run`) to write in the same order; without it R are sorted."""
    mat = getattr(h, name)
    if mat is None:
        raise MismatchError(f"no {name} to write")
    species, kinds = h.species_index()
    umats = [orbital_transform(h.basis.ls(s)).T for s in species]
    code = mat.transform(kinds, umats)
    rows, cols, cells, values = code.to_orbital_coo()
    cell_block = (layout.cell_block(name) if layout else "") or _cell_block(h.atoms)
    known = layout.cells.get(name, []) if layout else []
    norb = int(h.norb().sum())
    if h.nspin == 4 or str(h.settings.get("nspin")) == "4":
        if generation != "new":
            raise MismatchError("nspin-4 (spin-orbit) matrices are written in the v3.11 csr generation only")
        boxes = _boxes_from_spinor(name, values)
        spin = np.arange(4)
        file_rows = np.concatenate([2 * rows + s // 2 for s in spin])
        file_cols = np.concatenate([2 * cols + s % 2 for s in spin])
        return [_csr_file(file_rows, file_cols, np.concatenate([cells] * 4), boxes.reshape(-1),
                          2 * norb, known[0] if known else None, generation, 1, 1, cell_block)]
    if name == "H":
        values = values / RY_TO_EV
    return [_csr_file(rows, cols, cells, values[s], norb, known[s] if len(known) > s else None,
                      generation, code.nspin, s + 1, cell_block) for s in range(code.nspin)]


def _boxes_from_spinor(name: str, values: np.ndarray) -> np.ndarray:
    """Common-object channels (code order, eV) -> values of the four spin boxes of an nspin-4 file,
    shape (4, n): H complex in Ry; DM real Pauli form; S as S x 1_2 (complex, as ABACUS writes it)."""
    if name == "H":
        return values / RY_TO_EV
    if name == "DM":
        return np.real(SPINOR_TO_PAULI @ values)
    return spin_identity(values[0], 4).astype(complex)


def _csr_file(rows, cols, cells, values, nbasis, listed_cells, generation, nspin, ispin, cell_block) -> CsrFile:
    """Elements with |value| > 1e-10 (ABACUS's threshold) as a CsrFile; the R list (and its order)
    of the file the matrix was read from is kept (``listed_cells``), new R are sorted after it."""
    keep = np.abs(values) > 1e-10
    cl = cells[keep].reshape(-1, 3)
    lo, span = cl.min(0, initial=0), cl.max(0, initial=0) - cl.min(0, initial=0) + 1
    code = ((cl[:, 0] - lo[0]) * span[1] + cl[:, 1] - lo[1]) * span[2] + cl[:, 2] - lo[2]  # one int per R
    _, first, inv = np.unique(code, return_index=True, return_inverse=True)  # 1-D: 3x faster than axis=0
    ucl = cl[first]
    listed = [tuple(c) for c in listed_cells] if listed_cells is not None else []
    new_cells = sorted(set(map(tuple, ucl)) - set(listed))
    ucells = np.array(listed + new_cells, dtype=np.int64).reshape(-1, 3)
    index = {c: k for k, c in enumerate(map(tuple, ucells))}
    cid = np.array([index[tuple(c)] for c in ucl], dtype=np.int64)[inv.reshape(-1)]
    return CsrFile(nbasis, ucells, rows[keep], cols[keep], cid, values[keep], generation, nspin, ispin, cell_block)


def _cell_block(atoms) -> str:
    """The new-generation header's cell block (lattice in Å, fractional positions)."""
    lines = [" user_defined_lattice", " 1"]
    lines += [" " + " ".join(f"{x:g}" for x in v) for v in atoms.cell.array]
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))
    frac = atoms.get_scaled_positions(wrap=False)
    sym = np.array(atoms.get_chemical_symbols())
    lines.append(" " + " ".join(species))
    lines.append(" " + " ".join(str(int(np.sum(sym == s))) for s in species))
    lines.append(" Direct")
    for s in species:
        lines += [" " + " ".join(f"{x:.14g}" for x in p) for p in frac[sym == s]]
    return "\n".join(lines)


def write_matrix(h: Hamiltonian, name: str, out_dir, generation: str = "new",
                 layout: CsrLayout | None = None) -> list[Path]:
    """Write H, S or DM of ``h`` into ``out_dir`` with ABACUS's file names and layout (``layout``:
    see :func:`to_csr_files`)."""
    new, old, _ = MATRIX_FILES[name]
    paths = []
    for s, csr in enumerate(to_csr_files(h, name, generation, layout)):
        pat = new if generation == "new" else old
        p = Path(out_dir) / pat.format(s1=s + 1, s0=s)
        write_csr(p, csr, name)
        paths.append(p)
    return paths


# ============================================================================ band energies
def read_kpt_info(path) -> tuple[np.ndarray, np.ndarray]:
    """``OUT.<suffix>/KPT.info``: k-points in reduced reciprocal (direct) coordinates (nk, 3) and
    their weights (nk,), in the order of ``eig_occ.txt``."""
    rows = []
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0].isdigit():
            rows.append([float(x) for x in parts[1:]])
    if not rows:
        raise ParseError(path, "no k-point lines ('index kx ky kz weight')")
    table = np.array(rows)
    return table[:, :3], table[:, 3]


def read_eig_occ(path) -> tuple[np.ndarray, np.ndarray]:
    """``OUT.<suffix>/eig_occ.txt``: band energies (eV) and occupations, each (nblocks, nk, nbands)
    with one block per ``spin=`` index (nspin 4: one block of spinor levels)."""
    blocks: dict[int, list] = {}
    current = None
    for line in read_text(path).splitlines():
        head = re.match(r"\s*spin=(\d+)\s+k-point=(\d+)/(\d+)", line)
        parts = line.split()
        if head:
            current = []
            blocks.setdefault(int(head.group(1)), []).append(current)
        elif current is not None and len(parts) == 3 and parts[0].isdigit():
            current.append([float(parts[1]), float(parts[2])])
    if not blocks:
        raise ParseError(path, "no 'spin=... k-point=...' blocks")
    try:
        table = np.array([blocks[s] for s in sorted(blocks)])     # (nblocks, nk, nbands, 2)
    except ValueError:
        raise ParseError(path, "k-points with different numbers of bands") from None
    return table[..., 0], table[..., 1]


def is_run_folder(path) -> bool:
    path = Path(path)
    return (path / "INPUT").is_file() and (path / "STRU").is_file()


def write_scf_guess(h: Hamiltonian, out_dir, layout: CsrLayout | None = None) -> ScfGuess:
    """``init_chg hr`` / ``init_chg dm`` files of v3.11+ in ``out_dir`` (usable as ``read_file_dir``),
    in the R order of ``layout`` (that of the zeroth-step run, see :func:`to_csr_files`).

    nspin 2 is started from the DM: ABACUS v3.11's ``init_chg hr`` loses the magnetisation of a
    spin-polarised run (fixtures README); its ``init_chg dm`` restarts fe_bcc in 1 iteration.
    """
    files = write_matrix(h, "H", out_dir, generation="new", layout=layout)
    if h.DM is not None:
        files += write_matrix(h, "DM", out_dir, generation="new", layout=layout)
    use_dm = h.DM is not None and h.nspin == 2
    lines = [f"init_chg          {'dm' if use_dm else 'hr'}", f"read_file_dir     {Path(out_dir).resolve()}"]
    notes = ([] if h.DM is None or use_dm else
             ["the DM files are there too: 'init_chg dm' starts from them instead"])
    return ScfGuess(CODE, files, lines, notes=notes)


@register
class Abacus(CodeIO):
    """ABACUS LCAO runs: ``INPUT``, ``STRU``, ``KPT``, ``OUT.<suffix>/`` (zeroth-step run: ``h0/``)."""

    name = CODE
    h0_siblings = ("h0",)
    writes_scf_guess = True
    detect_order = 10
    orbital_order = staticmethod(_abacus_order)

    is_run_folder = staticmethod(is_run_folder)

    def _read_run(self, path, matrices=("H", "S", "DM")):
        return read_run(path, with_matrices=matrices)

    _read_h0 = staticmethod(read_h0)

    def guess_needs_dm(self, nspin, with_dm):
        return with_dm or nspin == 2  # v3.11's init_chg hr loses the magnetisation

    def write_scf_guess(self, h, out_dir):
        return write_scf_guess(h, out_dir, layout=h.file_layout)

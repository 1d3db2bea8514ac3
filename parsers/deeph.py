"""DeepH folders (DeepH-pack, DeepH-dock, DeepH-E3), both layouts: read and write S, H, DM.

Layouts (one folder per structure)
----------------------------------
* ``"new"`` (DeepH-dock / DeepH-pack ``deepx``): ``POSCAR``; ``info.json`` with atoms_quantity,
  orbits_quantity, orthogonal_basis, spinful, fermi_energy_eV, elements_orbital_map (element ->
  l of its shells); ``overlap.h5``, ``hamiltonian.h5``, ``density_matrix.h5``, each with
  ``atom_pairs`` (N, 5) rows (R1, R2, R3, i, j), atoms 0-based in POSCAR order, ``chunk_shapes``
  (N, 2), ``chunk_boundaries`` (N + 1,) and ``entries``: the blocks flattened row-major, one after
  another. All files of a folder share one ``atom_pairs`` (DeepH-dock requires it).
* ``"legacy"`` (DeepH-pack 0.x, DeepH-E3): ``element.dat`` (atomic numbers), ``site_positions.dat``
  (3 x N, Å), ``lat.dat`` (3 x 3, columns = lattice vectors, Å), ``rlat.dat`` (columns =
  reciprocal vectors incl. 2π, 1/Å), ``orbital_types.dat`` (a line per atom: l of its shells),
  ``info.json`` (nsites, isorthogonal, isspinful, norbits, fermi_level), ``hamiltonians.h5`` /
  ``overlaps.h5`` / ``density_matrixs.h5`` with one dense block per dataset keyed
  ``"[R1, R2, R3, i, j]"``, atoms 1-based (``density_matrices.h5`` is read too).
Both: H and the Fermi level in eV, S and DM dimensionless, lengths in Å; block (R, i, j) =
<φ_i(r − τ_i)|M|φ_j(r − τ_j − R)>, the same as dftplug's, so only orbital order changes.

Orbital conventions converted here (and nowhere else)
-----------------------------------------------------
* new: m = −l..l of the real harmonics of Wikipedia's table (no Condon-Shortley phase), i.e. the
  "standard" harmonics of :mod:`dftplug.orbitals`: p = (y, z, x), d = (xy, yz, z², xz, x²−y²).
  Source: DeepH-dock's converters (``translate_abacus_to_deeph``: ABACUS -> "wiki" is a reorder
  times (−1)^m; ``translate_old_dataset_to_new``: OpenMX -> wiki is a pure permutation).
* legacy: OpenMX's order with the same (all +) signs: p = (x, y, z), d = (z², x²−y², xy, xz,
  yz), l >= 3: m = 0, +1, −1, +2, −2, ... (DeepH-pack's ``Us_openmx2wiki`` is a permutation).
dftplug's internal order is e3nn's (p = x, y, z); ``tests/test_deeph.py`` checks p and d against
the bond geometry and against DeepH-dock's ABACUS table.

Spin
----
nspin 2 (collinear) is written as DeepH-dock's ABACUS converter writes it: ``spinful`` true, H and
DM blocks (2 n_i, 2 n_j) = [[up, 0], [0, down]], S blocks (n_i, n_j). Reading refuses spinful data
with nonzero up-down blocks or complex entries (SOC, non-collinear): dftplug holds nspin 1 or 2.

dftplug extensions (ignored by DeepH tools)
-------------------------------------------
H0 goes to ``hamiltonian_h0.h5`` / ``hamiltonians_h0.h5`` in the same schema; ``info.json`` gets a
``"dftplug"`` entry: basis (shells with zeta, n, rcut), nelec, h0_kind, provenance of the source.

Block pattern: files are written on the union pattern of the matrices; reading drops blocks that
are exactly zero, so the pattern each code wrote comes back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ase
import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from dftplug.basis import Basis, Shell
from dftplug.blocksparse import BlockSparse, union_pairs
from dftplug.errors import MismatchError, ParseError
from dftplug.fileio import atomic_path, atomic_write, read_text
from dftplug.hamiltonian import Hamiltonian

from .base import CodeIO, register, shell_transform

CODE = "deeph"
LAYOUTS = ("new", "legacy")
MATRIX_FILES = {  # matrix: (new layout, legacy layout)
    "S": ("overlap.h5", "overlaps.h5"),
    "H": ("hamiltonian.h5", "hamiltonians.h5"),
    "DM": ("density_matrix.h5", "density_matrixs.h5"),
    "H0": ("hamiltonian_h0.h5", "hamiltonians_h0.h5"),
}
_LEGACY_DM_ALIAS = "density_matrices.h5"  # DeepH-dock's new -> legacy downgrade writes this name
_LEGACY_MARKERS = ("element.dat", "site_positions.dat", "lat.dat", "orbital_types.dat")
INFO = "info.json"
POSCAR = "POSCAR"


# ============================================================================ orbital order
def _order(l: int, layout: str) -> tuple[tuple[int, int], ...]:
    """The layout's orbitals of one l-shell as (m_std, sign) pairs (see module docstring)."""
    if layout == "new" or l == 0:
        ms = tuple(range(-l, l + 1))
    elif l == 1:
        ms = (1, -1, 0)
    elif l == 2:
        ms = (0, 2, -2, 1, -1)
    else:
        ms = (0,) + tuple(s * m for m in range(1, l + 1) for s in (1, -1))
    return tuple((m, 1) for m in ms)


def orbital_transform(ls, layout: str) -> np.ndarray:
    """U (norb x norb) with phi_internal = U phi_deeph for an atom with shells ``ls``."""
    return shell_transform(ls, lambda l: _order(l, layout))


# ============================================================================ blocks as stored
@dataclass
class Chunks:
    """Blocks as a DeepH file stores them (file order, DeepH orbital order, spin in the block).

    pairs : (E, 5) int      rows (R1, R2, R3, i, j), atoms 0-based.
    shapes : (E, 2) int     block shapes (2 n_i, 2 n_j for spinful H/DM).
    entries : (nnz,) float  the blocks flattened row-major, concatenated.
    """

    pairs: np.ndarray
    shapes: np.ndarray
    entries: np.ndarray

    @property
    def bounds(self) -> np.ndarray:
        """chunk_boundaries: (E + 1,) start of every block in ``entries``, then the total."""
        return _bounds(self.shapes)


def _bounds(shapes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])]).astype(np.int64)


def _to_chunks(mat: BlockSparse, pattern: np.ndarray) -> Chunks:
    """``mat`` (already in DeepH orbital order) on ``pattern``, blocks sorted by (R, i, j); two
    spin channels become spin-diagonal (2 n_i, 2 n_j) blocks."""
    m = mat.with_pairs(pattern)
    p = m.pairs
    f = m.nspin
    order = np.lexsort((p[:, 1], p[:, 0], p[:, 4], p[:, 3], p[:, 2]))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ni, nj = m.norb[p[:, 0]], m.norb[p[:, 1]]
    shapes = np.column_stack([f * ni, f * nj])[order]
    bounds = _bounds(shapes)
    edge = np.repeat(np.arange(m.nedges), ni * nj)
    local = np.arange(m.offsets[-1]) - m.offsets[edge]
    a, b = local // nj[edge], local % nj[edge]
    entries = np.zeros(bounds[-1], dtype=m.data.dtype)
    for s in range(f):
        pos = bounds[rank[edge]] + (s * ni[edge] + a) * (f * nj[edge]) + s * nj[edge] + b
        entries[pos] = m.data[s]
    return Chunks(p[order][:, [2, 3, 4, 0, 1]], shapes, entries)


def _from_chunks(chunks: Chunks, norb: np.ndarray, path) -> BlockSparse:
    """BlockSparse (nspin = 1 or 2 from the block shapes) of the stored blocks, DeepH orbital
    order kept; exactly-zero blocks dropped. Errors name ``path``."""
    pairs, shapes, entries = chunks.pairs, chunks.shapes, chunks.entries
    natoms = len(norb)
    if pairs.ndim != 2 or pairs.shape[1] != 5 or shapes.shape != (len(pairs), 2):
        raise ParseError(path, f"atom_pairs {pairs.shape} and chunk_shapes {shapes.shape} do not "
                               "describe one block per row (N x 5 and N x 2)")
    ia, ja = pairs[:, 3], pairs[:, 4]
    if len(pairs) and (min(ia.min(), ja.min()) < 0 or max(ia.max(), ja.max()) >= natoms):
        raise ParseError(path, f"atom index outside 0..{natoms - 1} (the structure has {natoms} atoms)")
    ni, nj = norb[ia], norb[ja]
    f = shapes[0, 0] // ni[0] if len(pairs) else 1
    wrong = np.any(shapes != np.column_stack([f * ni, f * nj]), axis=1)
    if f not in (1, 2) or np.any(wrong):
        bad = int(np.argmax(wrong)) if np.any(wrong) else 0
        raise ParseError(path, f"block {pairs[bad].tolist()} has shape {shapes[bad].tolist()}, the basis "
                               f"gives {[int(ni[bad]), int(nj[bad])]} (x2 when spinful)")
    bounds = chunks.bounds
    if entries.ndim != 1 or len(entries) != bounds[-1]:
        raise ParseError(path, f"{entries.size} entries, the block shapes need {bounds[-1]}")
    if np.iscomplexobj(entries):
        if np.abs(entries.imag).max(initial=0.0) > 0:
            raise ParseError(path, "complex matrix elements (SOC / non-collinear spin) are not supported: "
                                   "dftplug holds real matrices with nspin 1 or 2")
        entries = entries.real
    edge = np.repeat(np.arange(len(pairs)), f * f * ni * nj)
    local = np.arange(bounds[-1]) - bounds[edge]
    row_spin, row = np.divmod(local // (f * nj[edge]), ni[edge])
    col_spin, col = np.divmod(local % (f * nj[edge]), nj[edge])
    mixed = row_spin != col_spin
    if np.any(entries[mixed] != 0):
        raise ParseError(path, "nonzero up-down spin blocks (non-collinear / SOC) are not supported: "
                               "dftplug holds nspin 1 or 2 (collinear)")
    offs = np.concatenate([[0], np.cumsum(norb)])
    up = ~mixed & (row_spin == 0)
    values = np.stack([entries[~mixed & (row_spin == s)] for s in range(f)])
    try:
        m = BlockSparse.from_orbital_coo(norb, offs[ia[edge[up]]] + row[up], offs[ja[edge[up]]] + col[up],
                                         pairs[edge[up], :3], values)
    except ValueError as exc:
        raise ParseError(path, f"bad block list: {exc}") from None
    if not m.nedges:
        return m
    return m.with_pairs(m.pairs[m.block_max_abs() > 0])


# ============================================================================ h5 files
def _read_h5(path, reader):
    import h5py  # here, not at import: the parser registry imports every module

    try:
        with h5py.File(path, "r") as fh:
            return reader(fh)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ParseError(path, f"cannot read the HDF5 file: {exc}") from None


def _read_new_h5(path) -> Chunks:
    def reader(fh):
        missing = [k for k in ("atom_pairs", "chunk_shapes", "chunk_boundaries", "entries") if k not in fh]
        if missing:
            raise ParseError(path, f"missing datasets {missing}")
        chunks = Chunks(fh["atom_pairs"][()].astype(np.int64), fh["chunk_shapes"][()].astype(np.int64),
                        fh["entries"][()])
        if not np.array_equal(fh["chunk_boundaries"][()], chunks.bounds):
            raise ParseError(path, "chunk_boundaries do not match the cumulated chunk_shapes")
        return chunks
    return _read_h5(path, reader)


def _write_new_h5(path, chunks: Chunks) -> None:
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        fh["atom_pairs"] = chunks.pairs
        fh["chunk_boundaries"] = chunks.bounds
        fh["chunk_shapes"] = chunks.shapes
        fh["entries"] = chunks.entries


def _read_legacy_h5(path) -> Chunks:
    def reader(fh):
        keys = list(fh.keys())
        try:
            key1 = np.array([json.loads(k) for k in keys], dtype=np.int64).reshape(-1, 5)
        except (ValueError, TypeError):
            raise ParseError(path, "dataset names are not all of the form '[R1, R2, R3, i, j]'") from None
        blocks = [fh[k][()] for k in keys]
        if any(b.ndim != 2 for b in blocks):
            raise ParseError(path, "every block must be a 2-d dataset")
        pairs = key1 - np.array([0, 0, 0, 1, 1])
        shapes = np.array([b.shape for b in blocks], dtype=np.int64).reshape(-1, 2)
        entries = np.concatenate([b.ravel() for b in blocks]) if blocks else np.zeros(0)
        return Chunks(pairs, shapes, entries)
    return _read_h5(path, reader)


def _write_legacy_h5(path, chunks: Chunks) -> None:
    import h5py

    bounds = chunks.bounds
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        for k, (p, shape) in enumerate(zip(chunks.pairs, chunks.shapes)):
            key = "[{}, {}, {}, {}, {}]".format(*(p + np.array([0, 0, 0, 1, 1])))
            fh[key] = chunks.entries[bounds[k]:bounds[k + 1]].reshape(shape)


# ============================================================================ folders
def layout_of(path) -> str | None:
    """``"new"``, ``"legacy"`` or None for a folder that is not a DeepH folder."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / POSCAR).is_file() and any((path / n).is_file() for n in (INFO, "overlap.h5", "hamiltonian.h5")):
        return "new"
    if any((path / n).is_file() for n in _LEGACY_MARKERS):
        return "legacy"
    return None


def is_deeph_folder(path) -> bool:
    return layout_of(path) is not None


def _read_json(path) -> dict:
    try:
        out = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ParseError(path, f"not valid JSON: {exc}") from None
    if not isinstance(out, dict):
        raise ParseError(path, "expected a JSON object")
    return out


def _shells(ls) -> tuple[Shell, ...]:
    """Shells of an l list; zeta counts the shells of the same l so far."""
    return tuple(Shell(int(l), zeta=int(np.count_nonzero(np.asarray(ls[:k + 1]) == l))) for k, l in enumerate(ls))


def _basis_from_ls(ls_of: dict[str, list[int]], ext: dict) -> Basis:
    """Basis of element -> l list; the dftplug extension's shells (n, rcut) when they agree."""
    basis = Basis({el: _shells(ls) for el, ls in ls_of.items()})
    if "basis" in ext:
        stored = Basis.from_json(json.dumps(ext["basis"]))
        if set(stored.shells) >= set(ls_of) and stored.restrict(ls_of).same_as(basis):
            return stored.restrict(ls_of)
    return basis


def _read_structure_new(folder: Path):
    import ase.io

    info_path = folder / INFO
    info = _read_json(info_path)
    try:
        atoms = ase.io.read(folder / POSCAR, format="vasp")
    except Exception as exc:  # ase raises many kinds on a malformed POSCAR
        raise ParseError(folder / POSCAR, f"cannot read the POSCAR: {exc}") from None
    atoms.pbc = True
    if "elements_orbital_map" not in info:
        raise ParseError(info_path, "no elements_orbital_map (element -> l of its shells)")
    ls_of = {el: list(v) for el, v in info["elements_orbital_map"].items()}
    n = info.get("atoms_quantity", len(atoms))
    if n != len(atoms):
        raise ParseError(info_path, f"atoms_quantity is {n}, the POSCAR has {len(atoms)} atoms")
    meta = {"spinful": bool(info.get("spinful", False)), "orthogonal": bool(info.get("orthogonal_basis", False)),
            "fermi": info.get("fermi_energy_eV"), "norbits": info.get("orbits_quantity")}
    return atoms, ls_of, meta, info


def _read_structure_legacy(folder: Path):
    info_path = folder / INFO
    info = _read_json(info_path)
    arrays = {}
    for name, ndmin in (("element.dat", 1), ("site_positions.dat", 2), ("lat.dat", 2)):
        try:
            arrays[name] = np.loadtxt(read_text(folder / name).splitlines(), ndmin=ndmin)
        except ValueError as exc:
            raise ParseError(folder / name, f"not a table of numbers: {exc}") from None
    numbers = arrays["element.dat"].astype(int)
    pos, lat = arrays["site_positions.dat"], arrays["lat.dat"]
    if lat.shape != (3, 3):
        raise ParseError(folder / "lat.dat", f"expected 3 x 3 (columns = lattice vectors), got {lat.shape}")
    if pos.shape != (3, len(numbers)):
        raise ParseError(folder / "site_positions.dat", f"expected 3 x {len(numbers)} (one column per atom of "
                                                        f"element.dat), got {pos.shape}")
    orb_lines = [l.split() for l in read_text(folder / "orbital_types.dat").splitlines() if l.strip()]
    if len(orb_lines) != len(numbers):
        raise ParseError(folder / "orbital_types.dat", f"{len(orb_lines)} lines, element.dat has "
                                                       f"{len(numbers)} atoms")
    n = info.get("nsites", len(numbers))
    if n != len(numbers):
        raise ParseError(info_path, f"nsites is {n}, element.dat has {len(numbers)} atoms")
    atoms = ase.Atoms(numbers=numbers, positions=pos.T, cell=lat.T, pbc=True)
    ls_of: dict[str, list[int]] = {}
    for sym, line in zip(atoms.get_chemical_symbols(), orb_lines):
        ls = [int(x) for x in line]
        if ls_of.setdefault(sym, ls) != ls:
            raise ParseError(folder / "orbital_types.dat", f"atoms of {sym} have different shells")
    meta = {"spinful": bool(info.get("isspinful", False)), "orthogonal": bool(info.get("isorthogonal", False)),
            "fermi": info.get("fermi_level"), "norbits": info.get("norbits")}
    return atoms, ls_of, meta, info


def read_deeph(folder) -> Hamiltonian:
    """Read a DeepH folder of either layout into a :class:`Hamiltonian` (eV, Å, internal order)."""
    folder = Path(folder)
    layout = layout_of(folder)
    if layout is None:
        raise ParseError(folder, "not a DeepH folder (neither POSCAR + info.json/overlap.h5 nor element.dat, "
                                 "site_positions.dat, lat.dat, orbital_types.dat)")
    reader = _read_structure_new if layout == "new" else _read_structure_legacy
    atoms, ls_of, meta, info = reader(folder)
    info_path = folder / INFO
    if meta["orthogonal"]:
        raise ParseError(info_path, "orthogonal basis (e.g. Wannier functions): dftplug needs numerical atomic "
                                    "orbitals and their overlap")
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(ls_of))
    if missing:
        raise ParseError(info_path, f"no orbitals given for elements {missing}")
    ext = info.get("dftplug", {})
    basis = _basis_from_ls(ls_of, ext).restrict(symbols)
    norb = np.array([basis.norb(s) for s in symbols], dtype=np.int64)
    if meta["norbits"] is not None and meta["norbits"] != norb.sum():
        raise ParseError(info_path, f"{meta['norbits']} orbitals announced, the shells give {norb.sum()}")
    species = list(dict.fromkeys(symbols))
    kinds = np.array([species.index(s) for s in symbols])
    umats = [orbital_transform(basis.ls(s), layout) for s in species]
    mats, files = {}, {}
    for name, names in MATRIX_FILES.items():
        path = folder / names[layout == "legacy"]
        if name == "DM" and layout == "legacy" and not path.is_file():
            path = folder / _LEGACY_DM_ALIAS
        if not path.is_file():
            continue
        chunks = (_read_new_h5 if layout == "new" else _read_legacy_h5)(path)
        mat = _from_chunks(chunks, norb, path)
        if name == "S" and mat.nspin == 2:
            if np.any(mat.data[0] != mat.data[1]):
                raise ParseError(path, "spinful overlap with different up and down blocks")
            mat = mat.copy(mat.data[:1])
        elif name != "S" and mat.nspin != 1 + meta["spinful"]:
            raise ParseError(path, f"blocks are {'spinful' if mat.nspin == 2 else 'spinless'}, "
                                   f"{INFO} says spinful = {meta['spinful']}")
        mats[name] = mat.transform(kinds, umats)
        files[name] = str(path)
    origin = ext.get("provenance") or {}
    prov = {"code": origin.get("code", CODE), "format": f"deeph-{layout}", "source": str(folder.resolve()),
            "files": files, "origin": origin or None}
    return Hamiltonian(atoms=atoms, basis=basis, fermi_level=meta["fermi"], nelec=ext.get("nelec"),
                       h0_kind=ext.get("h0_kind"), provenance=prov, **mats)


# ============================================================================ writing
def _extension(h: Hamiltonian) -> dict:
    """The ``"dftplug"`` entry of info.json (JSON-able)."""
    return json.loads(json.dumps({"basis": json.loads(h.basis.restrict(h.symbols).to_json()),
                                  "nelec": h.nelec, "h0_kind": h.h0_kind, "provenance": h.provenance},
                                 default=str))


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def _write_structure_new(h: Hamiltonian, out: Path, ls_of: dict) -> list[Path]:
    import ase.io

    with atomic_write(out / POSCAR, "w") as fh:
        ase.io.write(fh, h.atoms, format="vasp", direct=False, sort=False)
    info = {"atoms_quantity": h.natoms, "orbits_quantity": int(h.norb().sum()), "orthogonal_basis": False,
            "spinful": h.nspin == 2, "fermi_energy_eV": h.fermi_level, "elements_orbital_map": ls_of,
            "dftplug": _extension(h)}
    _write_text(out / INFO, json.dumps(info, indent=1))
    return [out / POSCAR, out / INFO]


def _write_structure_legacy(h: Hamiltonian, out: Path, ls_of: dict) -> list[Path]:
    cell = h.atoms.cell.array
    texts = {
        "element.dat": "".join(f"{atomic_numbers[s]}\n" for s in h.symbols),
        "site_positions.dat": _table(h.atoms.positions.T),
        "lat.dat": _table(cell.T),
        "rlat.dat": _table(2 * np.pi * np.linalg.inv(cell)),  # columns b_k with a_i . b_k = 2π δ_ik
        "orbital_types.dat": "".join(" ".join(map(str, ls_of[s])) + "\n" for s in h.symbols),
        INFO: json.dumps({"nsites": h.natoms, "isorthogonal": False, "isspinful": h.nspin == 2,
                          "norbits": int(h.norb().sum()), "fermi_level": h.fermi_level,
                          "dftplug": _extension(h)}, indent=1),
    }
    for name, text in texts.items():
        _write_text(out / name, text)
    return [out / name for name in texts]


def _table(a: np.ndarray) -> str:
    return "".join(" ".join(f"{x:.17g}" for x in row) + "\n" for row in np.atleast_2d(a))


def write_deeph(h: Hamiltonian, out_dir, layout: str = "new") -> list[Path]:
    """Write ``h`` as a DeepH folder of ``layout`` ("new" or "legacy"); returns the files written.

    Every matrix present is written (H0 as the dftplug extension file), all on one block pattern.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown DeepH layout {layout!r} (known: {', '.join(LAYOUTS)})")
    if h.nspin not in (1, 2):
        raise MismatchError(f"nspin {h.nspin}: DeepH output supports nspin 1 and 2 (collinear)")
    unknown = sorted(set(h.symbols) - set(chemical_symbols[1:]))
    if unknown:
        raise MismatchError(f"species {unknown} are not chemical elements; DeepH keys atoms by element")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ls_of = {s: h.basis.ls(s) for s in dict.fromkeys(h.symbols)}
    writer = _write_structure_new if layout == "new" else _write_structure_legacy
    written = writer(h, out, ls_of)
    mats = h.matrices()
    if not mats:
        return written
    species, kinds = h.species_index()
    umats = [orbital_transform(h.basis.ls(s), layout).T for s in species]
    pattern = union_pairs(*[m.pairs for m in mats.values()], natoms=h.natoms)
    for name, mat in mats.items():
        path = out / MATRIX_FILES[name][layout == "legacy"]
        chunks = _to_chunks(mat.transform(kinds, umats), pattern)
        (_write_new_h5 if layout == "new" else _write_legacy_h5)(path, chunks)
        written.append(path)
    return written


# ============================================================================ parser interface
@register
class DeepH(CodeIO):
    """A DeepH folder (new or legacy layout) stands for a run folder in ``dftplug convert``; it has
    no zeroth-step sibling (H0 comes from ``hamiltonian_h0.h5`` or ``--h0``) and no SCF guess."""

    name = CODE
    detect_order = 90

    is_run_folder = staticmethod(is_deeph_folder)

    def _read_run(self, path, matrices=("H", "S", "DM")):
        return read_deeph(path)

    def _read_h0(self, path):
        h = read_deeph(path)
        if h.H0 is None:
            raise ParseError(path, "this DeepH folder holds no H0 (hamiltonian_h0.h5 / hamiltonians_h0.h5)")
        return h

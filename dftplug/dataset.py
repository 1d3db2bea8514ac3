"""HDF5 datasets of :class:`Hamiltonian` objects (what ``dftplug convert`` writes, ``train`` reads).

Layout (format_version 1)::

    /                      attrs: format="dftplug-dataset", format_version, energy_unit="eV",
                                  length_unit="Angstrom", orbital_convention, dftplug_version
    /structures/<name>/    attrs: basis (JSON), fermi_level_eV, nelec, h0_kind, provenance (JSON),
                                  settings (JSON)
        numbers (N,) int32, positions (N, 3) Å, cell (3, 3) Å (rows), pbc (3,) bool
        <M>/pairs (E, 5) int32 rows (i, j, R1, R2, R3);  <M>/data (nspin, nnz) float64
                                  (complex128 with 4 channels uu, ud, du, dd for spin-orbit runs)
                                  for M in H, S, H0, DM (those present); blocks row-major, in
                                  the order of ``pairs`` (see :class:`dftplug.BlockSparse`).

Missing scalars are stored as NaN / empty strings and read back as None.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import ase
import h5py
import numpy as np

from . import __version__
from .basis import Basis
from .blocksparse import BlockSparse
from .errors import ParseError
from .fileio import atomic_path
from .hamiltonian import MATRIX_NAMES, Hamiltonian
from .orbitals import ORBITAL_CONVENTION
from .validate import check_hamiltonian

FORMAT = "dftplug-dataset"
FORMAT_VERSION = 1


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (bytes, bytearray)):
        raise TypeError("bytes are not stored")
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def _dump_settings(settings: dict) -> str:
    """The run settings as JSON; anything else is refused, not dropped (what a code's writers need
    of its files is ``Hamiltonian.file_layout``, which datasets do not store)."""
    try:
        return json.dumps(settings, default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Hamiltonian.settings must be JSON-able ({exc}); code-private objects belong "
                        "in Hamiltonian.file_layout") from None


def _write_one(group: h5py.Group, h: Hamiltonian) -> None:
    group.attrs["basis"] = h.basis.restrict(h.symbols).to_json()
    group.attrs["fermi_level_eV"] = np.nan if h.fermi_level is None else float(h.fermi_level)
    group.attrs["nelec"] = np.nan if h.nelec is None else float(h.nelec)
    group.attrs["h0_kind"] = h.h0_kind or ""
    group.attrs["provenance"] = json.dumps(h.provenance, default=_jsonable)
    group.attrs["settings"] = _dump_settings(h.settings)
    group["numbers"] = h.atoms.numbers.astype(np.int32)
    group["positions"] = h.atoms.positions
    group["cell"] = h.atoms.cell.array
    group["pbc"] = h.atoms.pbc
    for name, m in h.matrices().items():
        g = group.create_group(name)
        g["pairs"] = m.pairs.astype(np.int32)
        g.create_dataset("data", data=m.data, chunks=(m.nspin, min(max(m.data.shape[1], 1), 1 << 16)))


def write_dataset(path, items: Iterable[tuple[str, Hamiltonian]]) -> Path:
    """Write ``(name, Hamiltonian)`` pairs to a new HDF5 file (atomic: no partial file on error)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, energy_unit="eV",
                           length_unit="Angstrom", orbital_convention=ORBITAL_CONVENTION,
                           dftplug_version=__version__)
            root = f.create_group("structures")
            for name, h in items:
                if name in root:
                    raise ValueError(f"duplicate structure name {name!r}")
                _write_one(root.create_group(name), h)
    return path


def _open(path) -> h5py.File:
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise ParseError(path, f"cannot open as HDF5: {exc}") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise ParseError(path, "not a dftplug dataset (missing format attribute)")
    if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
        f.close()
        raise ParseError(path, f"dataset format_version {f.attrs.get('format_version')} is not "
                               f"{FORMAT_VERSION}")
    if not isinstance(f.get("structures"), h5py.Group):
        f.close()
        raise ParseError(path, "no /structures group (an incomplete or foreign file)")
    return f


def _read_one(group: h5py.Group, path) -> Hamiltonian:
    try:
        basis = Basis.from_json(group.attrs["basis"])
        atoms = ase.Atoms(numbers=group["numbers"][()], positions=group["positions"][()],
                          cell=group["cell"][()], pbc=group["pbc"][()])
        norb = np.array([basis.norb(s) for s in atoms.get_chemical_symbols()])
        mats = {}
        for name in MATRIX_NAMES:
            if name in group:
                mats[name] = BlockSparse(norb, group[name]["pairs"][()].astype(np.int64),
                                         group[name]["data"][()])
        fl, ne = float(group.attrs["fermi_level_eV"]), float(group.attrs["nelec"])
        return Hamiltonian(atoms=atoms, basis=basis, fermi_level=None if np.isnan(fl) else fl,
                           nelec=None if np.isnan(ne) else ne, h0_kind=group.attrs["h0_kind"] or None,
                           provenance=json.loads(group.attrs["provenance"]),
                           settings=json.loads(group.attrs["settings"]), **mats)
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise ParseError(path, f"structure {group.name}: {exc}") from None


def dataset_names(path) -> list[str]:
    with _open(path) as f:
        return list(f["structures"].keys())


def iter_dataset(path, names: Iterable[str] | None = None, require=()) -> Iterator[tuple[str, Hamiltonian]]:
    """Yield ``(name, Hamiltonian)`` one structure at a time (streaming, not all in memory), each
    checked at the boundary (:func:`dftplug.validate.check_hamiltonian`; ``require``: matrices
    that must be present, e.g. ``("H", "H0", "S")`` for training)."""
    with _open(path) as f:
        root = f["structures"]
        for name in (list(root.keys()) if names is None else names):
            if name not in root or not isinstance(root[name], h5py.Group):
                raise ParseError(path, f"no structure named {name!r}")
            yield name, check_hamiltonian(_read_one(root[name], path), f"{path} (structure {name})", require)


def read_dataset(path, names: Iterable[str] | None = None, require=()) -> list[Hamiltonian]:
    return [h for _, h in iter_dataset(path, names, require)]

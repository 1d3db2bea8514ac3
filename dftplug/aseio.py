"""ASE interop: a :class:`Hamiltonian`'s structure as ``ase.Atoms`` and back (structure only).

``atoms.info`` carries ``fermi_level_eV``, ``nelec``, ``h0_kind`` and ``provenance``; matrices
stay in the Hamiltonian (use a parser/writer for them).
"""
from __future__ import annotations

import ase

from .basis import Basis
from .errors import MismatchError
from .hamiltonian import Hamiltonian

INFO_KEYS = {"fermi_level_eV": "fermi_level", "nelec": "nelec", "h0_kind": "h0_kind"}


def to_ase(h: Hamiltonian) -> ase.Atoms:
    """Copy of ``h.atoms`` (Å) with the Fermi level (eV), electron count, H0 kind (those known) and
    provenance in ``atoms.info``; None is left out (extended XYZ would read it back as True)."""
    atoms = h.atoms.copy()
    atoms.info.update({key: getattr(h, attr) for key, attr in INFO_KEYS.items() if getattr(h, attr) is not None})
    atoms.info["provenance"] = dict(h.provenance)
    return atoms


def from_ase(atoms: ase.Atoms, basis: Basis) -> Hamiltonian:
    """Structure-only :class:`Hamiltonian` (no matrices) of ``atoms`` with ``basis``; picks up the
    ``atoms.info`` entries written by :func:`to_ase`."""
    missing = sorted(set(atoms.get_chemical_symbols()) - set(basis.shells))
    if missing:
        raise MismatchError(f"the basis has no shells for species {missing}")
    info = atoms.info
    return Hamiltonian(atoms.copy(), basis.restrict(atoms.get_chemical_symbols()),
                       provenance=dict(info.get("provenance", {"code": "ase"})),
                       **{attr: info.get(key) for key, attr in INFO_KEYS.items()})

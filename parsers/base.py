"""The protocol every DFT code (or exchange format) implements, and what the codes share.

A code is one class derived from :class:`CodeIO`, defined in its own module of this package and
registered with :func:`register` (in the spirit of sisl's Siles registered by suffix): it declares
how it recognises a run folder, reads a run (``_read_run``) and optionally a zeroth-step run and the
files of an SCF guess. Everything else is written once here:

* ``read_run`` / ``read_h0``: the code's reader, then the boundary check of
  :mod:`dftplug.validate` (finite, Hermitian within ``hermiticity_rtol``, S positive definite);
  ``read_h0`` defaults to "read the run, its H is H0" and checks that the run stopped after one step;
* ``orbital_transform``: from the code's per-l order table ``orbital_order(l)`` (pairs
  (m_std, sign), see :func:`dftplug.orbitals.code_to_internal`).

Adding a code = one new module with one registered class; :mod:`dftplug.parsers` finds it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.linalg import block_diag

from dftplug.hamiltonian import Hamiltonian
from dftplug.orbitals import code_to_internal
from dftplug.validate import HERMITICITY_RTOL, check_hamiltonian, check_zeroth_step

H0_KIND = "H[rho_atomic]"


@dataclass
class ScfGuess:
    """What was written for a code: files, the input lines to add, and notes for the user."""

    code: str
    files: list[Path]
    input_lines: list[str]
    fermi_level: float | None = None
    notes: list[str] = field(default_factory=list)


def shell_transform(ls, order) -> np.ndarray:
    """U (norb x norb) with phi_internal = U phi_code for an atom with shells ``ls``;
    ``order(l)`` gives the code's orbitals of one shell as (m_std, sign) pairs."""
    return block_diag(*[code_to_internal(order(l)) for l in ls])


def relabel_h0(h: Hamiltonian, h0_kind: str = H0_KIND) -> Hamiltonian:
    """The H of a zeroth-step run is its H0: move it there; the run's DM is not an SCF quantity."""
    h.H0, h.H, h.DM, h.h0_kind = h.H, None, None, h0_kind
    return h


class CodeIO:
    """One DFT code or exchange format: recognise, read and write its run folders.

    Class attributes a code sets: ``name``; ``h0_siblings`` (folder names beside ``<case>/scf``
    that hold the zeroth-step run); ``writes_scf_guess`` and ``guess_options`` (keyword options its
    ``write_scf_guess`` takes); ``detect_order`` (lower is tried first); ``hermiticity_rtol`` (the
    format's precision, relative to the largest element).
    """

    name: str = ""
    h0_siblings: tuple[str, ...] = ()
    writes_scf_guess: bool = False
    guess_options: tuple[str, ...] = ()
    detect_order: int = 50
    hermiticity_rtol: float = HERMITICITY_RTOL

    # ------------------------------------------------------------ what a code implements
    def is_run_folder(self, path: Path) -> bool:
        raise NotImplementedError

    def _read_run(self, path: Path, matrices=("H", "S", "DM")) -> Hamiltonian:
        """The run as stored (no checks beyond the format's own)."""
        raise NotImplementedError

    def _read_h0(self, path: Path) -> Hamiltonian:
        """The zeroth-step run with H0 (and S) set; default: its H is H0 = H[rho_atomic]."""
        return relabel_h0(self._read_run(path, matrices=("H", "S")))

    def write_scf_guess(self, h: Hamiltonian, out_dir: Path, **options) -> ScfGuess:
        """The files the code reads to start its SCF from ``h.H`` (and ``h.DM``); ``options``: those
        named in ``guess_options``."""
        raise NotImplementedError(f"{self.name}: no SCF guess writer")

    def guess_needs_dm(self, nspin: int, with_dm: bool) -> bool:
        """Whether the SCF guess of an nspin run needs the DM built from H (``with_dm``: asked for)."""
        return with_dm

    def matrix_files(self, h: Hamiltonian) -> dict[str, str]:
        """The file each matrix of ``h`` was read from (for messages); default: ``provenance["files"]``
        keyed by matrix name."""
        files = h.provenance.get("files") or {}
        out = {n: files.get(n) for n in ("H", "S", "DM")}
        out["H0"] = out["H"]
        return {n: ", ".join(map(str, f)) if isinstance(f, list) else str(f) for n, f in out.items() if f}

    @staticmethod
    def orbital_order(l: int) -> tuple[tuple[int, int], ...]:
        """The code's orbitals of an l shell as (m_std, sign) pairs."""
        raise NotImplementedError

    # ------------------------------------------------------------ written once
    def orbital_transform(self, ls) -> np.ndarray:
        return shell_transform(ls, self.orbital_order)

    def read_run(self, path, matrices=("H", "S", "DM")) -> Hamiltonian:
        """A converged run, checked (see :mod:`dftplug.validate`)."""
        path = Path(path)
        h = self._read_run(path, matrices)
        return check_hamiltonian(h, path, rtol=self.hermiticity_rtol, files=self.matrix_files(h))

    def read_h0(self, path) -> Hamiltonian:
        """A zeroth-step run (H0, S), checked; refused when it ran more than one SCF step."""
        path = Path(path)
        h = self._read_h0(path)
        check_zeroth_step(h, path)
        return check_hamiltonian(h, path, require=("H0",), rtol=self.hermiticity_rtol, files=self.matrix_files(h))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


REGISTRY: dict[str, CodeIO] = {}


def register(cls: type[CodeIO]) -> type[CodeIO]:
    """Class decorator: make ``cls`` (one instance) known to :func:`dftplug.parsers.detect`."""
    REGISTRY[cls.name] = cls()
    return cls

"""One module per DFT code, each reading AND writing that code's own formats.

Every reader returns the common object :class:`dftplug.Hamiltonian` in eV, Å and the internal
orbital convention; units, orbital order and signs are converted inside these modules only.

Each code module defines one :class:`~dftplug.parsers.base.CodeIO` class registered with
:func:`~dftplug.parsers.base.register` (see :mod:`dftplug.parsers.base` for the protocol). The
registry is filled by importing every module of this package once, on first use, so a new code
is one new module. Use:

  ``detect(path)``       name of the code whose run folder ``path`` is;
  ``code_io(name)``      its :class:`CodeIO`: ``read_run``, ``read_h0`` (both checked at the
                         boundary), ``write_scf_guess``, ``h0_siblings``, ``orbital_transform``;
  ``read_run(path)`` / ``read_h0(path)``   the same, detecting the code.
"""
from __future__ import annotations

import pkgutil
from importlib import import_module
from pathlib import Path

from dftplug.errors import ParseError

from .base import REGISTRY, CodeIO, ScfGuess  # noqa: F401  (re-exported)

_NOT_CODES = {"base"}


def _load_all() -> dict[str, CodeIO]:
    if not getattr(_load_all, "done", False):
        for info in pkgutil.iter_modules(__path__):
            if info.name not in _NOT_CODES and not info.name.startswith("_"):
                import_module(f"{__name__}.{info.name}")
        _load_all.done = True
    return dict(sorted(REGISTRY.items(), key=lambda kv: (kv[1].detect_order, kv[0])))


def codes() -> list[str]:
    """Names of the registered DFT codes that take an SCF guess, in detection order."""
    return [name for name, io in _load_all().items() if io.writes_scf_guess]


def formats() -> list[str]:
    """Names of everything a folder given to ``dftplug convert`` may be (codes and DeepH)."""
    return list(_load_all())


def code_io(name: str) -> CodeIO:
    """The registered reader/writer of ``name``."""
    known = _load_all()
    if name not in known:
        raise ParseError(name, f"unknown DFT code or format (known: {', '.join(known)})")
    return known[name]


def detect(path) -> str:
    """Name of the code (or "deeph") whose run folder ``path`` is."""
    path = Path(path)
    if not path.is_dir():
        raise ParseError(path, "not a folder")
    for name, io in _load_all().items():
        if io.is_run_folder(path):
            return name
    raise ParseError(path, "not recognised as a run folder of "
                           f"{', '.join(formats())} (see the README for what each needs)")


def read_run(path, code: str | None = None) -> "Hamiltonian":  # noqa: F821
    """A converged run of any registered code, checked at the boundary."""
    return code_io(code or detect(path)).read_run(path)


def read_h0(path, code: str | None = None) -> "Hamiltonian":  # noqa: F821
    """A zeroth-step run of any registered code, checked at the boundary."""
    return code_io(code or detect(path)).read_h0(path)

"""One module per DFT code, each reading AND writing that code's own formats.

Every reader returns the common object :class:`dftplug.Hamiltonian` in eV, Å and the internal
orbital convention; units, orbital order and signs are converted inside these modules only.

A code module provides
  ``CODE``                      its name ("abacus", "siesta", "openmx");
  ``is_run_folder(path)``       True when ``path`` looks like one of its run folders;
  ``read_run(path)``            converged run -> Hamiltonian with H, S (and DM when stored);
  ``read_h0(path)``             zeroth-step run -> Hamiltonian with H0 (and S), ``h0_kind`` set;
  ``H0_SIBLINGS``               sibling folder names holding the zeroth-step run of ``<case>/scf``.
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from dftplug.errors import ParseError

CODES = ("abacus", "siesta", "openmx")
FORMATS = CODES + ("deeph",)  # what a folder given to `dftplug convert` may be


def code_module(code: str):
    """The parser module of ``code``."""
    if code not in FORMATS:
        raise ParseError(code, f"unknown DFT code or format (known: {', '.join(FORMATS)})")
    return import_module(f"dftplug.parsers.{code}")


def detect(path) -> str:
    """Name of the code (or "deeph") whose run folder ``path`` is."""
    path = Path(path)
    if not path.is_dir():
        raise ParseError(path, "not a folder")
    for code in FORMATS:
        try:
            mod = code_module(code)
        except ImportError:
            continue
        if mod.is_run_folder(path):
            return code
    raise ParseError(path, "not recognised as an ABACUS, SIESTA or OpenMX run folder or a DeepH folder")

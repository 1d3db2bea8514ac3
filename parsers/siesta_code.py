"""SIESTA's :class:`~dftplug.parsers.base.CodeIO` (a thin adapter to :mod:`dftplug.parsers.siesta`,
kept apart while that module is being changed for SIESTA 5; it moves there afterwards)."""
from __future__ import annotations

from . import siesta
from .base import CodeIO, register


@register
class Siesta(CodeIO):
    """SIESTA runs: ``<label>.fdf``, ``.out``, ``.XV``, ``.TSHS`` or ``.HSX``, ``.DM`` (zeroth-step run: ``h0/``)."""

    name = siesta.CODE
    h0_siblings = ("h0",)
    writes_scf_guess = True
    detect_order = 20
    orbital_order = staticmethod(siesta._siesta_order)

    def is_run_folder(self, path):
        return siesta.is_run_folder(path)

    def _read_run(self, path, matrices=("H", "S", "DM")):
        return siesta.read_run(path, with_matrices=matrices)

    def matrix_files(self, h):
        files = h.provenance.get("files", {})
        hs = files.get(h.provenance.get("matrix_file"))
        return {n: str(f) for n, f in (("H", hs), ("S", hs), ("H0", hs), ("DM", files.get("DM"))) if f}

    def guess_needs_dm(self, nspin, with_dm):
        return True  # <label>.DM is the file SIESTA restarts from

    def write_scf_guess(self, h, out_dir):
        return siesta.write_scf_guess(h, out_dir)

"""OpenMX as a registered code: its run folders (:mod:`.openmx`, the ``.scfout``) and its SCF guess,
the ``.scfout`` of the predicted H and the restart folder (:mod:`.openmx_restart`).

Apart from :mod:`.openmx` because the restart writer builds on that module (no import cycle).
"""
from __future__ import annotations

from pathlib import Path

from dftplug.hamiltonian import Hamiltonian

from .base import CodeIO, ScfGuess, register
from .openmx import CODE, OPENMX_ORDER, Scfout, is_run_folder, read_h0, read_run, write_scfout
from .openmx_restart import write_restart_guess


def write_scf_guess(h: Hamiltonian, out_dir, template: Scfout, pao_dir=None) -> ScfGuess:
    """``<name>.scfout`` of the predicted H on the layout ``template`` (the zeroth-step run's), and the
    restart folder ``<name>_rst/`` OpenMX starts from (``scf.restart on``): the grid density of the DM on
    the template of the run's own ``<name>_rst/`` (:mod:`dftplug.parsers.openmx_restart`; PAO files from
    ``pao_dir`` or the input's DATA.PATH). A run without ``<name>_rst/`` gets the .scfout only (a note says so).
    """
    name = h.settings.get("system_name") or Path(h.provenance["files"]["scfout"]).name.split(".")[0]
    restart = write_restart_guess(h, out_dir, name, pao_dir)
    path = write_scfout(h, Path(out_dir) / f"{name}.scfout", template)
    notes = ["tools built on OpenMX's read_scfout read the .scfout"]
    if restart is None:
        notes.append(f"no {name}_rst/ written: OpenMX's own restart (scf.restart on) needs the zeroth-step "
                     f"run's {name}_rst/ as template, which {h.provenance['source']} lacks")
        return ScfGuess(CODE, [path], [], notes=notes)
    notes.append(f"copy {restart.name}/ into the SCF run's folder (next to its input)")
    return ScfGuess(CODE, [path, restart], ["scf.restart on", f"scf.restart.filename {name}"], notes=notes)


@register
class OpenMX(CodeIO):
    """OpenMX 3.9 runs: ``<name>.scfout`` (``HS.fileout on``) and ``<name>.out``; zeroth-step run
    ``scf_iter1/`` (``scf.maxIter 1``) or ``h0/overlap.scfout`` (openmx_postprocess)."""

    name = CODE
    h0_siblings = ("scf_iter1", "h0")
    writes_scf_guess = True
    guess_options = ("pao_dir",)
    detect_order = 30
    orbital_order = staticmethod(OPENMX_ORDER.__getitem__)

    is_run_folder = staticmethod(is_run_folder)

    def _read_run(self, path, matrices=("H", "S", "DM")):
        return read_run(path)

    _read_h0 = staticmethod(read_h0)

    def matrix_files(self, h):
        return dict.fromkeys(("H", "S", "DM", "H0"), str(h.provenance["files"]["scfout"]))

    def write_scf_guess(self, h, out_dir, pao_dir=None):
        return write_scf_guess(h, out_dir, template=h.file_layout, pao_dir=pao_dir)

"""Input templates of any code for ``dftplug sample``: the code's own reader picked for a run folder,
and the folder names of the stages that ``dftplug convert`` pairs.

Above the parsers (it dispatches to their ``<code>_input`` modules and asks the registry for the
zeroth-step folder), so that no parser module imports the package back.
"""
from __future__ import annotations

from pathlib import Path

from dftplug.errors import DftplugError, ParseError
from dftplug.parsers import abacus_input, code_io, openmx_input, siesta_input
from dftplug.parsers.input_template import STAGES, InputTemplate


def read_template(folder) -> InputTemplate:
    """The input template of an ABACUS, SIESTA or OpenMX run folder (inputs suffice; outputs are
    not read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ParseError(folder, "not a folder")
    for mod in (abacus_input, siesta_input, openmx_input):
        if mod.is_input_folder(folder):
            return mod.read_template(folder)
    raise ParseError(folder, "not an ABACUS (INPUT + STRU), SIESTA (<label>.fdf) or OpenMX (<name>.dat) "
                             "run folder")


def stage_folder(code: str, stage: str) -> str:
    """Folder name of ``stage`` that ``dftplug convert`` pairs: scf, and the code's first H0 sibling."""
    if stage not in STAGES:
        raise DftplugError(f"unknown stage {stage!r}")
    return "scf" if stage == "scf" else code_io(code).h0_siblings[0]

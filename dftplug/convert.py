"""Turn DFT run folders into common objects: code detection and SCF/H0 pairing.

Pairing convention (used when no H0 folder is given explicitly): an SCF run in ``<case>/scf``
is paired with the zeroth-step run in the first existing sibling ``<case>/<name>`` for ``name``
in the code's ``h0_siblings`` (ABACUS and SIESTA: ``h0``; OpenMX: ``scf_iter1``, then ``h0``).
A folder ``<case>`` that holds ``scf/`` stands for ``<case>/scf``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dftplug.errors import MismatchError, ParseError
from dftplug.hamiltonian import Hamiltonian
from dftplug.parsers import code_io, detect
from dftplug.validate import check_h0_differs


@dataclass
class RunPair:
    """One structure to convert: its SCF run and (optionally) its zeroth-step run."""

    name: str
    scf: Path
    h0: Path | None


def _scf_folder(path: Path) -> Path:
    return path / "scf" if (path / "scf").is_dir() and not _is_run(path) else path


def _is_run(path: Path) -> bool:
    try:
        detect(path)
        return True
    except ParseError:
        return False


def structure_name(scf: Path) -> str:
    """``<case>`` of ``<case>/scf``, else the folder's own name (of its absolute path: ``.`` or
    ``scf`` given from inside the folder still names the structure)."""
    scf = scf.resolve()
    return (scf.parent.name if scf.name == "scf" else scf.name) or "structure"


def find_h0_sibling(scf: Path) -> Path | None:
    """The zeroth-step run beside ``scf`` following the pairing convention, or None."""
    for name in code_io(detect(scf)).h0_siblings:
        cand = scf.parent / name
        if cand.is_dir() and cand.resolve() != scf.resolve():
            return cand
    return None


def plan_pairs(runs, h0_dirs=()) -> list[RunPair]:
    """Resolve the SCF folders and their H0 folders (explicit, or by the sibling convention)."""
    runs = [_scf_folder(Path(r)) for r in runs]
    if h0_dirs and len(h0_dirs) != len(runs):
        raise MismatchError(f"{len(h0_dirs)} --h0 folders given for {len(runs)} run folders")
    pairs, seen = [], {}
    for k, scf in enumerate(runs):
        detect(scf)  # clear error for a folder of no known code
        h0 = Path(h0_dirs[k]) if h0_dirs else find_h0_sibling(scf)
        if h0 is not None and h0.resolve() == scf.resolve():
            raise MismatchError(f"{h0}: the zeroth-step run given for {scf} is the SCF run itself")
        name = structure_name(scf)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}_{seen[name]}"
        pairs.append(RunPair(name, scf, h0))
    return pairs


def read_pair(pair: RunPair, require_h0: bool = True) -> Hamiltonian:
    """Read the SCF run and attach its H0 (structure, basis and S checked).

    A run without H0 is an error unless ``require_h0`` is False: a dataset of H0-less structures
    (or of H0 labelled as H) is a known silent failure of training pipelines.
    """
    code = detect(pair.scf)
    io = code_io(code)
    h = io.read_run(pair.scf)
    if h.H is None:
        raise ParseError(pair.scf, "the run holds no converged H")
    if pair.h0 is not None:
        h0_code = detect(pair.h0)
        if h0_code != code and code != "deeph":  # a DeepH folder may take H0 from a code's run
            raise MismatchError(f"{pair.scf} is a {code} run but its H0 folder {pair.h0} is {h0_code}")
        h.attach_h0(code_io(h0_code).read_h0(pair.h0))
        check_h0_differs(h, pair.h0)
    if h.H0 is None and require_h0:
        raise ParseError(pair.scf, "no zeroth-step run found (looked for sibling folders "
                                   f"{', '.join(io.h0_siblings) or '(none for this format)'}); "
                                   "give --h0 or --no-h0")
    return h

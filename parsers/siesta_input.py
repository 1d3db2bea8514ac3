"""SIESTA input folders (``<label>.fdf`` + pseudopotentials) as templates for new structures.

What is changed in the user's fdf (everything else is kept as written):

* structure: ``LatticeConstant 1.0 Ang``, ``%block LatticeVectors`` (Å; replaces LatticeParameters),
  ``AtomicCoordinatesFormat Ang``, ``%block AtomicCoordinatesAndAtomicSpecies`` (species index and
  anything after it kept per atom), ``NumberOfAtoms``, ``%block DM.InitSpin`` (each atom's starting
  moment follows it into the supercell); ``AtomicCoordinatesOrigin`` is dropped (the positions are
  written absolute). Other atom-indexed blocks (constraints, …) are kept as written;
* ``%block kgrid_Monkhorst_Pack``: the diagonal mesh (displacements kept), or SIESTA 5's
  ``kgrid.MonkhorstPack [n1 n2 n3]``; ``kgrid_cutoff`` needs no change;
* ``%include file`` / ``Label < file`` / ``%block Name < file`` paths pointed at the user's files
  from the new folder (a structure given that way is refused: it would not be replaced);
* the stage's keys (:data:`STAGE_SETTINGS`: the zeroth-step recipe of the README and of
  ``shared/datasets/generators/siesta_dataset.py``; ``TS.HS.Save true`` for the double-precision
  matrices ``dftplug convert`` prefers).

SIESTA 4.1 reads ``<species label>.psf`` (or ``.psml``; ``.ion`` with ``User.Basis``) from the run
folder: each new folder gets relative symbolic links to the user's files instead of copies.
The structure is read with sisl's fdf reader (all coordinate formats and units).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import ase
import numpy as np

from dftplug.errors import ParseError
from dftplug.fileio import read_text

from .input_template import (InputTemplate, KeywordFile, Syntax, fmt_rows, reference, require_files,
                             with_sites)
from .siesta import CODE

SYNTAX = Syntax(comments=("#", "!", ";"), block_start=re.compile(r"%block\s+(\S+)\s*$", re.I),
                block_end=re.compile(r"%endblock", re.I), block_open="%block {}", block_close="%endblock {}",
                fold=lambda key: re.sub(r"[._-]", "", key.lower()))
STAGE_SETTINGS = {
    "h0": {"MaxSCFIterations": "1", "SCF.DM.Tolerance": "1.0d10", "SCF.Mix": "Density",
           "SCF.H.Converge": "false", "SCF.MustConverge": "false", "TS.HS.Save": "true"},
    "scf": {"TS.HS.Save": "true"},
}
MESH = "kgrid_Monkhorst_Pack"
SINGLE_POINT = {"MD.TypeOfRun": "CG", "MD.NumCGsteps": "0", "MD.Steps": "0"}
PSEUDO_SUFFIXES = (".psf", ".psml")
_REFERENCE = re.compile(r"^(\s*%include\s+|.*<\s*)(\S+)(\s*)$", re.I)


def _fdf_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.fdf") if p.is_file())


def is_input_folder(path) -> bool:
    return bool(_fdf_files(Path(path)))


def _main_fdf(folder: Path) -> Path:
    """The run's fdf: the only one, or the one whose SystemLabel is its file name."""
    files = _fdf_files(folder)
    if len(files) > 1:
        files = [f for f in files if (m := re.search(r"^\s*SystemLabel\s+(\S+)", read_text(f), re.M | re.I))
                 and m.group(1) == f.stem]
    if len(files) != 1:
        raise ParseError(folder, "several .fdf files and not one named after its SystemLabel")
    return files[0]


@dataclass
class SiestaTemplate(InputTemplate):
    fdf_text: str = ""
    tails: list[str] | None = None

    def _fdf(self, final: Path, atoms: ase.Atoms, kmesh, stage: str) -> str:
        fdf = KeywordFile(self.fdf_text, SYNTAX, self.input_file)
        fdf.set("NumberOfAtoms", str(len(atoms)), only_if_present=True)
        fdf.set("LatticeConstant", "1.0 Ang")
        fdf.remove_block("LatticeParameters")
        fdf.set_block("LatticeVectors", fmt_rows(atoms.cell.array))
        fdf.set("AtomicCoordinatesFormat", "Ang")
        fdf.remove("AtomicCoordinatesOrigin")
        fdf.remove_block("AtomicCoordinatesOrigin")
        fdf.set_block("AtomicCoordinatesAndAtomicSpecies",
                      fmt_rows(atoms.positions, [self.tails[s] for s in atoms.arrays["site"]]))
        spins = fdf.block("DM.InitSpin")
        if spins:  # per-atom starting moments follow their atoms (rows: 1-based atom, moment, ...)
            of_site = {int(r[0]) - 1: " ".join(r[1:]) for r in spins}
            fdf.set_block("DM.InitSpin", [f"  {a + 1} {of_site[s]}" for a, s in enumerate(atoms.arrays["site"])
                                          if s in of_site])
        if kmesh is not None and fdf.block(MESH) is None:  # SIESTA 5's list form: kgrid.MonkhorstPack [5 5 5]
            fdf.set(MESH, "[" + " ".join(str(k) for k in kmesh) + "]")
        elif kmesh is not None:
            shifts = [row[3] if len(row) > 3 else "0.0" for row in fdf.block(MESH)]
            fdf.set_block(MESH, [
                "  " + " ".join(str(kmesh[i]) if i == j else "0" for j in range(3)) + f" {shifts[i]}"
                for i in range(3)])
        fdf.set_stage(STAGE_SETTINGS[stage], SINGLE_POINT)
        for k, line in enumerate(fdf.lines):
            if m := _REFERENCE.match(line):  # %include FILE, Label < FILE, %block Name < FILE
                target = Path(m.group(2))
                fdf.lines[k] = m.group(1) + reference(self.folder / target, final, target.is_absolute()) + m.group(3)
        return fdf.text()

    def write(self, dest: Path, final: Path, atoms: ase.Atoms, kmesh, stage: str) -> None:
        dest.mkdir(parents=True)
        (dest / self.input_file.name).write_text(self._fdf(final, atoms, kmesh, stage))
        for path in self.references.values():
            (dest / path.name).symlink_to(reference(path, final))


def _geometry(path: Path) -> ase.Atoms:
    from sisl.io.siesta import fdfSileSiesta

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            geom = fdfSileSiesta(str(path)).read_geometry(order=["fdf"])
    except Exception as exc:  # sisl raises many kinds on a bad fdf
        raise ParseError(path, f"cannot read the structure: {exc}") from None
    if geom is None:
        raise ParseError(path, "no structure (LatticeVectors, AtomicCoordinatesAndAtomicSpecies)")
    return ase.Atoms(numbers=np.abs(geom.atoms.Z), positions=geom.xyz, cell=geom.cell, pbc=True)


def _species_files(fdf: KeywordFile, folder: Path) -> dict[str, Path]:
    """The pseudopotential (and with User.Basis the .ion) file of every species, found or not."""
    rows = fdf.block("ChemicalSpeciesLabel")
    if not rows:
        raise ParseError(fdf.path, "no %block ChemicalSpeciesLabel")
    user_basis = (fdf.get("User.Basis", "false").split() or ["false"])[0].lower() in ("true", "t", ".true.", "yes")
    files = {}
    for row in rows:
        label, z = row[2], abs(int(row[1]))
        if z > 200:  # floating orbitals: no pseudopotential
            continue
        found = [folder / f"{label}{sfx}" for sfx in PSEUDO_SUFFIXES if (folder / f"{label}{sfx}").is_file()]
        files[f"pseudopotential of species {label} ({label}.psf or .psml)"] = (
            found[0] if found else folder / f"{label}.psf")
        if user_basis:
            files[f"basis file of species {label} (User.Basis)"] = folder / f"{label}.ion"
    return files


def _kmesh(fdf: KeywordFile) -> tuple[list[int] | None, str | None]:
    rows = fdf.block(MESH)
    if rows is None and (m := re.fullmatch(r"\[\s*(\d+)\s+(\d+)\s+(\d+)\s*\]", fdf.get(MESH, "").strip())):
        return [int(k) for k in m.groups()], None
    if rows is None:
        return None, None  # kgrid_cutoff (a length) or Γ only: nothing to scale
    try:
        m = np.array([[int(x) for x in r[:3]] for r in rows[:3]])
    except (ValueError, IndexError):
        raise ParseError(fdf.path, "malformed %block kgrid_Monkhorst_Pack") from None
    if m.shape != (3, 3) or np.count_nonzero(m - np.diag(np.diag(m))):
        return None, f"{fdf.path}: kgrid_Monkhorst_Pack is not a diagonal mesh"
    return np.diag(m).tolist(), None


def read_template(folder) -> SiestaTemplate:
    """Template of a SIESTA input folder; refuses missing pseudopotential (.ion) files."""
    folder = Path(folder)
    path = _main_fdf(folder)
    text = read_text(path)
    fdf = KeywordFile(text, SYNTAX, path)
    files = _species_files(fdf, folder)
    require_files(files, path)
    atoms = _geometry(path)
    rows = fdf.block("AtomicCoordinatesAndAtomicSpecies") or []
    if len(rows) != len(atoms):
        raise ParseError(path, f"%block AtomicCoordinatesAndAtomicSpecies has {len(rows)} atoms, "
                               f"the structure {len(atoms)} (is it in an %include file?)")
    if any(_REFERENCE.match(l) for l in fdf.lines) and not (fdf.block("LatticeVectors") or
                                                             fdf.block("LatticeParameters")):
        raise ParseError(path, "the cell is not in this file (an %include or < file?): put LatticeVectors here")
    kmesh, note = _kmesh(fdf)
    return SiestaTemplate(CODE, folder, path, with_sites(atoms), kmesh, files, STAGE_SETTINGS, note,
                          fdf_text=text, tails=[" ".join(r[3:]) for r in rows])

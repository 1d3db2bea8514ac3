"""OpenMX input folders (``<name>.dat``) as templates for new structures (``dftplug sample``).

What is changed in the user's .dat (everything else is kept as written):

* ``Atoms.Number``, ``<Atoms.SpeciesAndCoordinates`` (Å; the species and the spin columns after
  the coordinates kept per atom, atoms renumbered), ``<Atoms.UnitVectors`` (Å), both units ``Ang``;
* ``scf.Kgrid``; ``DATA.PATH`` pointed at the user's PAO/VPS folder from the new folder;
* the stage's keys (:data:`STAGE_SETTINGS`, as ``shared/datasets/generators/openmx_dataset.py``:
  the zeroth-step run ``scf_iter1`` is the same input with ``scf.maxIter 1``, forces skipped);
  ``scf.restart off`` and ``MD.Type Nomd`` where the user set them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import ase
import numpy as np

from dftplug.errors import ParseError
from dftplug.fileio import read_text

from .input_template import InputTemplate, KeywordFile, Syntax, fmt_rows, reference, require_files, with_sites
from .openmx import BOHR_TO_ANG, CODE, _element, _input_blocks

SYNTAX = Syntax(comments=("#",), block_start=re.compile(r"<(\S+)\s*$"), block_end=re.compile(r"\S+>\s*$"),
                block_open="<{}", block_close="{}>")
STAGE_SETTINGS = {"h0": {"scf.maxIter": "1", "HS.fileout": "on", "orbitalOpt.Force.Skip": "on"},
                  "scf": {"HS.fileout": "on"}}
SINGLE_POINT = {"scf.restart": "off", "MD.Type": "Nomd"}
DEFAULT_DATA_PATH = "../DFT_DATA19"  # OpenMX's default DATA.PATH


def _dat_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.dat") if p.is_file()
                  and re.search(r"<\s*Atoms\.SpeciesAndCoordinates", read_text(p), re.I))


def is_input_folder(path) -> bool:
    return bool(_dat_files(Path(path)))


@dataclass
class OpenmxTemplate(InputTemplate):
    dat_text: str = ""
    data_path: tuple[Path, bool] | None = None   # resolved DATA.PATH, given as absolute
    labels: list[str] | None = None
    tails: list[str] | None = None

    def write(self, dest: Path, final: Path, atoms: ase.Atoms, kmesh, stage: str) -> None:
        dat = KeywordFile(self.dat_text, SYNTAX, self.input_file)
        dat.set("DATA.PATH", reference(self.data_path[0], final, self.data_path[1]))
        dat.set("Atoms.Number", str(len(atoms)))
        dat.set("Atoms.SpeciesAndCoordinates.Unit", "Ang")
        sites = atoms.arrays["site"]
        rows = fmt_rows(atoms.positions, [self.tails[s] for s in sites])
        dat.set_block("Atoms.SpeciesAndCoordinates",
                      [f"  {a + 1:4d} {self.labels[s]:4s}{row}" for a, (s, row) in enumerate(zip(sites, rows))])
        dat.set("Atoms.UnitVectors.Unit", "Ang")
        dat.set_block("Atoms.UnitVectors", fmt_rows(atoms.cell.array))
        if kmesh is not None:
            dat.set("scf.Kgrid", " ".join(str(k) for k in kmesh))
        dat.set_stage(STAGE_SETTINGS[stage], SINGLE_POINT)
        dest.mkdir(parents=True)
        (dest / self.input_file.name).write_text(dat.text())


def _unit(keys: dict, key: str) -> str:
    return (keys.get(key, "ang").split() or ["ang"])[0].lower()


def read_template(folder) -> OpenmxTemplate:
    """Template of an OpenMX input folder; refuses missing PAO/VPS files under DATA.PATH."""
    folder = Path(folder)
    found = _dat_files(folder)
    if len(found) != 1:
        raise ParseError(folder, f"{len(found)} OpenMX inputs (.dat with <Atoms.SpeciesAndCoordinates) here, "
                                 "expected one")
    path = found[0]
    text = read_text(path)
    keys, blocks = _input_blocks(text)
    given = keys.get("data.path", DEFAULT_DATA_PATH)
    data = Path(given) if Path(given).is_absolute() else folder / given
    species, files = {}, {}
    for row in blocks.get("definition.of.atomic.species", []):
        label, pao, vps = row[:3]
        species[label] = _element(label, pao, vps)
        files[f"PAO file of species {label}"] = data / "PAO" / f"{pao.split('-')[0]}.pao"
        files[f"pseudopotential of species {label}"] = data / "VPS" / f"{vps}.vps"
    if not species:
        raise ParseError(path, "no <Definition.of.Atomic.Species block")
    require_files(files, path)
    try:
        cell = np.array([[float(x) for x in r[:3]] for r in blocks["atoms.unitvectors"]]).reshape(3, 3)
        rows = blocks["atoms.speciesandcoordinates"]
        labels = [r[1] for r in rows]
        xyz = np.array([[float(x) for x in r[2:5]] for r in rows]).reshape(-1, 3)
        symbols = [species[l] for l in labels]
    except KeyError as exc:
        raise ParseError(path, f"no block or undeclared species {exc}") from None
    except ValueError as exc:
        raise ParseError(path, f"malformed coordinates: {exc}") from None
    if _unit(keys, "atoms.unitvectors.unit") == "au":
        cell = cell * BOHR_TO_ANG
    pos_unit = _unit(keys, "atoms.speciesandcoordinates.unit")
    xyz = xyz @ cell if pos_unit == "frac" else xyz * (BOHR_TO_ANG if pos_unit == "au" else 1.0)
    kmesh = [int(x) for x in keys["scf.kgrid"].split()[:3]] if "scf.kgrid" in keys else None
    atoms = ase.Atoms(symbols, positions=xyz, cell=cell, pbc=True)
    return OpenmxTemplate(CODE, folder, path, with_sites(atoms), kmesh, files, STAGE_SETTINGS,
                          dat_text=text, data_path=(data, Path(given).is_absolute()), labels=labels,
                          tails=[" ".join(r[5:]) for r in rows])

"""ABACUS input folders (INPUT, STRU, KPT) as templates for new structures (``dftplug sample``).

What is changed in the user's files (everything else is kept as written):

* STRU: ``LATTICE_VECTORS`` (in units of the user's ``LATTICE_CONSTANT``) and ``ATOMIC_POSITIONS``
  (in the user's coordinate mode; per-atom flags and moments kept, repeated in a supercell);
* KPT: the Monkhorst–Pack/Gamma mesh (``kspacing`` and ``gamma_only`` runs need no change);
* INPUT: ``pseudo_dir``/``orbital_dir`` pointed at the user's files from the new folder, and the
  stage's keys (:data:`STAGE_SETTINGS`, the zeroth-step recipe of ABACUS v3.11 in the README and
  ``shared/datasets/generators/abacus_supercell.py``). ``init_chg atomic`` in both: a restart file
  of the input structure is no starting point for another one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ase
import numpy as np

from dftplug.errors import ParseError
from dftplug.fileio import read_text

from .abacus import BOHR_TO_ANG, CODE, read_input, read_stru
from .input_template import InputTemplate, KeywordFile, Syntax, fmt_rows, reference, require_files, with_sites

INPUT_SYNTAX = Syntax(comments=("#", "//"))
STRU_SECTIONS = {"ATOMIC_SPECIES", "NUMERICAL_ORBITAL", "LATTICE_CONSTANT", "LATTICE_VECTORS",
                 "ATOMIC_POSITIONS", "LATTICE_PARAMETERS", "NUMERICAL_DESCRIPTOR", "ABFS_ORBITAL"}
_COMMON = {"calculation": "scf", "init_chg": "atomic", "out_mat_hs2": "1"}
STAGE_SETTINGS = {"h0": {**_COMMON, "scf_nmax": "1", "scf_thr": "1e10"}, "scf": dict(_COMMON)}
_POSITION_UNIT = {"cartesian_angstrom": 1.0, "cartesian_au": BOHR_TO_ANG, "cartesian_bohr": BOHR_TO_ANG}


def is_input_folder(path) -> bool:
    path = Path(path)
    return (path / "INPUT").is_file() and (path / "STRU").is_file()


def _sections(text: str) -> list[tuple[str | None, list[str]]]:
    """STRU as (heading or None for the preamble, raw lines up to the next heading)."""
    out: list[tuple[str | None, list[str]]] = [(None, [])]
    for raw in text.splitlines():
        line = raw.split("#")[0].split("//")[0].strip()
        if line.upper() in STRU_SECTIONS:
            out.append((line.upper(), []))
        else:
            out[-1][1].append(raw)
    return out


def _code_lines(lines: list[str]) -> list[str]:
    return [s for s in (l.split("#")[0].split("//")[0].strip() for l in lines) if s]


def _position_groups(lines: list[str]) -> tuple[str, list[tuple[str, str, list[str]]]]:
    """ATOMIC_POSITIONS: (mode, [(species label, magnetisation line, per-atom tails)])."""
    rows = _code_lines(lines)
    groups, k = [], 1
    while k < len(rows):
        nat = int(rows[k + 2].split()[0])
        groups.append((rows[k].split()[0], rows[k + 1], [" ".join(r.split()[3:]) for r in rows[k + 3:k + 3 + nat]]))
        k += 3 + nat
    return rows[0], groups


@dataclass
class AbacusTemplate(InputTemplate):
    input_text: str = ""
    stru_text: str = ""
    kpt_text: str | None = None
    alat: float = 1.0
    dirs: dict | None = None     # "pseudo_dir"/"orbital_dir" -> (resolved folder, given as absolute)

    def _stru(self, atoms: ase.Atoms) -> str:
        out = []
        for heading, lines in _sections(self.stru_text):
            if heading == "LATTICE_VECTORS":
                lines = fmt_rows(atoms.cell.array / self.alat) + [""]
            elif heading == "ATOMIC_POSITIONS":
                lines = self._positions(lines, atoms)
            out += ([heading] if heading else []) + lines
        return "\n".join(out) + "\n"

    def _positions(self, lines: list[str], atoms: ase.Atoms) -> list[str]:
        mode, groups = _position_groups(lines)
        key = mode.lower()
        if key == "direct":
            coords = atoms.get_scaled_positions(wrap=False)
        elif key == "cartesian":
            coords = atoms.positions / self.alat
        else:
            coords = atoms.positions / _POSITION_UNIT[key]
        label_of = [label for label, _, tails in groups for _ in tails]
        tail_of = [t for _, _, tails in groups for t in tails]
        sites = atoms.arrays["site"]
        out = [mode, ""]
        for label, mag, _ in groups:
            mine = [a for a, s in enumerate(sites) if label_of[s] == label]
            out += [label, mag, str(len(mine))] + fmt_rows(coords[mine], [tail_of[sites[a]] for a in mine]) + [""]
        return out

    def _input(self, final: Path, stage: str) -> str:
        inp = KeywordFile(self.input_text, INPUT_SYNTAX, self.folder / "INPUT")
        for key, (folder, absolute) in self.dirs.items():
            inp.set(key, reference(folder, final, absolute))
        inp.set("stru_file", "STRU", only_if_present=True)
        inp.set("kpoint_file", "KPT", only_if_present=True)
        for key, value in STAGE_SETTINGS[stage].items():
            inp.set(key, value)
        return inp.text()

    def _kpt(self, kmesh) -> str:
        lines = self.kpt_text.splitlines()
        shift = lines[3].split()[3:6]
        lines[3] = " ".join(str(k) for k in kmesh) + (" " + " ".join(shift) if shift else "")
        return "\n".join(lines) + "\n"

    def write(self, dest: Path, final: Path, atoms: ase.Atoms, kmesh, stage: str) -> None:
        dest.mkdir(parents=True)
        (dest / "INPUT").write_text(self._input(final, stage))
        (dest / "STRU").write_text(self._stru(atoms))
        if self.kpt_text is not None:
            (dest / "KPT").write_text(self.kpt_text if kmesh is None else self._kpt(kmesh))


def _kpoints(folder: Path, params: dict) -> tuple[str | None, list[int] | None, str | None]:
    """(KPT text, its mesh or None, why there is no mesh to scale)."""
    path = folder / params.get("kpoint_file", "KPT")
    if params.get("gamma_only", "0") == "1" or float(params.get("kspacing", "0").split()[0]) > 0:
        return (read_text(path) if path.is_file() else None), None, None
    if not path.is_file():
        raise ParseError(path, "missing: the INPUT sets neither kspacing nor gamma_only")
    text = read_text(path)
    rows = [l.split() for l in text.splitlines()]
    try:
        if int(rows[1][0]) != 0:
            return text, None, f"{path} lists k-points explicitly"
        if rows[2][0].lower() not in ("gamma", "mp", "monkhorst-pack"):
            raise ValueError(f"unknown mesh type {rows[2][0]}")
        return text, [int(x) for x in rows[3][:3]], None
    except (IndexError, ValueError) as exc:
        raise ParseError(path, f"malformed KPT: {exc}") from None


def read_template(folder) -> AbacusTemplate:
    """Template of an ABACUS LCAO input folder; refuses missing pseudopotential/orbital files."""
    folder = Path(folder)
    input_path = folder / "INPUT"
    input_text = read_text(input_path)
    params = read_input(input_path)
    if params.get("basis_type", "pw").lower() != "lcao":
        raise ParseError(input_path, "basis_type is not lcao: dftplug needs numerical-atomic-orbital runs")
    stru_path = folder / params.get("stru_file", "STRU")
    atoms, orbitals, _ = read_stru(stru_path)
    stru_text = read_text(stru_path)
    sections = dict(_sections(stru_text))
    dirs, files = {}, {}
    for key in ("pseudo_dir", "orbital_dir"):
        given = params.get(key, "").strip()
        dirs[key] = ((folder / given) if given else folder, Path(given).is_absolute())
    for row in _code_lines(sections["ATOMIC_SPECIES"]):
        tok = row.split()
        if len(tok) < 3:
            raise ParseError(stru_path, f"ATOMIC_SPECIES line {row!r} names no pseudopotential file")
        files[f"pseudopotential of {tok[0]}"] = dirs["pseudo_dir"][0] / tok[2]
    if not orbitals:
        raise ParseError(stru_path, "no NUMERICAL_ORBITAL section: an LCAO run needs its orbital files")
    for label, orb in orbitals.items():
        files[f"orbital file of {label}"] = dirs["orbital_dir"][0] / orb
    require_files(files, stru_path)
    kpt_text, kmesh, note = _kpoints(folder, params)
    alat = float(_code_lines(sections["LATTICE_CONSTANT"])[0].split()[0]) * BOHR_TO_ANG
    mode, _ = _position_groups(sections["ATOMIC_POSITIONS"])
    if mode.lower() not in ("direct", "cartesian", *_POSITION_UNIT):
        raise ParseError(stru_path, f"unsupported ATOMIC_POSITIONS mode {mode!r}")
    return AbacusTemplate(CODE, folder, input_path, with_sites(atoms), kmesh, files, STAGE_SETTINGS, note,
                          input_text=input_text, stru_text=stru_text, kpt_text=kpt_text, alat=alat, dirs=dirs)

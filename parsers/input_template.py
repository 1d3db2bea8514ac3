"""A code's own input files as a template for new runs of other structures (``dftplug sample``).

Every code module ``<code>_input.py`` reads the user's input folder into an :class:`InputTemplate`
(structure as ``ase.Atoms`` in Å with the per-atom array ``"site"`` = index of the atom in the input,
the k-mesh, the pseudopotential/orbital files it names, checked to exist) and writes the same input
for another structure: every user setting kept, only the structure, the k-mesh, the file references
and the settings of the run's *stage* changed:

* ``"h0"``  — the zeroth-step run (H[ρ_atomic], written in the code's H0 sibling folder of
  ``dftplug convert``: ``h0/``, OpenMX ``scf_iter1/``);
* ``"scf"`` — the converged run, matrices written.

Keyword files (ABACUS INPUT, SIESTA fdf, OpenMX dat) are edited line by line with
:class:`KeywordFile`, so comments, order and spelling of the user's file survive.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ase
import numpy as np

from dftplug.errors import ParseError

STAGES = ("h0", "scf")


# ============================================================================ keyword files
@dataclass(frozen=True)
class Syntax:
    """How a keyword file spells comments, blocks and keys."""

    comments: tuple[str, ...]
    block_start: re.Pattern | None = None   # group 1: the block's name
    block_end: re.Pattern | None = None
    block_open: str = ""                    # format of the opening line, {} = name
    block_close: str = ""
    fold: Callable[[str], str] = str.lower  # keys that compare equal after folding are the same key


class KeywordFile:
    """Lines of a ``key value`` input file with blocks, edited in place.

    ``set`` replaces the first occurrence of a key (keeping its spelling and indentation), drops
    later duplicates and appends a missing key at the end; blocks are replaced where they stand.
    """

    def __init__(self, text: str, syntax: Syntax, path):
        self.lines = text.splitlines()
        self.syntax = syntax
        self.path = Path(path)

    def _code(self, line: str) -> str:
        for c in self.syntax.comments:
            line = line.split(c)[0]
        return line.strip()

    def _scan(self):
        """(line index, key as written, value, block name or None) of every non-blank line outside
        blocks, and (index, None, None, name) for block opening lines."""
        inside = None
        for i, raw in enumerate(self.lines):
            line = self._code(raw)
            if not line:
                continue
            if inside is not None:
                if self.syntax.block_end.match(line):
                    inside = None
                continue
            if self.syntax.block_start is not None and (m := self.syntax.block_start.match(line)):
                inside = m.group(1)
                yield i, None, None, inside
                continue
            parts = line.split(None, 1)
            yield i, parts[0], parts[1] if len(parts) > 1 else "", None

    def _key_lines(self, key: str) -> list[int]:
        want = self.syntax.fold(key)
        return [i for i, k, _, _ in self._scan() if k is not None and self.syntax.fold(k) == want]

    def get(self, key: str, default=None):
        """Value (text after the key, comments dropped) of the first occurrence of ``key``."""
        return self.keys().get(self.syntax.fold(key), default)

    def keys(self) -> dict[str, str]:
        """Folded key -> value of every key outside blocks (the first occurrence)."""
        out: dict[str, str] = {}
        for _, k, v, _ in self._scan():
            if k is not None:
                out.setdefault(self.syntax.fold(k), v)
        return out

    def blocks(self) -> dict[str, list[list[str]]]:
        """Folded block name -> token rows of every block."""
        return {self.syntax.fold(b): self.block(b) for _, _, _, b in self._scan() if b is not None}

    def set(self, key: str, value, only_if_present: bool = False) -> None:
        found = self._key_lines(key)
        if not found:
            if not only_if_present:
                self.lines.append(f"{key:<20s} {value}")
            return
        first = found[0]
        m = re.match(r"^(\s*)(\S+)(\s*)", self.lines[first])
        sep = m.group(3) or " "
        self.lines[first] = f"{m.group(1)}{m.group(2)}{sep}{value}"
        for i in reversed(found[1:]):
            del self.lines[i]

    def remove(self, key: str) -> None:
        for i in reversed(self._key_lines(key)):
            del self.lines[i]

    def _block_span(self, name: str) -> tuple[int, int] | None:
        """Line indices of the opening and closing line of block ``name``."""
        want = self.syntax.fold(name)
        for i, _, _, block in self._scan():
            if block is not None and self.syntax.fold(block) == want:
                for j in range(i + 1, len(self.lines)):
                    if self.syntax.block_end.match(self._code(self.lines[j])):
                        return i, j
                raise ParseError(self.path, f"block {block} is never closed")
        return None

    def block(self, name: str) -> list[list[str]] | None:
        """Token rows of block ``name`` (comments and blank lines dropped), or None."""
        span = self._block_span(name)
        if span is None:
            return None
        rows = [self._code(l) for l in self.lines[span[0] + 1:span[1]]]
        return [r.split() for r in rows if r]

    def set_block(self, name: str, rows: list[str]) -> None:
        """Replace block ``name`` by ``rows`` where it stands (appended when absent)."""
        span = self._block_span(name)
        if span is not None:  # keep the user's spelling of the name
            name = self.syntax.block_start.match(self._code(self.lines[span[0]])).group(1)
        new = [self.syntax.block_open.format(name), *rows, self.syntax.block_close.format(name)]
        if span is None:
            self.lines += new
        else:
            self.lines[span[0]:span[1] + 1] = new

    def remove_block(self, name: str) -> None:
        span = self._block_span(name)
        if span is not None:
            del self.lines[span[0]:span[1] + 1]

    def set_stage(self, settings: dict[str, str], single_point: dict[str, str]) -> None:
        """Set a stage's keys, and the ``single_point`` keys where the user set them (a relaxation
        or MD input becomes one SCF)."""
        for key, value in settings.items():
            self.set(key, value)
        for key, value in single_point.items():
            self.set(key, value, only_if_present=True)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# ============================================================================ references
def reference(target: Path, final_folder: Path, absolute: bool = False) -> str:
    """How a run in ``final_folder`` names ``target``: relative to that folder when the input named
    it relatively and both lie under one top-level folder (the tree moves as a whole), else absolute."""
    target, final_folder = os.path.abspath(target), os.path.abspath(final_folder)
    common = os.path.commonpath([target, final_folder])
    if absolute or common == Path(common).anchor:
        return target
    return os.path.relpath(target, final_folder)


def require_files(files: dict[str, Path], named_in: Path) -> None:
    """Refuse (ParseError naming the first missing file) unless every file ``named_in`` the input exists."""
    for what, path in files.items():
        if not Path(path).is_file():
            raise ParseError(path, f"{what} named in {named_in} is missing")


def fmt_rows(values: np.ndarray, tails=None) -> list[str]:
    """Rows of three coordinates at full double precision, each followed by its tail text."""
    tails = [""] * len(values) if tails is None else tails
    return ["  " + " ".join(f"{x:22.15f}" for x in row) + (f"  {t}" if t else "")
            for row, t in zip(values, tails)]


# ============================================================================ the template
@dataclass
class InputTemplate:
    """A run folder's input, ready to be written for other structures (see the module docstring).

    ``atoms``: the input structure (Å) with ``atoms.arrays["site"]`` = index of each atom in the
    input file; ``kmesh``: the Monkhorst–Pack mesh to scale for a supercell, or None when the
    k-sampling is not a mesh in lattice units (then ``kmesh_note`` says why it cannot or need not
    be scaled); ``references``: the pseudopotential/orbital files the input names (all exist);
    ``stage_settings``: the keys each stage sets, for the manifest.
    """

    code: str
    folder: Path
    input_file: Path
    atoms: ase.Atoms
    kmesh: list[int] | None
    references: dict[str, Path]
    stage_settings: dict[str, dict[str, str]]
    kmesh_note: str | None = None

    def write(self, dest: Path, final: Path, atoms: ase.Atoms, kmesh: list[int] | None, stage: str) -> None:
        """Write the input for ``atoms`` into ``dest`` (references relative to ``final``, where
        the folder will end up); ``kmesh`` None keeps the input's k-sampling."""
        raise NotImplementedError


def with_sites(atoms: ase.Atoms) -> ase.Atoms:
    atoms.new_array("site", np.arange(len(atoms)))
    return atoms

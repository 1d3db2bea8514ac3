"""Read speed of the OpenMX .scfout reader on a big synthetic file.

A real fixture is tiled into ``copies`` non-interacting replicas (atom k of copy c becomes atom
k + c*N with the same neighbours, cells and blocks), written with the module's own writer, then read
back three ways: raw bytes, :func:`read_scfout_raw` (binary layout only) and :func:`read_scfout`
(the common object: eV, internal orbital order, sorted block pattern). Prints MB/s and the ratio of
each to the raw read of the same bytes.

    python scripts/bench_openmx_read.py                     # h2o tiled to 10,002 atoms (~200 MB)
    python scripts/bench_openmx_read.py --case si_diamond --atoms 200
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dftplug.parsers import openmx as om

ROOT = Path(__file__).resolve().parents[1]


def _tiled_input(scf: om.Scfout, copies: int) -> bytes:
    """The stored input text with Atoms.Number and the coordinate block replicated for the copies."""
    lines = scf.input_text().splitlines(keepends=True)
    out, inside, block = [], False, []
    for line in lines:
        key = line.strip().lower()
        if key.startswith("atoms.number"):
            line = f"Atoms.Number  {scf.natoms * copies}\n"
        if key.startswith("<atoms.speciesandcoordinates"):
            inside = True
        elif key.startswith("atoms.speciesandcoordinates>"):
            inside = False
            out += [f"{c * scf.natoms + int(b.split()[0])} {' '.join(b.split()[1:])}\n"
                    for c in range(copies) for b in block]
        elif inside:
            block.append(line)
            continue
        out.append(line)
    return b"".join(line.encode("latin-1")[:255].ljust(256, b"\0") for line in out)


def tile(scf: om.Scfout, copies: int) -> om.Scfout:
    """``copies`` replicas of ``scf`` in one file (same layout rules as OpenMX's)."""
    n = scf.natoms
    shift = np.zeros((copies, 1, 4))
    shift[:, 0, 3] = 50.0 * np.arange(copies)  # Bohr, keeps the replicas apart
    trailer = scf.trailer.copy()
    trailer[8] *= copies
    return replace(scf, tno=np.tile(scf.tno, copies), fnan=np.tile(scf.fnan, copies),
                   natn=(scf.natn[None] + n * np.arange(copies)[:, None]).ravel(),
                   ncn=np.tile(scf.ncn, copies), gxyz=(scf.gxyz[None] + shift).reshape(-1, 4),
                   blocks=np.tile(scf.blocks, (1, copies)), trailer=trailer,
                   input_lines=_tiled_input(scf, copies))


def _best_of(func, repeat: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="h2o", help="fixture under fixtures/openmx/<case>/scf")
    ap.add_argument("--atoms", type=int, default=10_000, help="atoms wanted (rounded up to whole copies)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    src = om.read_scfout_raw(om.find_scfout(ROOT / "fixtures" / "openmx" / args.case / "scf"))
    copies = -(-args.atoms // src.natoms)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.scfout"
        t_write = time.perf_counter()
        tile(src, copies).write(path)
        t_write = time.perf_counter() - t_write
        mb = path.stat().st_size / 1e6
        print(f"{args.case} x {copies} = {src.natoms * copies} atoms, {mb:.0f} MB (written in {t_write:.2f} s)")
        t_raw, data = _best_of(path.read_bytes, args.repeat)
        t_layout, _ = _best_of(lambda: om.read_scfout_raw(path), args.repeat)
        t_full, h = _best_of(lambda: om.read_scfout(path), args.repeat)
        assert h.natoms == src.natoms * copies and len(data) == path.stat().st_size
        for label, t in (("raw bytes", t_raw), ("read_scfout_raw (layout)", t_layout),
                         ("read_scfout (common object)", t_full)):
            print(f"  {label:30s} {t:7.3f} s  {mb / t:8.0f} MB/s  {t / t_raw:6.1f} x raw")


if __name__ == "__main__":
    main()

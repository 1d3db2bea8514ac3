"""The DFT codes' own band files, k-points and eigenvalues, read for the comparisons in the tests.

ABACUS: KPT in Line mode and band.txt / bands{1,2}.txt (v3.11) or BANDS_{1,2}.dat (v3.8.1), eV on
ABACUS's absolute scale (the scale of its H(R)). SIESTA: BandLines of the .fdf, ``.bands``, ``.EIG``
and ``.KP``, eV on SIESTA's raw scale (that of its H; line 1 of .bands and .EIG is E_F). OpenMX:
``.Band``, Hartree on the scale of its H. Files may be ``.xz``. The comparison itself is
:func:`dftplug.bands.max_band_difference`.
"""
import re
from pathlib import Path

import numpy as np

from dftplug.bands import line_kpoints
from dftplug.fileio import read_text
from dftplug.parsers.siesta import BOHR_TO_ANG


def abacus_line_path(kpt_file):
    """(kpts (nk, 3) reduced, {label: vertex}) of a KPT file in Line mode (labels from '# X')."""
    lines = Path(kpt_file).read_text().splitlines()
    if lines[2].strip().lower() != "line":
        raise ValueError(f"{kpt_file}: not a Line-mode KPT file")
    vertices, counts, special = [], [], {}
    for line in lines[3:3 + int(lines[1].split()[0])]:
        values, _, label = line.partition("#")
        tok = values.split()
        vertices.append([float(x) for x in tok[:3]])
        counts.append(int(tok[3]))
        if label.strip():
            special[label.strip()] = np.array(vertices[-1])
    return line_kpoints(vertices, counts), special


def abacus_bands(out_dir) -> np.ndarray:
    """Band energies (nspin, nk, nb) in eV from an ABACUS nscf ``OUT.<suffix>`` folder."""
    out_dir = Path(out_dir)
    for names in (["band.txt"], ["bands1.txt", "bands2.txt"], ["BANDS_1.dat", "BANDS_2.dat"]):
        files = [out_dir / n for n in names if (out_dir / n).is_file()]
        if files:
            return np.stack([np.loadtxt(f)[:, 2:] for f in files])
    raise FileNotFoundError(f"no ABACUS band file in {out_dir}")


def siesta_band_lines(fdf) -> np.ndarray:
    """k-points (nk, 3) reduced of a ``BandLines`` block as SIESTA samples them: the first vertex, then
    n points up to and including each next vertex. BandLinesScale ReciprocalLatticeVectors, or pi/a
    (Cartesian k = pi/a v, so reduced k_i = L_i . v / 2 with L the LatticeVectors block in units of a)."""
    text = read_text(fdf)
    scale = re.search(r"^\s*BandLinesScale\s+(\S+)", text, re.M | re.I)
    scale = scale.group(1).lower() if scale else "pi/a"  # SIESTA's default
    if scale not in ("reciprocallatticevectors", "pi/a"):
        raise ValueError(f"{fdf}: BandLinesScale {scale} not supported")
    block = re.search(r"%block BandLines\n(.*?)%endblock", text, re.S | re.I).group(1)
    rows = [line.split() for line in block.splitlines() if line.strip()]
    vertices = np.array([[float(x) for x in r[1:4]] for r in rows])
    if scale == "pi/a":
        lat = re.search(r"%block LatticeVectors\n(.*?)%endblock", text, re.S | re.I)
        vectors = np.array([[float(x) for x in l.split()[:3]] for l in lat.group(1).splitlines() if l.strip()])
        vertices = vertices @ vectors.T / 2
    return line_kpoints(vertices, [int(r[0]) for r in rows[1:]] + [1])


def _siesta_table(path, header_lines: int, head_at: int):
    """(E_F, (nch, nk, nb) eV) of a SIESTA .bands / .EIG: E_F on line 1, header lines holding
    nbands, nspin, nk from token ``head_at``, then per k one leading column and nb·nch energies
    (wrapped lines; trailing label lines ignored). nch = nspin for nspin 1, 2; spin-orbit / non-collinear
    runs (nspin 4, 8) print one list of nb = 2 no spinor levels."""
    lines = read_text(path).splitlines()
    nb, nspin, nk = (int(x) for x in " ".join(lines[1:1 + header_lines]).split()[head_at:head_at + 3])
    nch = nspin if nspin <= 2 else 1
    tokens = " ".join(lines[1 + header_lines:]).split()[:nk * (1 + nb * nch)]
    values = np.array(tokens, float).reshape(nk, 1 + nb * nch)[:, 1:]
    return float(lines[0].split()[0]), values.reshape(nk, nch, nb).transpose(1, 0, 2)


def siesta_bands(path) -> np.ndarray:
    """Energies (nch, nk, nb) in eV of a SIESTA ``.bands`` file (as printed, not shifted)."""
    return _siesta_table(path, 3, 4)[1]


def siesta_eig(path) -> tuple[float, np.ndarray]:
    """(E_F, energies (nch, nk, nb)) in eV of a SIESTA ``.EIG`` file, as printed."""
    return _siesta_table(path, 1, 0)


def siesta_kpoints(kp_file, cell, bohr_ang: float = BOHR_TO_ANG) -> np.ndarray:
    """SIESTA's k-points of ``<label>.KP`` (Cartesian, 1/Bohr) in reduced coordinates, for ``cell`` (Å);
    ``bohr_ang``: the run's Bohr (SIESTA 4 by default, ``h.settings["siesta_units"]["bohr_Ang"]``)."""
    rows = [line.split() for line in read_text(kp_file).splitlines()[1:] if line.strip()]
    kcart = np.array([[float(x) for x in r[1:4]] for r in rows])
    return kcart @ (np.asarray(cell) / bohr_ang).T / (2 * np.pi)


def openmx_band_file(path) -> tuple[np.ndarray, np.ndarray]:
    """OpenMX ``.Band``: k-points (nk, 3) reduced and energies (nspin, nk, nb) in Hartree."""
    lines = read_text(path).split("\n")
    nspin = int(lines[0].split()[1]) + 1
    p = 3 + int(lines[2])
    kpts, eig = [], []
    while p < len(lines) and lines[p].strip():
        kpts.append([float(x) for x in lines[p].split()[1:4]])
        eig.append([[float(x) for x in lines[p + 1 + 2 * s].split()] for s in range(nspin)])  # k line, values
        p += 2 * nspin
    return np.array(kpts), np.array(eig).transpose(1, 0, 2)

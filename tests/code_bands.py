"""The DFT codes' own band files and k-paths, read for the comparisons in the toolkit tests.

Only ABACUS so far: KPT in Line mode and band.txt / bands{1,2}.txt (v3.11) or BANDS_{1,2}.dat
(v3.8.1), energies in eV on ABACUS's absolute scale (the scale of its H(R)). SIESTA and OpenMX
readers go here once their parsers land; the comparison itself is
:func:`dftplug.bands.max_band_difference`.
"""
from pathlib import Path

import numpy as np

from dftplug.bands import line_kpoints


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

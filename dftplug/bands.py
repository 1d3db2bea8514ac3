"""Band structures along k-paths: dense for small cells, shift-invert near E_F for large ones.

A path is an :class:`ase.dft.kpoints.BandPath` (k in reduced coordinates): the standard
high-symmetry path of the cell, one named by the user (``"GXL"``), or explicit k-points such
as the line a DFT code used (:func:`line_kpoints` builds those from vertices and counts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.dft.kpoints import BandPath
from tqdm import tqdm

from .errors import DftplugError
from .hamiltonian import Hamiltonian
from .kspace import OVERLAP_TOLERANCE, BlochSum, eigenvalues_near, solve_at


@dataclass
class BandStructure:
    """Energies along a path.

    path : BandPath            k-points (nk, 3) reduced, labels of the special points.
    energies : (nspin, nk, nb) eV, ascending per k; NaN where an overlap direction was dropped.
    fermi_level : float | None eV, same reference as ``energies``.
    dropped : (nk,) int        overlap directions dropped per k-point (0 for a sane S).
    complete : bool            every band from the lowest up (False: a window near E_F).
    """

    path: BandPath
    energies: np.ndarray
    fermi_level: float | None
    dropped: np.ndarray
    complete: bool = True

    def axis(self):
        """(x (nk,), special x (m,), labels (m,)): path length in 1/Å (ase, without 2π)."""
        return self.path.get_linear_kpoint_axis()

    def gap(self) -> dict:
        """Band edges around E_F over all spins and k: VBM, CBM, gap (0 for a metal), direct?

        Metal: the number of states below E_F changes along the path in some spin channel
        (unknown, None, for a window of bands; the gap is then CBM − VBM of the window)."""
        if self.fermi_level is None:
            raise DftplugError("the band gap needs a Fermi level")
        e = self.energies
        below = np.where(e <= self.fermi_level, e, -np.inf)
        above = np.where(e > self.fermi_level, e, np.inf)
        kv = np.unravel_index(np.argmax(below), e.shape)[1]
        kc = np.unravel_index(np.argmin(above), e.shape)[1]
        counts = np.sum(e <= self.fermi_level, axis=-1)                      # (nspin, nk)
        metal = bool(np.any(counts != counts[:, :1])) if self.complete else None
        vbm, cbm = float(below.max()), float(above.min())
        return {"vbm_eV": vbm, "cbm_eV": cbm, "gap_eV": 0.0 if metal else cbm - vbm,
                "direct": bool(kv == kc) and not metal, "metal": metal}


def standard_path(h: Hamiltonian, path: str | None = None, npoints: int = 200) -> BandPath:
    """High-symmetry path of the cell (ase's special points); ``path`` e.g. ``"GXL"`` or
    ``"GXWK,GL"`` picks the segments, default the standard path of the lattice."""
    try:
        return h.atoms.cell.bandpath(path, npoints=npoints, pbc=h.atoms.pbc)
    except (ValueError, KeyError) as exc:
        raise DftplugError(f"band path {path!r}: {exc}") from None


def line_kpoints(vertices, counts) -> np.ndarray:
    """k-points of a line-mode path: ``counts[i]`` points from vertex i towards vertex i+1
    (that one excluded), then the last vertex once. vertices (m, 3) reduced -> (Σ counts[:-1] + 1, 3)."""
    v = np.asarray(vertices, dtype=float)
    segments = [v[i] + np.outer(np.arange(c) / c, v[i + 1] - v[i]) for i, c in enumerate(counts[:-1])]
    return np.concatenate(segments + [v[-1:]])


def explicit_path(h: Hamiltonian, kpts, special: dict[str, np.ndarray] | None = None) -> BandPath:
    """BandPath through given k-points (e.g. the code's own); ``special`` names some of them."""
    special = special or {}
    kpts = np.asarray(kpts, dtype=float)
    names = [next((n for n, v in special.items() if np.allclose(k, v)), None) for k in kpts]
    path = "".join(n for n in names if n)
    return BandPath(h.atoms.cell, kpts=kpts, special_points=special, path=path)


def band_structure(h: Hamiltonian, path: BandPath, tolerance: float = OVERLAP_TOLERANCE,
                   progress: bool = False) -> BandStructure:
    """All bands of ``h.H`` (every spin) along ``path`` by dense diagonalisation."""
    sol = solve_at(h.H, h.S, path.kpts, vectors=False, tolerance=tolerance, progress=progress)
    return BandStructure(path, sol.energies, h.fermi_level, sol.dropped)


def bands_near(h: Hamiltonian, path: BandPath, count: int = 8, energy: float | None = None,
               progress: bool = False) -> BandStructure:
    """The ``count`` bands nearest ``energy`` (default E_F) at each k, sparse shift-invert.

    For large cells: never forms a dense nao x nao matrix. No overlap filtering here (the LU
    of H − E·S sees the full S); use :func:`band_structure` where S may be ill-conditioned.
    """
    energy = h.fermi_level if energy is None else energy
    if energy is None:
        raise DftplugError("bands near E_F need a Fermi level or an explicit energy")
    hsum, ssum = BlochSum(h.H), BlochSum(h.S)
    out = np.empty((h.H.nspin, len(path.kpts), count))
    for ik, k in enumerate(tqdm(path.kpts, disable=not progress, desc="k-points")):
        sk = ssum.sparse(k)
        for s in range(h.H.nspin):
            out[s, ik] = eigenvalues_near(hsum.sparse(k, s), sk, energy, count)
    return BandStructure(path, out, h.fermi_level, np.zeros(len(path.kpts), dtype=np.int64), complete=False)


def max_band_difference(ours: np.ndarray, reference: np.ndarray, shift: float = 0.0) -> float:
    """max |ε_ours − (ε_ref + shift)| over the bands both hold (eV); arrays (..., nk, nb).

    ``shift`` maps the reference's energy zero onto ours (e.g. + E_F when a code prints
    ε − E_F); the lowest min(nb) bands are compared."""
    nb = min(ours.shape[-1], reference.shape[-1])
    return float(np.nanmax(np.abs(ours[..., :nb] - (reference[..., :nb] + shift))))

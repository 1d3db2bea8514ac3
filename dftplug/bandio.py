"""Band-structure and DOS output: text tables, HDF5 and PNG plots (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

import h5py
import matplotlib
import numpy as np

from .bands import BandStructure
from .dos import DensityOfStates
from .fileio import atomic_path, atomic_write

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

_PRETTY = {"G": "Γ"}
SPIN_STYLE = ({"color": "C0", "ls": "-"}, {"color": "C3", "ls": "--"})


def _ticks(bs: BandStructure):
    """Special-point positions and labels, coinciding points (path breaks) joined as 'K|U'."""
    _, xs, labels = bs.axis()
    ticks: list[list] = []
    for x, lab in zip(xs, labels):
        lab = _PRETTY.get(lab, lab)
        if ticks and np.isclose(ticks[-1][0], x):
            ticks[-1][1] += "|" + lab if lab != ticks[-1][1] else ""
        else:
            ticks.append([float(x), lab])
    return [t[0] for t in ticks], [t[1] for t in ticks]


def write_bands(bs: BandStructure, outdir) -> list[Path]:
    """``bands.txt`` (k index, x in 1/Å, k reduced, energies in eV: spin after spin) and
    ``bands.h5`` (kpts, x, energies (nspin, nk, nb), special x/labels, fermi_level)."""
    outdir = Path(outdir)
    x, _, _ = bs.axis()
    xt, lt = _ticks(bs)
    nspin, nk, nb = bs.energies.shape
    table = np.column_stack([np.arange(1, nk + 1), x, bs.path.kpts,
                             bs.energies.transpose(1, 0, 2).reshape(nk, nspin * nb)])
    head = (f"E_F = {bs.fermi_level} eV; nspin {nspin}, {nb} bands per spin; special points "
            + " ".join(f"{lab}@{v:.6f}" for v, lab in zip(xt, lt))
            + "\ncolumns: k index, path length (1/Angstrom), k1 k2 k3 (reduced), energies (eV), spin after spin")
    txt, h5 = outdir / "bands.txt", outdir / "bands.h5"
    with atomic_write(txt, "w") as fh:
        np.savetxt(fh, table, fmt=["%d"] + ["%.8f"] * 4 + ["%.8f"] * (nspin * nb), header=head)
    with atomic_path(h5) as tmp, h5py.File(tmp, "w") as f:
        f["kpts"], f["x"], f["energies"] = bs.path.kpts, x, bs.energies
        f["special_x"] = xt
        f.create_dataset("special_labels", data=lt, dtype=h5py.string_dtype())
        f["dropped_overlap_directions"] = bs.dropped
        f.attrs["fermi_level_eV"] = np.nan if bs.fermi_level is None else bs.fermi_level
        f.attrs["energy_unit"] = "eV"
    return [txt, h5]


def plot_bands(bs: BandStructure, png, window: tuple[float, float] = (-10.0, 10.0), title: str = "") -> Path:
    """Bands relative to E_F (dotted line at 0) with the special points labelled."""
    x, _, _ = bs.axis()
    ref = bs.fermi_level or 0.0
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for s, e in enumerate(bs.energies):
        lines = ax.plot(x, e - ref, lw=1.0, **SPIN_STYLE[s])
        if len(bs.energies) == 2:
            lines[0].set_label("spin up" if s == 0 else "spin down")
    xt, lt = _ticks(bs)
    for v in xt:
        ax.axvline(v, color="0.6", lw=0.6)
    ax.set_xticks(xt, lt)
    ax.axhline(0.0, color="k", ls=":", lw=0.8)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(*window)
    ax.set_ylabel("E − E_F (eV)" if bs.fermi_level is not None else "E (eV)")
    if len(bs.energies) == 2:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    return _save(fig, png)


def write_dos(dos: DensityOfStates, outdir) -> list[Path]:
    """``dos.txt`` (E in eV, total per spin, then each projection per spin; states/eV/cell)
    and ``dos.h5`` (energy, total, projected/<group>, fermi_level)."""
    outdir = Path(outdir)
    nspin = dos.total.shape[0]
    cols, names = [dos.energy, *dos.total], ["E_eV"] + [f"total_s{s}" for s in range(nspin)]
    for g, p in dos.projected.items():
        cols += list(p)
        names += [f"{g}_s{s}" for s in range(nspin)]
    txt, h5 = outdir / "dos.txt", outdir / "dos.h5"
    with atomic_write(txt, "w") as fh:
        np.savetxt(fh, np.column_stack(cols), fmt="%.8e",
                   header=f"E_F = {dos.fermi_level} eV; states/eV/cell\n" + " ".join(names))
    with atomic_path(h5) as tmp, h5py.File(tmp, "w") as f:
        f["energy"], f["total"] = dos.energy, dos.total
        for g, p in dos.projected.items():
            f[f"projected/{g}"] = p
        f.attrs["fermi_level_eV"] = np.nan if dos.fermi_level is None else dos.fermi_level
    return [txt, h5]


def plot_dos(dos: DensityOfStates, png, window: tuple[float, float] = (-10.0, 10.0), title: str = "") -> Path:
    """Total and projected DOS against E − E_F; spin down drawn negative."""
    ref = dos.fermi_level or 0.0
    e = dos.energy - ref
    sign = (1.0, -1.0)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for s in range(dos.total.shape[0]):
        ax.plot(e, sign[s] * dos.total[s], color="k", lw=1.2, label="total" if s == 0 else None)
        for c, (g, p) in enumerate(dos.projected.items()):
            ax.plot(e, sign[s] * p[s], color=f"C{c}", lw=0.9, label=g if s == 0 else None)
    ax.axvline(0.0, color="k", ls=":", lw=0.8)
    ax.set_xlim(*window)
    ax.set_xlabel("E − E_F (eV)" if dos.fermi_level is not None else "E (eV)")
    ax.set_ylabel("DOS (states/eV/cell)")
    if dos.total.shape[0] == 1:
        ax.set_ylim(bottom=0.0)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, png)


def _save(fig, png) -> Path:
    png = Path(png)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return png

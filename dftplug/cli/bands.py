"""``dftplug bands`` and ``dftplug dos``: band structure / DOS of a run's H(R), S(R), with plots.

SOURCE is a run folder of any supported code or a dataset file (.h5, one structure: ``--structure``);
nspin 1, 2 and 4 (spin–orbit: one channel of spinor levels)."""
from __future__ import annotations

from pathlib import Path

import click

from dftplug.errors import DftplugError

from . import emit_json, main, reports_errors


def load_hamiltonian(source, structure: str | None = None):
    """A run folder of any supported code (parsers.detect), or the structure named ``structure`` of a
    dataset file (.h5; default its first structure), as a :class:`dftplug.Hamiltonian`."""
    from dftplug.dataset import dataset_names, iter_dataset

    source = Path(source)
    if source.suffix == ".h5":
        names = [structure] if structure else dataset_names(source)[:1]
        if not names:
            raise DftplugError(f"{source}: the dataset holds no structure")
        _, h = next(iter_dataset(source, names))
    elif structure:
        raise DftplugError("--structure picks a structure of a .h5 dataset, not of a run folder")
    else:
        from dftplug.parsers import read_run
        h = read_run(source)
    if h.H is None or h.S is None:
        raise DftplugError(f"{source}: the run holds no H(R) and S(R)")
    return h


@main.command("bands")
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--structure", default=None, help="structure of a .h5 dataset SOURCE (default: the first)")
@click.option("--path", "path", default=None, help="special points, e.g. GXL or GXWK,GL (default: the "
              "standard path of the lattice)")
@click.option("--npoints", default=200, show_default=True, help="k-points along the whole path")
@click.option("--near", type=int, default=None, help="only the N bands nearest E_F, sparse shift-invert "
              "(large cells)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary (gap, Fermi level, files)")
@click.option("-v", "--verbose", is_flag=True, help="progress bar")
@reports_errors
def bands(source, outdir, structure, path, npoints, near, as_json, verbose):
    """Band structure of SOURCE along a k-path: bands.txt, bands.h5, bands.png.

    SOURCE: a run folder (ABACUS, OpenMX, SIESTA, DeepH) or a dftplug dataset (.h5, see --structure).
    Energies are on the run's own scale; E_F is the run's, or found on its k-mesh if it has none.
    Spin-orbit runs (nspin 4) give one channel of 2·nao spinor levels."""
    from dftplug.bandio import plot_bands, write_bands
    from dftplug.bands import band_structure, bands_near, standard_path
    from dftplug.density import mesh_fermi_level

    h = load_hamiltonian(source, structure)
    if h.fermi_level is None and h.nelec is not None and "kmesh" in h.settings:
        h.fermi_level = mesh_fermi_level(h)
    kpath = standard_path(h, path, npoints)
    bs = bands_near(h, kpath, near, progress=verbose) if near else band_structure(h, kpath, progress=verbose)
    files = write_bands(bs, outdir) + [plot_bands(bs, Path(outdir) / "bands.png", title=h.atoms.get_chemical_formula())]
    summary = {"source": str(source), "path": kpath.path, "nkpts": len(kpath.kpts),
               "nbands": bs.energies.shape[-1], "nspin": bs.energies.shape[0], "fermi_level_eV": bs.fermi_level,
               "dropped_overlap_directions": int(bs.dropped.max(initial=0)),
               "files": [str(f) for f in files]}
    if bs.fermi_level is not None:
        summary.update(bs.gap())
    if summary["dropped_overlap_directions"]:
        click.echo(f"dftplug: warning: S(k) is near-singular, dropped up to "
                   f"{summary['dropped_overlap_directions']} overlap directions per k-point", err=True)
    if as_json:
        emit_json(summary)
    elif verbose:
        click.echo(f"wrote {', '.join(summary['files'])}")


@main.command("dos")
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--structure", default=None, help="structure of a .h5 dataset SOURCE (default: the first)")
@click.option("--sigma", default=0.1, show_default=True,
              help="Gaussian width σ of the DOS in eV: e^{-(E/σ)²}/(σ√π)")
@click.option("--mesh", nargs=3, type=int, default=None, help="Γ-centred k-mesh (default: the run's, with "
              "its shift)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary (Fermi level, electron count)")
@click.option("-v", "--verbose", is_flag=True, help="progress bar")
@reports_errors
def dos(source, outdir, structure, sigma, mesh, as_json, verbose):
    """Total and Mulliken-projected DOS of SOURCE: dos.txt, dos.h5, dos.png.

    SOURCE: a run folder or a dftplug dataset (.h5, see --structure). E_F is found on the same mesh
    with the run's smearing; spin-orbit runs give one channel (each spinor level holds one electron)."""
    from ase.calculators.calculator import kptdensity2monkhorstpack

    from dftplug.bandio import plot_dos, write_dos
    from dftplug.dos import density_of_states

    h = load_hamiltonian(source, structure)
    shift = h.settings.get("kmesh_shift", (0, 0, 0)) if not mesh and "kmesh" in h.settings else (0, 0, 0)
    mesh = list(mesh) if mesh else h.settings.get("kmesh") or kptdensity2monkhorstpack(h.atoms, 5.0).tolist()
    result = density_of_states(h, mesh, sigma, shift=shift, progress=verbose)
    files = write_dos(result, outdir) + [plot_dos(result, Path(outdir) / "dos.png",
                                                  title=h.atoms.get_chemical_formula())]
    summary = {"source": str(source), "mesh": [int(m) for m in mesh], "sigma_eV": sigma,
               "fermi_level_eV": result.fermi_level, "fermi_level_code_eV": h.fermi_level,
               "files": [str(f) for f in files]}
    if result.fermi_level is not None:
        summary["electrons_below_fermi"] = result.electrons_below()
    if as_json:
        emit_json(summary)
    elif verbose:
        click.echo(f"wrote {', '.join(summary['files'])}")

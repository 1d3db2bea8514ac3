"""``dftplug convert``: DFT run folders (or DeepH folders) -> one HDF5 dataset or DeepH folders."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import click

from . import emit_json, main, reports_errors


def _convert(pair, require_h0=True):
    from dftplug.convert import read_pair

    h = read_pair(pair, require_h0)
    stats = h.delta_h_stats() if h.H0 is not None else None
    return pair.name, h, stats


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="HDF5 dataset to write (replaced atomically), or with --to deeph* a new folder.")
@click.option("--to", "fmt", type=click.Choice(["h5", "deeph", "deeph-legacy"]), default="h5", show_default=True,
              help="Output: one HDF5 dataset, or DeepH folders (one sub-folder per structure).")
@click.option("--h0", "h0_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Zeroth-step run of each RUN, in the same order (default: sibling folder h0/ "
                   "or, for OpenMX, scf_iter1/).")
@click.option("--no-h0", is_flag=True, help="Convert runs without an H0 (not usable for training).")
@click.option("--force", is_flag=True, help="With --to deeph*: replace an existing OUTPUT folder.")
@click.option("-j", "--jobs", type=int, default=None, help="Parallel processes (default: CPU count, ≤ 4).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("-v", "--verbose", is_flag=True, help="Print per-structure ΔH statistics.")
@reports_errors
def convert(runs, output, fmt, h0_dirs, no_h0, force, jobs, as_json, verbose):
    """Convert DFT run folders (ABACUS, OpenMX, SIESTA) or DeepH folders into one HDF5 dataset
    or into DeepH folders.

    Each SCF run is paired with its zeroth-step run; pairs whose structure, basis or overlap
    differ are refused. Nothing is written unless every folder converts.
    """
    from tqdm import tqdm

    from dftplug.convert import plan_pairs
    from dftplug.dataset import write_dataset
    from dftplug.fileio import atomic_folder, check_output
    from dftplug.parsers.deeph import write_deeph

    check_output(output, folder=fmt != "h5", force=force)
    pairs = plan_pairs(runs, h0_dirs)
    work = partial(_convert, require_h0=not no_h0)
    jobs = jobs or min(4, os.cpu_count() or 1, len(pairs))
    results = []
    bar = tqdm(total=len(pairs), desc="convert", unit="run", disable=None if verbose else True)
    if jobs > 1 and len(pairs) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for res in pool.map(work, pairs):
                results.append(res)
                bar.update()
    else:
        for pair in pairs:
            results.append(work(pair))
            bar.update()
    bar.close()
    if fmt == "h5":
        write_dataset(output, [(name, h) for name, h, _ in results])
    else:
        with atomic_folder(output, force) as tmp:  # one DeepH folder per structure, all or none
            for name, h, _ in results:
                write_deeph(h, tmp / name, layout="new" if fmt == "deeph" else "legacy")
    summary = {"output": str(Path(output)), "structures": [
        {"name": name, "source": str(pair.scf), "h0_source": str(pair.h0) if pair.h0 else None,
         **h.summary(), "delta_h": stats} for (name, h, stats), pair in zip(results, pairs)]}
    if as_json:
        emit_json(summary)
    elif verbose:
        for s in summary["structures"]:
            d = s["delta_h"]
            dh = (f"ΔH mean {d['mae_meV']:.3f} meV, max {d['max_meV']:.1f} meV, μ {d.get('mu_eV', 0):+.4f} eV"
                  if d else "no H0")
            click.echo(f"{s['name']}: {s['formula']} {s['code']} nspin {s['nspin']} — {dh}")
        click.echo(f"wrote {output} ({len(results)} structures)")


"""``dftplug sample``: perturbed copies of one run's structure as ready h0/ + scf/ input folders."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from dftplug import __version__
from dftplug.errors import DftplugError

from . import emit_json, main, reports_errors

PROGRESS_FROM = 100  # structures: below this the command is quiet (it takes well under a second)


def _build(template, samples, kmesh, tmp: Path, final: Path, show_bar: bool) -> None:
    from tqdm import tqdm

    from dftplug.parsers.input_template import STAGES
    from dftplug.templates import stage_folder

    for s in tqdm(samples, desc="sample", unit="structure", disable=not show_bar):
        for stage in STAGES:
            sub = Path(s.name) / stage_folder(template.code, stage)
            template.write(tmp / sub, final / sub, s.atoms, kmesh, stage)


def _install(tmp: Path, out: Path) -> None:
    """Move the finished tree onto ``out`` (replacing what --force allowed to replace)."""
    if out.exists() or out.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="New folder for OUT/cNNN/{h0,scf}/ (OpenMX: scf_iter1/) and OUT/manifest.json.")
@click.option("-n", "count", required=True, type=int, help="Number of structures.")
@click.option("--rattle", type=float, default=0.1, show_default=True,
              help="σ (Å) of the Gaussian displacement of every Cartesian component.")
@click.option("--strain", type=float, default=0.02, show_default=True,
              help="ε_max: symmetric strain, each component uniform in [−ε_max, ε_max].")
@click.option("--supercell", nargs=3, type=int, default=(1, 1, 1), show_default=True,
              help="Repeat the input cell n1 n2 n3 times first (the k-mesh shrinks to ceil(k/n)).")
@click.option("--seed", type=int, default=0, show_default=True, help="Structure i uses rng([seed, i]).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest.")
@click.option("-v", "--verbose", is_flag=True, help="Print one line per structure.")
@reports_errors
def sample(run, output, count, rattle, strain, supercell, seed, force, as_json, verbose):
    """Write N (-n) perturbed structures of the run folder RUN (ABACUS, SIESTA or OpenMX inputs) as
    ready zeroth-step and SCF input folders in that code's own format, plus a manifest.

    Every setting of the user's input is kept; only the structure, the k-mesh, the paths of the
    pseudopotential/orbital files and the zeroth-step / matrix-output keys change. Run the
    folders with your scheduler, then: dftplug convert OUT/c*/scf -o data.h5
    """
    from dftplug.templates import read_template, stage_folder
    from dftplug.sample import check_amplitudes, sample_structures, supercell_kmesh

    check_amplitudes(rattle, strain, supercell, count)
    out = Path(output)
    final = Path(os.path.abspath(out))
    source = Path(os.path.abspath(run))
    if (out.exists() or out.is_symlink()) and not force:
        raise DftplugError(f"{out}: output folder exists (give --force to replace it)")
    if final == source or final in source.parents:
        raise DftplugError(f"{out}: the output folder would replace the run folder {run}")
    template = read_template(run)
    kmesh = None
    if tuple(supercell) != (1, 1, 1):
        if template.kmesh is None and template.kmesh_note:
            raise DftplugError(f"{template.kmesh_note}: cannot scale it for a supercell")
        if template.kmesh is not None:
            kmesh = supercell_kmesh(template.kmesh, supercell)
    samples = sample_structures(template.atoms, count, rattle, strain, supercell, seed)
    manifest = {
        "code": template.code, "source": str(source), "input_file": template.input_file.name,
        "dftplug_version": __version__, "seed": seed, "rattle_sigma_A": rattle, "strain_max": strain,
        "supercell": list(supercell), "natoms": len(samples[0].atoms),
        "kmesh_source": template.kmesh, "kmesh": kmesh or template.kmesh,
        "folders": {stage: stage_folder(template.code, stage) for stage in template.stage_settings},
        "settings": template.stage_settings,
        "references": {what: str(Path(os.path.abspath(p))) for what, p in template.references.items()},
        "structures": [s.summary() for s in samples]}
    missing = [p for p in reversed(final.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        _build(template, samples, kmesh, tmp, final, show_bar=not as_json and (verbose or count >= PROGRESS_FROM))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _install(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if missing:
            shutil.rmtree(missing[0], ignore_errors=True)
        raise
    if as_json:
        emit_json(manifest)
    elif verbose:
        for s in manifest["structures"]:
            click.echo(f"{s['name']}: {s['natoms']} atoms, displacement RMS {s['displacement_rms_A']:.4f} Å, "
                       f"max |ε| {max(abs(x) for row in s['strain'] for x in row):.4f}")
        click.echo(f"wrote {out} ({count} {template.code} structures); run the folders, then: "
                   f"dftplug convert {out}/c*/scf -o data.h5")

"""``dftplug infer``: a zeroth-step run -> predicted converged H, written for the code to take over."""
from __future__ import annotations

import time
from pathlib import Path

import click

from . import emit_json, limit_threads, main, reports_errors

CODE_FORMATS = ("abacus", "siesta", "openmx")
EINSUM_OPTIMISATION_ATOMS = 200
"""Above this many atoms the model is built with e3nn's einsum path optimisation (opt_einsum_fx): it
costs 1.2–1.8 s of start-up and saves ~6 ms per atom of prediction (scripts/bench_infer.py)."""


def load_for(natoms: int, model: str, device: str):
    """The checkpoint ``model``, built without einsum path optimisation for small structures (the
    prediction differs by float32 rounding, 3e-8 eV on si8); e3nn's defaults are restored after."""
    from dftplug.model import load  # first: imports e3nn its own way

    import e3nn

    before = e3nn.get_optimization_defaults()
    if natoms <= EINSUM_OPTIMISATION_ATOMS:
        e3nn.set_optimization_defaults(optimize_einsums=False)
    try:
        return load(model, device)
    finally:
        e3nn.set_optimization_defaults(**before)


@main.command()
@click.argument("h0_run", type=click.Path(exists=True, file_okay=False))
@click.option("--model", "model", required=True, help="Checkpoint file or shipped model name (e.g. abacus_si8).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--write", "formats", multiple=True, default=("h5",), show_default=True,
              type=click.Choice([*CODE_FORMATS, "deeph", "h5"]),
              help="Repeatable. abacus: hrs*_nao.csr (+ dmrs*) for init_chg hr|dm; siesta: <label>.DM "
                   "(DM.UseSaveDM), .TSHS, H_IN; openmx: <name>.scfout; deeph: a DeepH folder; "
                   "h5: predicted.h5 (H = H0 + ΔH).")
@click.option("--dm", "with_dm", is_flag=True,
              help="ABACUS: also write the DM built from the predicted H (init_chg dm; always for nspin 2).")
@click.option("--s-from", "s_from", type=click.Path(exists=True, file_okay=False),
              help="Take the overlap S from this run of the same structure (when the H0 run did not write S).")
@click.option("--pao-dir", type=click.Path(exists=True, file_okay=False),
              help="OpenMX: DFT_DATA19 folder (or its PAO/) for the <name>_rst/ grid density; default: DATA.PATH.")
@click.option("--device", default="cpu", show_default=True, help="torch device of the model (cpu, cuda, cuda:1).")
@click.option("--max-edges-per-chunk", type=int, default=None,
              help="Memory cap for large structures: the layers process at most this many edges at once.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads of torch and BLAS (one by default: a job script runs infer between code steps).")
@click.option("--force", is_flag=True, help="Replace an existing OUTPUT folder (never mixed with new files).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("-v", "--verbose", is_flag=True, help="Progress of the k-point sums.")
@reports_errors
def infer(h0_run, model, output, formats, with_dm, s_from, pao_dir, device, max_edges_per_chunk, threads, force,
          as_json, verbose):
    """Predict H = H0 + ΔH for the zeroth-step run H0_RUN and write what the code reads to start
    its SCF (see README, "Use as an SCF initial guess"). Prints a one-line summary and the input
    lines to add; no prompts."""
    limit_threads(threads)  # before numpy and torch load
    from dftplug.errors import MismatchError
    from dftplug.fileio import atomic_folder, check_output
    from dftplug.model.infer import predict
    from dftplug.parsers import code_io, detect
    from dftplug.scf_guess import write_scf_guess

    check_output(output, folder=True, force=force)
    code = detect(h0_run)
    wrong = [f for f in formats if f in CODE_FORMATS and f != code]
    if wrong:
        raise MismatchError(f"--write {wrong[0]} needs a {wrong[0]} zeroth-step run (its file layout and sparsity); "
                            f"{h0_run} is a {code} run")
    h0 = code_io(code).read_h0(h0_run)
    if s_from:
        other = code_io(detect(s_from)).read_run(s_from)
        h0.check_compatible(other, what=f"H0 run {h0_run} vs S run {s_from}")
        h0.S = other.S
    ckpt = load_for(h0.natoms, model, device)
    t0 = time.perf_counter()
    h = predict(h0, ckpt, max_edges_per_chunk, progress=verbose or (bool(max_edges_per_chunk) and not as_json))
    seconds = time.perf_counter() - t0
    out = Path(output)
    files, lines, notes = [], {}, []
    name = Path(h0_run).resolve().parent.name or "structure"
    with atomic_folder(out, force) as tmp:  # all formats or none; an existing folder only with --force
        for fmt in dict.fromkeys(formats):
            if fmt == "h5":
                from dftplug.dataset import write_dataset
                files.append(write_dataset(tmp / "predicted.h5", [(name, h)]))
            elif fmt == "deeph":
                from dftplug.parsers.deeph import write_deeph
                files += write_deeph(h, tmp / "deeph", layout="new")
            else:
                guess = write_scf_guess(h, code, tmp, with_dm=with_dm, progress=verbose, pao_dir=pao_dir)
                files += guess.files
                lines[code] = guess.input_lines
                notes += guess.notes
    files = [out / Path(f).relative_to(tmp) for f in files]
    lines = {c: [ln.replace(str(tmp.resolve()), str(out.resolve())) for ln in ls] for c, ls in lines.items()}
    dh = (h.H - h0.H0.with_pairs(h.H.pairs)).data
    summary = {"h0_run": str(h0_run), "code": code, "model": ckpt.meta["path"], "formats": list(formats),
               "files": [str(f) for f in files], "input_lines": lines, "notes": notes,
               "structure": h.summary(), "seconds": seconds,
               "delta_h_mean_meV": 1e3 * float(abs(dh).mean()), "delta_h_max_meV": 1e3 * float(abs(dh).max())}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{h.atoms.get_chemical_formula()}: H = H0 + ΔH (mean |ΔH| {summary['delta_h_mean_meV']:.3f} meV) "
               f"in {seconds:.2f} s -> {out}")
    for code_name, code_lines in lines.items():
        click.echo(f"add to the {code_name} input: " + " ; ".join(code_lines))
    for note in notes:
        click.echo(f"note: {note}")

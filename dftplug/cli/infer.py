"""``dftplug infer``: a zeroth-step run -> predicted converged H, written for the code or as HDF5."""
from __future__ import annotations

import time
from pathlib import Path

import click

from . import emit_json, main, reports_errors


@main.command()
@click.argument("h0_run", type=click.Path(exists=True, file_okay=False))
@click.option("--model", "model", required=True, help="Checkpoint file or shipped model name (e.g. abacus_si8).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--write", "fmt", type=click.Choice(["h5", "abacus"]), default="h5", show_default=True,
              help="h5: dataset with H = H0 + ΔH; abacus: hrs1_nao.csr for init_chg hr.")
@click.option("--s-from", "s_from", type=click.Path(exists=True, file_okay=False),
              help="Take the overlap S from this run of the same structure (when the H0 run did not write S).")
@click.option("--device", default="cpu", show_default=True, help="torch device of the model (cpu, cuda, cuda:1).")
@click.option("--max-edges-per-chunk", type=int, default=None,
              help="Memory cap for large structures: the layers process at most this many edges at once.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@reports_errors
def infer(h0_run, model, output, fmt, s_from, device, max_edges_per_chunk, as_json):
    """Predict H = H0 + ΔH for the zeroth-step run H0_RUN and write it to OUTPUT."""
    from dftplug.dataset import write_dataset
    from dftplug.errors import MismatchError
    from dftplug.model import load
    from dftplug.model.infer import predict
    from dftplug.parsers import code_module, detect

    code = detect(h0_run)
    h0 = code_module(code).read_h0(h0_run)
    if s_from:
        other = code_module(detect(s_from)).read_run(s_from, with_matrices=("S",))
        h0.check_compatible(other, what=f"H0 run {h0_run} vs S run {s_from}")
        h0.S = other.S
    ckpt = load(model, device)
    t0 = time.perf_counter()
    h = predict(h0, ckpt, max_edges_per_chunk, progress=bool(max_edges_per_chunk) and not as_json)
    seconds = time.perf_counter() - t0
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "h5":
        files = [write_dataset(out / "predicted.h5", [(Path(h0_run).resolve().parent.name or "structure", h)])]
    else:
        if code != "abacus":
            raise MismatchError(f"--write abacus needs an ABACUS run, {h0_run} is {code}")
        from dftplug.parsers import abacus
        files = abacus.write_matrix(h, "H", out)
    dh = (h.H - h0.H0.with_pairs(h.H.pairs)).data
    summary = {"h0_run": str(h0_run), "code": code, "model": ckpt.meta["path"], "format": fmt,
               "files": [str(f) for f in files], "structure": h.summary(), "seconds": seconds,
               "delta_h_mean_meV": 1e3 * float(abs(dh).mean()), "delta_h_max_meV": 1e3 * float(abs(dh).max())}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"{h.atoms.get_chemical_formula()}: predicted H = H0 + ΔH (mean |ΔH| "
                   f"{summary['delta_h_mean_meV']:.3f} meV) in {seconds:.2f} s → {', '.join(summary['files'])}")

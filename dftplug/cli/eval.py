"""``dftplug eval``: errors of a model on a converted dataset, next to the H0 baseline."""
from __future__ import annotations

import click

from . import emit_json, main, reports_errors


@main.command("eval")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model", required=True, help="Checkpoint file or shipped model name (e.g. abacus_si8).")
@click.option("--kpoints", type=int, default=4, show_default=True, help="Γ + random k-points for band errors (0: none).")
@click.option("--window", type=float, default=2.0, show_default=True, help="Band window around E_F (eV).")
@click.option("--guess/--no-guess", "guess", default=True, show_default=True,
              help="Density errors of H_pred and H0 as SCF starting guesses (one diagonalisation each on "
                   "the run's k-mesh).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@reports_errors
def eval_(data, model, kpoints, window, guess, device, as_json):
    """MAE and max error (meV) of H_pred and of H0 against H_scf, per orbital-pair type and per
    structure, band-energy errors near E_F, and the SCF-guess quality: the density matrix of H_pred
    (and of H0) filled like the run against that of H_scf — Mulliken charge error per atom (max, RMS,
    electrons), S-metric DM distance per electron, Hartree energy of the charge error (meV). The
    S-metric distance and the charge RMS rank measured restart costs best (README)."""
    from dftplug.dataset import iter_dataset
    from dftplug.model import load
    from dftplug.model.evaluate import GUESS_METRICS, evaluate

    report = evaluate(iter_dataset(data, require=("H", "H0", "S")), load(model, device), nk=kpoints, window=window,
                      guess=guess)
    if as_json:
        emit_json(report)
        return
    o = report["overall"]
    click.echo(f"{'':12s} {'model MAE':>10s} {'H0 MAE':>10s} {'model max':>10s} {'H0 max':>10s}  (meV)")
    for name, r in report["by_orbital_pair"].items():
        click.echo(f"{name:12s} {r['mae_meV']:10.4f} {r['h0_mae_meV']:10.4f} {r['max_meV']:10.3f} {r['h0_max_meV']:10.3f}")
    for r in report["structures"]:
        click.echo(f"{r['name']:12s} {r['mae_meV']:10.4f} {r['h0_mae_meV']:10.4f} {r['max_meV']:10.3f} {r['h0_max_meV']:10.3f}")
    click.echo(f"{'all':12s} {o['mae_meV']:10.4f} {o['h0_mae_meV']:10.4f} {o['max_meV']:10.3f} {o['h0_max_meV']:10.3f}"
               f"  → {o['improvement_over_h0']:.1f}× below H0; gauge-fixed MAE {o['gauge_fixed_mae_meV']:.4f} meV")
    if "band_model_mae_meV" in o:
        click.echo(f"bands within ±{window:g} eV of E_F and frontier levels: model {o['band_model_mae_meV']:.3f} meV "
                   f"(max {o['band_model_max_meV']:.3f}), H0 {o['band_h0_mae_meV']:.3f} meV "
                   f"({o['band_structures']} of {o['structures']} structures)")
    if o.get("guess_structures"):
        click.echo("SCF starting guess, model / H0 (DM filled like the run vs the DM of H_scf; README):")
        titles = ("‖ΔDM‖_S per e", "Σ|δq_μ|/N_e", "ΔQ atom max (e)", "ΔQ atom RMS (e)", "Hartree ΔQ (meV)")
        click.echo(f"{'':12s} " + " ".join(f"{t:>20s}" for t in titles))
        rows = [(r["name"], r["guess"]) for r in report["structures"] if r.get("guess")]
        rows.append(("mean", {key: {m: o[f"guess_{key}_{m}"] for m in GUESS_METRICS} for key in ("model", "h0")}))
        for name, g in rows:
            click.echo(f"{name:12s} " + " ".join(f"{_pair(g, m):>20s}" for m in GUESS_METRICS))


def _pair(g: dict, metric: str) -> str:
    vals = [g[key][metric] for key in ("model", "h0")]
    return " / ".join("–" if v is None else f"{v:.2e}" for v in vals)

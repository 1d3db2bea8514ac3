"""``dftplug train``: HDF5 datasets -> a trained ΔH model checkpoint."""
from __future__ import annotations

import click

from . import emit_json, main, reports_errors


@main.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint to write (the best model by validation MAE, or density error with select_by).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="TOML file with [train] and [model] tables (see configs/abacus_si8.toml).")
@click.option("--resume", is_flag=True, help="Continue from <output>.train.pt (saved every epoch).")
@click.option("--device", default=None, help="torch device, e.g. cpu or cuda (overrides the config).")
@click.option("--epochs", type=int, default=None, help="Override [train] epochs.")
@click.option("--seed", type=int, default=None, help="Override [train] seed.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def train(data, output, config_path, resume, device, epochs, seed, threads, as_json, quiet):
    """Train an equivariant ΔH = H − H0 model on converted datasets (split by structure).

    Data-parallel on N GPUs (or CPU processes): torchrun --nproc_per_node N $(which dftplug) train ...

    Writes OUTPUT (best model), OUTPUT's .train.pt (resumable state), .log.csv and .log.json.
    Training stops after [train] time_limit_min (default 30 minutes; 0 = no limit), keeping the best
    model so far: the shipped configs finish on their data sets within that on one CPU core.
    """
    import torch

    from dftplug.model.model import ModelConfig
    from dftplug.model.train import TrainConfig, load_config
    from dftplug.model.train import train as run_training

    cfg, mcfg = load_config(config_path) if config_path else (TrainConfig(), ModelConfig())
    for key, value in (("device", device), ("epochs", epochs), ("seed", seed)):
        if value is not None:
            setattr(cfg, key, value)
    if threads:
        torch.set_num_threads(threads)
    summary = run_training(data, output, cfg, mcfg, resume=resume, progress=not (quiet or as_json))
    if summary is None:  # a rank > 0 of a torchrun job: rank 0 reports
        return
    if as_json:
        emit_json(summary)
    else:
        errors = ("validation" if summary["error_set"] == "validation" else
                  "training (no structure held out for validation)")
        click.echo(f"wrote {summary['output']}: {errors} ΔH MAE {summary['best_val_mae_meV']:.4f} meV "
                   f"(H0 {summary['h0_val_mae_meV']:.4f} meV) after {summary['epochs']} epochs, "
                   f"{summary['wall_time_s'] / 60:.1f} min")

"""Learning curve of the closed-form ΔH fit (not a test): held-out error against training-set size and cell size.

    python scripts/bench_data_size.py [--work .bench_si] [--sizes 6 12 24 54] [--large-sizes 0 3]
                                      [--extra-train DIR] [--extra-test DIR] [--config configs/abacus_si.toml]

Uses the ABACUS Si sets of ``scripts/bench_model.py --dataset abacus_si`` (prepared there, or here into the
same work folder), plus 64-atom cells of your own (``--extra-train``/``--extra-test``: NNN/{scf,h0} run folders,
e.g. ``../shared/datasets/generators/abacus_supercell.py --rep 2 --seed 12``): for each number n of 8-atom
training cells and m of 64-atom ones (the shared c000–c002 first), fits the model's closed-form linear response
(``epochs = 0``, one CPU thread) and prints, on the held-out 8- and 64-atom cells, the ΔH MAE improvement over
H0 and the first-order density-matrix error relative to the H0 guess's (``dftplug.model.loss.density_ratios``;
√ of it is the ratio of ‖δDM‖_S). It shows how the error falls with data and how far a model of small cells
transfers to large ones.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dftplug.dataset import dataset_names, iter_dataset, write_dataset
from dftplug.model import load
from dftplug.model.graph import build_graph
from dftplug.model.loss import density_ratios, error_sums, residuals, to_blocks
from dftplug.model.train import load_config, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import DATASETS, ROOT, prepare  # noqa: E402


@torch.no_grad()
def held_out_errors(model_path: Path, h5s: list[Path]) -> dict:
    """ΔH MAE improvement over H0 and mean √(density ratio) of a checkpoint on every structure of ``h5s``."""
    ckpt = load(model_path)
    model, layout = ckpt.model, ckpt.layout
    dtype = next(model.parameters()).dtype
    sums, ratios = np.zeros(2), []
    for name, h in (x for h5 in h5s for x in iter_dataset(h5)):
        g = build_graph(h, layout, name, density=True).to(None, dtype)
        pred, _ = model(g)
        e = error_sums(pred, g, layout)
        sums += [float(e["raw"].sum()), float(e["base"].sum())]
        res, _, _ = residuals(pred, g, layout.block_channels)
        ratios.append(float(density_ratios(to_blocks(res, layout), g)[0, 0].sqrt()))
    return {"mae_ratio": sums[1] / sums[0], "density_ratio": float(np.mean(ratios))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / ".bench_si")
    ap.add_argument("--sizes", type=int, nargs="+", default=[6, 12, 24, 54], help="numbers of 8-atom training cells")
    ap.add_argument("--large-sizes", type=int, nargs="+", default=[0, 3], help="numbers of 64-atom training cells "
                    "added to each (the shared three, then those of --extra-train)")
    ap.add_argument("--extra-train", action="append", default=[], metavar="DIR[:first-last]",
                    help="a folder of your own NNN/{scf,h0} 64-atom runs, more training cells (repeatable)")
    ap.add_argument("--extra-test", action="append", default=[], metavar="DIR[:first-last]",
                    help="a folder of your own NNN/{scf,h0} 64-atom runs, held out with si64 c003 (repeatable)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "abacus_si.toml")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    train_src, test_src = DATASETS["abacus_si"]
    small = [x for n, src in enumerate(train_src) if "si64" not in src
             for x in iter_dataset(prepare(src, args.work, f"train{n}"))]
    large = [x for n, src in enumerate(train_src) if "si64" in src
             for x in iter_dataset(prepare(src, args.work, f"train{n}"))]
    large += [x for n, src in enumerate(args.extra_train)
              for x in iter_dataset(prepare(src, args.work, f"extra_train{n}"))]
    tests = {("64-atom" if "si64" in src else "8-atom"): [prepare(src, args.work, f"test{n}")]
             for n, src in enumerate(test_src)}
    tests["64-atom"] += [prepare(src, args.work, f"extra_test{n}") for n, src in enumerate(args.extra_test)]
    if max(args.large_sizes) > len(large):
        ap.error(f"--large-sizes {max(args.large_sizes)}: only {len(large)} 64-atom training cells")
    cfg, mcfg = load_config(args.config)
    cfg.epochs, cfg.density_weight, cfg.charge_weight, cfg.select_by, cfg.kspace_weight = 0, 0.0, 0.0, "mae", 0.0
    n_test = {k: sum(len(dataset_names(h5)) for h5 in v) for k, v in tests.items()}
    print(f"held out: {n_test['8-atom']} × 8 atoms, {n_test['64-atom']} × 64 atoms")
    print("training cells              | held-out 8-atom: ΔH MAE ×, ‖δDM‖ ratio | held-out 64-atom: same | fit s")
    for n in args.sizes:
        for m in args.large_sizes:
            items = small[:n] + large[:m]
            h5 = write_dataset(args.work / "subset.h5", [(f"{i:03d}_{name}", h) for i, (name, h) in enumerate(items)])
            t0 = time.perf_counter()
            train([h5], args.work / "subset.pt", cfg, type(mcfg)(**vars(mcfg)), progress=False)
            wall = time.perf_counter() - t0
            e = {k: held_out_errors(args.work / "subset.pt", v) for k, v in tests.items()}
            label = f"{n:3d} × 8 atoms" + (f" + {m} × 64" if m else "")
            print(f"{label:27s} | {e['8-atom']['mae_ratio']:6.1f}× {e['8-atom']['density_ratio']:.3f}"
                  f"                  | {e['64-atom']['mae_ratio']:6.1f}× {e['64-atom']['density_ratio']:.3f}"
                  f"         | {wall:5.0f}", flush=True)


if __name__ == "__main__":
    main()

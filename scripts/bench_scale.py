"""Speed and scale of the ΔH model (issue 10): four measurements, each a sub-command, JSON out.

  tp        tensor-product cost vs L_max (CG vs local frame, forward + backward; bench_tp.py's
            measurement) and the crossover L_max
  step      one training step (forward + backward) of the ΔH model per variant on one structure
  accuracy  a short training of each ``tensor_product`` variant on the same split; held-out
            (validation) ΔH MAE before (closed-form fit alone) and after, seconds per epoch
  infer     inference time and peak memory (RSS) vs atoms: one dataset structure tiled with
            dftplug.supercell.tile (positions rattled, H0 and S tiled), one process per size;
            growth exponent b of t ∝ N^b
  ddp       `dftplug train` under torchrun with 2 processes (batch 1 each) vs 1 process (batch 2):
            validation curves side by side

Run with one BLAS thread per process (OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1). Examples:
  python scripts/bench_scale.py tp --lmax 2 3 4 5 6
  python scripts/bench_scale.py accuracy si8.h5 --config configs/abacus_si8.toml --minutes 4
  python scripts/bench_scale.py infer si8.h5 --model m.pt --reps 2,2,3 5,5,5 5,10,25 --chunk 20000
  python scripts/bench_scale.py ddp si8.h5 --config configs/abacus_si8.toml --epochs 3
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def growth_exponent(n, t) -> float:
    """b of the least-squares fit log t = a + b log n."""
    return float(np.polyfit(np.log(n), np.log(t), 1)[0])


def cmd_tp(args) -> dict:
    import torch
    sys.path.insert(0, str(HERE))
    from bench_tp import bench
    torch.set_num_threads(1)
    rows = []
    for lmax in args.lmax:
        t_cg, t_lf, n_cg, n_lf = bench(lmax, args.channels, args.edges, args.repeat, torch.device("cpu"), 99)
        rows.append({"lmax": lmax, "cg_s": t_cg, "local_frame_s": t_lf, "cg_over_local": t_cg / t_lf,
                     "weights": n_lf})
        print(f"L_max {lmax}: CG {t_cg:.4f} s, local frame {t_lf:.4f} s, ratio {t_cg / t_lf:.2f}", flush=True)
    crossover = next((r["lmax"] for r in rows if r["cg_over_local"] > 1), None)
    return {"channels": args.channels, "edges": args.edges, "rows": rows, "local_frame_faster_from_lmax": crossover}


def cmd_step(args) -> dict:
    import torch
    from dftplug.dataset import iter_dataset
    from dftplug.model.graph import build_graph
    from dftplug.model.irreps import BasisLayout
    from dftplug.model.loss import LossWeights, loss_terms
    from dftplug.model.model import DeltaHModel
    from dftplug.model.train import load_config
    torch.set_num_threads(1)
    _, h = next(iter_dataset(args.data))
    layout = BasisLayout.from_basis(h.basis, list(dict.fromkeys(h.symbols)), h.nspin)
    g = build_graph(h, layout)
    _, base = load_config(args.config)
    out = {"edges": g.n_edges}
    for variant in args.variants:
        torch.manual_seed(0)
        model = DeltaHModel(layout, type(base)(**{**vars(base), "tensor_product": variant}))
        gd = g.to(dtype=next(model.parameters()).dtype)
        best = math.inf
        for _ in range(args.repeat + 1):
            t = time.perf_counter()
            pred, _ = model(gd)
            loss_terms(pred, gd, layout, 1e-3, LossWeights())["total"].backward()
            best = min(best, time.perf_counter() - t)
        out[variant] = {"step_s": best, "parameters": sum(p.numel() for p in model.parameters())}
        print(variant, out[variant], flush=True)
    return out


def _config_with(base: Path, out: Path, train: dict, model: dict) -> Path:
    """A copy of the TOML config ``base`` with keys of [train] and [model] overridden."""
    data = tomllib.loads(base.read_text()) if base else {}
    lines = []
    for table, extra in (("train", train), ("model", model)):
        lines.append(f"[{table}]")
        for k, v in {**data.get(table, {}), **extra}.items():
            lines.append(f"{k} = {json.dumps(v)}")
    out.write_text("\n".join(lines) + "\n")
    return out


def _train(data, config: Path, output: Path, nproc: int = 1, extra=()) -> dict:
    dftplug = shutil.which("dftplug", path=str(Path(sys.executable).parent)) or "dftplug"
    launch = ["torchrun", "--standalone", f"--nproc_per_node={nproc}", "--no-python"] if nproc > 1 else []
    if launch:
        launch[0] = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    cmd = launch + [dftplug, "train", str(data), "-o", str(output), "--config", str(config), "--threads", "1",
                    "--json", *extra]
    t = time.perf_counter()
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    summary = json.loads(output.with_suffix(".log.json").read_text())
    summary["process_wall_s"] = time.perf_counter() - t
    return summary


def _curve(summary: dict) -> list[dict]:
    import csv
    with open(summary["log_csv"]) as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def cmd_accuracy(args) -> dict:
    out = {}
    for variant in args.variants:
        folder = Path(args.workdir) / f"acc_{variant}"
        folder.mkdir(parents=True, exist_ok=True)
        cfg = _config_with(Path(args.config), folder / "config.toml",
                           {"time_limit_min": args.minutes}, {"tensor_product": variant})
        s = _train(args.data, cfg, folder / "m.pt")
        rows = _curve(s)
        out[variant] = {"val_mae_before_training_meV": s["val_mae_before_training_meV"],
                        "best_val_mae_meV": s["best_val_mae_meV"], "h0_val_mae_meV": s["h0_val_mae_meV"],
                        "epochs": s["epochs"], "s_per_epoch": rows[-1]["time_s"] / len(rows),
                        "checkpoint": str(folder / "m.pt")}
        print(variant, json.dumps(out[variant]), flush=True)
    return out


def infer_one(data: str, model: str, reps, chunk: int, rattle: float) -> dict:
    """One size, in this process: tile, rattle, predict ΔH (block-sparse), time and peak RSS."""
    import torch
    from dftplug.dataset import iter_dataset
    from dftplug.model import load
    from dftplug.model.infer import predict_delta
    from dftplug.supercell import tile
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    _, h = next(iter_dataset(data))
    h.H = h.DM = None  # inference reads H0 and S only
    t0 = time.perf_counter()
    big = tile(h, reps)
    big.atoms.positions += np.random.default_rng(0).normal(scale=rattle, size=big.atoms.positions.shape)
    t_tile = time.perf_counter() - t0
    ck = load(model)
    t0 = time.perf_counter()
    dh = predict_delta(big, ck, max_edges_per_chunk=chunk, progress=True)
    seconds = time.perf_counter() - t0
    return {"atoms": big.natoms, "edges": len(dh.pairs), "predict_s": seconds, "tile_s": t_tile,
            "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "threads": torch.get_num_threads(), "chunk": chunk, "finite": bool(np.isfinite(dh.data).all())}


def cmd_infer(args) -> dict:
    rows = []
    for reps in args.reps:
        res = subprocess.run([sys.executable, __file__, "infer-one", args.data, "--model", args.model,
                              "--reps", reps, "--chunk", str(args.chunk), "--rattle", str(args.rattle)],
                             env={**ENV, "BENCH_THREADS": str(args.threads)}, capture_output=True, text=True)
        if res.returncode:
            print(f"reps {reps} failed:\n{res.stderr[-2000:]}", flush=True)
            rows.append({"reps": reps, "failed": res.stderr[-300:]})
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    ok = [r for r in rows if "failed" not in r]
    fit = {}
    if len(ok) >= 2:
        n = [r["atoms"] for r in ok]
        fit = {"time_exponent": growth_exponent(n, [r["predict_s"] for r in ok]),
               "memory_exponent": growth_exponent(n, [r["peak_rss_GB"] for r in ok])}
    return {"rows": rows, **fit}


def cmd_ddp(args) -> dict:
    work = Path(args.workdir)
    out = {}
    for nproc, batch in ((1, 2), (2, 1)):  # same global batch: 2 structures per step
        folder = work / f"ddp{nproc}"
        folder.mkdir(parents=True, exist_ok=True)
        cfg = _config_with(Path(args.config), folder / "config.toml",
                           {"batch_size": batch, "epochs": args.epochs, "time_limit_min": 0}, {})
        s = _train(args.data, cfg, folder / "m.pt", nproc)
        out[f"{nproc}proc"] = {"wall_s": s["process_wall_s"], "val_mae_meV": [r["val_mae_meV"] for r in _curve(s)],
                               "loss_total": [r["loss_total"] for r in _curve(s)]}
        print(nproc, json.dumps(out[f"{nproc}proc"]), flush=True)
    a, b = (np.array(out[k]["val_mae_meV"]) for k in ("1proc", "2proc"))
    out["max_relative_difference"] = float(np.max(np.abs(a - b) / np.abs(a)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json-out", help="also write the result here")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tp")
    p.add_argument("--lmax", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--edges", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    for name in ("step", "accuracy", "ddp"):
        p = sub.add_parser(name)
        p.add_argument("data")
        p.add_argument("--config", required=True)
        p.add_argument("--workdir", default=tempfile.gettempdir())
    sub.choices["accuracy"].add_argument("--minutes", type=float, default=4.0)
    for name in ("step", "accuracy"):
        sub.choices[name].add_argument("--variants", nargs="+", default=["cg", "local_frame"])
    sub.choices["step"].add_argument("--repeat", type=int, default=3)
    sub.choices["ddp"].add_argument("--epochs", type=int, default=3)
    p = sub.add_parser("infer")
    p.add_argument("data")
    p.add_argument("--model", required=True)
    p.add_argument("--reps", nargs="+", default=["2,2,3", "5,5,5", "5,10,25"])
    p.add_argument("--chunk", type=int, default=20000, help="max edges per chunk")
    p.add_argument("--rattle", type=float, default=0.01, help="Å, Gaussian noise on the positions")
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("infer-one")
    p.add_argument("data")
    p.add_argument("--model", required=True)
    p.add_argument("--reps", required=True)
    p.add_argument("--chunk", type=int, default=20000)
    p.add_argument("--rattle", type=float, default=0.01)
    args = ap.parse_args()
    if args.cmd == "infer-one":
        print(json.dumps(infer_one(args.data, args.model, [int(x) for x in args.reps.split(",")],
                                   args.chunk, args.rattle)))
        return
    commands = {"tp": cmd_tp, "step": cmd_step, "accuracy": cmd_accuracy, "infer": cmd_infer, "ddp": cmd_ddp}
    result = commands[args.cmd](args)
    print(json.dumps(result, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

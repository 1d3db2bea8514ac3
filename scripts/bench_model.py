"""Benchmark of the ΔH model on a dataset (not a test): train, then evaluate the held-out split.

    python scripts/bench_model.py [--dataset abacus_si|abacus_si8|siesta_si8|siesta_molecules|openmx_graphene8
                                   | --data DIR | --h5 DATA.h5] [--config configs/DATASET.toml]
                                  [--extra-train DIR[:first-last]] [--extra-test DIR[:first-last]]
                                  [--epochs N] [--work .bench] [--ship]
    python scripts/bench_model.py --soc [--config configs/soc.toml] [--work .bench]

Unpacks a training set of ``../shared/datasets`` (default ABACUS si8), converts it with
``dftplug convert``, trains with the config (seeded split by structure), and prints on the held-out
structures the ΔH MAE (meV) next to the H0 baseline, the band error near E_F, the training wall time
and the inference time per structure. ``abacus_si`` trains on 8- and 64-atom Si cells and reports each
held-out cell size on its own (structures kept out of training altogether). ``--extra-train`` / ``--extra-test``
add folders of NNN/{scf,h0} runs you made (``dftplug sample``, or ``../shared/datasets/generators``) to the
training set and as one more held-out test set. ``--ship`` copies the model to dftplug/models/<dataset>.pt.

``--soc``: the spin-orbit (nspin 4) model on the SOC fixtures of ``../shared/fixtures/soc`` (ABACUS fcc
Pb with H0 of h0_smallmag, SIESTA and OpenMX fcc Pt). There is no SOC dataset, only one structure
per code: each model is trained and evaluated on that one structure (a fit, not a held-out test).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tarfile
import time
from pathlib import Path

import torch

from dftplug.convert import RunPair, plan_pairs, read_pair
from dftplug.dataset import iter_dataset, write_dataset
from dftplug.model import load
from dftplug.model.evaluate import evaluate
from dftplug.model.train import load_config, train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "abacus_si8.toml"
SOC = ROOT.parent / "shared" / "fixtures" / "soc"
SOC_CASES = {  # code: (SCF run, its zeroth-step run)
    "abacus": ("abacus311/pb_fcc/scf", "abacus311/pb_fcc/h0_smallmag"),
    "siesta": ("siesta/pt_fcc/scf", "siesta/pt_fcc/h0"),
    "openmx": ("openmx/pt_fcc/scf", "openmx/pt_fcc/h0"),
}


SHARED_DATA = ROOT.parent / "shared" / "datasets"
# name: (training sources, held-out test sources); a source is a folder under ../shared/datasets (NNN.tar.xz
# archives or NNN/ run folders), optionally ":first-last" to take a range of its structures by name. Without test
# sources, the held-out structures are the training run's own validation split.
DATASETS = {
    "abacus_si8": (["abacus/si8"], []),
    "abacus_si": (["abacus/si8", "abacus/si8_v311:c000-c029", "abacus/si64:c000-c002"],
                  ["abacus/si8_v311:c030-c039", "abacus/si64:c003"]),
    "siesta_si8": (["siesta/si8"], []), "siesta_molecules": (["siesta/molecules"], []),
    "openmx_graphene8": (["openmx/graphene8"], [])}
ORBITALS = SHARED_DATA / "abacus" / "si8" / "PP_ORB"  # the ABACUS sets' INPUTs name ../../PP_ORB


def _selected(source: str) -> tuple[Path, tuple[str, str] | None]:
    folder, _, span = source.partition(":")
    return Path(folder), (tuple(span.split("-")) if span else None)


def prepare(source: str | Path, work: Path, name: str = "data") -> Path:
    """Unpack the NNN.tar.xz of ``source`` (a folder, absolute or under ../shared/datasets, optionally with a
    ":first-last" name range) or take its NNN/ folders as they are, and convert every NNN/scf (with its
    zeroth-step sibling) into ``work/<name>.h5``."""
    h5 = work / f"{name}.h5"
    if h5.is_file():
        return h5
    folder, span = _selected(str(source))
    folder = folder if folder.is_absolute() else SHARED_DATA / folder
    inside = lambda n: span is None or span[0] <= n <= span[1]  # noqa: E731
    base = folder
    archives = [tb for tb in sorted(folder.glob("*.tar.xz")) if inside(tb.name.split(".")[0])]
    if archives:
        base = work / "raw" / folder.name
        base.mkdir(parents=True, exist_ok=True)
        if (folder / "PP_ORB").is_dir() or folder.parent == ORBITALS.parents[1]:
            if not (base / "PP_ORB").exists():
                (base / "PP_ORB").symlink_to(ORBITALS)
        for tb in archives:
            if not (base / tb.name.split(".")[0]).is_dir():
                with tarfile.open(tb) as tf:
                    tf.extractall(base, filter="data")
    runs = sorted(p / "scf" for p in base.iterdir() if (p / "scf").is_dir() and inside(p.name))
    pairs = plan_pairs(runs)
    return write_dataset(h5, [(f"{folder.name}_{pair.name}", read_pair(pair)) for pair in pairs])


def print_report(o: dict) -> None:
    print(f"ΔH MAE (model)           : {o['mae_meV']:.4f} meV   (gauge-fixed {o['gauge_fixed_mae_meV']:.4f} meV)")
    print(f"ΔH MAE (H0 baseline)     : {o['h0_mae_meV']:.4f} meV   → {o['improvement_over_h0']:.1f}× better")
    print(f"max |error| (model / H0) : {o['max_meV']:.2f} / {o['h0_max_meV']:.2f} meV")
    if "band_model_mae_meV" in o:
        print(f"band error ±2 eV of E_F  : (and the frontier levels; {o['band_structures']} of {o['structures']} structures)")
        print(f"                           model {o['band_model_mae_meV']:.3f} meV (shift-removed "
              f"{o['band_model_shifted_mae_meV']:.3f}, max {o['band_model_max_meV']:.2f}); "
              f"H0 {o['band_h0_mae_meV']:.2f} meV (shift-removed {o['band_h0_shifted_mae_meV']:.2f})")


def bench_soc(config: Path, work: Path) -> None:
    """Train and evaluate the spin-orbit model on each code's single SOC structure."""
    print("spin-orbit (nspin 4): no SOC dataset exists, one structure per code; each model is trained and "
          "evaluated on that same structure (a fit, not a held-out test). ΔH MAE over |Δ| of the complex "
          "spinor elements uu, ud, du, dd.")
    cfg, mcfg = load_config(config)
    for code, (scf, h0) in SOC_CASES.items():
        h5 = write_dataset(work / f"soc_{code}.h5", [(code, read_pair(RunPair(code, SOC / scf, SOC / h0)))])
        t0 = time.perf_counter()
        summary = train([h5], work / f"soc_{code}.pt", cfg, type(mcfg)(**vars(mcfg)), progress=False)
        wall = time.perf_counter() - t0
        report = evaluate(iter_dataset(h5), load(work / f"soc_{code}.pt"), nk=4, window=2.0)
        print(f"\n== {code}: {scf} with H0 {h0}; {summary['epochs']} epochs, best {summary['best_epoch']}, "
              f"{wall:.0f} s; MAE of the linear response alone {summary['val_mae_before_training_meV']:.4f} meV")
        print_report(report["overall"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="abacus_si8",
                    help="a training set of ../shared/datasets (default abacus_si8)")
    ap.add_argument("--data", type=Path, help="a folder of NNN.tar.xz or NNN/ runs instead of --dataset")
    ap.add_argument("--epochs", type=int, help="override the config's epochs (0: the closed-form fit alone)")
    ap.add_argument("--h5", type=Path, help="an already converted dataset (skips unpack/convert)")
    ap.add_argument("--config", type=Path, help="default: configs/<dataset>.toml where it exists (soc.toml with "
                    "--soc), else configs/abacus_si8.toml")
    ap.add_argument("--extra-train", action="append", default=[], metavar="DIR[:first-last]",
                    help="a folder of NNN/{scf,h0} runs added to the training set (repeatable)")
    ap.add_argument("--extra-test", action="append", default=[], metavar="DIR[:first-last]",
                    help="a folder of NNN/{scf,h0} runs evaluated as one more held-out set (repeatable)")
    ap.add_argument("--work", type=Path, default=ROOT / ".bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ship", action="store_true", help="copy the model to dftplug/models/<dataset>.pt")
    ap.add_argument("--soc", action="store_true", help="spin-orbit model on the SOC fixture pairs (config soc.toml)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.soc:
        bench_soc(args.config or ROOT / "configs" / "soc.toml", args.work)
        return
    if args.h5 or args.data:
        train_h5, test_h5 = [args.h5 or prepare(args.data, args.work)], []
    else:
        train_src, test_src = DATASETS[args.dataset]
        train_h5 = [prepare(src, args.work, f"train{n}") for n, src in enumerate(train_src)]
        test_h5 = [prepare(src, args.work, f"test{n}") for n, src in enumerate(test_src)]
    train_h5 += [prepare(src, args.work, f"extra_train{n}") for n, src in enumerate(args.extra_train)]
    test_h5 += [prepare(src, args.work, f"extra_test{n}") for n, src in enumerate(args.extra_test)]
    own = ROOT / "configs" / f"{args.dataset}.toml"
    cfg, mcfg = load_config(args.config or (own if own.exists() and not args.data else DEFAULT_CONFIG))
    if args.epochs is not None:
        cfg.epochs = args.epochs
    model_path = args.work / "model.pt"
    t0 = time.perf_counter()
    summary = train(train_h5, model_path, cfg, mcfg, progress=True)
    wall = time.perf_counter() - t0
    ckpt = load(model_path)
    if test_h5:  # structures no training step saw: one report per test source (e.g. per cell size)
        reports = {str(h): evaluate(iter_dataset(h), ckpt, nk=4, window=2.0) for h in test_h5}
    else:
        held_out = set(ckpt.meta["training"]["validation"])
        items = ((n, h) for path in train_h5 for n, h in iter_dataset(path) if n in held_out)
        reports = {"validation split": evaluate(items, ckpt, nk=4, window=2.0)}
    for where, report in reports.items():
        o = report["overall"]
        print(json.dumps(report["by_orbital_pair"], indent=1))
        print(f"held-out structures      : {o['structures']} ({where})")
        print_report(o)
    print(f"training wall time       : {summary['wall_time_s'] / 60:.1f} min ({summary['epochs']} epochs, "
          f"best {summary['best_epoch']}; total incl. graph building {wall / 60:.1f} min, "
          f"{args.threads} thread(s))")
    print(f"inference per structure  : {o['inference_s_mean']:.3f} s")
    (args.work / "bench_report.json").write_text(json.dumps({"summary": summary, "eval": reports}, indent=1))
    if args.ship:
        dest = ROOT / "dftplug" / "models" / f"{args.dataset}.pt"
        shutil.copy(model_path, dest)
        print(f"shipped {dest} ({dest.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

"""Benchmark `dftplug convert`: throughput on real run folders against simply reading the bytes.

Usage:  python scripts/bench_convert.py [RUN_DIR ...] [--repeat 3]

Default runs: the largest ABACUS cases in ../shared (fe_bcc, nspin 2, and one unpacked si8 dataset
structure). For each run the script measures
  * raw:      reading every matrix file of the SCF and H0 folders from disk (the limit),
  * convert:  parsing SCF + H0 into the common object (units, orbital convention, pairing checks),
  * dataset:  writing the HDF5 dataset,
and prints MB/s of matrix files, structures/s and the ratio convert / raw (all measured in this run).
"""
from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from dftplug.convert import plan_pairs, read_pair
from dftplug.dataset import write_dataset

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def matrix_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and (".csr" in p.name or p.suffix in
                                                                        (".TSHS", ".HSX", ".DM", ".scfout")))


def best_of(repeat: int, func):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return min(times)


def default_runs(tmp: Path) -> list[Path]:
    runs = [SHARED / "fixtures" / "abacus311" / "fe_bcc" / "scf"]
    tar = SHARED / "datasets" / "abacus" / "si8" / "000.tar.xz"
    if tar.is_file():
        with tarfile.open(tar) as tf:
            tf.extractall(tmp, filter="data")
        shutil.copytree(tar.parent / "PP_ORB", Path(tmp) / "PP_ORB", dirs_exist_ok=True)  # ../../PP_ORB
        runs.append(tmp / "000" / "scf")
    return [r for r in runs if r.is_dir()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        runs = args.runs or default_runs(tmp)
        if not runs:
            raise SystemExit("no runs given and ../shared not found")
        print(f"{'run':<28}{'MB':>7}{'raw MB/s':>10}{'convert MB/s':>14}{'struct/s':>10}"
              f"{'h5 write s':>11}{'convert/raw':>13}")
        for run in runs:
            (pair,) = plan_pairs([run])
            files = matrix_files(pair.scf) + (matrix_files(pair.h0) if pair.h0 else [])
            nbytes = sum(p.stat().st_size for p in files)
            t_raw = best_of(args.repeat, lambda: [p.read_bytes() for p in files])
            t_conv = best_of(args.repeat, lambda: read_pair(pair))
            h = read_pair(pair)
            t_h5 = best_of(args.repeat, lambda: write_dataset(tmp / "bench.h5", [(pair.name, h)]))
            mb = nbytes / 1e6
            label = f"{run.parent.name}/{run.name}"
            print(f"{label:<28}{mb:7.2f}{mb / t_raw:10.0f}{mb / t_conv:14.1f}{1 / t_conv:10.2f}"
                  f"{t_h5:11.3f}{t_conv / t_raw:13.0f}")


if __name__ == "__main__":
    main()

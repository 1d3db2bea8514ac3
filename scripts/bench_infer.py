"""Start-up and stages of ``dftplug infer`` as a job script runs it: one process, one thread.

For each zeroth-step run (default: ABACUS si8_v311 c030 and si64 c003 from ../shared/datasets, their h0/
completed with the scf/ overlap file as a real zeroth-step run with ``out_mat_hs2 1`` writes it):
* the whole command, ``dftplug infer H0 --model abacus_si8 -o OUT --write abacus`` in a fresh process;
* the same steps timed one by one in a fresh process: imports, read, model load, predict, write.
Wall and CPU seconds (user + system); on a shared machine the CPU time is the one to compare.

    python scripts/bench_infer.py [H0_RUN ...] [--repeat 3] [--write abacus]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _clock():
    return time.perf_counter(), time.process_time()


def child(h0_run: str, out: str, write: str, model: str) -> None:
    """Run infer's steps in this fresh process and print their (wall, cpu) seconds as JSON."""
    stages, (w0, c0) = {}, _clock()

    def mark(name):
        nonlocal w0, c0
        w, c = _clock()
        stages[name] = (w - w0, c - c0)
        w0, c0 = w, c

    try:
        from dftplug.cli.infer import load_for
    except ImportError:  # a version before load_for (for before/after numbers)
        from dftplug.model import load

        def load_for(natoms, model, device):
            return load(model, device)
    from dftplug.model.infer import predict
    from dftplug.parsers import code_module, detect
    from dftplug.scf_guess import write_scf_guess
    mark("imports")
    code = detect(h0_run)
    h0 = code_module(code).read_h0(h0_run)
    mark("read")
    ckpt = load_for(h0.natoms, model, "cpu")
    mark("model load")
    h = predict(h0, ckpt)
    mark("predict")
    write_scf_guess(h, code, out)
    mark("write")
    print(json.dumps({"natoms": h.natoms, "stages": stages}))


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall, cpu of the child) seconds and stdout of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), res.stdout


def default_runs(work: Path) -> list[Path]:
    """h0/ of si8_v311 c030 and si64 c003 with the overlap file of their scf/ (not kept in the data sets)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_guess_quality import unpack

    runs = []
    for name, cell in (("si8_v311", "c030"), ("si64", "c003")):
        folder = unpack(name, cell, work)
        for s in (folder / "scf").glob("OUT.*/srs1_nao.csr"):
            target = folder / "h0" / s.parent.name / s.name
            if not target.exists():
                shutil.copy(s, target)
        runs.append(folder / "h0")
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="zeroth-step run folders (default: ABACUS si8 and si64 cells)")
    ap.add_argument("--model", default="abacus_si8")
    ap.add_argument("--write", default="abacus")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the fastest is shown")
    ap.add_argument("--work", default="/tmp/dftplug_bench_guess_quality", help="where the data sets are unpacked")
    ap.add_argument("--child", nargs=2, metavar=("H0_RUN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child, args.write, args.model)
    runs = [Path(r) for r in args.runs] or default_runs(Path(args.work))
    dftplug = str(Path(sys.executable).with_name("dftplug"))
    print(f"one thread, {args.repeat} runs each, fastest shown; seconds wall / cpu")
    for label, cmd in (("python start-up", [sys.executable, "-c", "pass"]), ("dftplug --help", [dftplug, "--help"])):
        wall, cpu = min(timed(cmd)[:2] for _ in range(args.repeat))
        print(f"{label:40s} {wall:6.2f} / {cpu:6.2f}")
    for run in runs:
        with tempfile.TemporaryDirectory() as tmp:
            whole = min(timed([dftplug, "infer", str(run), "--model", args.model, "-o", f"{tmp}/cli",
                               "--write", args.write])[:2] for _ in range(args.repeat))
            parts = []
            for _ in range(args.repeat):
                wall, cpu, out = timed([sys.executable, __file__, "--child", str(run), f"{tmp}/steps",
                                        "--write", args.write, "--model", args.model])
                parts.append(dict(json.loads(out), process=(wall, cpu)))
        best = min(parts, key=lambda p: p["process"][1])
        print(f"\n{run} ({best['natoms']} atoms)")
        print(f"  {'dftplug infer --write ' + args.write:38s} {whole[0]:6.2f} / {whole[1]:6.2f}")
        print(f"  {'the same steps, one by one':38s} {best['process'][0]:6.2f} / {best['process'][1]:6.2f}")
        for stage, (wall, cpu) in best["stages"].items():
            print(f"    {stage:36s} {wall:6.2f} / {cpu:6.2f}")
        print(f"    {'start-up, exit':36s} {best['process'][0] - sum(w for w, _ in best['stages'].values()):6.2f} / "
              f"{best['process'][1] - sum(c for _, c in best['stages'].values()):6.2f}")


if __name__ == "__main__":
    main()

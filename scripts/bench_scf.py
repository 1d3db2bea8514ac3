"""Restart benchmark of record (not a test): SCF iterations of the DFT code itself, started from
scratch, from H0, from a dftplug guess and from the exact converged H.

    export ABACUS_BIN=/path/to/abacus            # may carry a launcher: "mpirun -np 1 /path/abacus"
    export SIESTA_BIN=/path/to/siesta
    python scripts/bench_scf.py CELL [CELL ...] [--model abacus_si8 | --model path/to/model.pt]
                                [--pp-dir DIR] [--variants scratch,h0,guess-h,guess-dm,exact]
                                [--threads 1] [--work DIR] [--json]

A CELL is a folder or a ``.tar.xz`` of one holding ``scf/`` (the converged run's inputs) and ``h0/``
(the zeroth-step run's inputs, see the README's "Use as an SCF initial guess"), as the data sets of
``../shared/datasets`` store them. For every cell the code runs, each in its own folder of a
temporary work folder (kept with ``--work``):

* ``scratch``  the scf inputs as they are (atomic starting density);
* the zeroth-step run (h0 inputs), then ``dftplug infer`` on it (``--write abacus [--dm]`` /
  ``--write siesta``), both timed;
* ``h0``       restart from H0 itself (ABACUS ``init_chg hr`` from the h0 run's ``hrs1_nao.csr``;
  SIESTA ``DM.UseSaveDM`` with the h0 run's ``<label>.DM``, the DM of H0's eigenstates);
* ``guess-h``  restart from the predicted H (ABACUS ``init_chg hr``; SIESTA ``Read-H-from-file`` + ``H_IN``);
* ``guess-dm`` restart from the DM built from the predicted H (ABACUS ``init_chg dm``; SIESTA ``DM.UseSaveDM``);
* ``exact``    restart from the scratch run's own converged H (ABACUS ``hrs1_nao.csr``) or DM (SIESTA ``.DM``).

Per cell and variant it reports the SCF iterations, the first-iteration residual (ABACUS: the
"Electron density deviation" DRHO of iteration 1; SIESTA: dDmax and dHmax of ``scf: 1``), the final
energy against scratch, and the wall time of the whole job (h0 run + infer + SCF) over the scratch SCF's.
A run that fails, does not converge, or ends more than ``--energy-tol`` (ABACUS 1e-6 eV, SIESTA 1e-5 eV)
from the scratch energy is an error in its row, never an iteration count (exit status 1).
Without the executable the benchmark refuses with exit status 2. ``--threads`` sets
OMP_NUM_THREADS (and the BLAS threads) of the codes and of ``dftplug infer`` (torch).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from dftplug.errors import ParseError
from dftplug.fileio import read_text
from dftplug.parsers import abacus, siesta

VARIANTS = ("scratch", "h0", "guess-h", "guess-dm", "exact")
HEADERS = {"scratch": "scratch", "h0": "H0 as guess", "guess-h": "infer H", "guess-dm": "infer DM",
           "exact": "exact"}


class Refused(SystemExit):
    """Missing executable or unusable input: message on stderr, exit status 2."""

    def __init__(self, message: str):
        print(f"bench_scf: {message}", file=sys.stderr)
        super().__init__(2)


@dataclass
class Run:
    """One code run as its output reports it (energy in eV, time in s)."""

    iterations: int | None = None
    converged: bool = False
    residual: dict = field(default_factory=dict)  # first-iteration residual(s)
    energy: float | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    error: str | None = None


class Clock:
    """Wall time and the CPU time (user + system) of the child processes waited for inside the block:
    the CPU time is what the job costs whatever else the machine runs."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), self._children()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self._wall, self._children() - self._cpu

    @staticmethod
    def _children() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime


# ============================================================================ ABACUS
class Abacus:
    name, env, energy_tol = "abacus", "ABACUS_BIN", 1e-6
    residual_keys = ("DRHO1",)

    @staticmethod
    def is_cell_run(folder: Path) -> bool:
        return abacus.is_run_folder(folder)

    @staticmethod
    def parse_log(text: str) -> Run:
        """Iterations, convergence, DRHO of iteration 1 and the final energy of a running_scf.log."""
        it = re.findall(r"#ELEC ITER#\s+(\d+)", text)
        drho = re.search(r"Electron density deviation\s+(\S+)", text)
        etot = re.findall(r"!FINAL_ETOT_IS\s+(\S+)\s+eV", text)
        return Run(iterations=int(it[-1]) if it else None,
                   converged="#SCF IS CONVERGED#" in text and "SCF IS NOT CONVERGED" not in text,
                   residual={"DRHO1": float(drho.group(1))} if drho else {},
                   energy=float(etot[-1]) if etot else None)

    def stored(self, folder: Path) -> Run | None:
        """The run a cell's scf/ folder already holds (None without a log)."""
        try:
            run = abacus.RunFolder.locate(folder)
        except ParseError:
            return None
        return self.parse_log(read_text(run.log)) if run.log else None

    def prepare(self, src: Path, origin: Path, dst: Path, pp_dir: Path | None,
                restart: tuple[str, Path] | None) -> None:
        """Copy the inputs of ``src`` to ``dst``; absolute pseudo/orbital folders (``pp_dir``, else the
        INPUT's own, relative to ``origin``, where the inputs are or their archive is); the restart lines."""
        params = abacus.read_input(src / "INPUT")
        names = {params.get("stru_file", "STRU"), params.get("kpoint_file", "KPT"), "INPUT"}
        dst.mkdir(parents=True)
        for n in names:
            if (src / n).is_file():
                shutil.copy2(src / n, dst / n)
        changes = {}
        for key in ("pseudo_dir", "orbital_dir"):
            where = pp_dir or (origin / params.get(key, ".")).resolve()
            if not where.is_dir():
                raise Refused(f"{src / 'INPUT'}: {key} {params.get(key)} is not a folder from here "
                              f"({where}); give the pseudopotential/orbital folder with --pp-dir")
            changes[key] = str(where)
        if restart:
            changes["init_chg"], changes["read_file_dir"] = restart[0], str(restart[1])
        _set_lines(dst / "INPUT", changes, sep="  ")

    def command(self, argv: list[str], folder: Path):
        return argv, None, folder / "abacus.stdout"

    def result(self, folder: Path) -> Run:
        logs = sorted(folder.glob("OUT.*/running_scf.log"))
        if not logs:
            return Run(error=f"no OUT.*/running_scf.log in {folder}")
        return self.parse_log(read_text(logs[0]))

    def restart_source(self, variant: str, dirs: dict, guess: dict) -> tuple[str, Path]:
        if variant == "h0":
            return "hr", _out_dir(dirs["h0"])
        if variant == "guess-h":
            return "hr", guess["guess-h"]
        if variant == "guess-dm":
            return "dm", guess["guess-dm"]
        out = _out_dir(dirs["scratch"])
        if not (out / "hrs1_nao.csr").is_file():
            raise RuntimeError(f"{out} has no hrs1_nao.csr: the scf INPUT needs out_mat_hs2 1 for the exact restart")
        return "hr", out

    def infer_args(self, variant: str) -> list[str]:
        return ["--write", "abacus"] + (["--dm"] if variant == "guess-dm" else [])


def _out_dir(folder: Path) -> Path:
    suffix = abacus.read_input(folder / "INPUT").get("suffix", "ABACUS")
    return folder / f"OUT.{suffix}"


# ============================================================================ SIESTA
class Siesta:
    name, env, energy_tol = "siesta", "SIESTA_BIN", 1e-5
    residual_keys = ("dDmax1", "dHmax1")

    @staticmethod
    def is_cell_run(folder: Path) -> bool:
        return any(folder.glob("*.fdf"))

    @staticmethod
    def label(folder: Path) -> str:
        for fdf in sorted(folder.glob("*.fdf")):
            if m := re.search(r"^\s*SystemLabel\s+(\S+)", read_text(fdf), re.M | re.I):
                return m.group(1)
        return "siesta"  # SIESTA's default SystemLabel

    @staticmethod
    def parse_out(path: Path) -> Run:
        """Iterations and convergence (dftplug's SIESTA log reader), dDmax/dHmax of ``scf: 1`` and
        the final total energy of a SIESTA 4.1 output."""
        text = read_text(path)
        try:
            info = siesta.read_log(path)
        except ParseError as exc:  # an output cut short (crash) lacks the species/basis blocks
            return Run(error=f"{path}: {exc}")
        residual = {}
        head = re.search(r"^\s*iscf\s+(.*)$", text, re.M)
        first = re.search(r"^\s*scf:\s+1\s+(.*)$", text, re.M)
        if head and first:
            cols = dict(zip(head.group(1).split(), first.group(1).split()))
            residual = {f"{k}1": float(cols[c]) for k, c in (("dDmax", "dDmax"), ("dHmax", "dHmax(eV)"))
                        if c in cols}
        total = re.findall(r"^siesta:\s+Total =\s+(\S+)", text, re.M)
        return Run(iterations=info["scf_iterations"], converged=info["converged"], residual=residual,
                   energy=float(total[-1]) if total else None)

    def stored(self, folder: Path) -> Run | None:
        out = folder / f"{self.label(folder)}.out"
        return self.parse_out(out) if out.is_file() else None

    def prepare(self, src: Path, origin: Path, dst: Path, pp_dir: Path | None,
                restart: tuple[str, Path] | None) -> None:
        """Copy the fdf and pseudopotential files (found beside the fdf, in ``pp_dir``, or in the folder
        holding the cell, where ``origin`` is); the restart line and the file it reads."""
        dst.mkdir(parents=True)
        for folder in (src, pp_dir, origin.parent.parent):
            for p in sorted(folder.iterdir()) if folder and folder.is_dir() else []:
                if p.suffix in (".fdf", ".psf", ".psml") and p.is_file() and not (dst / p.name).exists() \
                        and (folder == src or p.suffix != ".fdf"):
                    shutil.copy2(p, dst / p.name)
        if not any(dst.glob("*.psf")) and not any(dst.glob("*.psml")):
            raise Refused(f"{src}: no .psf/.psml pseudopotential next to the fdf; give their folder with --pp-dir")
        if restart:
            key, source = restart
            label = self.label(dst)
            shutil.copy2(source, dst / (f"{label}.DM" if key == "dm" else "H_IN"))
            fdf = dst / f"{label}.fdf" if (dst / f"{label}.fdf").is_file() else sorted(dst.glob("*.fdf"))[0]
            _set_lines(fdf, {"DM.UseSaveDM" if key == "dm" else "Read-H-from-file": "true"}, sep="  ", fdf=True)

    def command(self, argv: list[str], folder: Path):
        label = self.label(folder)
        fdf = folder / f"{label}.fdf" if (folder / f"{label}.fdf").is_file() else sorted(folder.glob("*.fdf"))[0]
        return argv, fdf, folder / f"{label}.out"

    def result(self, folder: Path) -> Run:
        out = folder / f"{self.label(folder)}.out"
        return self.parse_out(out) if out.is_file() else Run(error=f"no {out.name} in {folder}")

    def restart_source(self, variant: str, dirs: dict, guess: dict) -> tuple[str, Path]:
        if variant == "guess-h":
            return "h", guess["guess-h"] / "H_IN"
        folder = {"h0": dirs["h0"], "exact": dirs["scratch"]}.get(variant)
        source = folder / f"{self.label(folder)}.DM" if folder else guess["guess-dm"] / f"{self.label(dirs['h0'])}.DM"
        if not source.is_file():
            raise RuntimeError(f"{source} missing: the run did not write its DM")
        return "dm", source

    def infer_args(self, variant: str) -> list[str]:
        return ["--write", "siesta"]


CODES = {c.name: c for c in (Abacus(), Siesta())}


def _set_lines(path: Path, values: dict, sep: str, fdf: bool = False) -> None:
    """Replace (or append) ``key value`` lines of an ABACUS INPUT or a SIESTA fdf file. fdf labels
    compare case-insensitively with '.', '_' and '-' ignored, as fdf reads them."""
    def norm(k):
        return re.sub(r"[._-]", "", k.lower()) if fdf else k.lower()

    wanted = {norm(k): (k, v) for k, v in values.items()}
    kept = [ln for ln in read_text(path).splitlines()
            if not (ln.split() and norm(ln.split()[0]) in wanted)]
    path.write_text("\n".join(kept + [f"{k}{sep}{v}" for k, v in wanted.values()]) + "\n")


# ============================================================================ running
@dataclass
class Bench:
    code: Abacus | Siesta
    argv: list[str]
    model: str
    threads: int
    pp_dir: Path | None
    energy_tol: float
    timeout: float

    def env(self) -> dict:
        n = str(self.threads)
        return {**os.environ, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}

    def run_code(self, folder: Path) -> Run:
        argv, stdin_file, stdout_file = self.code.command(self.argv, folder)
        with open(stdout_file, "w") as out, (open(stdin_file) if stdin_file else open(os.devnull)) as inp, \
                Clock() as clock:
            try:
                proc = subprocess.run(argv, cwd=folder, stdin=inp, stdout=out, stderr=subprocess.STDOUT,
                                      env=self.env(), timeout=self.timeout)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        run = self.code.result(folder)
        run.seconds, run.cpu_seconds = clock.wall, clock.cpu
        if rc != 0 and run.error is None:
            run.error = f"exit status {rc} (see {stdout_file})"
        return run

    def infer(self, h0_dir: Path, out: Path, variant: str) -> tuple[float, float]:
        """``dftplug infer`` as a job script calls it; returns its (wall, CPU) time (s)."""
        exe = Path(sys.executable).with_name("dftplug")
        cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "dftplug.cli"]
        cmd += ["infer", str(h0_dir), "--model", self.model, "-o", str(out), *self.code.infer_args(variant)]
        with Clock() as clock:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=self.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"dftplug infer failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return clock.wall, clock.cpu

    def cell(self, src: Path, origin: Path, work: Path, variants: list[str], bar) -> dict:
        """All requested variants of one cell (``src`` holds scf/ and h0/; ``origin``: see ``stage``)."""
        dirs = {"scratch": work / "scratch", "h0": work / "h0_run"}
        row: dict = {"cell": src.name, "variants": {}}
        stored = self.code.stored(src / "scf")
        scratch = self._run_variant(src / "scf", origin, dirs["scratch"], None)
        bar.update()
        row["variants"]["scratch"] = self._checked(scratch, None)
        if stored is not None:
            row["stored_scratch"] = {"iterations": stored.iterations, "energy": stored.energy,
                                     "energy_diff": _diff(scratch.energy, stored.energy)}
        needs_h0 = [v for v in variants if v in ("h0", "guess-h", "guess-dm")]
        h0, guess, infer_seconds = Run(), {}, {}
        if needs_h0:
            h0 = self._run_variant(src / "h0", origin, dirs["h0"], None)
            bar.update()
            if h0.error:
                for v in needs_h0:
                    row["variants"][v] = asdict(Run(error=f"zeroth-step run: {h0.error}"))
                needs_h0 = []
            row["h0_seconds"], row["h0_cpu_seconds"] = h0.seconds, h0.cpu_seconds
        done: dict = {}  # infer arguments -> (folder, seconds): SIESTA writes both guesses at once
        for v in ("guess-h", "guess-dm"):
            if v not in needs_h0:
                continue
            key = tuple(self.code.infer_args(v))
            try:
                if key not in done:
                    done[key] = work / f"infer_{v}", self.infer(dirs["h0"], work / f"infer_{v}", v)
                    bar.update()
                guess[v], infer_seconds[v] = done[key]
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                row["variants"][v] = asdict(Run(error=str(exc)))
                bar.update()
        row["infer_seconds"] = {v: t[0] for v, t in infer_seconds.items()}
        row["infer_cpu_seconds"] = {v: t[1] for v, t in infer_seconds.items()}
        for v in variants:
            if v == "scratch" or v in row["variants"]:
                continue
            if scratch.error and v == "exact":
                row["variants"][v] = asdict(Run(error="no converged scratch run"))
                continue
            try:
                restart = self.code.restart_source(v, dirs, guess)
                run = self._run_variant(src / "scf", origin, work / v, restart)
            except RuntimeError as exc:
                run = Run(error=str(exc))
            bar.update()
            entry = self._checked(run, scratch)
            if v != "exact":  # the exact restart needs the scratch run: no job of its own
                wall, cpu = infer_seconds.get(v, (0.0, 0.0))
                entry["job_seconds"] = run.seconds + h0.seconds + wall
                entry["job_cpu_seconds"] = run.cpu_seconds + h0.cpu_seconds + cpu
                entry["job_vs_scratch"] = entry["job_seconds"] / scratch.seconds if scratch.seconds else None
                entry["job_cpu_vs_scratch"] = (entry["job_cpu_seconds"] / scratch.cpu_seconds
                                               if scratch.cpu_seconds else None)
            row["variants"][v] = entry
        return row

    def _run_variant(self, src: Path, origin: Path, folder: Path, restart) -> Run:
        self.code.prepare(src, origin / src.name, folder, self.pp_dir, restart)
        return self.run_code(folder)

    def _checked(self, run: Run, scratch: Run | None) -> dict:
        """The run as a row entry; non-convergence or another energy than scratch is an error."""
        if run.error is None and not run.converged:
            run.error = f"not converged after {run.iterations} iterations"
        if run.error is None and run.energy is None:
            run.error = "no final energy printed"
        entry = asdict(run)
        if scratch is not None:
            entry["energy_diff"] = _diff(run.energy, scratch.energy)
            if run.error is None and scratch.error is None and abs(entry["energy_diff"]) > self.energy_tol:
                entry["error"] = f"energy {entry['energy_diff']:+.2e} eV from scratch (tolerance {self.energy_tol:g})"
            if run.error is None and scratch.error is not None:
                entry["error"] = "scratch run failed: no reference energy"
        if entry["error"]:
            entry["iterations"] = None
        return entry


def _diff(a, b):
    return None if a is None or b is None else a - b


# ============================================================================ cells and output
def stage(cell: Path, work: Path) -> tuple[Path, Path]:
    """(a folder holding scf/ and h0/, where the inputs' relative paths start): the cell itself, or its
    .tar.xz unpacked into ``work`` (relative paths then start where it would unpack beside the archive)."""
    if cell.is_dir():
        return cell, cell
    if not tarfile.is_tarfile(cell):
        raise Refused(f"{cell}: neither a folder nor a tar archive")
    with tarfile.open(cell) as tar:
        tops = {Path(n).parts[0] for n in tar.getnames() if n not in (".", "")}
        tar.extractall(work, filter="data")
    top = tops.pop() if len(tops) == 1 else ""
    return work / top, cell.parent / top


def detect(folder: Path) -> Abacus | Siesta:
    for sub in ("scf", "h0"):
        if not (folder / sub).is_dir():
            raise Refused(f"{folder}: no {sub}/ folder (a cell holds scf/ and h0/)")
    for code in CODES.values():
        if code.is_cell_run(folder / "scf"):
            return code
    raise Refused(f"{folder / 'scf'}: neither an ABACUS (INPUT, STRU) nor a SIESTA (.fdf) run")


def executable(code) -> list[str]:
    value = os.environ.get(code.env, "").strip()
    if not value:
        raise Refused(f"{code.env} is not set: export {code.env}=/path/to/{code.name} (a launcher may lead, "
                      f"e.g. 'mpirun -np 1 /path/to/{code.name}'); the codes are not installable from "
                      "package registries")
    argv = shlex.split(value)
    if shutil.which(argv[0]) is None:
        raise Refused(f"{code.env}={value!r}: {argv[0]} is not an executable")
    return argv


def _cell_text(entry: dict | None, keys) -> str:
    if entry is None:
        return "–"
    if entry.get("error"):
        return "ERROR"
    res = [f"{entry['residual'][k]:.1e}" for k in keys if k in entry.get("residual", {})]
    return f"{entry['iterations']}" + (f" ({'/'.join(res)})" if res else "")


def table(rows: list[dict], variants: list[str], code) -> str:
    """Markdown table: iterations (first-iteration residual) per variant, then job time / scratch."""
    jobs = [v for v in variants if v not in ("scratch", "exact")]
    head = (["cell"] + [HEADERS[v] for v in variants] + ["scratch SCF wall / CPU (s)"] +
            [f"job/scratch {HEADERS[v]} wall / CPU" for v in jobs])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vs = r["variants"]
        cells = [r["cell"]] + [_cell_text(vs.get(v), code.residual_keys) for v in variants]
        cells.append(f"{vs['scratch']['seconds']:.1f} / {vs['scratch']['cpu_seconds']:.1f}")
        cells += [f"{vs[v]['job_vs_scratch']:.2f} / {vs[v]['job_cpu_vs_scratch']:.2f}"
                  if vs.get(v, {}).get("job_cpu_vs_scratch") and not vs[v].get("error") else "–" for v in jobs]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\niterations (residual after iteration 1: {' / '.join(code.residual_keys)}); job = zeroth-step "
                 "run + dftplug infer + SCF, its wall and CPU time over the scratch SCF's")
    errors = [f"{r['cell']} {v}: {e['error']}" for r in rows for v, e in r["variants"].items() if e.get("error")]
    lines += [f"error: {e}" for e in errors]
    for r in rows:
        s = r.get("stored_scratch")
        if s and s["energy_diff"] is not None and (abs(s["energy_diff"]) > code.energy_tol or
                                                   s["iterations"] != r["variants"]["scratch"]["iterations"]):
            lines.append(f"note: {r['cell']} scratch differs from the stored run ({s['iterations']} iterations, "
                         f"energy {s['energy_diff']:+.2e} eV)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cells", nargs="+", type=Path, help="cell folders or .tar.xz archives (scf/ and h0/ inside)")
    ap.add_argument("--model", default="abacus_si8", help="checkpoint file or shipped model name (dftplug infer --model)")
    ap.add_argument("--pp-dir", type=Path, help="pseudopotential/orbital folder (default: the inputs' own)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the codes and of dftplug infer")
    ap.add_argument("--energy-tol", type=float, help="eV (default: ABACUS 1e-6, SIESTA 1e-5)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per code run")
    ap.add_argument("--work", type=Path, help="keep the runs in this folder (default: a temporary one, removed)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = ap.parse_args(argv)
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown or "scratch" not in variants:
        raise Refused(f"--variants {args.variants}: must include scratch; known: {', '.join(VARIANTS)}")
    missing = [c for c in args.cells if not c.exists()]
    if missing:
        raise Refused(f"{missing[0]}: no such cell")
    if args.work and args.work.exists() and any(args.work.iterdir()):
        raise Refused(f"--work {args.work} exists and is not empty")

    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="bench_scf_")
    work = (args.work or Path(tmp.name)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        staged = [stage(args.cells[0].resolve(), work / "cells" / args.cells[0].name.split(".")[0])]
        code = detect(staged[0][0])
        bench = Bench(code, executable(code), args.model, args.threads, args.pp_dir and args.pp_dir.resolve(),
                      args.energy_tol or code.energy_tol, args.timeout)
        for c in args.cells[1:]:
            staged.append(stage(c.resolve(), work / "cells" / c.name.split(".")[0]))
            if detect(staged[-1][0]) is not code:
                raise Refused(f"{c} is not a {code.name} cell like {args.cells[0]}: benchmark one code at a time")
        guesses = {tuple(code.infer_args(v)) for v in variants if v in ("guess-h", "guess-dm")}
        per_cell = len(variants) + any(v in variants for v in ("h0", "guess-h", "guess-dm")) + len(guesses)
        rows = []
        with tqdm(total=per_cell * len(staged), desc=f"{code.name} runs", unit="run") as bar:
            for (folder, origin), cell in zip(staged, args.cells):
                rows.append(bench.cell(folder, origin, work / "runs" / cell.name.split(".")[0], variants, bar))
    finally:
        if tmp is not None:
            tmp.cleanup()
    report = {"code": code.name, "executable": bench.argv, "model": args.model, "threads": args.threads,
              "energy_tol_eV": bench.energy_tol, "variants": variants, "cells": rows}
    print(json.dumps(report, indent=1) if args.json else table(rows, variants, code))
    return 1 if any(e.get("error") for r in rows for e in r["variants"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

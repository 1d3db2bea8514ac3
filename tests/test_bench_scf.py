"""scripts/bench_scf.py without the DFT codes: its refusal and its reading of the codes' logs."""
import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT, shared_path

SCRIPT = ROOT / "scripts" / "bench_scf.py"
spec = importlib.util.spec_from_file_location("bench_scf", SCRIPT)
bench_scf = sys.modules["bench_scf"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_scf)


def test_refuses_without_executable(tmp_path):
    cell = shared_path("datasets", "abacus", "si8_v311", "c030.tar.xz")
    env = {k: v for k, v in __import__("os").environ.items() if k != "ABACUS_BIN"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(cell), "--work", str(tmp_path / "w")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "ABACUS_BIN is not set" in proc.stderr
    assert proc.stdout == ""


def test_abacus_log():
    """The si_diamond fixture log: 10 iterations, DRHO 0.136284 after the first, -212.62398 eV."""
    log = shared_path("fixtures", "abacus311", "si_diamond", "scf", "OUT.si_diamond", "running_scf.log")
    text = log.read_text()
    run = bench_scf.Abacus.parse_log(text)
    assert (run.iterations, run.converged) == (10, True)
    assert run.residual == {"DRHO1": 0.136284}
    assert run.energy == pytest.approx(-212.6239807880092, abs=1e-12)
    # the line ABACUS prints when scf_nmax is reached (output_log.cpp) is no convergence
    failed = bench_scf.Abacus.parse_log(text.replace("#SCF IS CONVERGED#", "!!SCF IS NOT CONVERGED!!"))
    assert failed.converged is False


def test_siesta_out():
    """SIESTA 4.1.5 si8_rattled from scratch: 11 iterations, first dDmax 1.866086 / dHmax 0.314990 eV."""
    out = shared_path("fixtures", "siesta", "restart_experiments", "si8_rattled", "a_scratch", "si8_rattled.out")
    run = bench_scf.Siesta.parse_out(out)
    assert (run.iterations, run.converged) == (11, True)
    assert run.residual == {"dDmax1": 1.866086, "dHmax1": 0.314990}
    assert run.energy == pytest.approx(-860.436223, abs=1e-9)
    restarted = bench_scf.Siesta.parse_out(out.parents[1] / "b_savedm" / "si8_rattled.out")
    assert restarted.iterations == 1
    assert restarted.energy == pytest.approx(run.energy, abs=1e-5)


def test_restart_lines(tmp_path):
    """Restart keys replace the input's own lines (fdf labels ignore case, '.', '-', '_')."""
    fdf = tmp_path / "x.fdf"
    fdf.write_text("SystemLabel x\ndm-use-save-dm false\nMeshCutoff 200 Ry\n")
    bench_scf._set_lines(fdf, {"DM.UseSaveDM": "true"}, sep="  ", fdf=True)
    assert fdf.read_text().splitlines() == ["SystemLabel x", "MeshCutoff 200 Ry", "DM.UseSaveDM  true"]
    inp = tmp_path / "INPUT"
    inp.write_text("INPUT_PARAMETERS\ninit_chg   atomic\nsuffix si8\n")
    bench_scf._set_lines(inp, {"init_chg": "hr", "read_file_dir": "/g"}, sep="  ")
    assert bench_scf.abacus.read_input(inp) == {"suffix": "si8", "init_chg": "hr", "read_file_dir": "/g"}


FAKE_ABACUS = '''#!{python}
"""Stands in for ABACUS: from scratch it replays the cell's stored log, a restart converges at once."""
import os, pathlib, re
inp = dict(l.split(None, 1) for l in open("INPUT").read().splitlines()[1:] if l.split())
out = pathlib.Path("OUT." + inp["suffix"].strip())
out.mkdir()
if inp["init_chg"].strip() == "atomic":
    (out / "running_scf.log").write_text(open(os.environ["FAKE_LOG"]).read())
    (out / "hrs1_nao.csr").write_text("H")
else:
    assert (pathlib.Path(inp["read_file_dir"].strip()) / "hrs1_nao.csr").is_file()
    e = float(re.findall(r"FINAL_ETOT_IS (\\S+)", open(os.environ["FAKE_LOG"]).read())[-1])
    e += float(os.environ.get("FAKE_SHIFT", "0"))
    (out / "running_scf.log").write_text(
        " #ELEC ITER#  1\\n Electron density deviation 3.5e-09\\n #SCF IS CONVERGED#\\n !FINAL_ETOT_IS %r eV\\n" % e)
'''


@pytest.mark.parametrize("shift, rc", [(0.0, 0), (1e-4, 1)])
def test_runs_and_checks_energies(tmp_path, monkeypatch, capsys, shift, rc):
    """Scratch and exact restart with a stand-in executable: iterations and DRHO1 read back, a restart at
    another energy than scratch is an error row (exit status 1), not an iteration count."""
    cell = shared_path("datasets", "abacus", "si8_v311", "c030.tar.xz")
    pp = shared_path("datasets", "abacus", "si8", "PP_ORB")
    fake = tmp_path / "abacus"
    fake.write_text(FAKE_ABACUS.format(python=sys.executable))
    fake.chmod(0o755)
    import tarfile
    with tarfile.open(cell) as tar:
        log = tar.extractfile("c030/scf/OUT.si8/running_scf.log").read()
    (tmp_path / "ref.log").write_bytes(log)
    monkeypatch.setenv("ABACUS_BIN", str(fake))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "ref.log"))
    monkeypatch.setenv("FAKE_SHIFT", str(shift))
    work = tmp_path / "work"
    assert bench_scf.main([str(cell), "--pp-dir", str(pp), "--variants", "scratch,exact",
                           "--work", str(work), "--json"]) == rc
    report = __import__("json").loads(capsys.readouterr().out)
    row = report["cells"][0]
    assert row["variants"]["scratch"]["iterations"] == 12  # the si8_v311 README: c030 from scratch
    assert row["variants"]["scratch"]["residual"] == {"DRHO1": 0.137694}
    assert row["stored_scratch"]["energy_diff"] == 0.0
    exact = row["variants"]["exact"]
    assert (exact["iterations"], exact["error"]) == ((1, None) if rc == 0 else (None, exact["error"]))
    assert rc == 0 or "from scratch" in exact["error"]
    inp = bench_scf.abacus.read_input(work / "runs" / "c030" / "exact" / "INPUT")
    assert inp["init_chg"] == "hr" and inp["pseudo_dir"] == str(pp.resolve())
    assert inp["read_file_dir"] == str(work.resolve() / "runs" / "c030" / "scratch" / "OUT.si8")

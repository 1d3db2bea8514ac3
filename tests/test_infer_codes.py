"""`dftplug infer --write siesta|openmx|deeph` end to end: a tiny model trained on the code's own
fixture, then the zeroth-step run -> files the code (or its tools) read back."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.dataset import read_dataset
from dftplug.parsers import abacus as ab
from dftplug.parsers import openmx as omx
from dftplug.parsers import siesta as si
from dftplug.parsers.deeph import read_deeph

from .conftest import FIXTURES, TINY_MODEL_TOML, point_inputs_at, shared_path

TINY = """
[train]
epochs = 1
val_fraction = 0.0
kspace_weight = 0.0
""" + TINY_MODEL_TOML


def _train(tmp_path, run):
    runner = CliRunner()
    data, cfg, model = tmp_path / "d.h5", tmp_path / "t.toml", tmp_path / "m.pt"
    cfg.write_text(TINY)
    assert runner.invoke(main, ["convert", str(run), "-o", str(data), "-j", "1"]).exit_code == 0
    res = runner.invoke(main, ["train", str(data), "-o", str(model), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    return model


def _infer(model, h0_run, out, *formats):
    args = ["infer", str(h0_run), "--model", str(model), "-o", str(out), "--json"]
    for f in formats:
        args += ["--write", f]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_siesta_guess_files(tmp_path):
    case = FIXTURES / "siesta" / "si_diamond"
    model = _train(tmp_path, case / "scf")
    out = tmp_path / "guess"
    summary = _infer(model, case / "h0", out, "siesta", "deeph")
    assert summary["input_lines"]["siesta"] == ["DM.UseSaveDM       true"]
    names = {p.split("/")[-1] for p in summary["files"]}
    assert {"si_diamond.DM", "si_diamond.TSHS", "H_IN"} <= names
    # the DM file holds the DM of the predicted H: 8 electrons over the overlap, on SIESTA's layout
    ref = si.read_run(case / "scf")
    dm = si.read_dm(out / "si_diamond.DM")
    assert dm.no_u == 26
    assert ref.natoms == 2
    pred = read_deeph(out / "deeph")  # the same prediction, as a DeepH folder
    h0 = si.read_h0(case / "h0")
    assert np.abs((pred.H0 - h0.H0).data).max() < 1e-9
    assert np.abs((pred.H - pred.H0).data).max() > 0


def test_openmx_guess_file(tmp_path):
    case = FIXTURES / "openmx" / "h2o"
    model = _train(tmp_path, case / "scf")
    out = tmp_path / "guess"
    summary = _infer(model, case / "scf_iter1", out, "openmx")
    (path,) = [p for p in summary["files"] if p.endswith(".scfout")]
    back = omx.read_scfout(path)  # OpenMX's own layout: our reader (and read_scfout.c) takes it
    h0 = omx.read_h0(case / "scf_iter1")
    assert back.natoms == 3 and np.array_equal(back.S.data, h0.S.data)
    assert np.abs((back.H - h0.H0).data).max() > 0  # the predicted H, not H0


def test_wrong_code_is_refused(tmp_path):
    case = FIXTURES / "openmx" / "h2o"
    res = CliRunner().invoke(main, ["infer", str(case / "scf_iter1"), "--model", "abacus_si8", "-o",
                                    str(tmp_path / "x")])
    assert res.exit_code == 2 and "error" in res.output


def test_spin_orbit_model_writes_abacus_files(tmp_path):
    """nspin 4 end to end on ABACUS fcc Pb (scf + h0_smallmag): train, infer, and the written
    spinor hrs1_nao.csr reads back as the predicted H (8-digit csr values)."""
    run = FIXTURES / "soc" / "abacus311" / "pb_fcc" / "scf"
    h0 = shared_path("fixtures", "soc", "abacus311", "pb_fcc", "h0_smallmag")
    data, cfg, model = tmp_path / "soc.h5", tmp_path / "t.toml", tmp_path / "m.pt"
    cfg.write_text(TINY)
    res = CliRunner().invoke(main, ["convert", str(run), "--h0", str(h0), "-o", str(data)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["train", str(data), "-o", str(model), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "guess"
    res = CliRunner().invoke(main, ["infer", str(h0), "--model", str(model), "-o", str(out), "--write", "abacus",
                                    "--write", "h5", "--s-from", str(run), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["structure"]["nspin"] == 4
    (pred,) = read_dataset(out / "predicted.h5")
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    point_inputs_at(copy, run)
    (copy / "OUT.pb_fcc" / "hrs1_nao.csr.xz").unlink()
    shutil.copy(out / "hrs1_nao.csr", copy / "OUT.pb_fcc" / "hrs1_nao.csr")
    back = ab.read_run(copy, with_matrices=("H",))
    assert back.nspin == 4 and np.abs((back.H - pred.H).data).max() < 1e-6

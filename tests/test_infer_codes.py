"""`dftplug infer --write siesta|openmx|deeph` end to end: a tiny model trained on the code's own
fixture, then the zeroth-step run -> files the code (or its tools) read back."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.parsers import openmx as omx
from dftplug.parsers import siesta as si
from dftplug.parsers.deeph import read_deeph

from .conftest import FIXTURES, TINY_MODEL_TOML, shared_path

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


def test_spin_orbit_data_is_refused_by_the_model(tmp_path):
    run = FIXTURES / "soc" / "abacus311" / "pb_fcc" / "scf"
    data, cfg = tmp_path / "soc.h5", tmp_path / "t.toml"
    cfg.write_text(TINY)
    h0 = shared_path("fixtures", "soc", "abacus311", "pb_fcc", "h0_smallmag")
    res = CliRunner().invoke(main, ["convert", str(run), "--h0", str(h0), "-o", str(data)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["train", str(data), "-o", str(tmp_path / "m.pt"), "--config", str(cfg)])
    assert res.exit_code == 2 and "spin-orbit" in res.output

"""``dftplug bands`` and ``dftplug dos`` on the shipped Si run: files, JSON summary, errors."""
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main

from .conftest import FIXTURES

SI = FIXTURES / "abacus311" / "si_diamond" / "scf"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_bands_command_writes_data_plot_and_gap(tmp_path):
    res = run("bands", SI, "-o", tmp_path, "--path", "LGXWK", "--npoints", 60, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["gap_eV"] == pytest.approx(0.58, abs=0.02) and not summary["metal"]
    assert summary["fermi_level_eV"] == pytest.approx(6.8540585132)
    assert summary["path"] == "LGXWK" and summary["nkpts"] == 60
    for name in ("bands.txt", "bands.h5", "bands.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = np.loadtxt(tmp_path / "bands.txt")
    assert table.shape == (60, 5 + 26)
    with h5py.File(tmp_path / "bands.h5") as f:
        assert f["energies"].shape == (1, 60, 26)
        assert [s.decode() for s in f["special_labels"][()]] == ["L", "Γ", "X", "W", "K"]
        assert np.allclose(f["energies"][0], table[:, 5:])
    assert (tmp_path / "bands.png").read_bytes()[:4] == b"\x89PNG"


def test_bands_near_fermi_level_sparse(tmp_path):
    res = run("bands", SI, "-o", tmp_path, "--path", "GX", "--npoints", 5, "--near", 4, "--json")
    summary = json.loads(res.output)
    assert summary["nbands"] == 4 and summary["metal"] is None  # a window: band count unknown
    assert 0.58 < summary["gap_eV"] < 0.8  # coarse Γ-X sampling misses the CBM at 0.85 X


def test_dos_command(tmp_path):
    res = run("dos", SI, "-o", tmp_path, "--mesh", 6, 6, 6, "--sigma", 0.2, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["mesh"] == [6, 6, 6]
    assert summary["electrons_below_fermi"] == pytest.approx(8.0, abs=0.05)
    with h5py.File(tmp_path / "dos.h5") as f:
        assert set(f["projected"]) == {"Si:s", "Si:p", "Si:d"}
    assert (tmp_path / "dos.png").stat().st_size > 0


def test_bad_inputs_exit_2(tmp_path):
    h5 = tmp_path / "set.h5"
    h5.write_bytes(b"")
    res = CliRunner().invoke(main, ["bands", str(h5), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "HDF5" in res.output
    res = CliRunner().invoke(main, ["bands", str(SI), "-o", str(tmp_path), "--path", "GQ"])
    assert res.exit_code == 2 and "band path" in res.output
    res = CliRunner().invoke(main, ["dos", str(tmp_path), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "not recognised" in res.output

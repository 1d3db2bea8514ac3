"""`dftplug convert` end to end on real fixtures, including refusals and exit codes."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.dataset import dataset_names, read_dataset
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES, point_inputs_at

SI = FIXTURES / "abacus311" / "si_diamond"
ROT = FIXTURES / "rotations" / "abacus"


def test_convert_round_trip(tmp_path):
    out = tmp_path / "si.h5"
    res = CliRunner().invoke(main, ["convert", str(SI / "scf"), "-o", str(out), "--json", "-j", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["structures"][0]["delta_h"]["max_meV"] == pytest.approx(389.46, abs=0.1)
    assert dataset_names(out) == ["si_diamond"]
    (h,) = read_dataset(out)
    ref = ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))
    for name in ("H", "S", "H0", "DM"):
        a, b = getattr(h, name), getattr(ref, name)
        assert np.array_equal(a.pairs, b.pairs) and np.array_equal(a.data, b.data)
    assert h.fermi_level == ref.fermi_level and h.nelec == 8 and h.h0_kind == "H[rho_atomic]"
    assert h.electron_count()[0] == pytest.approx(8, abs=1e-6)


def test_convert_two_runs_in_parallel(tmp_path):
    out = tmp_path / "two.h5"
    res = CliRunner().invoke(main, ["convert", str(SI), str(ROT / "original"), "-o", str(out), "-j", "2"])
    assert res.exit_code == 0, res.output
    assert res.output == ""  # quiet unless asked
    assert sorted(dataset_names(out)) == ["original", "si_diamond"]


def test_refuses_h0_of_another_structure(tmp_path):
    out = tmp_path / "bad.h5"
    res = CliRunner().invoke(main, ["convert", str(SI / "scf"), "--h0", str(ROT / "rotated" / "h0"),
                                    "-o", str(out)])
    assert res.exit_code == 2
    assert "H0 run" in res.output and "rotated" in res.output
    assert not out.exists() and not list(tmp_path.iterdir())  # no partial output


def test_refuses_missing_h0(tmp_path):
    run = tmp_path / "case" / "scf"
    shutil.copytree(SI / "scf", run)
    point_inputs_at(run, SI / "scf")
    res = CliRunner().invoke(main, ["convert", str(run), "-o", str(tmp_path / "x.h5")])
    assert res.exit_code == 2 and "no zeroth-step run" in res.output
    res = CliRunner().invoke(main, ["convert", str(run), "-o", str(tmp_path / "x.h5"), "--no-h0"])
    assert res.exit_code == 0, res.output


def test_not_a_run_folder(tmp_path):
    res = CliRunner().invoke(main, ["convert", str(tmp_path), "-o", str(tmp_path / "x.h5")])
    assert res.exit_code == 2 and "not recognised" in res.output


@pytest.mark.parametrize("fmt", ["deeph", "deeph-legacy"])
def test_convert_to_deeph_and_back(tmp_path, fmt):
    out = tmp_path / "deeph"
    res = CliRunner().invoke(main, ["convert", str(SI / "scf"), "--to", fmt, "-o", str(out), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert (out / "si_diamond").is_dir()
    back = tmp_path / "back.h5"
    res = CliRunner().invoke(main, ["convert", str(out / "si_diamond"), "-o", str(back), "-j", "1"])
    assert res.exit_code == 0, res.output
    (h,) = read_dataset(back)
    ref = ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))
    for name in ("H", "S", "H0", "DM"):
        assert np.abs((getattr(h, name) - getattr(ref, name)).data).max() < 1e-11
    assert h.provenance["code"] == "abacus" and h.h0_kind == "H[rho_atomic]"
    res = CliRunner().invoke(main, ["convert", str(SI / "scf"), "--to", fmt, "-o", str(out)])
    assert res.exit_code == 2 and "not empty" in res.output

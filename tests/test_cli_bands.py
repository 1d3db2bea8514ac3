"""``dftplug bands`` and ``dftplug dos`` on the shipped Si run: files, JSON summary, errors."""
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.parsers.abacus import read_run

from .conftest import FIXTURES, shared_path

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
    res = CliRunner().invoke(main, ["bands", str(SI), "-o", str(tmp_path), "--structure", "x"])
    assert res.exit_code == 2 and ".h5" in res.output
    res = CliRunner().invoke(main, ["bands", str(SI), "-o", str(tmp_path), "--path", "GQ"])
    assert res.exit_code == 2 and "band path" in res.output
    res = CliRunner().invoke(main, ["dos", str(tmp_path), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "not recognised" in res.output


SOC_RUNS = {"siesta": ("soc", "siesta", "pt_fcc", "scf"), "openmx": ("soc", "openmx", "pt_fcc", "scf"),
            "abacus": ("soc", "abacus311", "pb_fcc", "scf")}


@pytest.mark.parametrize("code, pair, splitting", [
    ("siesta", (6, 2), 0.936),    # t2g Γ7+ − Γ8+ (soc/README § 1.2)
    ("openmx", (12, 8), 0.966),  # t2g Γ7+ − Γ8+ (§ 2.2)
    ("abacus", (14, 12), 2.782),  # 6p Γ8− − Γ6− (§ 3.2)
])
def test_bands_and_dos_of_spin_orbit_runs(code, pair, splitting, tmp_path):
    """nspin 4 through the CLI: one channel of 2·nao spinor levels, Kramers pairs, the README's Γ splitting
    (first index: a level of the upper multiplet, second: of the lower); the DOS on a coarse mesh holds N
    (E_F on the run's own mesh = the code's: test_soc_siesta/openmx/abacus)."""
    source = shared_path("fixtures", *SOC_RUNS[code])
    summary = json.loads(run("bands", source, "-o", tmp_path, "--path", "GX", "--npoints", 6, "--json").output)
    assert summary["nspin"] == 1 and summary["metal"]
    with h5py.File(tmp_path / "bands.h5") as f:
        gamma = f["energies"][0, 0]
    assert len(gamma) == summary["nbands"] and np.abs(gamma[0::2] - gamma[1::2]).max() < 1e-6  # Kramers
    assert gamma[pair[0]] - gamma[pair[1]] == pytest.approx(splitting, abs=2e-3)
    res = run("dos", source, "-o", tmp_path, "--sigma", 0.2, "--mesh", 3, 3, 3, "--json")
    summary = json.loads(res.output)
    assert summary["electrons_below_fermi"] == pytest.approx({"siesta": 10, "openmx": 16, "abacus": 14}[code], abs=0.2)


def test_bands_of_a_dataset_structure(tmp_path):
    """.h5 input: the structure named by --structure (default: the first) gives the run folder's bands."""
    from dftplug.parsers import siesta
    from dftplug.dataset import write_dataset
    h5 = write_dataset(tmp_path / "set.h5", [("si", read_run(SI)),
                                             ("pt", siesta.read_run(shared_path("fixtures", *SOC_RUNS["siesta"])))])
    energies = {}
    for name, args in (("first", []), ("pt", ["--structure", "pt"]), ("si", ["--structure", "si"]), ("folder", [])):
        source = SI if name == "folder" else h5
        res = run("bands", source, "-o", tmp_path / name, "--path", "GX", "--npoints", 4, "--json", *args)
        assert res.exit_code == 0, res.output
        with h5py.File(tmp_path / name / "bands.h5") as f:
            energies[name] = f["energies"][()]
    assert np.abs(energies["si"] - energies["folder"]).max() < 1e-12
    assert energies["pt"].shape == (1, 4, 24) and np.array_equal(energies["first"], energies["pt"])  # names sorted
    res = CliRunner().invoke(main, ["dos", str(h5), "-o", str(tmp_path), "--structure", "nope"])
    assert res.exit_code == 2 and "nope" in res.output

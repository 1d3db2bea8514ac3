"""SIESTA 5.1 run folders written by others (../shared/fixtures/siesta5, README there): standard output
in ``RUN.out``, CODATA-2018 unit constants, 5.x HSX, spin-polarised SrTiO3 and spin-orbit Pt2."""
import re

import numpy as np
import pytest

from dftplug.bands import energies_at
from dftplug.density import density_matrix
from dftplug.errors import ParseError
from dftplug.parsers import siesta as si

from .code_bands import siesta_band_lines, siesta_bands, siesta_eig, siesta_kpoints
from .conftest import FIXTURES, shared_path
from .test_siesta import _plain_copy, _sparse_equal
from .test_soc_siesta import soc_part
from .test_soc_symmetry import _cell_map, _relabel

CASES = {"Si_pdos_k": "Si_pdos", "SrTiO3_polarized": "SrTiO3", "Pt2_soc": "Pt2_xx"}
# RUN.out: version, final E_F (eV), electrons, SCF iterations
PRINTED = {"Si_pdos_k": ("5.1-MaX-24-gc2193a788", -4.483767, 8, 5),
           "SrTiO3_polarized": ("5.1-MaX-42-gb6955e60a", -3.663440, 40, 22),
           "Pt2_soc": ("5.1-MaX-42-gb6955e60a", -4.311394, 36, 23)}
ALL_BANDS = 1e-12  # S tolerance of the eigensolver: keep every band, as SIESTA does (SrTiO3's S(k) is
                   # near-singular at some k; the default guard drops its top levels)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Plain copies of the three run folders (users have plain files)."""
    root = tmp_path_factory.mktemp("siesta5")
    return {case: _plain_copy(shared_path("fixtures", "siesta5", case), root / case) for case in CASES}


@pytest.fixture(scope="module")
def read(runs):
    return {case: si.read_run(folder) for case, folder in runs.items()}


def grid_kpoints(h, folder, label):
    """The ``.KP`` points snapped to the run's Monkhorst-Pack grid k = (i + shift/2)/n."""
    n, shift = np.array(h.settings["kmesh"]), np.array(h.settings["kmesh_shift"])
    k = siesta_kpoints(folder / f"{label}.KP", h.atoms.cell.array, h.settings["siesta_units"]["bohr_Ang"])
    snapped = (np.rint(k * n - shift / 2) + shift / 2) / n
    assert np.abs(k - snapped).max() < 1e-5
    return snapped


# ------------------------------------------------------------------ standard output, version, units
@pytest.mark.parametrize("case", list(CASES))
def test_stdout_found_by_content(read, runs, case):
    h, (version, ef, nelec, iterations) = read[case], PRINTED[case]
    assert h.provenance["files"]["log"] == str(runs[case] / "RUN.out")
    assert h.provenance["version"] == version and h.provenance["units"] == f"SIESTA 5.x (version {version})"
    assert h.provenance["scf_iterations"] == iterations and h.nelec == nelec
    assert h.fermi_level == pytest.approx(ef, abs=5e-7) and h.provenance["fermi_level_log"] == ef
    ef_eig, _ = siesta_eig(runs[case] / f"{CASES[case]}.EIG")
    assert h.fermi_level == pytest.approx(ef_eig, abs=1e-7)  # 9 digits printed; SIESTA 4 units: off by 3e-5
    assert sum(h.electron_count()) == pytest.approx(nelec, abs=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_units_are_codata_2018(runs, case):
    """SIESTA 5 converts with CODATA 2018 (13.605693122994 eV/Ry, 0.529177210903 Å/Bohr), not 4.x's
    13.60580 / 0.529177: the .EIG's E_F over the TSHS's picks them (5.x: 1e-9 off, 4.x: 8e-6)."""
    label = CASES[case]
    ef_ry = si.read_tshs(runs[case] / f"{label}.TSHS").header["ef"]
    assert si.units_from_eig(runs[case] / f"{label}.EIG", ef_ry) == si.UNITS["5"]
    ef_eig, _ = siesta_eig(runs[case] / f"{label}.EIG")
    assert abs(ef_ry * si.UNITS["4"].ry_ev - ef_eig) > 2e-5  # the old constant would be visibly wrong
    # lengths: the XV (Bohr) of the fdf's 20 Å box
    if case == "Pt2_soc":
        cell, *_ = si.read_xv(runs[case] / f"{label}.XV")
        assert cell[0, 0] * si.UNITS["5"].bohr_ang == pytest.approx(20.0, abs=1e-8)


@pytest.mark.parametrize("case", ["si_diamond", "fe_bcc", "o2_spin"])
def test_siesta4_units_are_recognised(case):
    folder = shared_path("fixtures", "siesta", case, "scf")
    ef_ry = si.read_tshs(folder / f"{case}.TSHS").header["ef"]
    assert si.units_from_eig(folder / f"{case}.EIG", ef_ry) == si.UNITS["4"]


def test_renamed_stdout_reads_the_same(runs, read, tmp_path):
    run = _plain_copy(runs["Si_pdos_k"], tmp_path / "si")
    (run / "RUN.out").rename(run / "job.log")
    h, ref = si.read_run(run), read["Si_pdos_k"]
    assert h.provenance["files"]["log"] == str(run / "job.log")
    for key in ("version", "scf_iterations", "fermi_level_log", "units"):
        assert h.provenance[key] == ref.provenance[key], key
    assert h.basis == ref.basis and h.fermi_level == ref.fermi_level
    for name, m in ref.matrices().items():
        assert np.array_equal(getattr(h, name).data, m.data), name


def test_two_standard_outputs_are_refused_naming_both(runs, tmp_path):
    run = _plain_copy(runs["Si_pdos_k"], tmp_path / "si")
    (run / "old_run.txt").write_bytes((run / "RUN.out").read_bytes())
    with pytest.raises(ParseError, match=r"2 SIESTA standard outputs .*: RUN.out, old_run.txt"):
        si.read_run(run)


def test_output_of_another_label_is_not_a_candidate(runs, tmp_path):
    run = _plain_copy(runs["Si_pdos_k"], tmp_path / "si")
    text = (run / "RUN.out").read_text()
    (run / "other.out").write_text(re.sub(r"System Label: Si_pdos", "System Label: other", text))
    assert not si.is_siesta_stdout(run / "other.out", "Si_pdos") and si.is_siesta_stdout(run / "other.out")
    assert si.read_run(run).provenance["files"]["log"] == str(run / "RUN.out")


def test_without_standard_output(runs, read, tmp_path):
    """No stdout: the basis from ORB_INDX, units from the .EIG, E_F, kT and k grid from the TSHS."""
    run = _plain_copy(runs["SrTiO3_polarized"], tmp_path / "sto")
    (run / "RUN.out").unlink()
    h, ref = si.read_run(run), read["SrTiO3_polarized"]
    assert h.provenance["version"] is None and h.provenance["units"] == "SIESTA 5.x (E_F of SrTiO3.EIG)"
    assert h.basis == ref.basis and h.fermi_level == ref.fermi_level and h.nelec == ref.nelec
    assert np.array_equal(h.atoms.positions, ref.atoms.positions)
    for key in ("kmesh", "kmesh_shift", "smearing_method", "smearing_sigma_eV", "siesta_polarization"):
        assert h.settings[key] == ref.settings[key], key
    for name, m in ref.matrices().items():
        assert np.array_equal(getattr(h, name).data, m.data), name


# ------------------------------------------------------------------ bands, E_F, gap
def _below(printed, h, above_fermi=10.0):
    """Mask of the levels below E_F + 10 eV (the top DZP levels feel S's conditioning)."""
    return printed < h.fermi_level + above_fermi


def test_si_eigenvalues_equal_eig_at_every_kpoint(runs, read):
    h = read["Si_pdos_k"]
    _, printed = siesta_eig(runs["Si_pdos_k"] / "Si_pdos.EIG")
    ours = energies_at(h, grid_kpoints(h, runs["Si_pdos_k"], "Si_pdos"), tolerance=ALL_BANDS)
    assert ours.shape == printed.shape == (1, 63, 18)
    assert np.abs(ours - printed).max() < 1e-6  # eV, every band and k (measured 3.5e-7)
    assert np.abs(ours - printed)[_below(printed, h)].max() < 1e-7  # measured 4.9e-8


def test_srtio3_bands_equal_siestas_bands_file(runs, read):
    """Spin-polarised SrTiO3 (Sr, Ti, O with d shells) along SIESTA's BandLines (pi/a scale)."""
    h, folder = read["SrTiO3_polarized"], runs["SrTiO3_polarized"]
    printed = siesta_bands(folder / "SrTiO3.bands")  # energies printed with 4 decimals
    ours = energies_at(h, siesta_band_lines(folder / "SrTiO3.fdf"), tolerance=ALL_BANDS)
    assert ours.shape == printed.shape == (2, 150, 72)
    assert np.abs(ours - printed).max() < 1e-4  # eV, 2 spins x 150 k x 72 bands (measured 7.8e-5)
    assert np.abs(ours - printed)[_below(printed, h)].max() < 5.1e-5  # the print's rounding
    gap = [np.min(e[e > h.fermi_level]) - np.max(e[e < h.fermi_level]) for e in (ours, printed)]
    assert gap[0] == pytest.approx(gap[1], abs=1e-4) and gap[0] == pytest.approx(2.24995, abs=1e-5)
    with open(folder / "SrTiO3.bands") as fh:
        assert h.fermi_level == pytest.approx(float(fh.readline()), abs=1e-9)  # printed in full


def test_srtio3_eigenvalues_equal_eig_and_the_spins_agree(runs, read):
    """Converged non-magnetic: both spin channels equal, moment 0 (RUN.out: 0.00000)."""
    h, folder = read["SrTiO3_polarized"], runs["SrTiO3_polarized"]
    _, printed = siesta_eig(folder / "SrTiO3.EIG")
    ours = energies_at(h, grid_kpoints(h, folder, "SrTiO3"), tolerance=ALL_BANDS)
    assert ours.shape == printed.shape == (2, 108, 72)
    assert np.abs(ours - printed).max() < 5e-5  # eV (measured 2.0e-5, top levels)
    assert np.abs(ours - printed)[_below(printed, h)].max() < 1e-7  # measured 5.1e-8
    gap = [np.min(e[e > h.fermi_level]) - np.max(e[e < h.fermi_level]) for e in (ours, printed)]
    assert gap[0] == pytest.approx(gap[1], abs=1e-7)  # the gap on the SCF mesh
    up, down = h.electron_count()
    assert up + down == pytest.approx(40, abs=1e-6) and abs(up - down) < 1e-4


# ------------------------------------------------------------------ spin-orbit Pt2 (off-site SOC, magnetic)
def _rotation_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _symmetry_error(h, name, rot):
    rotated = h.rotated(rot)
    return np.abs((_relabel(getattr(rotated, name), _cell_map(rotated, h)) - getattr(h, name)).data).max()


def test_pt2_levels_equal_eig(runs, read):
    h = read["Pt2_soc"]
    _, printed = siesta_eig(runs["Pt2_soc"] / "Pt2_xx.EIG")
    ours = energies_at(h, [[0, 0, 0]])
    assert h.nspin == 4 and ours.shape == printed.shape == (1, 1, 76)
    assert np.abs(ours - printed).max() < 1e-6  # eV (measured 3.5e-7)
    # 5.x spin-orbit is off-site too: the SOC channels reach the other atom's blocks
    soc = soc_part(h.H)
    off = soc.pairs[:, 0] != soc.pairs[:, 1]
    assert np.abs(soc.data.reshape(4, -1)[:, np.repeat(off, np.diff(soc.offsets))]).max() > 1e-3


def test_pt2_spin_transpose_guard(runs, monkeypatch):
    """Guard: the element's spin box taken as <io|H|jo> instead of <jo|H|io> moves the levels by eV."""
    monkeypatch.setattr(si, "_SWAP_SPIN", [0, 1, 2, 3])
    h = si.read_run(runs["Pt2_soc"], with_matrices=("H", "S"))
    _, printed = siesta_eig(runs["Pt2_soc"] / "Pt2_xx.EIG")
    assert np.abs(energies_at(h, [[0, 0, 0]]) - printed).max() > 1.0


def test_pt2_rotation_about_the_moment_is_a_symmetry(read):
    """Moment and bond along x: C4 about x maps H, DM onto themselves ((D x U) M (D x U)^dagger,
    measured 2.7e-9 eV); the other sign of i (conj H) fails by 9 eV, which pins it."""
    h, c4 = read["Pt2_soc"], _rotation_x(np.pi / 2)
    assert _symmetry_error(h, "H", c4) < 1e-7 and _symmetry_error(h, "DM", c4) < 1e-7
    conj = h._with_matrices({"H": h.H.conj(), "S": h.S}, h.atoms)
    assert _symmetry_error(conj, "H", c4) > 1.0


def test_pt2_dm_is_rebuilt_from_h_and_carries_the_moment(read):
    """DM of H's eigenvectors at Gamma (FD 50 meV) = SIESTA's DM (DM.Tolerance 1e-5; measured 2.9e-6),
    conj fails; the moment is RUN.out's {1.85672, 0, 0}: the DM's up-down channels are right."""
    h = read["Pt2_soc"]
    assert h.settings["kmesh"] == [1, 1, 1] and h.settings["smearing_sigma_eV"] == pytest.approx(0.05, abs=1e-12)
    result = density_matrix(h, pairs=h.DM.pairs)
    assert result.fermi_level == pytest.approx(h.fermi_level, abs=1e-8)
    stored = np.any(h.DM.data != 0, axis=0)
    assert np.abs(result.DM.data - h.DM.data)[:, stored].max() < 2e-5
    assert np.abs(result.DM.data - h.DM.data.conj())[:, stored].max() > 0.1
    assert h.spin_moment() == pytest.approx([1.85672, 0, 0], abs=1e-5)
    assert h.electron_count() == pytest.approx([18, 18], abs=1e-8)
    herm = h.hermiticity_error()
    assert herm["H"] < 1e-8 and herm["DM"] < 1e-14


# ------------------------------------------------------------------ HSX of SIESTA 5
@pytest.mark.parametrize("case", list(CASES))
def test_hsx_holds_the_tshs_numbers(runs, case):
    """5.x HSX (version 1): double precision, cell, supercells and E_F; bit-identical to the TSHS."""
    label = CASES[case]
    hsx, tshs = si.read_hsx(runs[case] / f"{label}.HSX"), si.read_tshs(runs[case] / f"{label}.TSHS")
    assert hsx.header["hsx_version"] == 1 and hsx.header["is_dp"]
    assert hsx.same_pattern(tshs) and np.array_equal(hsx.isc_off, tshs.isc_off)
    for key in ("H", "S"):
        assert np.array_equal(hsx.values[key], tshs.values[key]), key
    assert np.array_equal(hsx.cell, tshs.cell) and np.array_equal(hsx.xa, tshs.xa)
    assert si.hsx_fermi_level(hsx) == tshs.header["ef"] and hsx.header["qtot"] == tshs.header["qtot"]


def test_spin_orbit_hsx_reads_like_the_tshs(runs, read, tmp_path):
    run = _plain_copy(runs["Pt2_soc"], tmp_path / "pt2")
    (run / "Pt2_xx.TSHS").unlink()
    h, ref = si.read_run(run), read["Pt2_soc"]
    assert h.provenance["matrix_file"] == "HSX" and h.provenance["fermi_level_from"] == "HSX"
    assert h.fermi_level == ref.fermi_level
    for name, m in ref.matrices().items():
        assert np.array_equal(getattr(h, name).data, m.data), name


def _hsx_with_fermi(run, label, ef_ry):
    """Rewrite E_F (record 4: cell, Ef, Qtot, Temp) of a 5.x HSX in place."""
    path = run / f"{label}.HSX"
    buf = bytearray(path.read_bytes())
    pos = 0
    for _ in range(3):
        pos += 8 + int(np.frombuffer(buf, "<i4", 1, pos)[0])
    buf[pos + 4 + 72:pos + 4 + 80] = np.float64(ef_ry).tobytes()
    path.write_bytes(bytes(buf))
    (run / f"{label}.TSHS").unlink()
    return run


def test_hsx_without_fermi_level(runs, tmp_path):
    """sisl issue 828: an H.Setup.Only HSX stores E_F = huge. Then E_F comes from the standard output
    (source recorded), or is None without one; never the huge number."""
    run = _hsx_with_fermi(_plain_copy(runs["Si_pdos_k"], tmp_path / "si"), "Si_pdos", np.finfo(float).max)
    h = si.read_run(run)
    assert h.fermi_level == -4.483767 and h.provenance["fermi_level_from"].startswith("standard output")
    (run / "RUN.out").unlink()
    with pytest.raises(ParseError, match="version is unknown"):  # nor can the .EIG tell the units
        si.read_run(run)


def test_hsx_fermi_level_of_another_run_is_refused(runs, tmp_path):
    run = _hsx_with_fermi(_plain_copy(runs["Si_pdos_k"], tmp_path / "si"), "Si_pdos", -0.33)
    with pytest.raises(ParseError, match=r"Si_pdos.HSX: E_F -4.489.* differs from the -4.483767 eV"):
        si.read_run(run)


# ------------------------------------------------------------------ writers
@pytest.mark.parametrize("case", ["Pt2_soc", "SrTiO3_polarized"])
def test_round_trip_equals_siestas_files(runs, read, case, tmp_path):
    """read -> write TSHS and DM -> read: SIESTA 5's layout and column order, values to round-off
    (H back to Ry with the 5.x constant)."""
    label, h = CASES[case], read[case]
    run = _plain_copy(runs[case], tmp_path / case, keep={"out", "XV", "fdf", "ORB_INDX"})
    si.write_tshs(h, run / f"{label}.TSHS", layout=h.file_layout)
    si.write_dm(h, run / f"{label}.DM", layout=h.file_layout)
    ours, theirs = si.read_tshs(run / f"{label}.TSHS"), si.read_tshs(runs[case] / f"{label}.TSHS")
    _sparse_equal(ours, theirs, atol=1e-14)  # Ry (measured 8.9e-15 on |H| up to 7 Ry)
    assert np.abs(ours.cell - theirs.cell).max() < 1e-12 and np.abs(ours.xa - theirs.xa).max() < 1e-12
    for key in ("ef", "qtot", "temp"):
        assert ours.header[key] == pytest.approx(theirs.header[key], rel=1e-15)
    _sparse_equal(si.read_dm(run / f"{label}.DM"), si.read_dm(runs[case] / f"{label}.DM"), atol=3e-14)  # 1.2e-14
    back = si.read_run(run)
    for name, m in h.matrices().items():
        assert np.abs((getattr(back, name) - m).data).max() < 1e-12, name


def test_shipped_siesta4_folder_still_reads_with_4x_units():
    h = si.read_run(FIXTURES / "siesta" / "si_diamond" / "scf")
    assert h.settings["siesta_units"]["generation"] == "4" and h.provenance["units"] == "SIESTA 4.x (version 4.1.5)"


def test_hsx_round_trip_equals_siestas_file(runs, tmp_path):
    """Spin-orbit Pt2 read from its 5.x HSX and written back: SIESTA's records (species, orbitals,
    supercells, E_F) and values to round-off; the TSHS written from it reads the same too."""
    run = _plain_copy(runs["Pt2_soc"], tmp_path / "pt2")
    (run / "Pt2_xx.TSHS").unlink()
    h = si.read_run(run)
    ours = si.read_hsx(si.write_hsx(h, tmp_path / "x.HSX", layout=h.file_layout))
    theirs = si.read_hsx(runs["Pt2_soc"] / "Pt2_xx.HSX")
    _sparse_equal(ours, theirs, atol=1e-14)
    assert (tmp_path / "x.HSX").stat().st_size == (runs["Pt2_soc"] / "Pt2_xx.HSX").stat().st_size
    for key in ("hsx_version", "is_dp", "species", "qtot"):
        assert ours.header[key] == theirs.header[key], key
    assert all(np.array_equal(a, b) for a, b in zip(ours.header["orbitals"], theirs.header["orbitals"]))
    assert ours.header["ef"] == pytest.approx(theirs.header["ef"], rel=1e-15)
    assert np.array_equal(ours.isc_off, theirs.isc_off) and np.abs(ours.cell - theirs.cell).max() < 1e-12
    tshs = si.read_tshs(si.write_tshs(h, tmp_path / "x.TSHS", layout=h.file_layout))
    _sparse_equal(tshs, si.read_tshs(runs["Pt2_soc"] / "Pt2_xx.TSHS"), atol=1e-14)


def test_sisl_reads_our_hsx_as_siestas(runs, read, tmp_path):
    """sisl (the layout reference) gives the same spin-orbit levels from our HSX and from SIESTA's."""
    sisl = pytest.importorskip("sisl")
    path = si.write_hsx(read["Pt2_soc"], tmp_path / "Pt2_xx.HSX", layout=read["Pt2_soc"].file_layout)
    ours, theirs = (sisl.get_sile(str(p)).read_hamiltonian().eigh() for p in (path, runs["Pt2_soc"] / "Pt2_xx.HSX"))
    assert np.abs(ours - theirs).max() < 1e-9


def test_hsx_without_fermi_level_is_written_as_siesta_does(read, tmp_path):
    h = read["Si_pdos_k"]
    h = h._with_matrices(h.matrices(), h.atoms)
    h.fermi_level = None
    f = si.read_hsx(si.write_hsx(h, tmp_path / "x.HSX", layout=h.file_layout))
    assert f.header["ef"] == np.finfo(float).max and si.hsx_fermi_level(f) is None


def test_cli_reads_a_folder_whose_stdout_is_run_out(runs, tmp_path):
    """The issue's symptom: `dftplug bands` / `convert` stopped with '<label>.out: file not found'."""
    import json

    from click.testing import CliRunner

    from dftplug.cli import main
    res = CliRunner().invoke(main, ["bands", str(runs["SrTiO3_polarized"]), "-o", str(tmp_path / "b"),
                                    "--npoints", "20", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert out["fermi_level_eV"] == pytest.approx(-3.663440, abs=5e-7) and out["gap_eV"] > 2.0
    res = CliRunner().invoke(main, ["convert", str(runs["Si_pdos_k"]), "--no-h0", "-o", str(tmp_path / "si.h5"),
                                    "--json", "-j", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["structures"][0]["fermi_level_eV"] == pytest.approx(-4.483767, abs=5e-7)

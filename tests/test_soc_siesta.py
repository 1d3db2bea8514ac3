"""SIESTA 4.1.5 spin-orbit (nspin 8) reader and writers on the real fcc Pt fixtures
(README of ../shared/fixtures/soc, § 1)."""
import json
import re
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.dataset import read_dataset
from dftplug.errors import ParseError
from dftplug.blocksparse import BlockSparse
from dftplug.bands import energies_at
from dftplug.density import density_matrix
from dftplug.parsers import abacus as ab
from dftplug.parsers import siesta as si

from .conftest import FIXTURES, shared_path
from .test_siesta import _plain_copy, _sparse_equal
from .code_bands import siesta_eig, siesta_kpoints
from .test_soc_symmetry import CUBIC, _cell_map, _relabel

PT = FIXTURES / "soc" / "siesta" / "pt_fcc"
KB_EV = 8.617333262e-5  # Boltzmann constant, eV/K


@pytest.fixture(scope="module")
def scf():
    return si.read_run(PT / "scf").attach_h0(si.read_h0(PT / "h0"))


def soc_part(m):
    """The spin-orbit terms of a spinor matrix: up-down channels and Im of the spin-diagonal ones."""
    d = m.data.copy()
    d[[0, 3]] = 1j * d[[0, 3]].imag
    return m.copy(d)


def grid_kpoints(h):
    """The ``.KP`` k points (6 printed digits) snapped to the run's Monkhorst-Pack grid (no shift)."""
    n = np.diag(h.settings["kgrid"])
    assert h.settings["kdispl"] == [0.0, 0.0, 0.0]
    k = siesta_kpoints(PT / "scf" / "pt_fcc.KP", h.atoms.cell.array)
    snapped = np.rint(k * n) / n
    assert np.abs(k - snapped).max() < 1e-5
    return snapped


def levels(energies, tol=1e-3):
    """Distinct levels and their degeneracies, ascending (tol above the grid splitting of 1.3e-4 eV)."""
    groups = np.split(energies, np.nonzero(np.diff(energies) > tol)[0] + 1)
    return np.array([g.mean() for g in groups]), [len(g) for g in groups]


# ------------------------------------------------------------------ numbers SIESTA printed
def test_spinor_channels_and_numbers_of_the_log(scf):
    assert scf.nspin == 4 and scf.H.data.dtype == np.complex128 and scf.S.nspin == 1
    assert scf.nelec == 10 and scf.fermi_level == pytest.approx(-1.119252, abs=5e-7)
    assert scf.basis.label("Pt") == "2s2d" and scf.provenance["version"] == "4.1.5"
    assert scf.provenance["scf_iterations"] == 9 and scf.h0_kind == "H[rho_atomic]"
    # 4.1.5's SOC is on-site only: up-down couplings exist on block (0, 0, R = 0) alone
    soc = soc_part(scf.H)
    nonzero = [tuple(p) for e, p in enumerate(soc.pairs)
               if np.abs(soc.data[:, soc.offsets[e]:soc.offsets[e + 1]]).max() > 0]
    assert nonzero == [(0, 0, 0, 0, 0)] and np.abs(soc.data).max() > 0.5


@pytest.mark.parametrize("run", ["scf", "h0"])
def test_band_energies_equal_siestas_eig_at_all_512_kpoints(scf, run):
    h = scf if run == "scf" else si.read_h0(PT / "h0")
    ef, printed = siesta_eig(PT / run / "pt_fcc.EIG")
    printed = printed[0]  # nspin 8: one list of 2 no spinor levels per k
    ours = energies_at(h, grid_kpoints(scf), which="H" if run == "scf" else "H0")[0]
    assert ef == pytest.approx(h.fermi_level, abs=5e-7)
    assert np.abs(ours - printed).max() < 1e-4            # eV, all 24 bands (measured 4.7e-5)
    assert np.abs(ours[:, :12] - printed[:, :12]).max() < 1e-6  # the 12 lowest (measured 5e-8)


def test_gamma_t2g_spin_orbit_splitting(scf):
    """README § 1.2: 6s -12.0721 (x2), t2g Gamma8+ -5.6532 (x4), Gamma7+ -4.7167 (x2), eg -2.8325 (x4)."""
    level, deg = levels(energies_at(scf, [[0, 0, 0]])[0, 0][:12])
    assert deg == [2, 4, 2, 4]
    assert level == pytest.approx([-12.0721, -5.6532, -4.7167, -2.8325], abs=2e-4)
    assert level[2] - level[1] == pytest.approx(0.936, abs=1e-3)


def test_without_the_soc_terms_t2g_is_not_split(scf):
    """Guard: the scalar part alone gives t2g x6 and eg x4 (the splitting comes from the SOC channels)."""
    scalar = scf.H.copy(scf.H.data - soc_part(scf.H).data)
    h = si.read_run(PT / "scf", with_matrices=("S",))
    h.H = scalar
    _, deg = levels(energies_at(h, [[0, 0, 0]])[0, 0][:12])
    assert deg == [2, 6, 4]


# ------------------------------------------------------------------ density matrix
def test_electron_count_moment_and_hermiticity(scf):
    assert scf.electron_count() == pytest.approx([5.0, 5.0], abs=1e-8)
    assert np.abs(scf.spin_moment()).max() < 1e-12  # log: S = 0.00000, all components
    herm = scf.hermiticity_error()  # SIESTA does not symmetrise H, S
    assert herm["H"] < 1e-9 and herm["H0"] < 1e-9 and herm["S"] < 1e-9 and herm["DM"] < 1e-14


def spinor_dm_errors(h):
    """(max |DM_toolkit − DM_code|, max |Im DM_toolkit|, max |DM_toolkit − conj DM_code|) on the elements the
    code stores, and their count: the toolkit's DM on the run's mesh, smearing and its own E_F, which is
    the code's (measured SIESTA 1e-10 eV, OpenMX 6e-10 eV)."""
    result = density_matrix(h, pairs=h.DM.pairs)
    assert result.fermi_level == pytest.approx(h.fermi_level, abs=1e-6)
    want, got = result.DM.data, h.DM.data
    stored = np.any(got != 0, axis=0)
    return (np.abs(want - got)[:, stored].max(), np.abs(want.imag)[:, stored].max(),
            np.abs(want - got.conj())[:, stored].max(), int(stored.sum()))


def test_dm_is_rebuilt_from_the_eigenvectors_of_h(scf):
    """Pins the DM's components 5-8 (not checked in the README) against H's convention."""
    assert scf.settings["smearing_kT_eV"] == pytest.approx(300 * KB_EV, rel=1e-5)
    assert scf.settings["kmesh"] == list(np.diag(scf.settings["kgrid"])) and grid_kpoints(scf) is not None
    error, imag, conj_error, stored = spinor_dm_errors(scf)
    assert stored > 14000  # 14446 of the 35856 elements of the DM blocks: SIESTA keeps its sparsity only
    assert error < 1e-7  # measured 4.5e-9
    assert imag > 0.03  # the test sees the imaginary parts
    assert conj_error > 0.05  # guard: the conjugate DM fails


# ------------------------------------------------------------------ symmetry and time reversal
def symmetry_error(h, name, op, part=lambda m: m):
    """max |(D x U) M (D x U)^dagger relabelled to the original lattice - M| for the cubic ``op``,
    on ``part`` of the matrix ``name``."""
    rot = np.array(CUBIC[op], float)
    rotated = h.rotated(rot)
    moved = _relabel(part(getattr(rotated, name)), _cell_map(rotated, h))
    return np.abs((moved - part(getattr(h, name))).data).max()


@pytest.mark.parametrize("op", list(CUBIC))
def test_cubic_symmetry(scf, op):
    """(D x U) M (D x U)^dagger relabelled = M. The SOC terms: exactly (measured 9e-16 eV). The full H
    and DM: to 2e-7 eV under C3[111] and inversion; C4-type operations meet SIESTA's real-space grid
    in the scalar part (1.9e-4 eV, as in the no-SOC run, test below)."""
    grid = op not in ("C3[111]", "inversion")
    for name in ("H", "H0"):
        assert symmetry_error(scf, name, op, soc_part) < 1e-12
        assert symmetry_error(scf, name, op) < (3e-4 if grid else 1e-6)
    assert symmetry_error(scf, "DM", op) < (1e-4 if grid else 1e-7)
    assert symmetry_error(scf, "S", op) < 1e-9


def test_grid_breaks_c4_equally_without_soc(scf):
    nosoc = si.read_run(shared_path("fixtures", "soc", "siesta", "pt_fcc", "scf_nosoc"), with_matrices=("H", "S"))
    ref = symmetry_error(nosoc, "H", "C4z")
    assert 1e-4 < ref < 3e-4 and symmetry_error(scf, "H", "C4z") < 1.1 * ref


@pytest.mark.parametrize("op", ["C4z", "C3[111]", "S4z"])
def test_conjugate_sign_of_i_breaks_the_symmetry(scf, op):
    """Guard: conj(H) (the other sign of i) has the same eigenvalues but is not cubic (~1.6 eV)."""
    conj = scf._with_matrices({"H": scf.H.conj(), "S": scf.S}, scf.atoms)
    assert symmetry_error(conj, "H", op) > 1.0


def test_other_sign_of_i_keeps_the_levels_and_breaks_the_symmetry(monkeypatch):
    """Guard: reading H with conj(X) instead of X gives conj(H): Hermitian, same Gamma levels,
    not cubic."""
    monkeypatch.setattr(si, "SOC_PARTS", tuple((b, np.conj(f)) for b, f in si.SOC_PARTS))
    h = si.read_run(PT / "scf", with_matrices=("H", "S"))
    assert h.hermiticity_error()["H"] < 1e-9
    assert levels(energies_at(h, [[0, 0, 0]])[0, 0][:12])[1] == [2, 4, 2, 4]
    assert symmetry_error(h, "H", "C3[111]") > 0.5


def test_without_the_spin_transpose_the_levels_are_wrong(monkeypatch):
    """Guard: taking the element's box as <io|H|jo> (no spin transposition) gives the t2g levels
    x2 -5.731, x4 -5.179 instead of x4 -5.653, x2 -4.717."""
    monkeypatch.setattr(si, "_SWAP_SPIN", [0, 1, 2, 3])
    h = si.read_run(PT / "scf", with_matrices=("H", "S"))
    level, deg = levels(energies_at(h, [[0, 0, 0]])[0, 0][:12])
    assert deg == [2, 2, 4, 4] and level[1] == pytest.approx(-5.731, abs=1e-3)


def test_time_reversal_invariance(scf):
    for name in ("H", "H0", "DM"):
        m = getattr(scf, name)
        assert np.abs((m.time_reversed() - m).data).max() < 1e-12, name  # measured 8e-14
    # time reversal cannot tell H from conj(H) (both invariant): the symmetry test above can
    assert np.abs((scf.H.conj().time_reversed() - scf.H.conj()).data).max() < 1e-12


# ------------------------------------------------------------------ H0
def test_h0_differs_only_in_the_density_dependent_part(scf):
    """README § 1.3: components 3-8 (the on-site SOC term) bit-identical in h0/ and scf/, S too."""
    d = scf.delta_h()
    assert np.abs(d.data).max() == pytest.approx(1.904, abs=1e-3)
    assert not np.any(d.data[1:3]) and not np.any(d.data.imag)
    a, b = (si.read_tshs(PT / run / "pt_fcc.TSHS") for run in ("scf", "h0"))
    assert a.same_pattern(b) and np.array_equal(a.values["S"], b.values["S"])
    assert np.array_equal(a.values["H"][2:], b.values["H"][2:])
    assert not np.array_equal(a.values["H"][:2], b.values["H"][:2])


# ------------------------------------------------------------------ writers
def test_component_map_is_exactly_invertible():
    x = np.random.default_rng(0).normal(size=(8, 50))
    for name in ("H", "DM"):
        assert np.array_equal(si.soc_components(si.soc_channels(x, name), name), x)
    # H: the element holds <jo|H|io>: uu = c1 - i c5, ud = c7 - i c8, du = c3 + i c4, dd = c2 - i c6
    h = si.soc_channels(x, "H")
    assert np.array_equal(h[1], x[6] - 1j * x[7]) and np.array_equal(h[2], x[2] + 1j * x[3])
    assert np.array_equal(h[0], x[0] - 1j * x[4]) and np.array_equal(h[3], x[1] - 1j * x[5])


def test_round_trip_equals_siestas_files(scf, tmp_path):
    """read -> write TSHS and DM -> read: SIESTA's layout and column order, its values to round-off."""
    run = _plain_copy(PT / "scf", tmp_path / "scf", keep={"out", "XV", "fdf"})
    si.write_tshs(scf, run / "pt_fcc.TSHS", layout=scf.file_layout)
    si.write_dm(scf, run / "pt_fcc.DM", layout=scf.file_layout)
    ours, theirs = si.read_tshs(run / "pt_fcc.TSHS"), si.read_tshs(PT / "scf" / "pt_fcc.TSHS")
    assert ours.nspin == 8
    _sparse_equal(ours, theirs, atol=2e-15)  # measured 5.6e-16 Ry
    _sparse_equal(si.read_dm(run / "pt_fcc.DM"), si.read_dm(PT / "scf" / "pt_fcc.DM"), atol=2e-15)
    back = si.read_run(run)
    for name in ("H", "S", "DM"):
        assert np.abs((getattr(back, name) - getattr(scf, name)).data).max() < 1e-13, name


def test_h_in_holds_h_components_in_ry(scf, tmp_path):
    f = si.read_dm(si.write_h_in(scf, tmp_path / "H_IN", layout=scf.file_layout))
    ref = si.read_tshs(PT / "scf" / "pt_fcc.TSHS")
    assert f.nspin == 8 and np.abs(f.values["DM"] - ref.values["H"]).max() < 1e-15


def test_spin_orbit_h_of_another_code_is_written_on_a_new_sparsity(tmp_path):
    """ABACUS's fcc Pb SOC H (s, p, d, f) as a TSHS: 8 components that convert back to the same H."""
    h = ab.read_run(FIXTURES / "soc" / "abacus311" / "pb_fcc" / "scf", with_matrices=("H", "S"))
    f = si.read_tshs(si.write_tshs(h, tmp_path / "pb.TSHS"))
    assert f.nspin == 8 and f.no_u == 25
    cells = f.isc_off[f.col // f.no_u]
    raw = BlockSparse.from_orbital_coo(h.norb(), f.rows, f.col % f.no_u, cells,
                                       si.soc_channels(f.values["H"], "H") * si.RY_TO_EV)
    back = raw.transform(np.zeros(1, np.int64), [si.orbital_transform(h.basis.ls("Pb"))])
    assert np.abs((back - h.H).data).max() < 1e-12  # measured 2e-13 eV


def test_convert_keeps_complex_data(tmp_path):
    out = tmp_path / "pt.h5"
    res = CliRunner().invoke(main, ["convert", str(PT), "-o", str(out), "--json", "-j", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["structures"][0]["nspin"] == 4
    (h,) = read_dataset(out)
    ref = si.read_run(PT / "scf").attach_h0(si.read_h0(PT / "h0"))
    for name in ("H", "S", "H0", "DM"):
        a, b = getattr(h, name), getattr(ref, name)
        assert a.data.dtype == b.data.dtype and np.array_equal(a.pairs, b.pairs) and np.array_equal(a.data, b.data)


# ------------------------------------------------------------------ refusals
def _with_log_version(tmp_path, version):
    run = _plain_copy(PT / "scf", tmp_path / "scf", keep={"out", "XV", "fdf", "TSHS"})
    log = run / "pt_fcc.out"
    log.write_text(re.sub(r"Siesta Version\s*:\s*\S+", f"Siesta Version  : {version}", log.read_text()))
    return run


@pytest.mark.parametrize("version", ["4.0.2", "4.2.0", "6.0"])
def test_other_versions_of_spin_orbit_are_refused(tmp_path, version):
    with pytest.raises(ParseError, match=f"SIESTA {version}: only the 4.1 and 5.x layouts"):
        si.read_run(_with_log_version(tmp_path, version))


def test_spin_orbit_without_standard_output_is_refused(tmp_path):
    """The version decides whether the spin-orbit layout is a verified one: no stdout, no SOC."""
    run = _plain_copy(PT / "scf", tmp_path / "scf", keep={"XV", "fdf", "TSHS", "ORB_INDX", "EIG"})
    with pytest.raises(ParseError, match="version unknown"):
        si.read_run(run)


def test_non_collinear_files_are_refused(tmp_path):
    run = _plain_copy(PT / "scf", tmp_path / "scf", keep={"out", "XV", "fdf", "TSHS"})
    f = si.read_tshs(run / "pt_fcc.TSHS")
    f.values["H"], f.nspin = f.values["H"][:4], 4
    si.write_tshs_file(run / "pt_fcc.TSHS", f)
    with pytest.raises(ParseError, match="nspin 4 .non-collinear"):
        si.read_run(run)


def test_spin_orbit_hsx_is_refused(tmp_path, monkeypatch):
    """No fixture verifies the float32 (SIESTA 4) HSX of nspin 8: a run folder with only one is refused."""
    run = _plain_copy(PT / "scf", tmp_path / "scf", keep={"out", "XV", "fdf"})
    f = replace(si.read_tshs(PT / "scf" / "pt_fcc.TSHS"), kind="HSX")
    (run / "pt_fcc.HSX").write_bytes(b"")
    monkeypatch.setattr(si, "read_hsx", lambda path: f)  # what read_run does after parsing it
    with pytest.raises(ParseError, match="SIESTA 4 HSX .float32. is not supported"):
        si.read_run(run)

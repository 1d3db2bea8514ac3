"""OpenMX .scfout reader and writer on real OpenMX 3.9 outputs (shipped copies and ../shared)."""
import lzma
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dftplug.bands import energies_at
from dftplug.errors import MismatchError, ParseError
from dftplug.fileio import find_file, read_bytes
from dftplug.parsers import openmx as om

from .code_bands import openmx_band_file
from .conftest import FIXTURES, shared_path

H2O = FIXTURES / "openmx" / "h2o"
SI = FIXTURES / "openmx" / "si_diamond" / "scf"
HA = om.HARTREE_TO_EV


@pytest.fixture(scope="module")
def si():
    return om.read_run(SI)


@pytest.fixture(scope="module")
def h2o():
    return om.read_run(H2O / "scf").attach_h0(om.read_h0(H2O / "h0"))


def _band_error(h, band_path, stride=10):
    """max |eigenvalues of (H(k), S(k)) - OpenMX's .Band| (Ha) over every ``stride``-th k-point and every
    spin, for the bands up to 1 Ha above ChemP (the highest, unphysical ones are solver-sensitive at 1e-9)."""
    kpts, printed = openmx_band_file(band_path)
    printed = printed[:, ::stride]
    keep = printed < h.fermi_level / HA + 1.0
    return np.abs(energies_at(h, kpts[::stride]) / HA - printed)[keep].max()


def _scfout_bytes(folder):
    return read_bytes(om.find_scfout(Path(folder)))


# ------------------------------------------------------------------ numbers the code printed
def test_numbers_match_log_and_input(si, h2o):
    # fixture READMEs: ChemP printed in the .out (Ha), SCF iterations, electrons
    assert si.fermi_level == pytest.approx(-0.10273793656103 * HA, abs=1e-12)
    assert h2o.fermi_level == pytest.approx(-0.11169433593750 * HA, abs=1e-12)
    assert si.fermi_level == pytest.approx(-2.795641, abs=1e-6)  # README's eV value
    assert (si.provenance["scf_iterations"], h2o.provenance["scf_iterations"]) == (14, 18)
    assert si.provenance["version"] == "3.9" and si.nelec == 8 and h2o.nelec == 8
    assert si.basis.label("Si") == "2s2p1d" and h2o.basis.label("H") == "2s1p"
    assert si.basis.shells["Si"][0].rcut == pytest.approx(7.0 * om.BOHR_TO_ANG)
    # Bohr -> Å with BohrR gives back the input's Å coordinates and cell
    assert np.abs(si.atoms.cell.array - 2.715 * (1 - np.eye(3))).max() < 1e-13
    assert np.abs(si.atoms.positions[1] - 1.3575).max() < 1e-13
    assert list(si.atoms.pbc) == [True] * 3 and not any(h2o.atoms.pbc)  # h2o: Cluster solver
    assert si.settings["kmesh"] == [8, 8, 8] and si.settings["electronic_temperature_K"] == pytest.approx(300)


def test_hartree_to_ev_is_openmxs_own():
    """openmx_postprocess stores its initial ChemP of -3 eV as -3/eV2Hartree Ha: the bits pin the
    constant (CODATA's 27.211386245988 would not reproduce them)."""
    raw = om.read_scfout_raw(om.find_scfout(H2O / "h0"))
    assert raw.chemp == -3.0 / om.HARTREE_TO_EV and raw.chemp != -3.0 / 27.211386245988
    assert raw.is_postprocess() and not om.read_scfout_raw(om.find_scfout(H2O / "scf")).is_postprocess()


@pytest.mark.parametrize("getter", ["si", "h2o"])
def test_electron_count_and_hermiticity(getter, request):
    h = request.getfixturevalue(getter)
    assert h.electron_count()[0] == pytest.approx(8.0, abs=1e-9)  # spin-summed DM for nspin 1
    herm = h.hermiticity_error()  # SCFOUT_FORMAT.md: S to 2.3e-10, H to 1.3e-9 Ha (OpenMX's rnd(1e-13))
    assert herm["S"] < 2.5e-10 and herm["H"] < 1.4e-9 * HA and herm["DM"] < 1e-15


def test_band_energies_match_openmx(si):
    """Eigenvalues of (H(k), S(k)) = OpenMX's own .Band (Ha) on the whole L-G-X-W-K-G path."""
    assert _band_error(si, SI / "si_diamond.Band.xz") < 1e-10  # Ha (measured 1.6e-11)


# ------------------------------------------------------------------ H0 in both forms
def test_h0_forms_agree_and_are_recorded(h2o):
    iter1 = om.read_h0(H2O / "scf_iter1")
    post = om.read_h0(H2O / "h0")
    assert iter1.provenance["h0_form"] == "openmx:scf_iter1"
    assert post.provenance["h0_form"] == h2o.provenance["h0_form"] == "openmx:openmx_postprocess"
    assert iter1.h0_kind == post.h0_kind == h2o.h0_kind == "H[rho_atomic]"
    # fixture index: the postprocess variant includes V_xc, its H is bit-identical to scf_iter1's
    assert np.array_equal(iter1.H0.pairs, post.H0.pairs) and np.array_equal(iter1.H0.data, post.H0.data)
    # and S is the converged run's, exactly
    assert np.array_equal(post.S.data, h2o.S.data) and np.array_equal(iter1.S.data, h2o.S.data)
    assert post.fermi_level is None and post.DM is None  # ChemP -3 eV guess and DM = 0 are not kept
    stats = h2o.delta_h_stats()
    assert stats["rms_meV"] / 1e3 / HA == pytest.approx(2.5e-2, rel=0.03)  # README: rms 2.5e-2 Ha


def test_read_h0_refuses_a_converged_run():
    with pytest.raises(ParseError, match="not a zeroth-step run"):
        om.read_h0(H2O / "scf")


def test_postprocess_kind_comes_from_its_log(tmp_path):
    dst = tmp_path / "h0"
    shutil.copytree(H2O / "h0", dst)
    log = dst / "openmx_postprocess.stdout"
    # HEAD's openmx_postprocess returns before Poisson/Set_Hamiltonian: H without V_xc
    log.write_text(log.read_text().replace("<Poisson>  Poisson's equation using FFT...\n", ""))
    assert om.read_h0(dst).h0_kind == "H[rho_atomic]-no-Vxc"
    log.unlink()
    with pytest.raises(ParseError, match="openmx_postprocess.stdout"):
        om.read_h0(dst)
    assert om.read_h0(dst, h0_kind="H[rho_atomic]").h0_kind == "H[rho_atomic]"


# ------------------------------------------------------------------ orbital convention: rotation pair
def _rotation_pair(run, names=None):
    root = shared_path("fixtures", "rotations", "openmx", "si_diamond")
    rot = np.loadtxt(root / "rotation_matrix.txt")
    get = om.read_run if run == "scf" else om.read_h0
    return rot, get(root / "original" / run), get(root / "rotated" / run)


@pytest.mark.parametrize("run", ["scf", "scf_iter1"])
def test_rotation_pair_blocks_follow_wigner_d(run):
    """Rotated run = Wigner-D-rotated original, all shells (s, p, d), within the grid noise the
    rotation README states (S 4e-11, H 1.35e-8 Ha)."""
    rot, orig, rotated = _rotation_pair(run)
    moved = orig.rotated(rot)
    assert np.abs(moved.atoms.positions - rotated.atoms.positions).max() < 1e-12
    d = np.arange(8, 13)  # the d shell of Si7.0-s2p2d1
    bound = {"S": 1e-10, "H": 1.5e-8 * HA, "H0": 1.5e-8 * HA, "DM": 2e-6}  # DM: measured 6.5e-7
    for name, m in moved.matrices().items():
        err = np.abs((m - getattr(rotated, name)).data).max()
        assert err < bound[name], (run, name, err)
        dd = np.abs(getattr(orig, name).block(0, 1)[:, d][:, :, d] - getattr(rotated, name).block(0, 1)[:, d][:, :, d])
        assert dd.max() > 1e3 * bound[name]  # the d-d blocks really changed: the test is not trivial


@pytest.mark.parametrize("l, order", [
    (2, ((0, 1), (2, 1), (-2, 1), (1, -1), (-1, 1))),   # one d sign flipped
    (2, ((0, 1), (2, 1), (-2, 1), (-1, 1), (1, 1))),    # xz and yz swapped
    (1, ((1, 1), (0, 1), (-1, 1))),                      # p as (x, z, y)
])
def test_wrong_convention_fails_rotation_test(monkeypatch, l, order):
    """Guard: a wrong OpenMX order or sign breaks the rotation test on S."""
    monkeypatch.setitem(om.OPENMX_ORDER, l, order)
    rot, orig, rotated = _rotation_pair("scf")
    assert np.abs((orig.rotated(rot).S - rotated.S).data).max() > 1e-3


# ------------------------------------------------------------------ spin
def test_fe_bcc_spin_polarised():
    h = om.read_run(shared_path("fixtures", "openmx", "fe_bcc", "scf"))
    assert h.nspin == 2 and h.H.nspin == 2 and h.S.nspin == 1
    up, down = h.electron_count()
    assert up + down == pytest.approx(14.0, abs=1e-9)
    assert up - down == pytest.approx(2.247843524, abs=1e-8)  # README: spin moment printed by OpenMX
    assert h.fermi_level == pytest.approx(-0.20103277150679 * HA, abs=1e-12)
    band_path = shared_path("fixtures", "openmx", "fe_bcc", "scf", "fe_bcc.Band")
    assert _band_error(h, band_path, stride=20) < 5e-10  # Ha (measured 1.6e-10)
    h0 = om.read_h0(shared_path("fixtures", "openmx", "fe_bcc", "h0"))
    iter1 = om.read_h0(shared_path("fixtures", "openmx", "fe_bcc", "scf_iter1"))
    assert h0.H0.nspin == 2 and np.array_equal(h0.H0.data, iter1.H0.data)


# ------------------------------------------------------------------ ../shared: every case
@pytest.mark.parametrize("case", ["si_diamond", "graphene", "h2o", "fe_bcc"])
def test_shared_cases_round_trip_and_physics(case, tmp_path):
    base = shared_path("fixtures", "openmx", case)
    scf = om.read_run(base / "scf")
    iter1 = om.read_run(base / "scf_iter1")  # as a plain run: its DM belongs to H0's eigenvectors
    post = om.read_h0(base / "h0")
    for h in (scf, iter1):
        assert h.electron_count().sum() == pytest.approx(h.nelec, abs=1e-9)
    assert np.array_equal(post.H0.data, iter1.H.data) and np.array_equal(post.S.data, scf.S.data)
    for folder in ("scf", "scf_iter1", "h0"):
        h = om.read_scfout(om.find_scfout(base / folder))
        out = om.write_scfout(h, tmp_path / f"{folder}.scfout", h.file_layout)
        assert out.read_bytes() == _scfout_bytes(base / folder), (case, folder)


@pytest.mark.parametrize("case, nelec", [("graphene", 8), ("si8_rattled", 32)])
def test_shared_bands_match_openmx(case, nelec, tmp_path):
    """Eigenvalues of (H(k), S(k)) = the code's own .Band; Tr(DM S) = N; byte-identical rewrite."""
    run = shared_path("fixtures", "openmx", case, "scf")
    h = om.read_run(run)
    assert h.electron_count()[0] == pytest.approx(nelec, abs=1e-9)
    assert _band_error(h, run / f"{case}.Band", stride=50) < 5e-10
    assert om.write_scfout(h, tmp_path / "x.scfout", h.file_layout).read_bytes() == _scfout_bytes(run)


def test_graphene8_dataset_reads():
    root = shared_path("datasets", "openmx", "graphene8", "graphene8_000")
    h = om.read_run(root / "scf").attach_h0(om.read_h0(root / "scf_iter1"))
    assert h.basis.label("C") == "2s1p" and h.natoms == 8
    assert h.electron_count()[0] == pytest.approx(32.0, abs=1e-9)
    assert h.delta_h_stats()["max_meV"] / 1e3 / HA == pytest.approx(0.2, abs=0.012)  # README 0.197-0.211 Ha


def test_noncollinear_file_round_trips_raw(tmp_path):
    path = find_file(shared_path("fixtures", "soc", "openmx", "pt_fcc", "scf") / "pt_fcc.scfout")
    raw = om.read_scfout_raw(path)
    assert raw.spinp_switch == 3 and raw.matrix("iHNL").shape[0] == 3
    # SCFOUT_FORMAT.md § 7: N_e = sum (DM[0] + DM[1]) S = 16
    ne = np.sum((raw.matrix("DM")[0] + raw.matrix("DM")[1]) * raw.matrix("S")[0])
    assert ne == pytest.approx(16.0, abs=1e-9)
    assert raw.write(tmp_path / "pt.scfout").read_bytes() == read_bytes(path)
    assert om.read_scfout(path).nspin == 4  # spinor channels: tests/test_soc_openmx.py


# ------------------------------------------------------------------ writer
@pytest.mark.parametrize("folder", ["scf", "scf_iter1", "h0"])
def test_rewrite_is_byte_identical(folder, tmp_path):
    h = om.read_scfout(om.find_scfout(H2O / folder))
    assert om.write_scfout(h, tmp_path / "x.scfout", h.file_layout).read_bytes() == _scfout_bytes(H2O / folder)


def test_rewrite_periodic_is_byte_identical(si, tmp_path):
    assert om.write_scfout(si, tmp_path / "x.scfout", si.file_layout).read_bytes() == _scfout_bytes(SI)


def test_written_h_replaces_only_h(h2o, tmp_path):
    """H0 written as 'predicted H' into the converged run's file: H blocks = scf_iter1's to round-off,
    every other byte untouched; reading it back gives the written H."""
    pred = om.read_run(H2O / "scf")
    pred.H = h2o.H0
    out = om.write_scfout(pred, tmp_path / "pred.scfout", pred.file_layout)
    new, old = om.read_scfout_raw(out), pred.file_layout
    ref = om.read_scfout_raw(om.find_scfout(H2O / "scf_iter1"))
    # equal up to the writer's documented snapping of round-off-sized differences to the file's bits
    snap = om.WRITE_SNAP_RTOL * np.abs(old.matrix("H")).max()  # Ha
    assert np.abs(new.matrix("H") - ref.matrix("H")).max() <= snap
    keep = np.ones(len(new.blocks), bool)
    keep[new.layout["H"]] = False
    assert np.array_equal(new.blocks[keep], old.blocks[keep])
    assert b"".join(p.tobytes() for p in replace(new, blocks=old.blocks).parts()) == _scfout_bytes(H2O / "scf")
    assert om.read_scfout(out).H.allclose(h2o.H0, atol=snap * HA + 1e-13)


def test_writer_refuses_other_sparsity_or_structure(si, tmp_path):
    h = om.read_run(SI)
    lost = h.H.with_pairs(h.H.pairs[1:])
    h.H = lost
    with pytest.raises(MismatchError, match="lacks 1"):
        om.write_scfout(h, tmp_path / "x.scfout", h.file_layout)
    extra = np.vstack([si.H.pairs, [[0, 0, 9, 9, 9]]])
    h.H = si.H.with_pairs(extra[np.lexsort(extra.T[::-1])])
    h.H.data[:, h.H.offsets[h.H.find([[0, 0, 9, 9, 9]])[0]]] = 1.0
    with pytest.raises(MismatchError, match="outside"):
        om.write_scfout(h, tmp_path / "x.scfout", h.file_layout)
    rotated = si.rotated(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(MismatchError, match="structure differs"):
        om.write_scfout(rotated, tmp_path / "x.scfout", rotated.file_layout)
    assert not (tmp_path / "x.scfout").exists()  # nothing written by a refused call


# ------------------------------------------------------------------ bad input
def _copy_scf(tmp_path):
    dst = tmp_path / "scf"
    shutil.copytree(H2O / "scf", dst)
    for p in dst.glob("*.xz"):
        p.with_suffix("").write_bytes(lzma.decompress(p.read_bytes()))
        p.unlink()
    return dst


def test_truncated_file(tmp_path):
    run = _copy_scf(tmp_path)
    f = run / "h2o.scfout"
    data = f.read_bytes()
    for cut in (20, 2000, len(data) // 2, len(data) - 1):
        f.write_bytes(data[:cut])
        with pytest.raises(ParseError, match=r"h2o\.scfout.*truncated"):
            om.read_run(run)
    f.write_bytes(data + b"\0" * 8)
    with pytest.raises(ParseError, match=r"h2o\.scfout.*trailing bytes"):
        om.read_run(run)


def test_wrong_version_field(tmp_path):
    run = _copy_scf(tmp_path)
    f = run / "h2o.scfout"
    data = bytearray(f.read_bytes())
    assert int.from_bytes(data[4:8], "little") == 0 + 4 * 3  # SpinP_switch 0, version 3
    for value, problem in ((0 + 4 * 0, "format version 0"), (2 + 4 * 3, "SpinP_switch = 2"),
                           (99, "not an OpenMX .scfout")):
        data[4:8] = value.to_bytes(4, "little")
        f.write_bytes(bytes(data))
        with pytest.raises(ParseError, match=rf"h2o\.scfout.*{problem}"):
            om.read_run(run)


def test_byte_swapped_file_is_read_like_openmx(h2o, tmp_path):
    """A big-endian file (OpenMX's read_scfout swaps it) gives the same matrices, and is written
    back in its own byte order."""
    run = _copy_scf(tmp_path)
    native = (run / "h2o.scfout").read_bytes()
    raw = om.read_scfout_raw(run / "h2o.scfout")
    replace(raw, byteorder=">").write(run / "h2o.scfout")
    swapped = (run / "h2o.scfout").read_bytes()
    assert swapped[:4] == native[:4][::-1] and swapped[-256 * 42:] == native[-256 * 42:]  # text unswapped
    h = om.read_run(run)
    assert h.file_layout.byteorder == ">"
    for name in ("H", "S", "DM"):
        assert np.array_equal(getattr(h, name).data, getattr(h2o, name).data)
    assert om.write_scfout(h, tmp_path / "again.scfout", h.file_layout).read_bytes() == swapped


def test_log_of_another_run_is_refused(tmp_path):
    run = _copy_scf(tmp_path)
    shutil.copy(H2O / "scf_iter1" / "h2o.out.xz", run / "h2o.out.xz")
    (run / "h2o.out").unlink()
    with pytest.raises(ParseError, match=r"h2o\.out.*another run"):
        om.read_run(run)


def test_folder_without_scfout(tmp_path):
    with pytest.raises(ParseError, match="no .scfout"):
        om.read_run(tmp_path)
    assert not om.is_run_folder(tmp_path) and om.is_run_folder(SI)

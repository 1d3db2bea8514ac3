"""ABACUS nspin-4 (spin-orbit) reader and writer on the real fcc Pb fixtures (v3.11)."""
import lzma
import re
import shutil

import numpy as np
import pytest

from dftplug.errors import MismatchError, ParseError
from dftplug.density import density_matrix, fold_density
from dftplug.kspace import solve_at
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES, point_inputs_at, shared_path

SCF = FIXTURES / "soc" / "abacus311" / "pb_fcc" / "scf"
OUT = "OUT.pb_fcc"


def shared_run(name):
    return shared_path("fixtures", "soc", "abacus311", "pb_fcc", name)


@pytest.fixture(scope="module")
def scf():
    return ab.read_run(SCF)


def _reference(path):
    return lzma.decompress(path.with_name(path.name + ".xz").read_bytes()).decode()


def test_spinor_channels_and_numbers_of_the_log(scf):
    assert scf.nspin == 4 and scf.H.data.shape[0] == 4 and scf.DM.data.shape[0] == 4
    assert scf.H.data.dtype == np.complex128 and scf.S.nspin == 1 and scf.S.data.dtype == np.float64
    assert scf.nelec == 14 and scf.fermi_level == pytest.approx(12.5373409163, abs=1e-9)
    assert scf.basis.label("Pb") == "2s2p2d1f" and scf.norb().sum() == 25
    # SOC: up-down coupling and imaginary spin-diagonal parts (L.S in real orbitals), ~1 eV
    assert np.abs(scf.H.data[1:3]).max() > 0.5 and np.abs(scf.H.data[[0, 3]].imag).max() > 0.5


def test_hermiticity_is_the_spinor_adjoint(scf):
    herm = scf.hermiticity_error()
    assert herm["H"] < 1e-12 and herm["S"] < 1e-15 and herm["DM"] < 1e-12
    # guard: the real-matrix check (plain transpose, no conjugation, no spin swap) fails on SOC H
    full = scf.H.with_pairs(scf.H.symmetric_pairs())
    assert np.abs(full.data - full.transposed().data).max() > 0.5
    assert np.abs(full.data - np.conj(full.transposed().data)).max() > 0.5
    # hermitized() = (M + M^dagger)/2: restores a perturbed H, leaves the file's H as it is
    noise = np.random.default_rng(0).normal(size=scf.H.data.shape + (2,)) @ np.array([1, 1j]) * 1e-2
    bad = scf.H.copy(scf.H.data + noise)
    assert bad.hermiticity_error() > 1e-2 and bad.hermitized().hermiticity_error() < 1e-15
    assert np.abs((scf.H.hermitized() - scf.H).data).max() < 1e-12


def test_electron_count_and_moment(scf):
    assert scf.electron_count().sum() == pytest.approx(14.0, abs=1e-6)  # README: sum n.S = 14.0000000
    assert np.abs(scf.spin_moment()).max() < 1e-8  # converged non-magnetic (log: 2e-10 muB)


def test_h0_spurious_moment_and_smallmag_moment():
    """README § 3: ABACUS auto-sets a start moment; h0/ carries m_z = 0.3117217, h0_smallmag/ 5.53e-6."""
    h0 = ab.read_run(shared_run("h0"))
    small = ab.read_run(shared_run("h0_smallmag"), with_matrices=("DM",))
    small.S = h0.S
    assert h0.spin_moment()[2] == pytest.approx(0.3117217, abs=1e-6)
    assert small.spin_moment()[2] == pytest.approx(5.53e-6, abs=1e-7)
    for h in (h0, small):
        assert h.electron_count().sum() == pytest.approx(14.0, abs=1e-6)
        assert np.abs(h.spin_moment()[:2]).max() < 1e-12


def test_h0_smallmag_attaches_and_differs_only_in_the_density_dependent_part(scf):
    h0 = ab.read_h0(shared_run("h0_smallmag"))
    assert h0.H is None and h0.H0.nspin == 4 and h0.h0_kind == "H[rho_atomic]"
    scf_h = ab.read_run(SCF, with_matrices=("H", "S")).attach_h0(h0)
    d = scf_h.delta_h()
    assert np.abs(d.data).max() == pytest.approx(5.0e-2 * ab.RY_TO_EV, rel=0.02)  # README: 5.0e-2 Ry
    assert scf_h.delta_h_stats()["max_meV"] == pytest.approx(1e3 * np.abs(d.data).max())
    # SOC (up-down channels, Im of the spin-diagonal ones) is density independent: identical files
    assert np.abs(d.data[1:3]).max() < 1e-12 and np.abs(d.data[[0, 3]].imag).max() < 1e-12


def test_h0_with_the_autoset_start_moment_is_refused():
    with pytest.raises(ParseError, match="auto-set a start moment"):
        ab.read_h0(shared_run("h0"))


@pytest.mark.parametrize("name", ["srs1_nao.csr", "dmrs1_nao.csr"])
def test_rewrite_is_byte_identical(scf, tmp_path, name):
    (path,) = ab.write_matrix(scf, {"s": "S", "d": "DM"}[name[0]], tmp_path, layout=scf.file_layout)
    assert path.name == name
    assert path.read_text() == _reference(SCF / OUT / name)


_VALUE = re.compile(r"\(([-+.\deE]+),([-+.\deE]+)\)|(?<![(,])(-?\d\.\d{8}e[-+]\d+)")


def _values(lines):
    """Value tokens of csr lines as (n, 2) (re, im); real files have im = 0."""
    found = _VALUE.findall("\n".join(lines))
    return np.array([(float(a), float(b)) if a else (float(r), 0.0) for a, b, r in found])


def _assert_rewrite_matches(h, name, ref_text, tmp_path, max_changed):
    """Every line but the value lines byte-identical (same R list, nnz, columns, row pointers);
    value tokens identical except float noise: ABACUS writes components of ~1e-18 Ry next to entries
    of 1e-3 (H), and m_z of 1e-10 beside n of 1e-2 (DM), that no float64 change of basis (orbital
    harmonics, Pauli <-> spinor channels) keeps to 9 digits. Those agree to 1e-15 absolute
    (a few eps of the largest entries)."""
    (path,) = ab.write_matrix(h, name, tmp_path, layout=h.file_layout)
    new_lines, ref_lines = path.read_text().splitlines(), ref_text.splitlines()
    assert len(new_lines) == len(ref_lines)
    differ = [k for k, (a, b) in enumerate(zip(new_lines, ref_lines)) if a != b]
    assert all(_VALUE.match(ref_lines[k].strip()) for k in differ)  # only value lines differ
    new, ref = _values([new_lines[k] for k in differ]), _values([ref_lines[k] for k in differ])
    assert new.shape == ref.shape and np.abs(new - ref).max(initial=0.0) < 1e-15
    changed = int(np.sum(np.char.mod("%.8e", new) != np.char.mod("%.8e", ref)))
    assert changed <= max_changed, changed


def test_h_rewrite_identical_up_to_float_noise(scf, tmp_path):
    # measured: 4340 of 324532 value tokens differ, by at most 2.2e-17 Ry
    _assert_rewrite_matches(scf, "H", _reference(SCF / OUT / "hrs1_nao.csr"), tmp_path, 5000)


@pytest.mark.parametrize("name, max_changed", [("H", 5000), ("DM", 50)])  # measured: 4340, 20 (2e-16)
def test_h0_smallmag_rewrite_identical_up_to_float_noise(tmp_path, name, max_changed):
    run = shared_run("h0_smallmag")
    h = ab.read_run(run, with_matrices=(name,))
    fname = {"H": "hrs1_nao.csr", "DM": "dmrs1_nao.csr"}[name]
    _assert_rewrite_matches(h, name, _reference(run / OUT / fname), tmp_path, max_changed)


def test_pauli_conversion_is_invertible():
    assert np.allclose(ab.SPINOR_TO_PAULI @ ab.PAULI_TO_SPINOR, np.eye(4), atol=0)


def _pauli(channels):
    """(n, m_x, m_y, m_z) of spinor channels (4, ...): Re Tr(sigma rho) per element."""
    uu, ud, du, dd = channels
    return np.real([uu + dd, ud + du, 1j * (ud - du), uu - dd])


def test_dm_is_rebuilt_from_the_eigenvectors_of_h():
    """DM^{ss'}(R) = sum_k e^{-2 pi i k.R} sum_n f_kn c_{s} conj(c_{s'}) from H's eigenvectors and
    ABACUS's occupations equals the DM read (Pauli form): pins the channel convention and the
    sign of m_y on h0/, whose DM has m_x, m_y != 0 element by element."""
    run = shared_run("h0")
    h = ab.read_run(run)
    kpts, _ = ab.read_kpt_info(run / OUT / "KPT.info")
    _, occ = ab.read_eig_occ(run / OUT / "eig_occ.txt")
    nb = occ.shape[2]
    c = solve_at(h.H, h.S, kpts).vectors[..., :nb]  # occ holds the k weights
    rebuilt = fold_density(h.DM, c, occ, kpts, np.ones(len(kpts)))
    want, got = _pauli(rebuilt), _pauli(h.DM.data)
    assert np.abs(want[1:3]).max() > 5e-3  # the test sees m_x and m_y
    assert np.abs(want - got).max() < 1e-7
    assert np.abs(want[2] + got[2]).max() > 1e-2  # guard: the opposite m_y sign would fail


def test_toolkit_dm_on_the_runs_mesh_equals_abacus(scf):
    """``density_matrix`` on the run's 6x6x6 Γ mesh with its Gaussian 0.01 Ry: E_F = ABACUS's (measured
    1.3e-9 eV) and the real Pauli components ABACUS stores equal ours (measured 5.4e-9); the imaginary
    parts of n and m (up to 0.09 here) are not in ABACUS's file."""
    result = density_matrix(scf, pairs=scf.DM.pairs)
    assert result.fermi_level == pytest.approx(scf.fermi_level, abs=1e-6)
    assert np.abs(_pauli(result.DM.data) - _pauli(scf.DM.data)).max() < 1e-7
    assert np.abs(_pauli(result.DM.data)[0]).max() > 0.1


# ------------------------------------------------------------------ refusals
def _copy_scf(tmp_path):
    dst = tmp_path / "scf"
    shutil.copytree(SCF, dst)
    point_inputs_at(dst, SCF)
    return dst


@pytest.mark.parametrize("flags", [("0", "0"), ("0", "1"), ("1", "1")])
def test_unverified_nspin4_variants_are_refused(tmp_path, flags):
    run = _copy_scf(tmp_path)
    text = (run / "INPUT").read_text()
    text = re.sub(r"lspinorb\s+1", f"lspinorb {flags[0]}", text)
    (run / "INPUT").write_text(re.sub(r"noncolin\s+0", f"noncolin {flags[1]}", text))
    with pytest.raises(ParseError, match="nspin 4 with lspinorb .* not supported"):
        ab.read_run(run)


@pytest.mark.parametrize("token, error", [("(1.00000000e-01,0.00000000e+00)", "not S x 1_2"),
                                          ("(1.00000000e-01)", "bad value.*written \\(re,im\\)")])
def test_bad_spinor_overlap_is_refused(tmp_path, token, error):
    """The first S element (up-up of orbital 0) changed: S no longer S x 1_2, or a malformed value."""
    run = _copy_scf(tmp_path)
    path = run / OUT / "srs1_nao.csr"
    text = _reference(SCF / OUT / "srs1_nao.csr")
    first = _VALUE.search(text.split("# CSR values", 1)[1]).group(0)
    (path.with_name(path.name + ".xz")).unlink()
    path.write_text(text.replace(first, token, 1))
    with pytest.raises(ParseError, match=error):
        ab.read_run(run, with_matrices=("S",))


def test_spinor_files_of_the_old_generation_are_refused(tmp_path):
    run = _copy_scf(tmp_path)
    (run / OUT / "hrs1_nao.csr.xz").rename(run / OUT / "data-HR-sparse_SPIN0.csr.xz")
    with pytest.raises(ParseError, match="v3.11 csr generation only"):
        ab.read_run(run, with_matrices=("H",))


def test_spinor_matrices_are_not_written_in_the_old_generation(scf, tmp_path):
    with pytest.raises(MismatchError, match="v3.11 csr generation only"):
        ab.write_matrix(scf, "H", tmp_path, generation="old")

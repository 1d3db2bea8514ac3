"""Band structures from a run's converged H(R), S(R) equal the code's own band files."""
import numpy as np
import pytest

from dftplug.bands import band_structure, bands_near, explicit_path, max_band_difference, standard_path
from dftplug.parsers import abacus as ab
from dftplug.supercell import tile

from .code_bands import abacus_bands, abacus_line_path
from .conftest import FIXTURES, shared_path

SI = FIXTURES / "abacus311" / "si_diamond"
SI_OLD = FIXTURES / "rotations" / "abacus" / "original" / "scf"  # v3.8.1 files, same calculation


@pytest.fixture(scope="module")
def si():
    return ab.read_run(SI / "scf")


def code_band_error(h, bands_dir, suffix):
    """max |ε_ours − ε_ABACUS| (eV) on ABACUS's own k-points, all bands it printed, every spin."""
    kpts, special = abacus_line_path(bands_dir / "KPT")
    ref = abacus_bands(bands_dir / f"OUT.{suffix}")
    bs = band_structure(h, explicit_path(h, kpts, special))
    assert bs.energies.shape[:2] == ref.shape[:2]
    assert bs.dropped.max() == 0
    return max_band_difference(bs.energies, ref)


@pytest.mark.parametrize("run", [SI / "scf", SI_OLD], ids=["v3.11", "v3.8.1"])
def test_si_bands_equal_abacus_band_file(run):
    err = code_band_error(ab.read_run(run, with_matrices=("H", "S")), SI / "bands", "si_diamond")
    assert err < 1e-3  # eV; measured 0.06 meV over 14 bands x 101 k


@pytest.mark.shared
@pytest.mark.parametrize("gen,case", [("abacus311", "graphene"), ("abacus", "graphene"),
                                      ("abacus311", "fe_bcc"), ("abacus", "fe_bcc")])
def test_shared_bands_equal_abacus_band_files(gen, case):
    h = ab.read_run(shared_path("fixtures", gen, case, "scf"), with_matrices=("H", "S"))
    err = code_band_error(h, shared_path("fixtures", gen, case, "bands"), case)
    assert err < 1e-3  # eV; measured graphene 0.002 meV, fe_bcc up/down 0.12 meV


def test_band_comparison_can_fail(si):
    """A 2 meV error in H (constant shift of one orbital's on-site energy) is caught."""
    kpts, special = abacus_line_path(SI / "bands" / "KPT")
    ref = abacus_bands(SI / "bands" / "OUT.si_diamond")
    h = ab.read_run(SI / "scf", with_matrices=("H", "S"))
    h.H = h.H + h.S.scaled(0.002)  # every band moves by exactly 2 meV
    bs = band_structure(h, explicit_path(h, kpts, special))
    assert max_band_difference(bs.energies, ref) == pytest.approx(0.002, abs=1e-4)
    assert max_band_difference(bs.energies, ref, shift=0.002) < 1e-3


def test_si_gap_on_standard_path(si):
    bs = band_structure(si, standard_path(si, npoints=120))
    gap = bs.gap()
    assert not gap["metal"] and not gap["direct"]
    assert gap["gap_eV"] == pytest.approx(0.58, abs=0.01)  # README: indirect gap 0.58 eV
    assert gap["vbm_eV"] < si.fermi_level < gap["cbm_eV"]
    labels = standard_path(si, "GXL", 30).get_linear_kpoint_axis()[2]
    assert labels == ["G", "X", "L"]


def test_sparse_shift_invert_equals_dense(si):
    path = standard_path(si, "LGX", 12)
    dense = band_structure(si, path).energies
    near = bands_near(si, path, count=6).energies
    # the 6 eigenvalues nearest E_F are 6 consecutive dense bands at every k
    for ik in range(len(path.kpts)):
        order = np.argsort(np.abs(dense[0, ik] - si.fermi_level))[:6]
        assert np.abs(np.sort(dense[0, ik, order]) - near[0, ik]).max() < 1e-8


def test_supercell_bands_fold_unit_cell_bands(si):
    """Γ of a 2x1x3 supercell holds the unit-cell bands at k = (m1/2, 0, m3/3); the sparse
    path finds the same eigenvalues near E_F."""
    big = tile(si, (2, 1, 3))
    assert big.natoms == 12 and big.nelec == 48
    assert big.electron_count()[0] == pytest.approx(48, abs=1e-5)
    ks = np.array([[a / 2, 0, c / 3] for a in range(2) for c in range(3)])
    unit = np.sort(band_structure(si, explicit_path(si, ks)).energies.ravel())
    gamma = explicit_path(big, np.zeros((1, 3)))
    folded = band_structure(big, gamma).energies.ravel()
    assert np.abs(unit - folded).max() < 1e-9
    near = bands_near(big, gamma, count=8).energies.ravel()
    closest = np.sort(folded[np.argsort(np.abs(folded - si.fermi_level))[:8]])
    assert np.abs(near - closest).max() < 1e-8

"""Spinor band energies of the real fcc Pb SOC run against ABACUS's own eigenvalues."""
import numpy as np
import pytest

from dftplug.kspace_soc import band_energies, spinor_bloch_sum
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES, shared_path

SCF = FIXTURES / "soc" / "abacus311" / "pb_fcc" / "scf"
OUT = "OUT.pb_fcc"


@pytest.fixture(scope="module")
def scf():
    return ab.read_run(SCF, with_matrices=("H", "S"))


def _abacus_bands(run):
    kpts, _ = ab.read_kpt_info(run / OUT / "KPT.info")
    energies, _ = ab.read_eig_occ(run / OUT / "eig_occ.txt")
    assert energies.shape == (1, len(kpts), 34)  # nspin 4: one block of 34 spinor levels
    return kpts, energies[0]


def test_band_energies_equal_abacus_at_its_216_kpoints(scf):
    kpts, ref = _abacus_bands(SCF)
    ours = band_energies(scf, kpts)
    assert ours.shape == (216, 50)
    assert np.abs(ours[:, :34] - ref).max() < 1e-5  # eV; measured 3.7e-6 (README: <= 3.7e-6)


def test_h0_smallmag_band_energies_equal_abacus(scf):
    run = shared_path("fixtures", "soc", "abacus311", "pb_fcc", "h0_smallmag")
    h0 = ab.read_h0(run)
    h0.S = scf.S  # h0_smallmag/ has no srs1 (byte-identical to scf's)
    kpts, ref = _abacus_bands(run)
    assert np.abs(band_energies(h0, kpts[::9], which="H0")[:, :34] - ref[::9]).max() < 1e-5


def _levels(energies, tol=1e-4):
    """Distinct levels and their degeneracies, ascending."""
    groups = np.split(energies, np.nonzero(np.diff(energies) > tol)[0] + 1)
    return np.array([g.mean() for g in groups]), [len(g) for g in groups]


def test_gamma_soc_splittings(scf):
    """README § 3.2 (Gamma, absolute eV): 5d Gamma8+ -6.2277 (x4), Gamma7+ -3.7360 (x2),
    Gamma8+ -3.6375 (x4); 6s 0.6065 (x2); 6p Gamma6- 18.885 (x2), Gamma8- 21.667 (x4)."""
    level, deg = _levels(band_energies(scf, [[0, 0, 0]])[0][:18])
    assert deg == [4, 2, 4, 2, 2, 4]
    assert level == pytest.approx([-6.2277, -3.7360, -3.6375, 0.6065, 18.885, 21.667], abs=1e-3)
    assert level[5] - level[4] == pytest.approx(2.782, abs=1e-3)  # 6p SOC splitting
    assert level[1] - level[0] == pytest.approx(2.49, abs=5e-3)   # 5d: Gamma7+ - lower Gamma8+


def test_without_the_soc_terms_the_p_and_d_splittings_vanish(scf):
    """Guard: keep only the real spin-diagonal part (the scalar-relativistic H): the 6p levels
    become one sixfold level and the 5d ones split only by the cubic field (t2g x6, eg x4)."""
    scalar = scf.H.copy(np.stack([scf.H.data[0].real, 0 * scf.H.data[1], 0 * scf.H.data[2],
                                  scf.H.data[3].real]))
    no_soc = ab.read_run(SCF, with_matrices=("S",))
    no_soc.H = scalar
    _, deg = _levels(band_energies(no_soc, [[0, 0, 0]])[0][:18])
    assert deg == [6, 4, 2, 6]


def test_spinor_bloch_sum_is_hermitian_and_s_is_spin_diagonal(scf):
    k = [[0.1, 0.25, -0.3]]
    hk, sk = spinor_bloch_sum(scf.H, k)[0], spinor_bloch_sum(scf.S, k)[0]
    assert np.abs(hk - hk.conj().T).max() < 1e-12
    assert np.abs(sk[0::2, 1::2]).max() == 0 and np.array_equal(sk[0::2, 0::2], sk[1::2, 1::2])

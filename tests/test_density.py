"""DM(R) from the converged H(R) equals the code's own DM; the DOS integrates to N."""
import numpy as np
import pytest

from dftplug.density import density_matrix, mesh_fermi_level
from dftplug.dos import density_of_states, orbital_groups
from dftplug.occupations import Smearing
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES, shared_path

SI = FIXTURES / "abacus311" / "si_diamond" / "scf"


@pytest.fixture(scope="module")
def si():
    return ab.read_run(SI)


def dm_error(h):
    """max |DM_ours − DM_code| on the code's DM pattern; ours uses the run's mesh and smearing."""
    result = density_matrix(h, pairs=h.DM.pairs)
    assert result.dropped == 0
    assert abs(result.fermi_level - h.fermi_level) < 1e-3
    return float(np.abs(result.DM.data - h.DM.data).max())


def test_si_dm_equals_abacus(si):
    assert dm_error(si) < 1e-5  # measured 4.3e-8 (ABACUS prints 8 digits)


def test_dm_on_h_pattern_counts_electrons(si):
    dm = density_matrix(si).DM
    assert np.array_equal(dm.pairs, si.H.pairs)
    assert dm.contract(si.S)[0] == pytest.approx(8.0, abs=1e-8)  # Tr(DM S) = N, spin-summed
    assert dm.hermiticity_error() < 1e-12


def test_dm_error_is_detectable(si):
    """Guard: 1 meV on the diagonal of H (not a constant shift) moves DM by more than 1e-5."""
    h = ab.read_run(SI)
    rows, cols, cells, vals = h.H.to_orbital_coo()
    onsite_s = (rows == cols) & (cells == 0).all(axis=1) & (rows % 13 == 0)  # first s orbital
    h.H.data[:, onsite_s] += 1e-3
    assert dm_error(h) > 1e-5


@pytest.mark.shared
@pytest.mark.parametrize("case", ["graphene", "fe_bcc"])
def test_shared_dm_equals_abacus(case):
    h = ab.read_run(shared_path("fixtures", "abacus311", case, "scf"))
    assert dm_error(h) < 1e-5  # measured graphene 2.8e-8, fe_bcc (nspin 2, mp) 7.4e-8
    if case == "fe_bcc":
        up, down = density_matrix(h).DM.contract(h.S)
        assert up - down == pytest.approx(1.636, abs=0.005)  # README: 1.636 μB


def test_dos_integrates_to_electron_count(si):
    sigma = si.settings["smearing_sigma_eV"]  # same Gaussian as the occupations: exact at E_F
    dos = density_of_states(si, [8, 8, 8], sigma=sigma)
    assert dos.fermi_level == pytest.approx(si.fermi_level, abs=1e-3)
    assert dos.electrons_below() == pytest.approx(8.0, abs=1e-4)
    assert dos.integrated()[0, -1] == pytest.approx(2 * 26, abs=1e-4)  # all 26 bands, 2 spins
    # Mulliken projections add up to the total
    assert sum(dos.projected.values())[0] == pytest.approx(dos.total[0], abs=1e-9)
    assert set(dos.projected) == {"Si:s", "Si:p", "Si:d"}
    assert orbital_groups(si)["Si:d"].tolist() == [8, 9, 10, 11, 12, 21, 22, 23, 24, 25]


@pytest.mark.shared
def test_spin_dos_counts_each_channel():
    h = ab.read_run(shared_path("fixtures", "abacus311", "fe_bcc", "scf"), with_matrices=("H", "S"))
    gauss = Smearing("gaussian", 0.05)
    dos = density_of_states(h, [8, 8, 8], sigma=0.05, occupation_smearing=gauss, projected=False)
    assert dos.total.shape[0] == 2
    assert dos.electrons_below() == pytest.approx(16.0, abs=1e-3)
    assert dos.integrated()[:, -1] == pytest.approx([27, 27], abs=1e-4)  # one state per band and spin


def test_mesh_fermi_level_without_code_value(si):
    assert mesh_fermi_level(si) == pytest.approx(6.8540585132, abs=1e-3)
    assert mesh_fermi_level(si, nelec=10) > 7.1  # two more electrons go into the conduction band

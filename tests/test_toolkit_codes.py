"""The toolkit (bands, occupations, density, DOS) on SIESTA and OpenMX runs against the codes' own numbers.

Everything reads the run's settings (smearing, k-mesh and its shift) the parsers state; no code knowledge here.
SIESTA: FD 300 K, Γ-centred grids (k = (i + d)/n, d = 0). OpenMX: FD 300 K, k = −1/2 + (2i + 1)/(2n)
(half-step shifted for even n). Energies: SIESTA's raw scale (its H; .bands/.EIG print absolute eV),
OpenMX's .Band in Hartree on the scale of its H.
"""
import numpy as np
import pytest

from dftplug.bands import band_structure, explicit_path, max_band_difference
from dftplug.density import density_matrix, mesh_fermi_level
from dftplug.dos import density_of_states
from dftplug.occupations import Smearing
from dftplug.parsers import openmx as om
from dftplug.parsers import siesta as si

from .code_bands import openmx_band_file, siesta_band_lines, siesta_bands
from .conftest import shared_path

READERS = {"siesta": si, "openmx": om}
_RUNS = {}


def run(code, case):
    """The converged run ``code/case`` of ../shared (read once per test session)."""
    if (code, case) not in _RUNS:
        _RUNS[code, case] = READERS[code].read_run(shared_path("fixtures", code, case, "scf"))
    return _RUNS[code, case]


@pytest.mark.parametrize("code, case", [("siesta", "si_diamond"), ("siesta", "fe_bcc"),
                                        ("openmx", "si_diamond"), ("openmx", "fe_bcc")])
def test_run_states_smearing_and_mesh(code, case):
    s = run(code, case).settings
    assert Smearing.from_settings(s) == Smearing("fermi-dirac", pytest.approx(0.0258518, abs=1e-6))
    assert s["kmesh"] in ([8, 8, 8], [12, 12, 12])
    assert list(s["kmesh_shift"]) == ([0, 0, 0] if code == "siesta" else [1, 1, 1])  # all meshes even


@pytest.mark.parametrize("case, every", [("si_diamond", 3), ("fe_bcc", 6)])
def test_siesta_bands_file(case, every):
    """Bands on SIESTA's BandLines equal its .bands (absolute eV, 4 decimals) within 1 meV, all bands
    (measured 1.4e-4 eV si_diamond, 5.3e-5 eV fe_bcc)."""
    h = run("siesta", case)
    folder = shared_path("fixtures", "siesta", case, "scf")
    kpts = siesta_band_lines(folder / f"{case}.fdf")
    printed = siesta_bands(folder / f"{case}.bands")
    assert printed.shape == (h.nspin, len(kpts), int(h.H.norb.sum()))
    bs = band_structure(h, explicit_path(h, kpts[::every]))
    assert max_band_difference(bs.energies, printed[:, ::every]) < 1e-3


@pytest.mark.parametrize("case, every", [("si_diamond", 4), ("fe_bcc", 6)])
def test_openmx_band_file(case, every):
    """Bands on OpenMX's own k-points equal its .Band (Hartree, scale of H) within 1 meV, all bands
    (measured 1.9e-9 eV si_diamond, 7.8e-9 eV fe_bcc)."""
    h = run("openmx", case)
    kpts, printed = openmx_band_file(shared_path("fixtures", "openmx", case, "scf") / f"{case}.Band")
    assert printed.shape[:2] == (h.nspin, len(kpts))
    bs = band_structure(h, explicit_path(h, kpts[::every]))
    assert max_band_difference(bs.energies, printed[:, ::every] * om.HARTREE_TO_EV) < 1e-3


@pytest.mark.parametrize("code, case", [("siesta", "si_diamond"), ("siesta", "graphene"), ("siesta", "fe_bcc"),
                                        ("openmx", "si_diamond"), ("openmx", "fe_bcc")])
def test_fermi_level_on_the_runs_mesh(code, case):
    """Our occupations on the run's mesh put E_F where the code did (measured ≤ 3.3e-6 eV; OpenMX's
    own bisection stops at ~1e-6 eV). Not o2_spin: a Γ-only molecule's E_F is anywhere in its gap
    (ours −4.39 eV, SIESTA's −4.01 eV, same occupations to e^{−0.38/kT})."""
    h = run(code, case)
    assert mesh_fermi_level(h) == pytest.approx(h.fermi_level, abs=1e-3)


@pytest.mark.parametrize("code, case, tol", [("siesta", "si_diamond", 1e-7), ("siesta", "fe_bcc", 1e-7),
                                             ("siesta", "o2_spin", 1e-7),
                                             ("openmx", "si_diamond", 1e-5), ("openmx", "fe_bcc", 1e-5)])
def test_density_matrix_equals_the_codes(code, case, tol):
    """DM(R) from the converged H on the run's mesh equals the code's DM (OpenMX nspin 1: spin-summed).

    Measured max deviation: SIESTA si_diamond 5.4e-8, fe_bcc 8e-9, o2_spin 4e-10 (on the elements SIESTA
    stores: its DM sparsity is its own, elements outside it are 0 in the file); OpenMX si_diamond 3.8e-6,
    fe_bcc 4.1e-6. OpenMX's floor is neither the E_F (the same deviation at OpenMX's own E_F) nor the mesh
    (its shifted mesh is needed: Γ-centred gives 2.2e-3, 7.3e-3); cause not identified — most likely the
    .scfout's H is that of the last rmm-diisk mixing step, not exactly the H whose eigenvectors gave its DM."""
    h = run(code, case)
    result = density_matrix(h, pairs=h.DM.pairs)
    stored = np.any(h.DM.data != 0, axis=0)
    assert stored.sum() > 0.35 * stored.size  # SIESTA fe_bcc: 13125 of 33525 (orbital pairs out of range)
    diff = np.abs(result.DM.data - h.DM.data)[:, stored]
    assert diff.max() < tol
    assert np.abs(result.DM.data).max() > 0.1                        # a DM, not zeros
    assert np.abs(result.DM.contract(h.S) - h.electron_count()).max() < 1e-4


@pytest.mark.parametrize("code, case", [("siesta", "graphene"), ("siesta", "fe_bcc"),
                                        ("openmx", "si_diamond"), ("openmx", "fe_bcc")])
def test_dos_integrates_to_the_electron_count(code, case):
    """∫^{E_F} DOS = N when E_F comes from the DOS's own Gaussian (coarse mesh: the identity holds on any)."""
    h = run(code, case)
    gauss = Smearing("gaussian", 0.1)
    dos = density_of_states(h, [6, 6, 1] if case == "graphene" else [4, 4, 4], sigma=0.1,
                            occupation_smearing=gauss, projected=False)
    assert dos.electrons_below() == pytest.approx(h.nelec, abs=2e-3)
    assert dos.total.shape[0] == h.nspin


@pytest.mark.parametrize("code", ["siesta", "openmx"])
def test_spin_orbit_dos_integrates_to_the_electron_count(code):
    """nspin 4: one channel of spinor levels, one electron each; the Mulliken PDOS (both spin components of
    each orbital) sums to the total. Grid step 5 meV: the trapezoid/interpolation error of ∫^{E_F} is
    quadratic in the step (Pt's d peaks: 3.5e-3 at the default σ/4 = 25 meV, 1.5e-4 at 5 meV)."""
    h = READERS[code].read_run(shared_path("fixtures", "soc", code, "pt_fcc", "scf"))
    dos = density_of_states(h, [4, 4, 4], sigma=0.1, grid=np.arange(-90.0, 300.0, 0.005),
                            occupation_smearing=Smearing("gaussian", 0.1))
    assert dos.total.shape[0] == 1
    assert dos.electrons_below() == pytest.approx(h.nelec, abs=2e-3)
    assert dos.integrated()[0, -1] == pytest.approx(2 * h.H.norb.sum(), abs=1e-3)  # 2·nao spinor levels
    assert np.abs(sum(dos.projected.values()) - dos.total).max() < 1e-6 * dos.total.max()  # S(k) Hermitian to ~1e-9

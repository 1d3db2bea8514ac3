"""sisl bridge: to_sisl / from_sisl against the toolkit's eigenvalues and SIESTA's printed energies."""
import lzma

import numpy as np
import pytest
import sisl

from dftplug.bands import energies_at
from dftplug.parsers import siesta as si
from dftplug.sislio import from_sisl, to_sisl

from .code_bands import siesta_band_lines, siesta_bands, siesta_eig, siesta_kpoints
from .conftest import FIXTURES, shared_path

SI = FIXTURES / "siesta" / "si_diamond" / "scf"
H2O = FIXTURES / "siesta" / "h2o" / "scf"


@pytest.fixture(scope="module")
def si_h():
    return si.read_run(SI)


def test_sisl_bands_equal_own_bloch_sum(si_h):
    H = to_sisl(si_h)
    assert H.geometry.nsc.tolist() == [5, 5, 5] and not H.orthogonal
    for k in ([0, 0, 0], [0.5, 0.5, 0.5], [0.1, 0.2, 0.3], [0.5, 0.25, 0.75]):
        assert np.abs(H.eigh(k) - energies_at(si_h, [k])[0, 0]).max() < 1e-6


def test_sisl_bands_equal_own_bloch_sum_spin():
    h = si.read_run(shared_path("fixtures", "siesta", "fe_bcc", "scf"))
    H = to_sisl(h)
    assert H.spin.is_polarized
    k = [0.1, 0.2, 0.3]
    for spin in (0, 1):
        assert np.abs(H.eigh(k, spin=spin) - energies_at(h, [k])[spin, 0]).max() < 1e-6


def plain(path, tmp_path):
    """A plain copy of ``path`` or of its .xz (sisl's readers open plain files)."""
    xz = path.with_name(path.name + ".xz")
    if not xz.exists():
        return str(path)
    out = tmp_path / path.name
    out.write_bytes(lzma.decompress(xz.read_bytes()))
    return str(out)


def _eig_error(run, h, every=1):
    """max |ε(sisl) − ε(SIESTA .EIG)| over SIESTA's own k points (raw H: SIESTA's reference)."""
    label = next(run.glob("*.KP")).name[:-3]
    k = siesta_kpoints(run / f"{label}.KP", h.atoms.cell.array)
    _, printed = siesta_eig(run / f"{label}.EIG")
    H = to_sisl(h)
    return max(np.abs(np.array([H.eigh(kk, spin=s) for kk in k[::every]]) - printed[s, ::every]).max()
               for s in range(h.nspin))


def test_eig_file_reproduced(si_h):
    assert _eig_error(SI, si_h, every=3) < 1e-3  # eV, 99 of the 296 k, all 26 bands


def test_eig_file_reproduced_gamma_molecule():
    assert _eig_error(H2O, si.read_run(H2O)) < 1e-3


@pytest.mark.parametrize("case, every", [("graphene", 4), ("mgo", 4), ("fe_bcc", 8), ("o2_spin", 1),
                                         ("si8_rattled", 11)])
def test_shared_eig_file_reproduced(case, every):
    run = shared_path("fixtures", "siesta", case, "scf")
    assert _eig_error(run, si.read_run(run), every) < 1e-3


@pytest.mark.parametrize("case", ["si_diamond", "graphene", "fe_bcc"])
def test_bands_file_reproduced(case):
    run = SI if case == "si_diamond" else shared_path("fixtures", "siesta", case, "scf")
    h = si.read_run(run)
    path = siesta_band_lines(run / f"{case}.fdf")
    printed = siesta_bands(run / f"{case}.bands")
    assert len(path) == printed.shape[1]
    H = to_sisl(h)
    for s in range(h.nspin):
        ours = np.array([H.eigh(k, spin=s) for k in path])
        assert np.abs(ours - printed[s]).max() < 1e-3


def test_orbital_labels_are_siestas(si_h):
    names = [o.name() for o in to_sisl(si_h).geometry.atoms[0].orbitals]
    assert names == ["3sZ1", "3sZ2", "3pyZ1", "3pzZ1", "3pxZ1", "3pyZ2", "3pzZ2", "3pxZ2",
                     "3dxyZ1P", "3dyzZ1P", "3dz2Z1P", "3dxzZ1P", "3dx2-y2Z1P"]  # = .ORB_INDX "sym"


def test_round_trip(si_h):
    back = from_sisl(to_sisl(si_h))
    assert back.basis.shells == si_h.basis.shells and back.symbols == si_h.symbols
    assert np.abs((back.H - si_h.H).data).max() < 1e-12 and np.abs((back.S - si_h.S).data).max() < 1e-14
    assert np.allclose(back.atoms.cell.array, si_h.atoms.cell.array)


def test_from_sisl_of_sisls_own_reader(si_h, tmp_path):
    """sisl's TSHS reader gives H − E_F S with 13.6056931 eV/Ry; undone, it is our H."""
    sile = sisl.get_sile(plain(SI / "si_diamond.TSHS", tmp_path))
    H = sile.read_hamiltonian(geometry=to_sisl(si_h).geometry)
    H.shift(sile.read_fermi_level())
    back = from_sisl(H)
    ratio = si.RY_TO_EV / 13.605693122994
    # sisl reads the transpose of SIESTA's rows (SIESTA's H, S are symmetric to ~1e-8 only)
    assert np.abs((back.H.scaled(ratio) - si_h.H.transposed()).data).max() < 1e-12
    assert np.abs((back.S - si_h.S.transposed()).data).max() < 1e-14

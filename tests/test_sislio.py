"""sisl bridge: to_sisl / from_sisl against our own Bloch sum and SIESTA's printed energies."""
import lzma
import re

import numpy as np
import pytest
import scipy.linalg
import sisl

from dftplug.parsers import siesta as si
from dftplug.sislio import from_sisl, to_sisl

from .conftest import FIXTURES, shared_path

SI = FIXTURES / "siesta" / "si_diamond" / "scf"
H2O = FIXTURES / "siesta" / "h2o" / "scf"


def bloch(m, k, spin=0):
    """Dense M(k) = sum_R M(R) exp(i 2pi k.R) of a BlockSparse (reference for the tests)."""
    off = m.orbital_offsets()
    out = np.zeros((off[-1], off[-1]), complex)
    for e, (i, j, *R) in enumerate(m.pairs):
        block = m.data[spin, m.offsets[e]:m.offsets[e + 1]].reshape(m.norb[i], m.norb[j])
        out[off[i]:off[i + 1], off[j]:off[j + 1]] += block * np.exp(2j * np.pi * np.dot(k, R))
    return out


def kpoints(run, h):
    """SIESTA's k points of ``<label>.KP`` (Cartesian, 1/Bohr) in reduced coordinates."""
    label = next(run.glob("*.KP")).name[:-3]
    rows = [l.split() for l in (run / f"{label}.KP").read_text().splitlines()[1:] if l.strip()]
    kcart = np.array([[float(x) for x in r[1:4]] for r in rows])
    return kcart @ (h.atoms.cell.array / si.BOHR_TO_ANG).T / (2 * np.pi), label


def band_lines(fdf):
    """k path of a ``BandLines`` block in reciprocal-lattice units, as SIESTA samples it."""
    block = re.search(r"%block BandLines\n(.*?)%endblock", fdf.read_text(), re.S).group(1).split("\n")
    rows = [l.split() for l in block if l.strip()]
    path = [np.array([float(x) for x in rows[0][1:4]])]
    for r in rows[1:]:
        n, end = int(r[0]), np.array([float(x) for x in r[1:4]])
        start = path[-1]
        path += [start + (end - start) * (j + 1) / n for j in range(n)]
    return np.array(path)


@pytest.fixture(scope="module")
def si_h():
    return si.read_run(SI)


def test_sisl_bands_equal_own_bloch_sum(si_h):
    H = to_sisl(si_h)
    assert H.geometry.nsc.tolist() == [5, 5, 5] and not H.orthogonal
    for k in ([0, 0, 0], [0.5, 0.5, 0.5], [0.1, 0.2, 0.3], [0.5, 0.25, 0.75]):
        ref = scipy.linalg.eigh(bloch(si_h.H, k), bloch(si_h.S, k), eigvals_only=True)
        assert np.abs(H.eigh(k) - ref).max() < 1e-6


def test_sisl_bands_equal_own_bloch_sum_spin():
    h = si.read_run(shared_path("fixtures", "siesta", "fe_bcc", "scf"))
    H = to_sisl(h)
    assert H.spin.is_polarized
    k = [0.1, 0.2, 0.3]
    for spin in (0, 1):
        ref = scipy.linalg.eigh(bloch(h.H, k, spin), bloch(h.S, k), eigvals_only=True)
        assert np.abs(H.eigh(k, spin=spin) - ref).max() < 1e-6


def plain(path, tmp_path):
    """A plain copy of ``path`` or of its .xz (sisl's readers open plain files)."""
    xz = path.with_name(path.name + ".xz")
    if not xz.exists():
        return str(path)
    out = tmp_path / path.name
    out.write_bytes(lzma.decompress(xz.read_bytes()))
    return str(out)


def printed_eig(path):
    """SIESTA's .EIG energies (nspin, nk, nbands) in eV as printed (sisl's reader subtracts E_F)."""
    sile = sisl.get_sile(path)
    return sile.read_data() + sile.read_fermi_level()


def printed_bands(path):
    """SIESTA's .bands energies (nk, nspin, nbands) in eV as printed (sisl subtracts line 1, E_F)."""
    ef = float(open(path).readline())
    return sisl.get_sile(path).read_data()[2] + ef


def _eig_error(run, h, tmp_path, every=1):
    """max |ε(sisl) − ε(SIESTA .EIG)| over SIESTA's own k points (raw H: SIESTA's reference)."""
    k, label = kpoints(run, h)
    printed = printed_eig(plain(run / f"{label}.EIG", tmp_path))
    H = to_sisl(h)
    return max(np.abs(np.array([H.eigh(kk, spin=s) for kk in k[::every]]) - printed[s, ::every]).max()
               for s in range(h.nspin))


def test_eig_file_reproduced(si_h, tmp_path):
    assert _eig_error(SI, si_h, tmp_path, every=3) < 1e-3  # eV, 99 of the 296 k, all 26 bands


def test_eig_file_reproduced_gamma_molecule(tmp_path):
    assert _eig_error(H2O, si.read_run(H2O), tmp_path) < 1e-3


@pytest.mark.parametrize("case, every", [("graphene", 4), ("mgo", 4), ("fe_bcc", 8), ("o2_spin", 1),
                                         ("si8_rattled", 11)])
def test_shared_eig_file_reproduced(case, every, tmp_path):
    run = shared_path("fixtures", "siesta", case, "scf")
    assert _eig_error(run, si.read_run(run), tmp_path, every) < 1e-3


@pytest.mark.parametrize("case", ["si_diamond", "graphene", "fe_bcc"])
def test_bands_file_reproduced(case, tmp_path):
    run = SI if case == "si_diamond" else shared_path("fixtures", "siesta", case, "scf")
    h = si.read_run(run)
    path = band_lines(run / f"{case}.fdf")
    printed = printed_bands(plain(run / f"{case}.bands", tmp_path))
    assert len(path) == printed.shape[0]
    H = to_sisl(h)
    for s in range(h.nspin):
        ours = np.array([H.eigh(k, spin=s) for k in path])
        assert np.abs(ours - printed[:, s]).max() < 1e-3


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

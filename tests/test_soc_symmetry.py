"""Spinor rotations and time reversal: SU(2) conventions, and the real fcc Pb SOC Hamiltonian's
cubic symmetry and Kramers symmetry (ABACUS ran with ``symmetry 0``: nothing was imposed)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dftplug.blocksparse import BlockSparse
from dftplug.kspace_soc import band_energies
from dftplug.orbitals import block_rotation, spin_half_d
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES, shared_path

SCF = FIXTURES / "soc" / "abacus311" / "pb_fcc" / "scf"
PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])

# Cubic (O_h) operations of the fcc lattice, proper and improper
CUBIC = {
    "C4z": [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
    "C3[111]": [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
    "C2[110]": [[0, 1, 0], [1, 0, 0], [0, 0, -1]],
    "inversion": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
    "mirror z": [[1, 0, 0], [0, 1, 0], [0, 0, -1]],
    "S4z": [[0, 1, 0], [-1, 0, 0], [0, 0, -1]],
}


@pytest.fixture(scope="module")
def scf():
    return ab.read_run(SCF)


def _sigma(v):
    return np.einsum("a,aij->ij", v, PAULI)


@pytest.mark.parametrize("seed", range(4))
def test_spin_half_d_is_the_su2_image_of_the_rotation(seed):
    rot = Rotation.random(random_state=seed).as_matrix()
    other = Rotation.random(random_state=seed + 10).as_matrix()
    u = spin_half_d(rot)
    assert np.allclose(u @ u.conj().T, np.eye(2), atol=1e-14) and np.isclose(np.linalg.det(u), 1)
    v = np.random.default_rng(seed).normal(size=3)
    assert np.allclose(u @ _sigma(v) @ u.conj().T, _sigma(rot @ v), atol=1e-13)
    prod = spin_half_d(rot) @ spin_half_d(other)
    ref = spin_half_d(rot @ other)
    assert min(np.abs(prod - ref).max(), np.abs(prod + ref).max()) < 1e-13  # homomorphism up to sign
    assert np.allclose(spin_half_d(-rot), u, atol=0)  # spin is a pseudovector


def test_spin_half_d_special_angles():
    assert np.allclose(spin_half_d(np.eye(3)), np.eye(2))
    c2z = np.diag([-1.0, -1.0, 1.0])  # theta = pi about z: U = -i sigma_z
    assert np.allclose(spin_half_d(c2z), -1j * PAULI[2])
    c4z = np.array(CUBIC["C4z"], float)
    assert np.allclose(spin_half_d(c4z), np.diag([np.exp(-1j * np.pi / 4), np.exp(1j * np.pi / 4)]))


def _relabel(m: BlockSparse, cell_map: np.ndarray) -> BlockSparse:
    """Lattice coordinates R' of the rotated cell -> R' @ cell_map of the original cell."""
    rows, cols, cells, values = m.to_orbital_coo()
    return BlockSparse.from_orbital_coo(m.norb, rows, cols, cells @ cell_map, values)


def _cell_map(rotated, original):
    m = rotated.atoms.cell.array @ np.linalg.inv(original.atoms.cell.array)
    assert np.abs(m - np.rint(m)).max() < 1e-9  # a lattice symmetry
    return np.rint(m).astype(np.int64)


@pytest.mark.parametrize("op", list(CUBIC))
def test_cubic_operations_leave_the_soc_hamiltonian_invariant(scf, op):
    """(D_i x U) H(R) (D_j x U)^dagger relabelled to the original lattice = H: pins the SU(2)
    convention against the orbitals' Wigner D (measured: <= 1.5e-8 eV)."""
    rot = np.array(CUBIC[op], float)
    rotated = scf.rotated(rot)
    cmap = _cell_map(rotated, scf)
    for name in ("H", "S", "DM"):
        err = np.abs((_relabel(getattr(rotated, name), cmap) - getattr(scf, name)).data).max()
        assert err < 1e-6, (op, name, err)


@pytest.mark.parametrize("op", ["C4z", "C3[111]", "S4z"])
def test_wrong_spin_rotations_break_the_symmetry(scf, op):
    """Guard: rotating the orbitals only, or the spin with U^dagger or conj(U), fails by ~1 eV."""
    rot = np.array(CUBIC[op], float)
    orbital_only = scf.H.transform(np.zeros(1, np.int64), [block_rotation(scf.basis.ls("Pb"), rot)])
    cmap = _cell_map(scf.rotated(rot), scf)
    u = spin_half_d(rot)
    for wrong in (np.eye(2), u.conj().T, u.conj()):
        err = np.abs((_relabel(orbital_only.spin_transform(wrong), cmap) - scf.H).data).max()
        assert err > 0.5, (op, err)


def test_random_rotation_keeps_the_bands_at_rotated_k(scf):
    rot = Rotation.random(random_state=7).as_matrix()
    rotated = scf.rotated(rot)
    assert np.abs((rotated.H - scf.H).data).max() > 0.1  # the blocks changed
    assert rotated.hermiticity_error()["H"] < 1e-12
    kcart = np.random.default_rng(3).normal(size=(5, 3))  # k in 1/Å (times 2 pi)
    k_red = kcart @ scf.atoms.cell.array.T
    k_red_rot = (kcart @ rot.T) @ rotated.atoms.cell.array.T
    assert np.abs(band_energies(rotated, k_red_rot) - band_energies(scf, k_red)).max() < 1e-9


def test_time_reversal_is_an_antiunitary_involution_on_operators(scf):
    tr = scf.H.time_reversed()
    assert np.array_equal(tr.time_reversed().data, scf.H.data)  # theta^2 = -1 cancels on operators
    rot = Rotation.random(random_state=1).as_matrix()
    a = scf.rotated(rot).time_reversed().H
    b = scf.time_reversed().rotated(rot).H
    assert np.abs((a - b).data).max() < 1e-12  # SU(2) rotations commute with theta


def test_non_magnetic_soc_hamiltonian_is_time_reversal_invariant(scf):
    """H = theta H theta^-1 to the file precision (measured 1.9e-9 eV); S and the structure unchanged."""
    assert np.abs((scf.time_reversed().H - scf.H).data).max() < 1e-7
    assert np.array_equal(scf.time_reversed().S.data, scf.S.data)
    assert np.abs((scf.time_reversed().DM - scf.DM).data).max() < 1e-12


@pytest.mark.parametrize("run, low, high", [("h0_smallmag", 0.0, 1e-4), ("h0", 0.5, 2.0)])
def test_h0_time_reversal_breaking(run, low, high):
    """README § 3: h0/ has a spurious start moment (max|H_dd - conj(H_uu)| = 8.9e-2 Ry); h0_smallmag/
    is the usable, essentially non-magnetic H0 (1.0e-6 Ry)."""
    h0 = ab.read_run(shared_path("fixtures", "soc", "abacus311", "pb_fcc", run), with_matrices=("H",))
    err = np.abs((h0.H.time_reversed() - h0.H).data).max()
    assert low <= err < high, err

"""Bloch sums, the generalized eigensolver with its overlap guard, smearing and Fermi levels."""
import numpy as np
import pytest
import scipy.linalg as sl

from dftplug.kspace import BlochSum, solve_at, solve_generalized
from dftplug.occupations import Smearing, electron_count, fermi_level, monkhorst_pack
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES, shared_path

SI = FIXTURES / "abacus311" / "si_diamond" / "scf"
K = np.array([[0.1, -0.23, 0.37], [0.0, 0.0, 0.0], [0.5, 0.25, 0.75]])


@pytest.fixture(scope="module")
def si():
    return ab.read_run(SI)


def test_bloch_sum_sparse_equals_dense_and_is_hermitian(si):
    bloch = BlochSum(si.H)
    dense = bloch.dense(K)[0]
    for k, hk in zip(K, dense):
        assert np.abs(bloch.sparse(k).toarray() - hk).max() < 1e-12
        assert np.abs(hk - hk.conj().T).max() < 1e-12
    # element-wise definition: H(k)_ij = sum_R H_ij(R) exp(i 2 pi k.R)
    rows, cols, cells, vals = si.H.to_orbital_coo()
    ref = np.zeros_like(dense[0])
    np.add.at(ref, (rows, cols), vals[0] * np.exp(2j * np.pi * cells @ K[0]))
    assert np.abs(ref - dense[0]).max() < 1e-12


def test_inverse_bloch_sum_recovers_real_space_matrix(si):
    """Σ_k w_k S(k) e^{-ikR} over a mesh finer than the range of S gives S(R) back."""
    bloch = BlochSum(si.S)
    kpts, w = monkhorst_pack([12, 12, 12], time_reversal=False)
    back = bloch.real_space(bloch.dense(kpts)[0], w, kpts)
    assert np.abs(back - si.S.data[0]).max() < 1e-12


def test_eigensolver_matches_scipy_and_is_s_orthonormal(si):
    hk, sk = BlochSum(si.H).dense(K)[0], BlochSum(si.S).dense(K)[0]
    sol = solve_generalized(hk, sk)
    for a in range(len(K)):
        c, e = sol.vectors[a], sol.energies[a]
        assert np.abs(hk[a] @ c - sk[a] @ c * e).max() < 1e-9        # H c = ε S c
        assert np.abs(c.conj().T @ sk[a] @ c - np.eye(len(c))).max() < 1e-9
    assert sol.dropped.tolist() == [0, 0, 0]
    alone = solve_generalized(hk, sk, vectors=False)
    assert alone.vectors is None and np.abs(alone.energies - sol.energies).max() < 1e-10


def test_singular_overlap_is_dropped_not_a_ghost(si):
    """A basis with orbital 0 duplicated has an exactly singular S. The guard drops one
    direction and returns the original spectrum; plain Cholesky-based eigh cannot."""
    hk, sk = BlochSum(si.H).dense(K[:1])[0][0], BlochSum(si.S).dense(K[:1])[0][0]
    t = np.eye(26, 27, dtype=complex)
    t[0, 26] = 1.0                                   # orbital 26 = orbital 0
    h2, s2 = t.conj().T @ hk @ t, t.conj().T @ sk @ t
    sol = solve_generalized(h2, s2)
    assert sol.dropped == 1 and np.isnan(sol.energies[-1])
    c = sol.vectors[:, :26]
    assert np.abs(h2 @ c - s2 @ c * sol.energies[:26]).max() < 1e-9
    assert np.abs(c.conj().T @ s2 @ c - np.eye(26)).max() < 1e-9
    exact = sl.eigh(hk, sk, eigvals_only=True)
    assert np.abs(sol.energies[:26] - exact).max() < 1e-7
    plain = sl.eigh(h2, s2, eigvals_only=True)  # Cholesky of a numerically singular S
    assert plain.min() < exact.min() - 0.5       # a ghost state below the bands (-4 eV vs -2.9 eV)


def test_monkhorst_pack_time_reversal():
    k, w = monkhorst_pack([8, 8, 8])
    assert len(k) == 260 and w.sum() == pytest.approx(1.0)  # ABACUS log: 260 of 512 k-points
    assert np.allclose(np.sort(w)[[0, -1]], [1 / 512, 2 / 512])
    kg, wg = monkhorst_pack([12, 12, 1])
    assert len(kg) == 74  # ABACUS graphene: 74 k-points


@pytest.mark.parametrize("name", ["gaussian", "mp", "mp2", "fd"])
def test_smearing_delta_is_minus_derivative_of_occupation(name):
    sm = Smearing.named(name, 0.2)
    e = np.linspace(-8, 8, 16001)
    occ = sm.occupation(e, 0.0)
    assert occ[0] == pytest.approx(1.0, abs=1e-9) and occ[-1] == pytest.approx(0.0, abs=1e-9)
    numeric = -np.gradient(occ, e) * sm.sigma
    assert np.abs(numeric - sm.delta(-e / sm.sigma)).max() < 1e-4
    assert np.trapezoid(sm.delta(e / 0.2), e / 0.2) == pytest.approx(1.0, abs=1e-6)


def test_methfessel_paxton_first_order_formula():
    """θ_1(x) = erfc(−x)/2 + x e^{−x²}/(2√π) (Methfessel-Paxton order 1, QE wgauss n = 1)."""
    x = np.array([-1.3, -0.2, 0.0, 0.4, 2.0])
    from scipy.special import erfc
    ref = 0.5 * erfc(-x) + x * np.exp(-x * x) / (2 * np.sqrt(np.pi))
    assert np.allclose(Smearing.named("mp", 1.0).occupation(-x, 0.0), ref, atol=1e-14)


def fermi_error(h):
    kpts, w = monkhorst_pack(h.settings["kmesh"])
    e = solve_at(h.H, h.S, kpts, vectors=False).energies
    sm = Smearing.from_settings(h.settings)
    ef = fermi_level(e, w, h.nelec, sm)
    assert electron_count(e, w, ef, sm) == pytest.approx(h.nelec, abs=1e-8)
    return ef - h.fermi_level


def test_fermi_level_equals_abacus(si):
    assert abs(fermi_error(si)) < 1e-3  # eV; measured 9e-8 eV (gaussian 0.01 Ry, 8x8x8)


@pytest.mark.shared
@pytest.mark.parametrize("case", ["graphene", "fe_bcc"])
def test_shared_fermi_level_equals_abacus(case):
    h = ab.read_run(shared_path("fixtures", "abacus311", case, "scf"), with_matrices=("H", "S"))
    assert abs(fermi_error(h)) < 1e-3  # eV; measured graphene 1e-9, fe_bcc (mp 0.02 Ry, nspin 2) 1.5e-8


def test_wrong_smearing_moves_fermi_level(si):
    """Guard: Fermi-Dirac instead of the run's Gaussian shifts E_F by more than 1 meV."""
    si = ab.read_run(SI, with_matrices=("H", "S"))
    si.settings["smearing_method"] = "fd"
    assert abs(fermi_error(si)) > 1e-3

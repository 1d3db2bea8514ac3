"""Orbital conventions: real spherical harmonics, each code's m order and signs, Wigner D.

Internal convention (the only one used past a parser): inside a shell of angular momentum l the
2l+1 orbitals are e3nn's real spherical harmonics m = -l..l, i.e. ``e3nn.o3.spherical_harmonics``,
for which a rotation R acts as ``e3nn.o3.Irrep(l, (-1)**l).D_from_matrix(R)``. For l = 1 this is
(x, y, z). e3nn's harmonics are the standard real ("tesseral") harmonics with the polar axis along
y: Y^e3nn_l(r) = Y^std_l(P r), P: (x, y, z) -> (z, x, y).

The standard real harmonics (Y^std, no Condon-Shortley phase) are, for m = -l..l,
  m < 0: sqrt2 N_l|m| P_l^|m|(cos th) sin(|m| phi);  m = 0: N_l0 P_l(cos th);
  m > 0: sqrt2 N_lm P_l^m(cos th) cos(m phi),
so that l = 1 is (y, z, x) and l = 2 is (xy, yz, 3z^2-r^2, xz, x^2-y^2), all with + sign.

A code declares, per l, its orbital order as a list of (m_std, sign) pairs: its orbital a is
``sign_a * Y^std_{m_a}``. :func:`code_to_internal` returns the orthogonal U_l with
phi_internal = U_l phi_code, so that a block converts as  M_int = U_li M_code U_lj^T.

Spin 1/2 (nspin-4 spinor matrices, channel order up, down along z): :func:`spin_half_d` gives the
SU(2) matrix U(R) = exp(-i theta n.sigma/2) of the rotation R by angle theta in [0, pi] about the unit
axis n (active, r' = R r), so that U (sigma.v) U^dagger = sigma.(R v). A spinor block rotates as
M' = (D_li x U) M (D_lj x U)^dagger. Spin is a pseudovector: an improper R acts as -R (proper).
"""
from __future__ import annotations

from functools import lru_cache
from math import factorial, pi, sqrt

import numpy as np
from scipy.linalg import block_diag
from scipy.special import lpmv

ORBITAL_CONVENTION = "e3nn real spherical harmonics, m = -l..l within each shell"
"""How datasets and checkpoints name the internal convention."""

# Axis permutation taking e3nn's frame to the standard one: Y^e3nn_l(r) = Y^std_l(P r).
_P_E3NN = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def real_sh_std(l: int, xyz: np.ndarray) -> np.ndarray:
    """Orthonormal standard real spherical harmonics, shape (N, 2l+1), m = -l..l."""
    xyz = np.asarray(xyz, dtype=float)
    r = np.linalg.norm(xyz, axis=-1)
    cth = np.clip(xyz[:, 2] / r, -1.0, 1.0)
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    out = np.empty((len(xyz), 2 * l + 1))
    for m in range(0, l + 1):
        norm = sqrt((2 * l + 1) / (4 * pi) * factorial(l - m) / factorial(l + m))
        # scipy's lpmv carries the Condon-Shortley phase (-1)^m; remove it.
        plm = (-1) ** m * lpmv(m, l, cth) * norm
        if m == 0:
            out[:, l] = plm
        else:
            out[:, l + m] = sqrt(2) * plm * np.cos(m * phi)
            out[:, l - m] = sqrt(2) * plm * np.sin(m * phi)
    return out


def _fit(l: int, target, source) -> np.ndarray:
    """Matrix T with target(r) = T source(r), fitted on random points (exact: both are bases)."""
    pts = np.random.default_rng(1234).normal(size=(8 * (2 * l + 1) + 16, 3))
    a, b = source(pts), target(pts)
    t, *_ = np.linalg.lstsq(a, b, rcond=None)
    t = t.T
    if np.abs(t @ a.T - b.T).max() > 1e-10:
        raise RuntimeError(f"harmonics of l={l} are not related by a linear map")
    return t


@lru_cache(maxsize=None)
def std_to_e3nn(l: int) -> np.ndarray:
    """Orthogonal T_l with Y^e3nn_l = T_l Y^std_l (rows: e3nn m, columns: standard m).

    Its exact entries are 0 or algebraic numbers of size >= 0.1; fitting noise (< 1e-12) on the
    zeros is removed, so that s and p conversions are exact signed permutations and a code's
    float noise survives a read/write round trip (nspin-4 complex files)."""
    t = _fit(l, lambda p: real_sh_std(l, p @ _P_E3NN.T), lambda p: real_sh_std(l, p))
    t[np.abs(t) < 1e-12] = 0.0
    return t


def real_sh(l: int, xyz: np.ndarray) -> np.ndarray:
    """Internal (e3nn-convention) orthonormal real spherical harmonics, shape (N, 2l+1)."""
    return real_sh_std(l, np.asarray(xyz, float) @ _P_E3NN.T)


def code_to_internal(order: tuple[tuple[int, int], ...]) -> np.ndarray:
    """U_l taking a code's orbitals to the internal ones (phi_int = U_l phi_code).

    ``order[a] = (m_std, sign)``: the code's a-th orbital of the shell is sign * Y^std_m.
    """
    l = (len(order) - 1) // 2
    c = np.zeros((2 * l + 1, 2 * l + 1))
    for a, (m, sign) in enumerate(order):
        c[a, m + l] = sign
    return std_to_e3nn(l) @ c.T


def wigner_d(l: int, rot: np.ndarray) -> np.ndarray:
    """D_l(R) in the internal convention: Y_l(R r) = D_l(R) Y_l(r). ``rot`` is a proper or
    improper 3x3 orthogonal matrix; an improper one gives the parity factor (-1)^l."""
    rot = np.asarray(rot, float)
    det = np.linalg.det(rot)
    proper = rot * np.sign(det)
    d = _fit(l, lambda p: real_sh(l, p @ proper.T), lambda p: real_sh(l, p))
    return d * (np.sign(det) ** l)


def block_rotation(ls, rot: np.ndarray) -> np.ndarray:
    """Block-diagonal D for an atom whose shells have angular momenta ``ls``."""
    return block_diag(*[wigner_d(l, rot) for l in ls])


_PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)


def spin_half_d(rot: np.ndarray) -> np.ndarray:
    """SU(2) matrix (2x2 complex) of the rotation ``rot`` on spinors (up, down along z).

    U = cos(theta/2) 1 - i sin(theta/2) n.sigma for ``rot`` = rotation by theta in [0, pi] about n
    (right-handed, active); then U (sigma.v) U^dagger = sigma.(rot v). The overall sign (U and -U
    are the same rotation) is fixed by theta in [0, pi] and, at theta = pi, by the first nonzero
    component of n being positive. Improper ``rot`` (det -1) = inversion x proper: inversion does
    not act on spin, so D^(1/2)(rot) = D^(1/2)(-rot).
    """
    rot = np.asarray(rot, float)
    proper = rot * np.sign(np.linalg.det(rot))
    cos_t = np.clip((np.trace(proper) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos_t)
    axial = np.array([proper[2, 1] - proper[1, 2], proper[0, 2] - proper[2, 0], proper[1, 0] - proper[0, 1]])
    if np.linalg.norm(axial) > 1e-8:
        n = axial / np.linalg.norm(axial)
    elif cos_t > 0:  # identity
        return np.eye(2, dtype=complex)
    else:  # theta = pi: rot = 2 n n^T - 1
        _, v = np.linalg.eigh((proper + np.eye(3)) / 2.0)
        n = v[:, -1]
        n = n * np.sign(n[np.nonzero(np.abs(n) > 1e-8)[0][0]])
    return np.cos(theta / 2) * np.eye(2) - 1j * np.sin(theta / 2) * np.einsum("a,aij->ij", n, _PAULI)

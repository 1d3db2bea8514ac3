"""Internal orbital convention = e3nn's real spherical harmonics; Wigner D is exact."""
import numpy as np
import pytest
import torch
from e3nn import o3

from dftplug.orbitals import block_rotation, code_to_internal, real_sh, wigner_d


@pytest.mark.parametrize("l", [0, 1, 2, 3, 4])
def test_real_sh_is_e3nn(l):
    x = np.random.default_rng(l).normal(size=(20, 3))
    e = o3.spherical_harmonics(l, torch.tensor(x), normalize=True, normalization="integral").numpy()
    assert np.abs(e - real_sh(l, x / np.linalg.norm(x, axis=1, keepdims=True))).max() < 1e-12


@pytest.mark.parametrize("l", [1, 2, 3])
def test_wigner_d_matches_e3nn_and_is_exact(l):
    rot = o3.rand_matrix(dtype=torch.float64)
    d = wigner_d(l, rot.numpy())
    # e3nn goes through Euler angles (~1e-7 here); ours is exact to rounding
    assert np.abs(d - o3.Irrep(l, (-1) ** l).D_from_matrix(rot).numpy()).max() < 1e-5
    x = np.random.default_rng(0).normal(size=(7, 3))
    assert np.abs(real_sh(l, x @ rot.numpy().T) - real_sh(l, x) @ d.T).max() < 1e-12
    # inversion: parity (-1)^l
    assert np.allclose(wigner_d(l, -np.eye(3)), (-1) ** l * np.eye(2 * l + 1))


def test_p_convention_xyz():
    # internal p order is (x, y, z): a code storing (y, z, x) with + signs maps by a permutation
    u = code_to_internal(((-1, 1), (0, 1), (1, 1)))
    assert np.allclose(u, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])


def test_block_rotation_is_orthogonal():
    rot = o3.rand_matrix(dtype=torch.float64).numpy()
    d = block_rotation([0, 1, 1, 2], rot)
    assert np.allclose(d @ d.T, np.eye(12), atol=1e-12)

"""BlockSparse: COO round trip, pattern algebra, Hermiticity helpers."""
import numpy as np
import pytest

from dftplug.blocksparse import BlockSparse, union_pairs
from dftplug.errors import MismatchError


def _random_hermitian(rng, norb=(2, 3), cells=((0, 0, 0), (1, 0, 0))):
    blocks, pairs = [], []
    for R in cells:
        for i in range(len(norb)):
            for j in range(len(norb)):
                b = rng.normal(size=(1, norb[i], norb[j]))
                pairs.append((i, j, *R))
                blocks.append(b)
    m = BlockSparse.from_blocks(norb, pairs, blocks)
    return m.hermitized()


def test_coo_round_trip():
    rng = np.random.default_rng(0)
    m = _random_hermitian(rng)
    rows, cols, cells, vals = m.to_orbital_coo()
    perm = rng.permutation(len(rows))
    m2 = BlockSparse.from_orbital_coo(m.norb, rows[perm], cols[perm], cells[perm], vals[:, perm])
    assert np.array_equal(m2.pairs, m.pairs) and np.array_equal(m2.data, m.data)


def test_hermitized_and_error():
    rng = np.random.default_rng(1)
    m = _random_hermitian(rng)
    assert m.hermiticity_error() < 1e-15
    bad = m.copy()
    bad.data[0, 0] += 0.5
    assert bad.hermiticity_error() == pytest.approx(0.5) or bad.hermiticity_error() > 0.1


def test_duplicates_refused():
    with pytest.raises(ValueError):
        BlockSparse.from_orbital_coo([1, 1], [0, 0], [1, 1], [[0, 0, 0], [0, 0, 0]], [1.0, 2.0])


def test_with_pairs_strict_refuses_dropping_nonzero_blocks():
    m = _random_hermitian(np.random.default_rng(2))
    with pytest.raises(MismatchError):
        m.with_pairs(m.pairs[:1], strict=True)


def test_union_and_subtract():
    rng = np.random.default_rng(3)
    a = _random_hermitian(rng, cells=((0, 0, 0),))
    b = _random_hermitian(rng, cells=((0, 0, 0), (0, 1, 0)))
    d = b - a
    assert d.nedges == len(union_pairs(a.pairs, b.pairs, natoms=2))
    assert np.allclose(d.block(0, 1, (0, 1, 0)), b.block(0, 1, (0, 1, 0)))

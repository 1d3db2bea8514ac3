"""Atom positions agree with the lattice vectors R each code stores: the longest bond carrying a
nonzero overlap block must be within the two orbitals' cutoff radii (S_ij(R) = 0 beyond
rc_i + rc_j). An atom whose position is one lattice vector off the one the code indexes R
against shows up as a 10 Å "bond" with a nonzero overlap."""
import shutil
import tarfile

import numpy as np
import pytest

from dftplug.convert import RunPair, read_pair
from dftplug.errors import MismatchError
from dftplug.model.graph import graph_pairs
from dftplug.model.train import data_description, delta_h_outside_pattern
from dftplug.parsers import abacus, code_io
from tests.conftest import FIXTURES, shared_path


def longest_overlap_bond(h) -> float:
    """Å: longest |r_ij| over blocks of S with any element above 1e-12."""
    s = h.S
    nonzero = s.block_max_abs() > 1e-12
    return float(np.linalg.norm(h.bond_vectors(s.pairs[nonzero]), axis=1).max())


def largest_overlap_range(h) -> float:
    """Å: rc_i + rc_j of the two largest orbital cutoffs of the structure's species."""
    rc = max(max(sh.rcut for sh in h.basis.shells[s]) for s in set(h.symbols))
    return 2 * rc


def test_wrap_into_cell_follows_abacus():
    frac = np.array([[-0.01, 0.0, 0.999], [1.0, 0.5, -0.5]])
    np.testing.assert_allclose(abacus.wrap_into_cell(frac), [[0.99, 0.0, 0.999], [0.0, 0.5, 0.5]])


def test_abacus_rattled_atoms_outside_the_cell(tmp_path):
    """ABACUS si8 sample 000 has atoms at negative fractional coordinates in its STRU; ABACUS wraps
    them into the cell before indexing R (read as given, the longest overlap bond was 10.6 Å)."""
    with tarfile.open(shared_path("datasets", "abacus", "si8", "000.tar.xz")) as tf:
        tf.extractall(tmp_path, filter="data")
    shutil.copytree(shared_path("datasets", "abacus", "si8", "PP_ORB"), tmp_path / "PP_ORB")  # ../../PP_ORB
    h = abacus.read_run(tmp_path / "000" / "scf", with_matrices=("H", "S"))
    assert h.atoms.get_scaled_positions(wrap=False).min() >= 0
    two_rc = 2 * 6 * 0.529177  # Å: Si_gga_6au_100Ry_2s2p1d.orb
    assert longest_overlap_bond(h) <= two_rc + 1e-3  # measured 6.16 ≤ 6.35 Å


@pytest.mark.parametrize("code,case", [("siesta", "si8_rattled"), ("openmx", "si8_rattled"),
                                       ("siesta", "mgo"), ("openmx", "fe_bcc")])
def test_overlap_range_other_codes(code, case):
    """SIESTA and OpenMX index R against the positions they store (also outside the cell)."""
    h = code_io(code).read_run(shared_path("fixtures", code, case, "scf"))
    assert longest_overlap_bond(h) <= largest_overlap_range(h) + 1e-3


@pytest.mark.parametrize("code,scf,h0", [("abacus", "abacus311/si_diamond/scf", "abacus311/si_diamond/h0"),
                                         ("siesta", "siesta/si_diamond/scf", "siesta/si_diamond/h0")])
def test_delta_h_vanishes_where_orbitals_do_not_overlap(code, scf, h0):
    """H − H0 is the change of the local potential: zero on blocks with S = 0 (nonlocal-only
    blocks of H), which is why the model's edges are those of S (graph_pairs); training refuses
    data where it is not."""
    h = read_pair(RunPair(code, FIXTURES / scf, FIXTURES / h0))
    assert len(graph_pairs(h)) < len(h.union_pairs())  # there are blocks outside the overlap
    assert delta_h_outside_pattern(h) < 1e-9  # eV (measured 0 / 4e-12 on the four training sets)
    h.H = h.H.copy(h.H.data.copy())
    inside = set(map(tuple, graph_pairs(h)))
    e = next(k for k, p in enumerate(h.H.pairs) if tuple(p) not in inside)
    h.H.data[:, h.H.offsets[e]] += 1e-3
    assert delta_h_outside_pattern(h) == pytest.approx(1e-3)
    with pytest.raises(MismatchError, match="do not overlap"):
        data_description([("broken", h)])

"""DeepH folders, both layouts: round trips on real runs, every field of the format, orbital order
checked against bond geometry and against DeepH-dock's ABACUS table, bad input."""
import json
import shutil

import ase
import ase.io
import h5py
import numpy as np
import pytest

from dftplug.aseio import from_ase
from dftplug.basis import Basis, Shell
from dftplug.errors import ParseError
from dftplug.parsers import abacus as ab
from dftplug.parsers import deeph

from .conftest import FIXTURES, shared_path

SI = FIXTURES / "abacus311" / "si_diamond"
RY = 13.605698  # eV, ABACUS's constant
# The layouts' orbital order per l, written out from DeepH's own sources (not from dftplug):
# new = Wikipedia real harmonics m = -l..l; legacy = OpenMX order (Us_openmx2wiki is a permutation).
CARTESIAN_P = {"new": [2, 0, 1], "legacy": [0, 1, 2]}  # file positions of (x, y, z)
D_NAMES = {"new": ["xy", "yz", "z2", "xz", "x2-y2"], "legacy": ["z2", "x2-y2", "xy", "xz", "yz"]}
# DeepH-dock translate_abacus_to_deeph: wiki = factor * abacus[index] per l
ABACUS_TO_NEW = {0: ([0], [1]), 1: ([2, 0, 1], [-1, 1, -1]), 2: ([4, 2, 0, 1, 3], [1, -1, 1, -1, 1])}


@pytest.fixture(scope="module")
def si():
    return ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))


@pytest.fixture(scope="module", params=deeph.LAYOUTS)
def si_folder(request, si, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"si_{request.param}")
    deeph.write_deeph(si, out, layout=request.param)
    return request.param, out


def _assert_same(a, b, atol):
    assert a.symbols == b.symbols
    assert np.abs(a.atoms.cell.array - b.atoms.cell.array).max() < 1e-12
    assert np.abs(a.atoms.positions - b.atoms.positions).max() < 1e-12
    assert a.basis == b.basis  # shells incl. zeta and rcut (dftplug extension of info.json)
    assert (a.fermi_level, a.nelec, a.h0_kind) == (b.fermi_level, b.nelec, b.h0_kind)
    assert set(a.matrices()) == set(b.matrices())
    for name, m in a.matrices().items():
        assert np.array_equal(m.pairs, getattr(b, name).pairs), name  # zero padding dropped again
        assert np.abs(m.data - getattr(b, name).data).max() <= atol, name


def test_round_trip_si(si, si_folder):
    layout, out = si_folder
    back = deeph.read_deeph(out)
    assert back.provenance["format"] == f"deeph-{layout}" and back.provenance["origin"]["code"] == "abacus"
    _assert_same(si, back, atol=1e-12)  # eV; only the orbital rotation's rounding
    assert back.electron_count()[0] == pytest.approx(8.0, abs=1e-6)


@pytest.mark.parametrize("layout", deeph.LAYOUTS)
def test_round_trip_fe_nspin2(layout, tmp_path):
    fe = ab.read_run(shared_path("fixtures", "abacus311", "fe_bcc", "scf"))
    deeph.write_deeph(fe, tmp_path, layout=layout)
    back = deeph.read_deeph(tmp_path)
    _assert_same(fe, back, atol=1e-11)
    assert back.nspin == 2
    assert np.allclose(back.electron_count(), fe.electron_count(), atol=1e-12)
    assert back.electron_count().sum() == pytest.approx(16.0, abs=1e-4)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["spinful" if layout == "new" else "isspinful"] is True
    if layout == "new":  # spin-diagonal (2n, 2n) H blocks [[up, 0], [0, down]], scalar S blocks
        h = _new_h5(tmp_path / "hamiltonian.h5")
        assert np.all(h["chunk_shapes"] == 54) and np.all(_new_h5(tmp_path / "overlap.h5")["chunk_shapes"] == 27)
        e = np.nonzero(np.all(h["atom_pairs"] == 0, axis=1))[0][0]
        onsite = h["entries"][h["chunk_boundaries"][e]:h["chunk_boundaries"][e + 1]].reshape(54, 54)
        assert np.all(onsite[:27, 27:] == 0) and np.all(onsite[27:, :27] == 0)
        assert np.abs(onsite[:27, :27] - onsite[27:, 27:]).max() > 0.01  # up and down differ (magnet)


def _new_h5(path):
    with h5py.File(path) as fh:
        return {k: fh[k][()] for k in fh}


def test_new_layout_fields(si, tmp_path):
    deeph.write_deeph(si, tmp_path, layout="new")
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["atoms_quantity"] == 2 and info["orbits_quantity"] == 26
    assert info["orthogonal_basis"] is False and info["spinful"] is False
    assert info["fermi_energy_eV"] == pytest.approx(6.8540585132, abs=1e-10)
    assert info["elements_orbital_map"] == {"Si": [0, 0, 1, 1, 2]}
    poscar = ase.io.read(tmp_path / "POSCAR", format="vasp")  # Å
    assert np.abs(poscar.positions[1] - [1.3575, 1.3575, 1.3575]).max() < 1e-9
    assert np.abs(poscar.cell.array - si.atoms.cell.array).max() < 1e-12
    h = _new_h5(tmp_path / "hamiltonian.h5")
    s = _new_h5(tmp_path / "overlap.h5")
    assert np.array_equal(h["atom_pairs"], s["atom_pairs"])  # one pattern for all files
    pairs = h["atom_pairs"]
    assert pairs.shape == (si.H.nedges, 5) and pairs[:, 3:].min() == 0 and pairs[:, 3:].max() == 1
    assert np.array_equal(pairs, pairs[np.lexsort(pairs.T[::-1])])  # sorted by R1, R2, R3, i, j
    assert np.all(h["chunk_shapes"] == 13)  # (norb_i, norb_j)
    assert np.array_equal(h["chunk_boundaries"], np.arange(len(pairs) + 1) * 13 * 13)
    # columns are (R1, R2, R3, i, j): compare one block with ABACUS's own file, in eV, with the
    # reorder and (-1)^m signs of DeepH-dock's ABACUS converter
    csr = ab.read_csr(SI / "scf" / "OUT.si_diamond" / "hrs1_nao.csr")
    index, factor, k = [], [], 0
    for l in (0, 0, 1, 1, 2):
        index += [k + x for x in ABACUS_TO_NEW[l][0]]
        factor += ABACUS_TO_NEW[l][1]
        k += 2 * l + 1
    sign = np.outer(factor, factor)
    for R, i, j in (((0, 0, 0), 0, 1), ((1, 0, 0), 0, 0), ((0, 0, -1), 0, 1)):
        sel = csr.cell_of == np.nonzero(np.all(csr.cells == R, axis=1))[0][0]
        raw = np.zeros((26, 26))
        raw[csr.rows[sel], csr.cols[sel]] = csr.values[sel] * RY
        expected = sign * raw[13 * i:13 * i + 13, 13 * j:13 * j + 13][index][:, index]
        e = np.nonzero(np.all(pairs == [*R, i, j], axis=1))[0][0]
        block = h["entries"][h["chunk_boundaries"][e]:h["chunk_boundaries"][e + 1]].reshape(13, 13)
        assert np.abs(block - expected).max() < 1e-12
        assert np.abs(expected).max() > 0.3  # a real hopping block, not zeros
        assert np.abs(block - block.T).max() > 0.1  # and not symmetric: a transposed pair would fail


def test_legacy_layout_fields(si, tmp_path):
    deeph.write_deeph(si, tmp_path, layout="legacy")
    assert (tmp_path / "element.dat").read_text().split() == ["14", "14"]
    assert (tmp_path / "orbital_types.dat").read_text().splitlines() == ["0 0 1 1 2"] * 2
    pos = np.loadtxt(tmp_path / "site_positions.dat")
    assert pos.shape == (3, 2) and np.abs(pos[:, 1] - 1.3575).max() < 1e-9  # 3 x N, Å
    lat = np.loadtxt(tmp_path / "lat.dat")
    rlat = np.loadtxt(tmp_path / "rlat.dat")
    assert np.abs(lat[:, 0] - si.atoms.cell.array[0]).max() < 1e-12  # columns = lattice vectors
    assert np.allclose(lat.T @ rlat, 2 * np.pi * np.eye(3), atol=1e-12)
    info = json.loads((tmp_path / "info.json").read_text())
    assert {k: info[k] for k in ("nsites", "isorthogonal", "isspinful", "norbits")} == \
        {"nsites": 2, "isorthogonal": False, "isspinful": False, "norbits": 26}
    assert info["fermi_level"] == pytest.approx(6.8540585132, abs=1e-10)
    new = tmp_path / "new"
    deeph.write_deeph(si, new, layout="new")
    h = _new_h5(new / "hamiltonian.h5")
    with h5py.File(tmp_path / "hamiltonians.h5") as fh:
        assert "[0, 0, 0, 1, 1]" in fh and "[0, 0, 0, 0, 0]" not in fh  # 1-based atoms
        assert len(fh) == len(h["atom_pairs"])
        # legacy = new with OpenMX's order inside each shell (p: x y z; d: z2 x2-y2 xy xz yz)
        perm = [0, 1, 2 + 2, 2 + 0, 2 + 1, 5 + 2, 5 + 0, 5 + 1, 8 + 2, 8 + 4, 8 + 0, 8 + 3, 8 + 1]
        for e in (0, 7, len(h["atom_pairs"]) // 2):
            R1, R2, R3, i, j = h["atom_pairs"][e]
            block = h["entries"][h["chunk_boundaries"][e]:h["chunk_boundaries"][e + 1]].reshape(13, 13)
            assert np.array_equal(fh[f"[{R1}, {R2}, {R3}, {i + 1}, {j + 1}]"][()], block[perm][:, perm])


def _bond_directions(h, pairs):
    """Unit vectors from atom i (home cell) to atom j in cell R for DeepH rows (R1, R2, R3, i, j)."""
    pos, cell = h.atoms.positions, h.atoms.cell.array
    d = pos[pairs[:, 4]] + pairs[:, :3] @ cell - pos[pairs[:, 3]]
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _overlap_blocks(si, layout, tmp_path):
    deeph.write_deeph(si, tmp_path, layout=layout)
    chunks = (deeph._read_new_h5 if layout == "new" else deeph._read_legacy_h5)(
        tmp_path / deeph.MATRIX_FILES["S"][layout == "legacy"])
    far = np.any(chunks.pairs[:, :3] != 0, axis=1) | (chunks.pairs[:, 3] != chunks.pairs[:, 4])
    b = chunks.bounds
    blocks = np.array([chunks.entries[b[e]:b[e + 1]].reshape(13, 13) for e in np.nonzero(far)[0]])
    keep = np.abs(blocks).max(axis=(1, 2)) > 1e-6  # drop the zero padding of the union pattern
    return blocks[keep], _bond_directions(si, chunks.pairs[far][keep])


def _pp_residual(blocks, dirs, cart):
    """Largest misfit of the first-p/first-p overlap blocks to two-centre Slater-Koster form
    ppπ 1 + (ppσ − ppπ) d dᵀ, reading the file's p orbitals at positions ``cart`` as (x, y, z)."""
    p = blocks[:, 2:5, 2:5][:, cart][:, :, cart]
    worst = 0.0
    for block, d in zip(p, dirs):
        basis = np.stack([np.eye(3).ravel(), np.outer(d, d).ravel()], axis=1)
        coef, *_ = np.linalg.lstsq(basis, block.ravel(), rcond=None)
        worst = max(worst, np.abs(basis @ coef - block.ravel()).max())
    return worst


@pytest.mark.parametrize("layout", deeph.LAYOUTS)
def test_p_and_d_order_follow_bond_geometry(si, layout, tmp_path):
    """Overlap blocks are two-centre integrals: ppσ/ppπ sit along/across the bond, s-p rows point
    along the bond and s-d rows follow the l = 2 harmonics of the bond direction, in the DeepH
    order of each layout. A swapped p order (e.g. e3nn's x, y, z in the new layout) fails."""
    blocks, dirs = _overlap_blocks(si, layout, tmp_path)
    assert len(blocks) > 20 and np.abs(dirs[:, 0] - dirs[:, 1]).max() > 0.5  # bonds that tell x from y
    assert _pp_residual(blocks, dirs, CARTESIAN_P[layout]) < 1e-7
    assert _pp_residual(blocks, dirs, [2, 0, 1] if layout == "legacy" else [0, 1, 2]) > 1e-2  # control
    x, y, z = dirs.T
    sp = blocks[:, 0, 2:5][:, CARTESIAN_P[layout]]
    d_harm = {"xy": np.sqrt(3) * x * y, "yz": np.sqrt(3) * y * z, "z2": z ** 2 - (x ** 2 + y ** 2) / 2,
              "xz": np.sqrt(3) * x * z, "x2-y2": np.sqrt(3) / 2 * (x ** 2 - y ** 2)}
    sd = blocks[:, 0, 8:13]
    expected_sd = np.stack([d_harm[n] for n in D_NAMES[layout]], axis=1)
    for got, want in ((sp, dirs), (sd, expected_sd)):
        strong = np.linalg.norm(got, axis=1) > 1e-3
        cos = np.sum(got * want, axis=1)[strong] / np.linalg.norm(got[strong], axis=1)
        assert strong.sum() > 10 and np.abs(np.abs(cos) - 1).max() < 1e-6
        assert np.ptp(np.sign(cos)) == 0  # one sign for all bonds: signs of m follow the table


def test_is_deeph_folder(si_folder):
    assert deeph.is_deeph_folder(si_folder[1])
    assert not deeph.is_deeph_folder(SI / "scf")
    with pytest.raises(ParseError, match="not a DeepH folder"):
        deeph.read_deeph(SI / "scf")


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def test_missing_info_json(si_folder, tmp_path):
    bad = _copy(si_folder[1], tmp_path)
    (bad / "info.json").unlink()
    with pytest.raises(ParseError, match="info.json"):
        deeph.read_deeph(bad)


def test_truncated_h5(si_folder, tmp_path):
    layout, folder = si_folder
    bad = _copy(folder, tmp_path)
    path = bad / deeph.MATRIX_FILES["H"][layout == "legacy"]
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    with pytest.raises(ParseError, match=path.name):
        deeph.read_deeph(bad)


def test_mismatched_atom_count(si_folder, tmp_path):
    layout, folder = si_folder
    bad = _copy(folder, tmp_path)
    info = json.loads((bad / "info.json").read_text())
    info["atoms_quantity" if layout == "new" else "nsites"] = 3
    (bad / "info.json").write_text(json.dumps(info))
    with pytest.raises(ParseError, match=r"info\.json.*3"):
        deeph.read_deeph(bad)


def test_legacy_positions_of_other_atom_count(si, tmp_path):
    deeph.write_deeph(si, tmp_path, layout="legacy")
    (tmp_path / "element.dat").write_text("14\n14\n14\n")
    with pytest.raises(ParseError, match="site_positions.dat"):
        deeph.read_deeph(tmp_path)


def test_block_shape_against_basis(si_folder, tmp_path):
    layout, folder = si_folder
    bad = _copy(folder, tmp_path)
    info = json.loads((bad / "info.json").read_text())
    if layout == "new":
        info["elements_orbital_map"]["Si"] = [0, 1, 1, 2]
        info.pop("orbits_quantity")
    else:
        (bad / "orbital_types.dat").write_text("0 1 1 2\n0 1 1 2\n")
        info.pop("norbits")
    (bad / "info.json").write_text(json.dumps(info))
    with pytest.raises(ParseError, match=r"overlaps?\.h5.*shape"):
        deeph.read_deeph(bad)


def test_non_collinear_spin_is_refused(si, tmp_path):
    """A spinful file with nonzero up-down blocks (SOC) is refused, naming the file."""
    deeph.write_deeph(si, tmp_path, layout="new")
    path = tmp_path / "hamiltonian.h5"
    h = _new_h5(path)
    soc = np.concatenate([np.kron(np.ones((2, 2)), h["entries"][b:e].reshape(13, 13)).ravel()
                          for b, e in zip(h["chunk_boundaries"][:-1], h["chunk_boundaries"][1:])])
    with h5py.File(path, "w") as fh:
        fh["atom_pairs"], fh["chunk_shapes"] = h["atom_pairs"], 2 * h["chunk_shapes"]
        fh["chunk_boundaries"], fh["entries"] = 4 * h["chunk_boundaries"], soc
    info = json.loads((tmp_path / "info.json").read_text())
    (tmp_path / "info.json").write_text(json.dumps({**info, "spinful": True}))
    with pytest.raises(ParseError, match="hamiltonian.h5.*non-collinear"):
        deeph.read_deeph(tmp_path)


def test_unknown_layout_is_refused(si, tmp_path):
    with pytest.raises(ValueError, match="layout"):
        deeph.write_deeph(si, tmp_path, layout="deeph-e3")


@pytest.mark.parametrize("layout", deeph.LAYOUTS)
def test_interleaved_species_keep_atom_order(layout, tmp_path):
    """atom_pairs index atoms in POSCAR order, so the POSCAR must not regroup species."""
    basis = Basis({"Si": (Shell(0), Shell(1)), "C": (Shell(0), Shell(1), Shell(2))})
    atoms = ase.Atoms("SiCSi", positions=[[0, 0, 0], [1, 1, 1], [2, 2, 2.5]], cell=5 * np.eye(3), pbc=True)
    deeph.write_deeph(from_ase(atoms, basis), tmp_path, layout=layout)
    back = deeph.read_deeph(tmp_path)
    assert back.symbols == ["Si", "C", "Si"] and np.abs(back.atoms.positions - atoms.positions).max() < 1e-12
    assert back.basis == basis and back.norb().tolist() == [4, 9, 4]

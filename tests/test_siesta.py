"""SIESTA 4.1.5 parser and writers on real fixtures (shipped copies and ../shared)."""
import lzma

import numpy as np
import pytest
import sisl

from dftplug.blocksparse import union_pairs
from dftplug.errors import MismatchError, ParseError
from dftplug.orbitals import real_sh
from dftplug.parsers import siesta as si

from .conftest import FIXTURES, shared_path

SI = FIXTURES / "siesta" / "si_diamond"
ROT = FIXTURES / "rotations" / "siesta" / "si_diamond"
CASES = ["si_diamond", "graphene", "h2o", "mgo", "fe_bcc", "o2_spin", "si8_rattled"]
# README of ../shared/fixtures/siesta: (E_F scf, E_F h0, max|H_scf - H0| eV, spin moment)
PRINTED = {"si_diamond": (-3.996699, -4.109989, 0.157, None), "graphene": (-3.969187, -5.196766, 1.89, None),
           "h2o": (-2.097721, -4.434774, 3.36, None), "mgo": (-5.030916, -6.184944, 1.75, None),
           "fe_bcc": (-4.899722, -3.456932, 2.72, 2.30519), "o2_spin": (-4.006581, -3.645069, 3.01, 2.0),
           "si8_rattled": (-4.017098, -4.101393, 0.198, None)}


def _plain_copy(src, dst, keep=None):
    """Copy a run folder, decompressing .xz files (users have plain files)."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        name = p.name[:-3] if p.suffix == ".xz" else p.name
        if keep is None or name.split(".")[-1] in keep:
            (dst / name).write_bytes(lzma.decompress(p.read_bytes()) if p.suffix == ".xz" else p.read_bytes())
    return dst


@pytest.fixture(scope="module")
def si_run():
    return si.read_run(SI / "scf").attach_h0(si.read_h0(SI / "h0"))


# ------------------------------------------------------------------ numbers of the log
def test_si_numbers_match_log(si_run):
    h = si_run
    assert si.is_run_folder(SI / "scf") and not si.is_run_folder(SI)
    assert h.nelec == 8
    assert h.fermi_level == pytest.approx(-3.996699, abs=5e-7)  # printed by SIESTA (README)
    assert h.provenance["version"] == "4.1.5"
    assert h.provenance["scf_iterations"] == 7 and h.provenance["converged"]
    assert h.provenance["matrix_file"] == "TSHS"  # TSHS preferred over the float32 HSX beside it
    assert h.basis.label("Si") == "2s2p1d" and h.settings["siesta_polarization"]["Si"] == [False] * 4 + [True]
    assert h.h0_kind == "H[rho_atomic]"
    assert h.electron_count()[0] == pytest.approx(8.0, abs=1e-8)
    herm = h.hermiticity_error()
    assert herm["H"] < 1e-7 and herm["S"] < 1e-8 and herm["DM"] < 1e-14  # SIESTA does not symmetrise H, S


@pytest.mark.parametrize("case", CASES)
def test_shared_physics_against_log(case):
    ef, ef0, dmax, moment = PRINTED[case]
    h = si.read_run(shared_path("fixtures", "siesta", case, "scf"))
    h0 = si.read_h0(shared_path("fixtures", "siesta", case, "h0"))
    assert h.fermi_level == pytest.approx(ef, abs=5e-7) and h0.fermi_level == pytest.approx(ef0, abs=5e-7)
    assert h.fermi_level == pytest.approx(h.provenance["fermi_level_log"], abs=5e-7)
    ne = h.electron_count()
    assert ne.sum() == pytest.approx(h.nelec, abs=1e-6)  # Tr(DM S) = the log's electron count
    if moment is not None:
        assert h.nspin == 2 and ne[0] - ne[1] == pytest.approx(moment, abs=1e-5)
    # h0/: same sparsity and bit-identical S (checked in attach_h0), the README's max|H - H0|
    h.attach_h0(h0)
    a = si.read_tshs(shared_path("fixtures", "siesta", case, "scf", f"{case}.TSHS"))
    b = si.read_tshs(shared_path("fixtures", "siesta", case, "h0", f"{case}.TSHS"))
    assert a.same_pattern(b) and np.array_equal(a.values["S"], b.values["S"])
    assert h.delta_h_stats()["max_meV"] / 1e3 == pytest.approx(dmax, abs=0.006)


# ------------------------------------------------------------------ supercell indexing
def test_hsx_xij_gives_the_tshs_lattice_vectors(tmp_path):
    """HSX (R solved from xij) and TSHS (R from isc_off) give the same blocks; HSX is float32."""
    run = _plain_copy(SI / "scf", tmp_path / "scf", keep={"HSX", "out", "XV", "fdf", "DM"})
    hsx = si.read_run(run)
    tshs = si.read_run(SI / "scf")
    assert hsx.provenance["matrix_file"] == "HSX" and hsx.fermi_level == pytest.approx(-3.996699, abs=1e-9)
    assert np.array_equal(hsx.S.pairs, tshs.S.pairs)
    assert np.abs((hsx.S - tshs.S).data).max() < 1e-7  # float32
    assert np.abs((hsx.H - tshs.H).data).max() < 1e-5 * si.RY_TO_EV
    assert hsx.electron_count()[0] == pytest.approx(8.0, abs=1e-6)


@pytest.mark.parametrize("case", ["fe_bcc", "mgo", "si_diamond"])
def test_siesta_supercell_list_differs_only_where_unused(case):
    """SIESTA's isc_off is not the regular 0, 1, .., -1 list (fe_bcc: 570 of 729 entries differ),
    but only in supercells no stored column uses: the regular list that SIESTA's DM reader (and
    sisl) apply to a .DM gives the same R for every element. We map with the file's list."""
    f = si.read_tshs(shared_path("fixtures", "siesta", case, "scf", f"{case}.TSHS"))
    regular = si.siesta_isc_off(f.nsc)
    used = f.col // f.no_u
    assert np.any(f.isc_off != regular)
    assert np.array_equal(f.isc_off[used], regular[used])


# ------------------------------------------------------------------ orbital convention
def _rotation_errors(getter, rot, run):
    o, r = getter(ROT / "original" / run), getter(ROT / "rotated" / run)
    orot = o.rotated(rot)
    assert np.abs(orot.atoms.positions - r.atoms.positions).max() < 1e-9
    return {n: (np.abs((m - getattr(r, n)).data).max(), np.abs((getattr(o, n) - getattr(r, n)).data).max())
            for n, m in orot.matrices().items()}


def test_rotation_pair_blocks_follow_wigner_d():
    """Rotated run = Wigner-D-rotated original for s, p, d (README: H ~1e-7 eV, S ~3e-9)."""
    rot = np.loadtxt(ROT / "rotation_matrix.txt")
    errs = _rotation_errors(si.read_run, rot, "scf")
    tol = {"H": 1e-6, "S": 1e-8, "DM": 1e-6}  # eV; S; DM (SCF.DM.Tolerance 1e-6)
    for name, (err, change) in errs.items():
        assert err < tol[name], (name, err)
        assert change > 0.05, name  # the blocks really changed: the test is not trivial


def test_rotation_pair_h0():
    rot = np.loadtxt(ROT / "rotation_matrix.txt")
    shared = shared_path("fixtures", "rotations", "siesta", "si_diamond")
    o = si.read_h0(shared / "original" / "h0").rotated(rot)
    r = si.read_h0(shared / "rotated" / "h0")
    assert np.abs((o.H0 - r.H0).data).max() < 1e-6 and np.abs((o.S - r.S).data).max() < 1e-8


@pytest.mark.parametrize("l, k", [(1, 0), (2, 1)])
def test_wrong_sign_would_fail_rotation_test(monkeypatch, l, k):
    """Guard: flipping the sign of one p or d orbital breaks the rotation test."""
    rot = np.loadtxt(ROT / "rotation_matrix.txt")
    right = si._siesta_order

    def wrong(ll):
        order = list(right(ll))
        if ll == l:
            order[k] = (order[k][0], -order[k][1])
        return tuple(order)

    monkeypatch.setattr(si, "_siesta_order", wrong)
    errs = _rotation_errors(lambda p: si.read_run(p, with_matrices=("S",)), rot, "scf")
    assert errs["S"][0] > 1e-3


def test_two_centre_overlap_fixes_the_sign_of_each_l(si_run):
    """<s_A|phi_lm,B> = g(d) Y_lm(tau_A - tau_B) with g > 0 (nodeless first zetas): cosine +1."""
    s, atoms = si_run.S, si_run.atoms
    p = s.pairs
    d = atoms.positions[p[:, 1]] + p[:, 2:] @ atoms.cell.array - atoms.positions[p[:, 0]]
    bond = np.linalg.norm(d, axis=1) > 0.1
    blocks = s.data[0].reshape(s.nedges, 13, 13)[bond]
    for l, cols in ((1, slice(2, 5)), (2, slice(8, 13))):
        v, y = blocks[:, 0, cols], real_sh(l, -d[bond])
        ok = np.linalg.norm(v, axis=1) > 1e-6
        cos = np.sum(v[ok] * y[ok], axis=1) / np.linalg.norm(v[ok], axis=1) / np.linalg.norm(y[ok], axis=1)
        assert ok.sum() > 50 and cos.min() > 1 - 1e-9, l


def test_orbital_transform_is_orthogonal_and_block_diagonal():
    u = si.orbital_transform([0, 0, 1, 1, 2])
    assert np.allclose(u @ u.T, np.eye(13), atol=1e-14)
    assert np.all(u[:2, 2:] == 0) and np.all(u[2:5, 5:] == 0)
    # p: SIESTA (-y, z, -x) -> internal (x, y, z)
    assert np.allclose(u[2:5, 2:5], [[0, 0, -1], [-1, 0, 0], [0, 1, 0]])


# ------------------------------------------------------------------ writers and round trip
def _sparse_equal(a, b, atol):
    assert a.no_u == b.no_u and np.array_equal(a.ncol, b.ncol)
    assert np.array_equal(a.col, b.col)  # SIESTA's own column order within every row
    for k in b.values:
        assert np.abs(a.values[k] - b.values[k]).max() <= atol, k


def test_written_dm_equals_siestas_file(si_run, tmp_path):
    path = si.write_dm(si_run, tmp_path / "si_diamond.DM", layout=si_run.file_layout)
    ours, theirs = si.read_dm(path), si.read_dm(SI / "scf" / "si_diamond.DM")
    assert np.array_equal(ours.nsc, theirs.nsc)
    # identical layout and column order; values through the e3nn basis and back: <= 4 ulp
    _sparse_equal(ours, theirs, atol=5e-15)


def test_h_in_has_dm_layout_and_raw_h_in_ry(si_run, tmp_path):
    """H_IN (Read-H-from-file restart: 2 SCF steps) = .DM layout and column order, raw H in Ry."""
    f = si.read_dm(si.write_h_in(si_run, tmp_path / "H_IN", layout=si_run.file_layout))
    ref = si.read_tshs(SI / "scf" / "si_diamond.TSHS")
    _sparse_equal(f, si.read_dm(SI / "scf" / "si_diamond.DM"), atol=np.inf)
    assert np.abs(f.values["DM"] - ref.values["H"]).max() < 1e-14


@pytest.mark.parametrize("case", CASES)
def test_shared_round_trip(case, tmp_path):
    """read -> write DM and TSHS -> read gives every number back (and SIESTA's layout)."""
    src = shared_path("fixtures", "siesta", case, "scf")
    h = si.read_run(src)
    run = _plain_copy(src, tmp_path / "scf", keep={"out", "XV", "fdf"})
    si.write_dm(h, run / f"{case}.DM", layout=h.file_layout)
    si.write_tshs(h, run / f"{case}.TSHS", layout=h.file_layout)
    _sparse_equal(si.read_dm(run / f"{case}.DM"), si.read_dm(src / f"{case}.DM"), atol=5e-15)
    ours, theirs = si.read_tshs(run / f"{case}.TSHS"), si.read_tshs(src / f"{case}.TSHS")
    _sparse_equal(ours, theirs, atol=1e-14)
    assert np.array_equal(ours.isc_off, theirs.isc_off) and np.abs(ours.cell - theirs.cell).max() < 1e-12
    for key in ("ef", "qtot", "temp"):
        assert ours.header[key] == pytest.approx(theirs.header[key], rel=1e-15)
    back = si.read_run(run)
    assert back.fermi_level == pytest.approx(h.fermi_level, abs=1e-12) and back.nelec == h.nelec
    for name, m in h.matrices().items():
        assert np.abs((getattr(back, name) - m).data).max() < 1e-13, name


def test_sisl_reads_our_tshs(si_run, tmp_path):
    """sisl takes over: its reader on our TSHS gives H - E_F S with its 13.6056931 eV/Ry."""
    path = si.write_tshs(si_run, tmp_path / "x.TSHS", layout=si_run.file_layout)
    sile = sisl.get_sile(str(path))
    H = sile.read_hamiltonian()
    ratio = 13.605693122994 / si.RY_TO_EV  # sisl's Ry over SIESTA's
    assert sile.read_fermi_level() == pytest.approx(si_run.fermi_level * ratio, abs=1e-9)
    from dftplug.sislio import to_sisl
    ours, k = to_sisl(si_run), [0.1, 0.2, 0.3]
    # sisl reads SIESTA's rows as columns; SIESTA's H, S are symmetric to 1e-8 eV / 2e-9 only
    assert np.abs(H.Sk(k) - ours.Sk(k)).max() < 1e-8
    assert np.abs(H.Hk(k) - (ours.Hk(k) - si_run.fermi_level * ours.Sk(k)) * ratio).max() < 1e-7
    low = slice(0, 16)  # bands up to ~E_F + 20 eV (the top DZP bands feel S's conditioning)
    assert np.abs(H.eigh(k)[low] - (ours.eigh(k)[low] - si_run.fermi_level) * ratio).max() < 1e-6


def test_new_sparsity_dm_is_read_by_sisl(tmp_path):
    """Without SIESTA's layout (e.g. a DM built elsewhere) the DM is written on its own blocks with
    sorted columns (SIESTA's DM reader re-maps them, README restart (c)); sisl reads it back and
    Tr(DM S) is still the electron count."""
    from dftplug.sislio import to_sisl
    h = si.read_run(SI / "scf")
    path = si.write_dm(h, tmp_path / "new.DM")  # no layout
    f = si.read_dm(path)
    starts = np.concatenate([[0], np.cumsum(f.ncol)])
    assert all(np.all(np.diff(f.col[a:b]) > 0) for a, b in zip(starts[:-1], starts[1:]))
    H = to_sisl(h)
    assert np.array_equal(H.geometry.nsc, f.nsc)
    dm = sisl.get_sile(str(path)).read_density_matrix(geometry=H.geometry)
    assert dm.tocsr(0).multiply(H.tocsr(H.S_idx)).sum() == pytest.approx(8.0, abs=1e-8)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", ["si_diamond.TSHS", "si_diamond.DM", "si_diamond.HSX"])
def test_truncated_binary_files(tmp_path, name):
    run = _plain_copy(SI / "scf", tmp_path / "scf")
    if name.endswith("HSX"):
        (run / "si_diamond.TSHS").unlink()
    f = run / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size * 2 // 3])
    with pytest.raises(ParseError, match=name):
        si.read_run(run)


def test_dm_of_another_structure_is_refused(tmp_path):
    run = _plain_copy(SI / "scf", tmp_path / "scf")
    (run / "si_diamond.DM").write_bytes((FIXTURES / "siesta" / "h2o" / "scf" / "h2o.DM").read_bytes())
    with pytest.raises(MismatchError, match="si_diamond.DM"):
        si.read_run(run)


def test_dm_with_other_sparsity_is_refused(tmp_path):
    run = _plain_copy(SI / "scf", tmp_path / "scf")
    f = si.read_dm(run / "si_diamond.DM")
    f.col[[0, 1]] = f.col[[1, 0]]  # same counts, another column order: not this run's sparsity
    si.write_dm_file(run / "si_diamond.DM", f)
    with pytest.raises(MismatchError, match="sparsity"):
        si.read_run(run)


def test_writing_on_a_mismatched_sparsity_is_refused(si_run, tmp_path):
    h = si.read_run(SI / "scf")
    far = h.DM.with_pairs(union_pairs(h.DM.pairs, [[0, 1, 7, 0, 0]], natoms=2))
    e = far.find(np.array([[0, 1, 7, 0, 0]]))[0]
    far.data[:, far.offsets[e]:far.offsets[e + 1]] = 0.1
    h.DM = far
    with pytest.raises(MismatchError, match="outside the SIESTA sparsity"):
        si.write_dm(h, tmp_path / "x.DM", layout=h.file_layout)
    assert not (tmp_path / "x.DM").exists()
    with pytest.raises(MismatchError, match="orbitals"):
        si.write_dm(si_run, tmp_path / "y.DM", like=FIXTURES / "siesta" / "h2o" / "scf" / "h2o.TSHS")


def test_orb_indx_disagreeing_with_log(tmp_path):
    run = _plain_copy(SI / "scf", tmp_path / "scf")
    f = run / "si_diamond.ORB_INDX"
    lines = f.read_text().splitlines(keepends=True)
    lines[5] = lines[5].replace("  3  1 -1  1  F", "  3  1  0  1  F")  # orbital 3: py -> pz
    f.write_text("".join(lines))
    with pytest.raises(ParseError, match="ORB_INDX"):
        si.read_run(run)


def test_without_standard_output_the_binary_files_suffice(tmp_path, si_run):
    """No stdout: basis from ORB_INDX, units from the .EIG's E_F, E_F and electron count from the
    TSHS; the same numbers, only the version and SCF count are unknown."""
    run = _plain_copy(SI / "scf", tmp_path / "scf")
    (run / "si_diamond.out").unlink()
    h = si.read_run(run)
    ref = si.read_run(SI / "scf")
    assert h.basis == ref.basis and h.fermi_level == ref.fermi_level and h.nelec == ref.nelec
    for name, m in ref.matrices().items():
        assert np.array_equal(getattr(h, name).data, m.data), name
    assert h.provenance["version"] is None and h.provenance["scf_iterations"] is None
    assert h.provenance["units"] == "SIESTA 4.x (E_F of si_diamond.EIG)"
    assert h.settings["siesta_polarization"] == ref.settings["siesta_polarization"]


def test_missing_log_and_orb_indx(tmp_path):
    """h0/ has no ORB_INDX: without the stdout its basis is unknown."""
    run = _plain_copy(shared_path("fixtures", "siesta", "si_diamond", "h0"), tmp_path / "h0")
    (run / "si_diamond.out").unlink()
    with pytest.raises(ParseError, match="basis is unknown"):
        si.read_run(run)


def test_missing_log_and_eig(tmp_path):
    """Without the stdout and the .EIG nothing tells SIESTA 4's unit constants from SIESTA 5's."""
    run = _plain_copy(SI / "scf", tmp_path / "scf", keep={"fdf", "TSHS", "XV", "ORB_INDX", "DM"})
    with pytest.raises(ParseError, match="version is unknown"):
        si.read_run(run)

"""ABACUS parser and writer on real fixtures (shipped copies and ../shared)."""
import filecmp
import shutil

import numpy as np
import pytest

from dftplug.errors import MismatchError, ParseError
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES, point_inputs_at, shared_path

SI = FIXTURES / "abacus311" / "si_diamond"
ROT = FIXTURES / "rotations" / "abacus"


@pytest.fixture(scope="module")
def si():
    return ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))


def test_si_numbers_match_log(si):
    assert si.nelec == 8
    assert si.fermi_level == pytest.approx(6.8540585132, abs=1e-9)  # README: printed by ABACUS
    assert si.provenance["version"] == "v3.11.0-beta.1"
    assert si.provenance["scf_iterations"] == 10
    assert si.basis.label("Si") == "2s2p1d"


def test_convergence_read_from_the_log():
    """v3.11 logs say "#SCF IS CONVERGED#" or "!!SCF IS NOT CONVERGED!!": the second is not converged."""
    text = next(shared_path("fixtures", "abacus311", "si_diamond", "scf").glob("OUT.*/running_*.log")).read_text()
    assert ab._log_info(text)["converged"]
    assert not ab._log_info(text.replace("#SCF IS CONVERGED#", "!!SCF IS NOT CONVERGED!!"))["converged"]


def test_electron_count_and_hermiticity(si):
    assert si.electron_count()[0] == pytest.approx(8.0, abs=1e-6)
    herm = si.hermiticity_error()
    assert herm["H"] < 1e-12 and herm["S"] < 1e-15 and herm["DM"] < 1e-15


def test_h0_shares_s_and_differs_from_h(si):
    stats = si.delta_h_stats()
    assert si.h0_kind == "H[rho_atomic]"
    assert 0.1 < stats["mae_meV"] < 10  # H0 is close to H but not H
    assert stats["max_meV"] == pytest.approx(389.5, abs=1)  # README: 390 meV


def test_h0_of_another_structure_is_refused(si):
    other = ab.read_h0(ROT / "rotated" / "h0")
    scf = ab.read_run(SI / "scf")
    with pytest.raises(MismatchError, match="H0 run"):
        scf.attach_h0(other)


@pytest.mark.parametrize("name", ["hrs1_nao.csr", "srs1_nao.csr", "dmrs1_nao.csr"])
def test_rewrite_is_byte_identical(si, tmp_path, name):
    kind = {"h": "H", "s": "S", "d": "DM"}[name[0]]
    h = ab.read_run(SI / "scf")
    (path,) = ab.write_matrix(h, kind, tmp_path, layout=h.file_layout)
    import lzma
    assert path.read_bytes() == lzma.decompress((SI / "scf" / "OUT.si_diamond" / f"{name}.xz").read_bytes())


def test_rotation_pair_blocks_follow_wigner_d():
    """Rotated run = Wigner-D-rotated original (all shells s, p, d), within file precision."""
    rot = np.loadtxt(ROT / "rotation_matrix.txt")
    for run, getter in (("scf", ab.read_run), ("h0", ab.read_h0)):
        o = getter(ROT / "original" / run).rotated(rot)
        r = getter(ROT / "rotated" / run)
        assert np.abs(o.atoms.positions - r.atoms.positions).max() < 1e-12
        for name, mo in o.matrices().items():
            mr = getattr(r, name)
            change = np.abs((getattr(getter(ROT / "original" / run), name) - mr).data).max()
            err = np.abs((mo - mr).data).max()
            assert err < 1e-6, (run, name, err)  # eV (README: 1e-6 eV)
            assert change > 0.1  # the blocks really changed: the test is not trivial


def test_wrong_d_sign_would_fail_rotation_test():
    """Guard: flipping the sign of one d orbital breaks the rotation test."""
    rot = np.loadtxt(ROT / "rotation_matrix.txt")
    o = ab.read_run(ROT / "original" / "scf", with_matrices=("S",))
    r = ab.read_run(ROT / "rotated" / "scf", with_matrices=("S",))
    flip = np.ones(13)
    flip[9] = -1  # second d orbital
    bad = o.S.transform(np.zeros(2, int), [np.diag(flip)])
    o.S = bad
    bad_rot = o.rotated(rot)
    r.S = r.S.transform(np.zeros(2, int), [np.diag(flip)])
    assert np.abs((bad_rot.S - r.S).data).max() > 1e-3


# ------------------------------------------------------------------ ../shared: every generation
@pytest.mark.parametrize("case", ["si_diamond", "graphene", "fe_bcc"])
def test_shared_v311_round_trip_and_physics(case, tmp_path):
    run = shared_path("fixtures", "abacus311", case, "scf")
    h = ab.read_run(run)
    ne = h.electron_count().sum()
    assert ne == pytest.approx(h.nelec, abs=1e-6)
    for name in ("H", "S", "DM"):
        for p in ab.write_matrix(h, name, tmp_path, layout=h.file_layout):
            assert filecmp.cmp(p, run / f"OUT.{case}" / p.name, shallow=False), p.name
    if case == "fe_bcc":
        assert h.nspin == 2
        moment = h.electron_count()
        assert moment[0] - moment[1] == pytest.approx(1.64, abs=0.01)  # README: 1.64 μB


def test_shared_old_generation_round_trip(tmp_path):
    run = shared_path("fixtures", "abacus", "graphene", "scf")
    h = ab.read_run(run)
    for name in ("H", "S", "DM"):
        for p in ab.write_matrix(h, name, tmp_path, generation="old", layout=h.file_layout):
            assert filecmp.cmp(p, run / "OUT.graphene" / p.name, shallow=False), p.name


def test_shared_generations_agree():
    """v3.8.1 and v3.11 of the same graphene run: same H(R), S(R) (README: <= 1e-10 Ry)."""
    old = ab.read_run(shared_path("fixtures", "abacus", "graphene", "scf"))
    new = ab.read_run(shared_path("fixtures", "abacus311", "graphene", "scf"))
    assert np.abs((old.H - new.H).data).max() < 1e-10 * ab.RY_TO_EV * 20
    assert np.abs((old.S - new.S).data).max() < 1e-10
    assert np.abs((old.DM - new.DM).data).max() < 1e-9
    # and si_diamond: old generation = rotation fixture 'original'
    o = ab.read_run(FIXTURES / "rotations" / "abacus" / "original" / "scf")
    n = ab.read_run(shared_path("fixtures", "abacus311", "si_diamond", "scf"))
    assert np.abs((o.H - n.H).data).max() < 1e-8 and np.abs((o.S - n.S).data).max() < 1e-10


# ------------------------------------------------------------------ bad input
def _copy_run(tmp_path):
    dst = tmp_path / "scf"
    shutil.copytree(SI / "scf", dst)
    import lzma
    for p in (dst / "OUT.si_diamond").glob("*.xz"):
        p.with_suffix("").write_bytes(lzma.decompress(p.read_bytes()))
        p.unlink()
    point_inputs_at(dst, SI / "scf")
    return dst


def test_truncated_csr(tmp_path):
    run = _copy_run(tmp_path)
    f = run / "OUT.si_diamond" / "hrs1_nao.csr"
    f.write_text(f.read_text()[: len(f.read_text()) // 2])
    with pytest.raises(ParseError, match="hrs1_nao.csr"):
        ab.read_run(run)


def test_header_lies_about_size(tmp_path):
    run = _copy_run(tmp_path)
    f = run / "OUT.si_diamond" / "srs1_nao.csr"
    text = f.read_text()
    lines = text.splitlines(keepends=True)
    nr = int(lines[5].split("#")[0])
    for lie in (nr + 2, nr - 2):
        f.write_text("".join(lines[:5] + [f" {lie} # number of Bravais lattice vector R\n"] + lines[6:]))
        with pytest.raises(ParseError, match="srs1_nao.csr.*(truncated|announces|after)"):
            ab.read_run(run)
    f.write_text(text.replace(" -2 0 0 169", " -2 0 0 170", 1))
    with pytest.raises(ParseError, match="nnz"):
        ab.read_run(run)


def test_missing_stru(tmp_path):
    run = _copy_run(tmp_path)
    (run / "STRU").unlink()
    with pytest.raises(ParseError, match="STRU"):
        ab.read_run(run)

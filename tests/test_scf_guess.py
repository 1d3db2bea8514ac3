"""SCF starting guesses: the exact H written as each code's restart files reproduces the code's
own files, and the DM built from it is the code's DM (so a perfect prediction restarts as well as
the code's own files do)."""
import lzma
import shutil

import numpy as np
import pytest

from dftplug.parsers import abacus as ab
from dftplug.parsers import openmx as omx
from dftplug.parsers import siesta as si
from dftplug.scf_guess import write_scf_guess

from .conftest import FIXTURES, point_inputs_at, shared_path

SI = FIXTURES / "abacus311" / "si_diamond"


def _xz(path):
    return lzma.decompress(path.with_name(path.name + ".xz").read_bytes())


def test_abacus_exact_h_gives_abacus_files(tmp_path):
    h = ab.read_run(SI / "scf")
    ref_dm = h.DM
    guess = write_scf_guess(h, "abacus", tmp_path / "guess", with_dm=True)
    assert guess.input_lines[0].split() == ["init_chg", "hr"]
    out = tmp_path / "guess"
    assert (out / "hrs1_nao.csr").read_bytes() == _xz(SI / "scf" / "OUT.si_diamond" / "hrs1_nao.csr")
    # the dmrs1 we wrote, read back as ABACUS's own file would be: the code's DM within 1e-5
    run = tmp_path / "run"
    shutil.copytree(SI / "scf", run)
    point_inputs_at(run, SI / "scf")
    (run / "OUT.si_diamond" / "dmrs1_nao.csr.xz").unlink()
    shutil.copy(out / "dmrs1_nao.csr", run / "OUT.si_diamond" / "dmrs1_nao.csr")
    back = ab.read_run(run).DM
    assert np.abs((back.with_pairs(ref_dm.pairs) - ref_dm).data).max() < 1e-5
    assert np.abs((back - ref_dm).data).max() > 0  # built from H, not copied


def test_abacus_nspin2_starts_from_dm(tmp_path):
    h = ab.read_run(shared_path("fixtures", "abacus311", "fe_bcc", "scf"))
    guess = write_scf_guess(h, "abacus", tmp_path)
    assert guess.input_lines[0].split() == ["init_chg", "dm"]
    assert {p.name for p in guess.files} == {"hrs1_nao.csr", "hrs2_nao.csr", "dmrs1_nao.csr", "dmrs2_nao.csr"}
    ref = ab.read_run(shared_path("fixtures", "abacus311", "fe_bcc", "scf")).DM
    assert np.abs((h.DM.with_pairs(ref.pairs) - ref).data).max() < 1e-5


def test_siesta_dm_from_exact_h_is_siestas(tmp_path):
    run = FIXTURES / "siesta" / "si_diamond" / "scf"
    h = si.read_run(run)
    ref = si.read_run(run).DM
    guess = write_scf_guess(h, "siesta", tmp_path)
    assert guess.input_lines == ["DM.UseSaveDM       true"]
    assert {p.name for p in guess.files} == {"si_diamond.DM", "si_diamond.TSHS", "H_IN"}
    # the DM built from the exact H equals SIESTA's on the elements SIESTA stores (its sparsity
    # omits orbital pairs out of range, which the written file omits too) ...
    stored = ref.data != 0
    assert np.abs((h.DM.with_pairs(ref.pairs) - ref).data[stored]).max() < 1e-5
    # ... and the written file holds it in SIESTA's layout: it reads back as the same numbers
    back = si.read_run(run)
    shutil.copytree(run, tmp_path / "run")
    (tmp_path / "run" / "si_diamond.DM").unlink(missing_ok=True)
    for p in (tmp_path / "run").glob("si_diamond.DM*"):
        p.unlink()
    shutil.copy(tmp_path / "si_diamond.DM", tmp_path / "run" / "si_diamond.DM")
    back = si.read_run(tmp_path / "run")
    on_file = h.DM.with_pairs(back.DM.pairs).data
    assert np.abs((back.DM.data - on_file)[back.DM.data != 0]).max() < 1e-12
    assert np.abs(back.DM.data - ref.with_pairs(back.DM.pairs).data).max() < 1e-5


def test_openmx_scfout_of_exact_h_is_openmx_file(tmp_path):
    run = FIXTURES / "openmx" / "h2o" / "scf"
    h = omx.read_run(run)
    guess = write_scf_guess(h, "openmx", tmp_path)
    (path,) = guess.files
    original = omx.find_scfout(run, postprocess=False)
    raw = lzma.decompress(original.read_bytes()) if original.suffix == ".xz" else original.read_bytes()
    assert path.read_bytes() == raw

"""OpenMX 3.9 non-collinear spin-orbit (SpinP_switch 3) reader and writer on the real fcc Pt fixtures
(README of ../shared/fixtures/soc, § 2; ../shared/fixtures/openmx/SCFOUT_FORMAT.md § 7)."""
import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.dataset import read_dataset
from dftplug.errors import MismatchError, ParseError
from dftplug.bands import energies_at
from dftplug.parsers import openmx as om

from .conftest import shared_path
from .code_bands import openmx_band_file
from .test_openmx import _scfout_bytes
from .test_soc_siesta import levels, soc_part, spinor_dm_errors, symmetry_error
from .test_soc_symmetry import CUBIC

HA = om.HARTREE_TO_EV


def run(name):
    return shared_path("fixtures", "soc", "openmx", "pt_fcc", name)


@pytest.fixture(scope="module")
def scf():
    return om.read_run(run("scf")).attach_h0(om.read_h0(run("scf_iter1")))


# ------------------------------------------------------------------ numbers OpenMX printed
def test_spinor_channels_and_numbers_of_the_log(scf):
    assert scf.nspin == 4 and scf.H.data.dtype == np.complex128 and scf.S.nspin == 1
    assert scf.fermi_level == pytest.approx(-0.155052538781 * HA, abs=1e-10)
    assert scf.nelec == 16 and scf.basis.label("Pt") == "2s1p2d"
    assert scf.provenance["scf_iterations"] == 13 and scf.provenance["h0_form"] == "openmx:scf_iter1"
    assert np.abs(scf.H.data[1:3]).max() > 1.0 and np.abs(scf.H.data[[0, 3]].imag).max() > 1.0  # SOC, eV


def test_band_energies_equal_openmx_band_file(scf):
    """All 30 bands at the 100 k of ``scf/pt_fcc.Band`` (Ha, ChemP as in the file)."""
    k, printed = openmx_band_file(run("scf") / "pt_fcc.Band")
    assert printed.shape == (1, 100, 30)  # SOC: one list of spinor levels
    assert np.abs(energies_at(scf, k) / HA - printed).max() < 1e-9  # Ha (measured 1.3e-10)


def test_gamma_spin_orbit_splittings(scf):
    """README § 2.2 (eV relative to ChemP): 5p Gamma6- -62.274 (x2), Gamma8- -48.172 (x4), 6s -10.573,
    t2g Gamma8+ -4.407 (x4), Gamma7+ -3.441, eg -1.570 (x4); degenerate to <= 11 meV (the grid)."""
    level, deg = levels(energies_at(scf, [[0, 0, 0]])[0, 0][:18] - scf.fermi_level, tol=0.02)
    assert deg == [2, 4, 2, 4, 2, 4]
    assert level == pytest.approx([-62.274, -48.172, -10.573, -4.407, -3.441, -1.570], abs=2e-3)
    assert level[4] - level[3] == pytest.approx(0.966, abs=1e-3)  # t2g: Gamma7+ - Gamma8+
    assert level[1] - level[0] == pytest.approx(14.10, abs=0.01)  # 5p: Gamma8- - Gamma6-


# ------------------------------------------------------------------ density matrix
def test_electron_count_moment_and_hermiticity(scf):
    assert scf.electron_count() == pytest.approx([8.0, 8.0], abs=1e-9)  # README: 16.000000000
    assert np.abs(scf.spin_moment()).max() < 1e-8  # log: 1e-9 muB
    herm = scf.hermiticity_error()  # SCFOUT_FORMAT.md § 7: 4.8e-10 Ha
    assert herm["H"] < 2e-8 and herm["H0"] < 2e-8 and herm["S"] < 2e-10 and herm["DM"] < 1e-15


def test_dm_is_rebuilt_from_the_eigenvectors_of_h(scf):
    """OpenMX's DM blocks are the complex conjugate of the common object's DM: the DM rebuilt with
    OpenMX's occupations (its 8x8x8 grid, shifted by half a step for even n; 300 K) equals the DM read."""
    assert scf.settings["kmesh"] == [8, 8, 8] and scf.settings["kmesh_shift"] == [1, 1, 1]
    error, imag, conj_error, _ = spinor_dm_errors(scf)
    assert error < 5e-6  # measured 1.2e-6
    assert imag > 0.03
    assert conj_error > 0.05  # guard: the file's own sign fails


# ------------------------------------------------------------------ symmetry and time reversal
@pytest.mark.parametrize("op", list(CUBIC))
def test_cubic_symmetry(scf, op):
    """The SOC terms to the file precision (measured 3.8e-8 eV); H and DM to 2.4e-7 eV / 2.4e-6 under
    C3[111] and inversion; the C4-type operations meet OpenMX's grid in the scalar part (README § 2.2:
    levels split by up to 11 meV; measured 2.6e-2 eV in H, 1.6e-2 in DM)."""
    grid = op not in ("C3[111]", "inversion")
    for name in ("H", "H0"):
        assert symmetry_error(scf, name, op, soc_part) < 1e-7
        assert symmetry_error(scf, name, op) < (4e-2 if grid else 1e-6)
    assert symmetry_error(scf, "DM", op) < (3e-2 if grid else 1e-5)


@pytest.mark.parametrize("op", ["C4z", "C3[111]", "S4z"])
def test_conjugate_sign_of_i_breaks_the_symmetry(scf, op):
    """Guard: conj(H) has the same eigenvalues but breaks the cubic symmetry by ~9 eV."""
    conj = scf._with_matrices({"H": scf.H.conj(), "S": scf.S}, scf.atoms)
    assert symmetry_error(conj, "H", op) > 1.0


def test_time_reversal_invariance(scf):
    """Non-magnetic Pt: theta M theta^-1 = M (SCFOUT_FORMAT.md § 7: H to 6e-10 Ha; H0 exactly)."""
    assert np.abs((scf.H.time_reversed() - scf.H).data).max() < 1e-7  # eV, measured 3.8e-8
    assert np.abs((scf.H0.time_reversed() - scf.H0).data).max() < 1e-12
    assert np.abs((scf.DM.time_reversed() - scf.DM).data).max() < 1e-5  # measured 2.4e-6


# ------------------------------------------------------------------ H0
def test_h0_forms_agree_and_differ_from_h_in_the_density_dependent_part(scf):
    """README § 2.3: iHNL bit-identical in scf/ and scf_iter1/; H[0], H[1] differ by 3.65e-2 Ha;
    openmx_postprocess's overlap.scfout = scf_iter1 bit for bit."""
    post = om.read_h0(run("h0"))
    assert post.provenance["h0_form"] == "openmx:openmx_postprocess" and post.h0_kind == scf.h0_kind
    assert np.array_equal(post.H0.data, scf.H0.data) and np.array_equal(post.S.data, scf.S.data)
    d = scf.delta_h()
    assert np.abs(d.data).max() / HA == pytest.approx(3.65e-2, abs=5e-5)
    assert not np.any(d.data[[0, 3]].imag)  # Im uu, Im dd: iHNL[0], iHNL[1] only
    assert np.abs(d.data[1:3]).max() < 1e-7  # H[2], H[3]: <= 6.6e-10 Ha
    iter1 = om.read_run(run("scf_iter1"))  # as a plain run: the DM of H0's eigenvectors
    assert iter1.electron_count() == pytest.approx([8.0, 8.0], abs=1e-9)


# ------------------------------------------------------------------ writer
@pytest.mark.parametrize("folder", ["scf", "scf_iter1", "h0"])
def test_rewrite_is_byte_identical(folder, tmp_path):
    h = om.read_scfout(om.find_scfout(run(folder)))
    assert om.write_scfout(h, tmp_path / "x.scfout", h.file_layout).read_bytes() == _scfout_bytes(run(folder))


def test_written_h_replaces_only_h(scf, tmp_path):
    """H0 written as a 'predicted H' into the converged run's file: the spinor H equals scf_iter1's (to
    the writer's round-off snapping), H[3] stays the template's (Im ud - H[3] goes to iHNL[2]), every
    block but H and iHNL is untouched; reading back gives H0."""
    pred = om.read_run(run("scf"))
    pred.H = scf.H0
    out = om.write_scfout(pred, tmp_path / "pred.scfout", pred.file_layout)
    new, old = om.read_scfout_raw(out), pred.file_layout
    ref = om.read_scfout_raw(om.find_scfout(run("scf_iter1")))
    snap = om.WRITE_SNAP_RTOL * np.abs(old.matrix("H")).max()
    assert np.abs(new.matrix("H")[:3] - ref.matrix("H")[:3]).max() <= snap  # measured 2.1e-13 Ha
    assert np.array_equal(new.matrix("iHNL")[:2], ref.matrix("iHNL")[:2])
    assert np.array_equal(new.matrix("H")[3], old.matrix("H")[3])
    im_ud = new.matrix("H")[3] + new.matrix("iHNL")[2] - ref.matrix("H")[3] - ref.matrix("iHNL")[2]
    assert np.abs(im_ud).max() <= snap  # measured 1.7e-14 Ha
    keep = np.ones(len(new.blocks), bool)
    keep[new.layout["H"]] = keep[new.layout["iHNL"]] = False
    assert np.array_equal(new.blocks[keep], old.blocks[keep])
    assert b"".join(p.tobytes() for p in replace(new, blocks=old.blocks).parts()) == _scfout_bytes(run("scf"))
    assert om.read_scfout(out).H.allclose(scf.H0, atol=2 * snap * HA)  # measured 6.9e-12 eV


def test_a_prediction_with_other_soc_terms_reads_back(scf, tmp_path):
    """A predicted H whose up-down part differs (here by 10 meV) goes into iHNL[2], not into the
    exchange block H[3] that the reader checks, so the written file reads back as written."""
    pred = om.read_run(run("scf"))
    pred.H = scf.H.copy(scf.H.data + 0.01j * np.array([[0], [1], [-1], [0]]) * (scf.H.data != 0))
    back = om.read_scfout(om.write_scfout(pred, tmp_path / "pred.scfout", pred.file_layout))
    assert np.abs((back.H - pred.H).data).max() < 1e-10


def test_writer_refuses_a_collinear_h_in_a_spinor_file(tmp_path):
    h = om.read_run(run("scf"))
    h.H = h.H.copy(h.H.data[:1].real.copy())
    with pytest.raises(MismatchError, match="1 spin channels, the OpenMX file 4"):
        om.write_scfout(h, tmp_path / "x.scfout", h.file_layout)


def test_convert_keeps_complex_data(scf, tmp_path):
    out = tmp_path / "pt.h5"
    res = CliRunner().invoke(main, ["convert", str(run("scf")), "-o", str(out), "--json", "-j", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["structures"][0]["nspin"] == 4
    (h,) = read_dataset(out)
    for name in ("H", "S", "H0", "DM"):
        a, b = getattr(h, name), getattr(scf, name)
        assert a.data.dtype == b.data.dtype and np.array_equal(a.pairs, b.pairs) and np.array_equal(a.data, b.data)


def test_non_collinear_magnetism_is_refused(tmp_path):
    """H[3] (sign from the source only; <= 6.6e-10 Ha in the non-magnetic fixture) set to 1e-3 Ha."""
    raw = om.read_scfout_raw(om.find_scfout(run("scf")))
    blocks = raw.blocks.copy()
    blocks[raw.layout["H"].start + 3] += 1e-3
    path = replace(raw, blocks=blocks).write(tmp_path / "magnetic.scfout")
    with pytest.raises(ParseError, match="non-collinear magnetism .* not supported"):
        om.read_scfout(path)

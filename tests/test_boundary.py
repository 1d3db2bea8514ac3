"""The reader boundary (issue 18): every broken input a new user tried is refused with a message that
names the file and the problem, exit code 2, no traceback and nothing written; outputs 0644."""
from __future__ import annotations

import lzma
import os
import pickle
import re
import shutil

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dftplug.blocksparse import BlockSparse
from dftplug.cli import main
from dftplug.dataset import write_dataset
from dftplug.errors import DftplugError, MismatchError, ParseError, ValidationError
from dftplug.fileio import atomic_folder, atomic_write
from dftplug.model.checkpoint import CheckpointError, ModelMismatchError, load, load_pretrained
from dftplug.model.train import ConfigError
from dftplug.parsers import abacus as ab
from dftplug.parsers import code_io, detect
from dftplug.validate import check_hamiltonian

from .conftest import FIXTURES, point_inputs_at

SI = FIXTURES / "abacus311" / "si_diamond"
OMX = FIXTURES / "openmx" / "h2o"
SHIPPED = FIXTURES.parent / "dftplug" / "models" / "abacus_si8.pt"


def copy_run(src, dst):
    """A writable copy of an ABACUS or OpenMX run folder, .xz files decompressed."""
    shutil.copytree(src, dst)
    for p in dst.rglob("*.xz"):
        p.with_suffix("").write_bytes(lzma.decompress(p.read_bytes()))
        p.unlink()
    if (dst / "INPUT").is_file():
        point_inputs_at(dst, src)
    return dst


def si_pair(tmp_path):
    """case/scf and case/h0 of the ABACUS Si fixture, writable."""
    return copy_run(SI / "scf", tmp_path / "case" / "scf"), copy_run(SI / "h0", tmp_path / "case" / "h0")


def run_cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def refused(res, *words):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and all(w in res.output for w in words), res.output


# ------------------------------------------------------------------ silent wrong results
def test_hermiticity_error_is_nan_safe():
    m = BlockSparse(np.array([1, 1]), np.array([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]), np.array([[1.0, 1.0]]))
    assert m.hermiticity_error() == 0.0
    m.data[0, 0] = np.nan
    assert np.isnan(m.hermiticity_error())  # was 0.0: max(err, nan) is err


def test_nan_in_a_csr_is_refused(tmp_path):
    scf, _ = si_pair(tmp_path)
    f = scf / "OUT.si_diamond" / "hrs1_nao.csr"
    lines = f.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.strip() == "# CSR values") + 1
    lines[k] = " ".join(["nan"] + lines[k].split()[1:])
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "x.h5"
    refused(run_cli("convert", scf, "-o", out), str(f), "H has", "non-finite value")
    assert not out.exists() and not list(tmp_path.glob(".x*"))


def test_flipped_bytes_in_openmx_h_are_refused(tmp_path):
    from dftplug.parsers import openmx as om
    run = copy_run(OMX / "scf", tmp_path / "scf")
    path = run / "h2o.scfout"
    raw = path.read_bytes()
    h = om.read_scfout_raw(path).matrix("H").ravel()
    values, counts = np.unique(h, return_counts=True)
    pair = values[(counts == 2) & (np.abs(values) > 1e-2)][0]  # an off-diagonal element: H_ij(R) = H_ji(-R)
    at = raw.find(np.float64(pair).tobytes())
    assert at > 0
    path.write_bytes(raw[:at + 6] + bytes([raw[at + 6] ^ 0x40, raw[at + 7] ^ 0x01]) + raw[at + 8:])
    with pytest.raises(ValidationError, match="H is not Hermitian.*corrupt"):
        code_io("openmx").read_run(run)
    refused(run_cli("convert", run, "--no-h0", "-o", tmp_path / "x.h5"), str(path), "not Hermitian")


def test_hermiticity_within_the_format_precision():
    h = code_io("abacus").read_run(SI / "scf")  # 1e-15 eV: accepted
    h.H.data[0, 5] += 1e-3 * np.abs(h.H.data).max()
    with pytest.raises(ValidationError, match="not Hermitian"):
        check_hamiltonian(h, "edited")


def test_overlap_not_positive_definite_is_refused():
    h = code_io("abacus").read_run(SI / "scf")
    onsite = np.nonzero((h.S.pairs[:, 0] == h.S.pairs[:, 1]) & ~h.S.pairs[:, 2:].any(1))[0][0]
    h.S.data[:, h.S.offsets[onsite]] = -1.0  # S_11(0) = -1 (stays symmetric)
    with pytest.raises(ValidationError, match="not positive definite"):
        check_hamiltonian(h, "edited")


def test_h0_pointing_at_the_scf_run_is_refused(tmp_path):
    scf, h0 = si_pair(tmp_path)
    refused(run_cli("convert", scf, "--h0", scf, "-o", tmp_path / "a.h5"), "is the SCF run itself")
    copy = copy_run(SI / "scf", tmp_path / "copy")  # a copy: its INPUT says scf_nmax 200
    refused(run_cli("convert", scf, "--h0", copy, "-o", tmp_path / "b.h5"), "not a zeroth-step run",
            "scf_nmax 200")
    (copy / "INPUT").write_text((copy / "INPUT").read_text().replace("scf_nmax          200",
                                                                    "scf_nmax          1"))
    refused(run_cli("convert", scf, "--h0", copy, "-o", tmp_path / "c.h5"), "its log shows 10 SCF iterations")
    for log in (copy / "OUT.si_diamond").glob("running_*.log"):  # without the log: H0 ≡ H
        log.unlink()
    refused(run_cli("convert", scf, "--h0", copy, "-o", tmp_path / "d.h5"), "identical to the converged H")
    assert not list(tmp_path.glob("*.h5"))


def _with_cutoff(run, tmp_path, radius):
    orb = tmp_path / "orb"
    orb.mkdir(exist_ok=True)
    text = (FIXTURES / "abacus" / "PP_ORB" / "Si_gga_6au_100Ry_2s2p1d.orb").read_text()
    (orb / "Si_gga_6au_100Ry_2s2p1d.orb").write_text(text.replace("Radius Cutoff(a.u.)         6",
                                                                 f"Radius Cutoff(a.u.)         {radius}"))
    inp = (run / "INPUT").read_text().splitlines()
    (run / "INPUT").write_text("\n".join(f"orbital_dir {orb}" if ln.startswith("orbital_dir") else ln
                                         for ln in inp) + "\n")


def test_basis_checked_in_full_against_the_model(tmp_path):
    ckpt = load_pretrained("abacus_si8")
    _, h0 = si_pair(tmp_path)
    ckpt.check_compatible(code_io("abacus").read_h0(h0))  # 6 au, as trained
    _with_cutoff(h0, tmp_path, 9)
    with pytest.raises(ModelMismatchError, match=r"cutoff radius 4.7626 Å vs 3.1751 Å"):
        ckpt.check_compatible(code_io("abacus").read_h0(h0))
    h = code_io("abacus").read_h0(SI / "h0")
    h.basis = type(h.basis)({"Si": tuple(s.__class__(s.l, s.zeta) for s in h.basis.shells["Si"])})
    with pytest.raises(ModelMismatchError, match="cutoff radius of the first basis is unknown"):
        ckpt.check_compatible(h)


def test_missing_orb_file_is_an_error_not_a_fallback(tmp_path):
    _, h0 = si_pair(tmp_path)
    (h0 / "INPUT").write_text((h0 / "INPUT").read_text().replace(str((SI / "h0" / "../../../abacus/PP_ORB")
                                                                    .resolve()), str(tmp_path / "nowhere")))
    with pytest.raises(ParseError, match="Si_gga_6au_100Ry_2s2p1d.orb: orbital file not found.*cutoff"):
        code_io("abacus").read_h0(h0)


def test_corrupt_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "flipped.pt"
    raw = bytearray(SHIPPED.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(b ^ 0xFF for b in raw[mid:mid + 64])
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="flipped.pt.*corrupt"):
        load(bad)
    refused(run_cli("infer", SI / "h0", "--model", bad, "-o", tmp_path / "out"), "flipped.pt")
    assert not (tmp_path / "out").exists()


class Payload:  # what a malicious pickle would instantiate
    pass


def test_checkpoint_loads_weights_only(tmp_path):
    evil = tmp_path / "evil.pt"
    d = torch.load(SHIPPED, weights_only=True)
    d["training"] = Payload()
    torch.save(d, evil)
    with pytest.raises(CheckpointError, match="evil.pt: cannot read"):
        load(evil)


def test_train_on_one_structure_does_not_call_it_validation(tmp_path):
    from .conftest import TINY_MODEL_TOML
    data = write_dataset(tmp_path / "one.h5", [("si", ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0")))])
    cfg = tmp_path / "t.toml"
    cfg.write_text("[train]\nepochs = 1\nkspace_weight = 0.0\n" + TINY_MODEL_TOML)
    res = run_cli("train", data, "-o", tmp_path / "m.pt", "--config", cfg, "-q")
    assert res.exit_code == 0, res.output
    assert "training (no structure held out" in res.output and "validation ΔH" not in res.output


def test_training_needs_the_basis_cutoffs(tmp_path):
    h = ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))
    h.basis = type(h.basis)({"Si": tuple(s.__class__(s.l, s.zeta) for s in h.basis.shells["Si"])})
    data = write_dataset(tmp_path / "no_rcut.h5", [("si", h)])
    refused(run_cli("train", data, "-o", tmp_path / "m.pt"), "no_rcut.h5 (structure si)", "no cutoff radius")
    assert not (tmp_path / "m.pt").exists()


# ------------------------------------------------------------------ messages, not tracebacks
def test_errors_pickle():
    for exc in (ParseError("a/b.csr", "bad"), ValidationError("a", "nan"), MismatchError("x"),
                ModelMismatchError("y"), CheckpointError("z"), ConfigError("c"), DftplugError("d")):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc)


def test_parallel_convert_names_the_bad_run(tmp_path):
    good = [copy_run(SI / sub, tmp_path / f"c{k}" / sub) for k in range(2) for sub in ("scf", "h0")][::2]
    bad, _ = si_pair(tmp_path)
    (bad / "OUT.si_diamond" / "hrs1_nao.csr").write_text("--- Ionic Step 1 ---\ntruncated\n")
    res = run_cli("convert", *good, bad, "-j", "2", "-o", tmp_path / "x.h5")
    refused(res, str(bad / "OUT.si_diamond" / "hrs1_nao.csr"))
    assert "BrokenProcessPool" not in res.output and not (tmp_path / "x.h5").exists()


def test_non_integer_nnz_is_a_parse_error(tmp_path):
    scf, _ = si_pair(tmp_path)
    f = scf / "OUT.si_diamond" / "srs1_nao.csr"
    lines = f.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if re.fullmatch(r"\s*-?\d+ -?\d+ -?\d+ \d+\s*", ln))
    lines[k] = " ".join(lines[k].split()[:3] + ["12.5"])
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParseError, match="srs1_nao.csr: bad nnz"):
        ab.read_run(scf)


def test_x_in_kpt_is_a_parse_error(tmp_path):
    scf, _ = si_pair(tmp_path)
    (scf / "KPT").write_text("K_POINTS\n0\nGamma\n8 x 8 0 0 0\n")
    refused(run_cli("convert", scf, "-o", tmp_path / "x.h5"), str(scf / "KPT"), "three integers")


def test_dataset_without_structures_or_without_h(tmp_path):
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.attrs.update(format="dftplug-dataset", format_version=1)
    refused(run_cli("eval", empty, "--model", "abacus_si8"), "empty.h5", "no /structures group")
    no_h = tmp_path / "no_h.h5"
    write_dataset(no_h, [("si", ab.read_h0(SI / "h0"))])
    refused(run_cli("eval", no_h, "--model", "abacus_si8"), "no_h.h5 (structure si)", "holds no H")


def test_convert_output_is_a_folder(tmp_path):
    (tmp_path / "out").mkdir()
    refused(run_cli("convert", SI / "scf", "-o", tmp_path / "out"), "is a folder")


def test_convert_from_inside_the_structure_folder(tmp_path, monkeypatch):
    scf, h0 = si_pair(tmp_path)
    monkeypatch.chdir(tmp_path / "case")
    res = run_cli("convert", "scf", "--h0", "h0", "-o", "x.h5", "--json")
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "case" / "x.h5") as f:
        assert list(f["structures"]) == ["case"]


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "a.txt", "w") as fh:
            fh.write("x")
        h5 = write_dataset(tmp_path / "d.h5", [("si", ab.read_run(SI / "scf"))])
        with atomic_folder(tmp_path / "folder") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    assert h5.stat().st_mode & 0o777 == mode
    assert (tmp_path / "folder").stat().st_mode & 0o777 == mode | (0o111 & ~umask)


def test_existing_output_folder_needs_force(tmp_path, monkeypatch):
    out = tmp_path / "guess"
    out.mkdir()
    (out / "stale.csr").write_text("old")
    refused(run_cli("infer", SI / "h0", "--model", "abacus_si8", "-o", out, "--s-from", SI / "scf"),
            "--force")
    res = run_cli("infer", SI / "h0", "--model", "abacus_si8", "-o", out, "--s-from", SI / "scf",
                  "--write", "abacus", "--force")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["hrs1_nao.csr"]  # replaced as a whole
    assert f"read_file_dir     {out.resolve()}" in res.output  # the final folder, not the temporary one
    # a failing second --write leaves nothing of the first behind
    import dftplug.parsers.deeph as deeph

    def broken(*args, **kwargs):
        raise ParseError("deeph", "disk full")
    monkeypatch.setattr(deeph, "write_deeph", broken)
    new = tmp_path / "new"
    refused(run_cli("infer", SI / "h0", "--model", "abacus_si8", "-o", new, "--s-from", SI / "scf",
                    "--write", "h5", "--write", "deeph"), "disk full")
    assert not new.exists() and not list(tmp_path.glob(".new*"))


def test_deeph_output_folder_needs_force(tmp_path):
    out = tmp_path / "deeph"
    out.mkdir()
    (out / "old").mkdir()
    refused(run_cli("convert", SI / "scf", "--no-h0", "--to", "deeph", "-o", out), "--force")
    res = run_cli("convert", SI / "scf", "--no-h0", "--to", "deeph", "-o", out, "--force")
    assert res.exit_code == 0, res.output
    assert [p.name for p in out.iterdir()] == ["si_diamond"]


# ------------------------------------------------------------------ the registry
def test_registry_detects_every_code():
    cases = {"abacus": SI / "scf", "openmx": OMX / "scf", "siesta": FIXTURES / "siesta" / "si_diamond" / "scf"}
    for code, folder in cases.items():
        assert detect(folder) == code and code_io(code).name == code
    assert code_io("openmx").h0_siblings == ("scf_iter1", "h0")
    with pytest.raises(ParseError, match="unknown DFT code"):
        code_io("vasp")

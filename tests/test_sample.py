"""`dftplug sample`: perturbed structures written as each code's h0/ + scf/ inputs, read back,
converted, and refused on bad input."""
import json
import re
import shutil

import ase
import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.dataset import read_dataset
from dftplug.parsers import abacus_input, openmx_input, siesta_input
from dftplug.parsers.input_template import KeywordFile
from dftplug.templates import read_template
from dftplug.parsers.openmx import _input_blocks
from dftplug.sample import sample_structures, supercell_kmesh

from .conftest import FIXTURES, shared_path

MODULES = {"abacus": abacus_input, "siesta": siesta_input, "openmx": openmx_input}
H0_FOLDER = {"abacus": "h0", "siesta": "h0", "openmx": "scf_iter1"}
# the real runs whose inputs are sampled, and the file holding their keywords
CASES = {"abacus": ("abacus311/si_diamond", "INPUT"), "siesta": ("siesta/si_diamond", "si_diamond.fdf"),
         "openmx": ("openmx/h2o", "h2o.dat")}


def _syntax(code):
    return {"abacus": abacus_input.INPUT_SYNTAX, "siesta": siesta_input.SYNTAX, "openmx": openmx_input.SYNTAX}[code]


def source_run(tmp_path, code):
    """The fixture's input files in tmp_path/src/<case>/scf, with the files they name (the ABACUS
    .orb is real; pseudopotentials and OpenMX PAO/VPS files, absent from the repo, are stubs)."""
    case, _ = CASES[code]
    src = tmp_path / "src" / case / "scf"
    src.mkdir(parents=True)
    for f in (FIXTURES / case / "scf").iterdir():
        if f.is_file() and (f.name in ("INPUT", "STRU", "KPT") or f.suffix in (".fdf", ".dat")):
            shutil.copy(f, src / f.name)
    if code == "abacus":  # INPUT: pseudo_dir ../../../abacus/PP_ORB
        pp = tmp_path / "src" / "abacus" / "PP_ORB"
        shutil.copytree(FIXTURES / "abacus" / "PP_ORB", pp)
        (pp / "Si_ONCV_PBE-1.0.upf").write_text("stub\n")
    elif code == "siesta":
        (src / "Si.psf").write_text("stub\n")
    else:
        _, blocks = _input_blocks((src / "h2o.dat").read_text())
        for label, pao, vps in (r[:3] for r in blocks["definition.of.atomic.species"]):
            for sub, name in (("PAO", pao.split("-")[0] + ".pao"), ("VPS", vps + ".vps")):
                (src / "DFT_DATA19" / sub).mkdir(parents=True, exist_ok=True)
                (src / "DFT_DATA19" / sub / name).write_text("stub\n")
    return src


def run_sample(src, out, *args):
    return CliRunner().invoke(main, ["sample", str(src), "-o", str(out), *map(str, args)])


def keywords(path, code) -> dict:
    """Keys (folded) -> values outside blocks, and the blocks, of a written input file."""
    kw = KeywordFile(path.read_text(), _syntax(code), path)
    return kw.keys(), kw.blocks()


def _number(v: str):
    try:
        return float(v.lower().replace("d", "e"))
    except ValueError:
        return v.lower()


def _wrapped_diff(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """a − b with whole lattice vectors removed (ABACUS's reader wraps atoms into the cell)."""
    f = (a - b) @ np.linalg.inv(cell)
    return (f - np.round(f)) @ cell


@pytest.mark.parametrize("code", ["abacus", "siesta", "openmx"])
def test_written_structures_read_back(tmp_path, code):
    """Cell = supercell·(1 + ε) and positions = strained + u to file precision, read back from the
    written files; ε symmetric within bounds; k-mesh scaled; every file reference resolves."""
    src = source_run(tmp_path, code)
    reps = (2, 1, 2)
    res = run_sample(src, tmp_path / "out", "-n", 2, "--rattle", 0.05, "--strain", 0.03, "--seed", 7,
                     "--supercell", *reps, "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.output)
    assert manifest == json.loads((tmp_path / "out" / "manifest.json").read_text())
    source = read_template(src)
    base = source.atoms.repeat(reps)
    assert manifest["code"] == code and manifest["natoms"] == 4 * len(source.atoms)
    assert manifest["kmesh"] == supercell_kmesh(source.kmesh, reps) if source.kmesh else manifest["kmesh"] is None
    for s in manifest["structures"]:
        eps = np.array(s["strain"])
        assert np.array_equal(eps, eps.T) and np.abs(eps).max() <= 0.03 and np.abs(eps).max() > 0
        for stage in ("scf", H0_FOLDER[code]):
            back = read_template(tmp_path / "out" / s["name"] / stage)  # also checks every reference exists
            assert back.atoms.get_chemical_symbols() == base.get_chemical_symbols()
            assert np.allclose(back.atoms.cell.array, base.cell.array @ (np.eye(3) + eps), rtol=0, atol=1e-12)
            u = _wrapped_diff(back.atoms.positions, base.positions @ (np.eye(3) + eps), back.atoms.cell.array)
            assert np.sqrt(np.mean(u ** 2)) == pytest.approx(s["displacement_rms_A"], abs=1e-12)
            assert 0.02 < s["displacement_rms_A"] < 0.1 and np.abs(u).max() < 0.3
            if source.kmesh:
                assert back.kmesh == manifest["kmesh"] == [-(-k // n) for k, n in zip(source.kmesh, reps)]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_siesta_structure_read_by_sisl(tmp_path):
    """The SIESTA structure read by sisl itself (not through our template) from the written fdf."""
    import sisl

    src = source_run(tmp_path, "siesta")
    assert run_sample(src, tmp_path / "out", "-n", 1, "--supercell", 1, 1, 2).exit_code == 0
    geom = sisl.io.siesta.fdfSileSiesta(str(tmp_path / "out" / "c000" / "scf" / "si_diamond.fdf")).read_geometry(
        order=["fdf"])
    ref = read_template(tmp_path / "out" / "c000" / "h0").atoms
    assert geom.na == 4 and np.allclose(geom.xyz, ref.positions, atol=1e-12)
    assert np.allclose(geom.cell, ref.cell.array, atol=1e-12)


@pytest.mark.parametrize("code", ["abacus", "siesta", "openmx"])
def test_stage_settings(tmp_path, code):
    """h0 = scf + exactly the zeroth-step keys; scf = the user's input + matrix output; the h0 keys
    have the values of the fixture's own zeroth-step run (what the stored H0 fixtures were made with)."""
    src = source_run(tmp_path, code)
    assert run_sample(src, tmp_path / "out", "-n", 1).exit_code == 0
    name = CASES[code][1]
    fold = _syntax(code).fold
    user, user_blocks = keywords(src / name, code)
    scf, scf_blocks = keywords(tmp_path / "out" / "c000" / "scf" / name, code)
    h0, h0_blocks = keywords(tmp_path / "out" / "c000" / H0_FOLDER[code] / name, code)
    stage = {s: {fold(k): v for k, v in MODULES[code].STAGE_SETTINGS[s].items()} for s in ("h0", "scf")}
    changed = {"pseudo_dir", "orbital_dir", "data.path"}  # file references, re-pointed
    assert {k: v for k, v in h0.items() if k not in stage["h0"]} == {k: v for k, v in scf.items()
                                                                      if k not in stage["h0"]}
    assert all(h0[k] == v for k, v in stage["h0"].items()) and all(scf[k] == v for k, v in stage["scf"].items())
    assert h0_blocks == scf_blocks
    for k, v in user.items():  # every user setting kept (the fixtures' structures are already in Å)
        if k not in stage["scf"] and k not in changed:
            assert _number(scf[k]) == _number(v), k
    structure = {"latticevectors", "atomiccoordinatesandatomicspecies", "atoms.speciesandcoordinates",
                 "atoms.unitvectors"}
    assert {b: r for b, r in scf_blocks.items() if b not in structure} == {
        b: r for b, r in user_blocks.items() if b not in structure}
    if code == "openmx":  # what the converter's read_h0 checks, read by the converter's own parser
        keys, _ = _input_blocks((tmp_path / "out" / "c000" / "scf_iter1" / name).read_text())
        assert keys["scf.maxiter"] == "1" and keys.get("scf.restart", "off") == "off" and keys["hs.fileout"] == "on"
    # the stored zeroth-step fixture of the same run
    fixture_h0, _ = keywords(FIXTURES / CASES[code][0] / H0_FOLDER[code] / name, code)
    for k, v in stage["h0"].items():
        if k in fixture_h0:
            assert _number(fixture_h0[k]) == _number(v), k
    # what the fixture's h0 does differently from ours (kept user settings, file references, skipped forces)
    differ = {k for k in set(h0) | set(fixture_h0) if _number(h0.get(k, "-")) != _number(fixture_h0.get(k, "-"))}
    assert differ <= {"pseudo_dir", "orbital_dir", "out_chg", "data.path", "band.dispersion",
                      "orbitalopt.force.skip", "bandlinesscale"}, differ


def test_per_atom_settings_follow_atoms(tmp_path):
    """Per-atom data of the input (ABACUS flags/moments, SIESTA DM.InitSpin, OpenMX spin columns)
    go with each atom's copies into the supercell."""
    ab = source_run(tmp_path / "a", "abacus")
    stru = (ab / "STRU").read_text().rstrip().splitlines()
    stru[-1] += " mag 1.5"  # second atom
    (ab / "STRU").write_text("\n".join(stru) + "\n")
    si = source_run(tmp_path / "s", "siesta")
    with open(si / "si_diamond.fdf", "a") as fh:
        fh.write("%block DM.InitSpin\n  2 +\n%endblock DM.InitSpin\n")
    om = source_run(tmp_path / "o", "openmx")
    for src, key in ((ab, "a"), (si, "s"), (om, "o")):
        assert run_sample(src, tmp_path / key / "out", "-n", 1, "--supercell", 2, 1, 1).exit_code == 0
    rows = [l.split()[3:] for l in (tmp_path / "a" / "out" / "c000" / "scf" / "STRU").read_text().splitlines()[-5:-1]]
    assert rows == [["1", "1", "1"], ["1", "1", "1", "mag", "1.5"]] * 2
    spins = KeywordFile((tmp_path / "s" / "out" / "c000" / "h0" / "si_diamond.fdf").read_text(), siesta_input.SYNTAX,
                        "x").block("DM.InitSpin")
    assert spins == [["2", "+"], ["4", "+"]]
    _, blocks = _input_blocks((tmp_path / "o" / "out" / "c000" / "scf" / "h2o.dat").read_text())
    atoms = blocks["atoms.speciesandcoordinates"]
    assert [r[0] for r in atoms] == [str(i) for i in range(1, 7)]
    assert [(r[1], r[5], r[6]) for r in atoms] == [("O", "3.000", "3.000"), ("H", "0.500", "0.500"),
                                                   ("H", "0.500", "0.500")] * 2


@pytest.mark.parametrize("code, line, key, value", [
    ("abacus", "calculation relax", "calculation", "scf"), ("abacus", "init_chg file", "init_chg", "atomic"),
    ("siesta", "MD.TypeOfRun Broyden", "mdtypeofrun", "CG"), ("openmx", "MD.Type Opt", "md.type", "Nomd")])
def test_every_folder_is_one_scf(tmp_path, code, line, key, value):
    """A relaxation/MD/restart input becomes one SCF from the atomic density in both stages."""
    src = source_run(tmp_path, code)
    name = CASES[code][1]
    with open(src / name, "a") as fh:
        fh.write(line + "\n")
    assert run_sample(src, tmp_path / "out", "-n", 1).exit_code == 0
    for stage in ("scf", H0_FOLDER[code]):
        path = tmp_path / "out" / "c000" / stage / name
        keys, _ = keywords(path, code)
        assert keys[key] == value
        assert [l.split()[:1] for l in path.read_text().splitlines()].count([line.split()[0]]) == 1  # no duplicate


@pytest.mark.parametrize("code", ["abacus", "siesta", "openmx"])
def test_same_seed_same_files(tmp_path, code):
    src = source_run(tmp_path, code)
    for out in ("a", "b"):
        assert run_sample(src, tmp_path / out, "-n", 2, "--seed", 3).exit_code == 0
    assert run_sample(src, tmp_path / "c", "-n", 2, "--seed", 4).exit_code == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 4
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    structure = "c000/scf/" + ("STRU" if code == "abacus" else CASES[code][1])
    assert (tmp_path / "a" / structure).read_bytes() != (tmp_path / "c" / structure).read_bytes()


def test_perturbation_statistics():
    """Rattle RMS ≈ σ over many components, strain symmetric and uniform within ±ε, pure strain
    maps the supercell linearly, and structure i depends only on (seed, i)."""
    si = ase.Atoms("Si2", scaled_positions=[[0, 0, 0], [0.25, 0.25, 0.25]],
                   cell=[[0, 2.715, 2.715], [2.715, 0, 2.715], [2.715, 2.715, 0]], pbc=True)
    many = sample_structures(si, 4, rattle=0.05, strain=0.0, supercell=(3, 3, 3), seed=1)
    u = np.concatenate([s.displacements for s in many])
    assert u.shape == (4 * 54, 3) and np.sqrt(np.mean(u ** 2)) == pytest.approx(0.05, rel=0.1)
    assert abs(u.mean()) < 0.01
    strains = np.array([s.strain for s in sample_structures(si, 200, rattle=0.0, strain=0.02, seed=2)])
    assert np.array_equal(strains, strains.transpose(0, 2, 1))
    assert np.abs(strains).max() <= 0.02 and np.abs(strains).max() > 0.019
    assert abs(strains.mean()) < 1e-3
    one = sample_structures(si, 1, rattle=0.0, strain=0.02, seed=2)[0]
    assert np.allclose(one.atoms.positions, si.positions @ (np.eye(3) + one.strain), atol=1e-14)
    assert np.allclose(one.atoms.cell.array, si.cell.array @ (np.eye(3) + one.strain), atol=1e-14)
    again = sample_structures(si, 3, rattle=0.0, strain=0.02, seed=2)
    assert np.array_equal(again[0].atoms.positions, one.atoms.positions)
    assert not np.array_equal(again[1].atoms.positions, one.atoms.positions)
    assert supercell_kmesh([8, 3, 1], (2, 2, 2)) == [4, 2, 1]


@pytest.mark.parametrize("code", ["abacus", "siesta", "openmx"])
def test_written_folders_convert(tmp_path, code):
    """Unperturbed sample + the fixture's own outputs copied in = what the user has after running
    the folders: `dftplug convert OUT/c*/scf` pairs each scf/ with its zeroth-step sibling, and the
    structure of the written inputs is the run's (ABACUS reads it from our STRU)."""
    src = source_run(tmp_path, code)
    out = tmp_path / "out"
    assert run_sample(src, out, "-n", 1, "--rattle", 0, "--strain", 0).exit_code == 0
    case = FIXTURES / CASES[code][0]
    for stage in ("scf", H0_FOLDER[code]):
        for f in (case / stage).iterdir():
            if f.name.startswith("OUT."):
                shutil.copytree(f, out / "c000" / stage / f.name)
            elif f.is_file() and not re.search(r"\.(fdf|dat)$|^(INPUT|STRU|KPT)$", f.name):
                shutil.copy(f, out / "c000" / stage / f.name)
    res = CliRunner().invoke(main, ["convert", str(out / "c000" / "scf"), "-o", str(tmp_path / "d.h5"), "-j", "1",
                                    "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)["structures"][0]
    assert summary["h0_source"] == str(out / "c000" / H0_FOLDER[code])
    (h,) = read_dataset(tmp_path / "d.h5")
    ref = read_template(src).atoms
    assert h.H0 is not None and h.atoms.get_chemical_symbols() == ref.get_chemical_symbols()
    assert np.allclose(_wrapped_diff(h.atoms.positions, ref.positions, ref.cell.array), 0, atol=1e-9)


# ---------------------------------------------------------------------------- refusals
def _refused(res, out, *words):
    assert res.exit_code == 2, res.output
    assert all(w in res.output for w in words), res.output
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temp folder left


@pytest.mark.parametrize("code, missing", [("abacus", "abacus/PP_ORB/Si_ONCV_PBE-1.0.upf"),
                                           ("abacus", "abacus/PP_ORB/Si_gga_6au_100Ry_2s2p1d.orb"),
                                           ("siesta", "siesta/si_diamond/scf/Si.psf"),
                                           ("openmx", "openmx/h2o/scf/DFT_DATA19/VPS/O_PBE19.vps")])
def test_refuses_missing_pseudopotential(tmp_path, code, missing):
    src = source_run(tmp_path, code)
    (tmp_path / "src" / missing).unlink()
    out = tmp_path / "out"
    _refused(run_sample(src, out, "-n", 2), out, missing.split("/")[-1], "missing")


def test_refuses_bad_input(tmp_path):
    src = source_run(tmp_path, "abacus")
    out = tmp_path / "out"
    _refused(run_sample(tmp_path, out, "-n", 2), out, "not an ABACUS")          # not a run folder
    _refused(run_sample(src, out, "-n", 0), out, "at least 1")
    _refused(run_sample(src, out, "-n", 2, "--rattle", -0.1), out, "σ", "-0.1")
    _refused(run_sample(src, out, "-n", 2, "--strain", -0.01), out, "strain")
    _refused(run_sample(src, out, "-n", 2, "--supercell", 0, 1, 1), out, "supercell")
    kpt = src / "KPT"
    kpt.write_text("K_POINTS\n2\nDirect\n0 0 0 1\n0.5 0 0 1\n")
    _refused(run_sample(src, out, "-n", 2, "--supercell", 2, 1, 1), out, "KPT", "explicitly")
    (src / "INPUT").write_text((src / "INPUT").read_text().replace("lcao", "pw"))
    _refused(run_sample(src, out, "-n", 2), out, "INPUT", "lcao")


def test_refuses_existing_output_unless_forced(tmp_path):
    src = source_run(tmp_path, "siesta")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    res = run_sample(src, out, "-n", 2)
    assert res.exit_code == 2 and "exists" in res.output and "--force" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    res = run_sample(src, out, "-n", 2, "--force")
    assert res.exit_code == 0, res.output
    assert res.output == ""  # quiet unless asked
    assert sorted(p.name for p in out.iterdir()) == ["c000", "c001", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
    res = run_sample(src, src.parent, "-n", 1, "--force")  # would delete the run itself
    assert res.exit_code == 2 and "replace the run folder" in res.output and (src / "si_diamond.fdf").is_file()


@pytest.mark.parametrize("case, mesh", [("SrTiO3_polarized", [6, 6, 3]), ("Si_pdos_k", [5, 5, 3])])
def test_siesta_coordinate_formats_and_mesh_forms(tmp_path, case, mesh):
    """SIESTA 5 inputs (Fractional / ScaledCartesian coordinates, block and list k-mesh forms):
    the unperturbed sample is the input structure, the k-mesh is scaled in the user's own form."""
    real = shared_path("fixtures", "siesta5", case)
    src = tmp_path / "src"
    src.mkdir()
    fdf = next(real.glob("*.fdf"))
    shutil.copy(fdf, src / fdf.name)
    for row in KeywordFile(fdf.read_text(), siesta_input.SYNTAX, fdf).block("ChemicalSpeciesLabel"):
        (src / f"{row[2]}.psf").write_text("stub\n")
    out = tmp_path / "out"
    assert run_sample(src, out, "-n", 1, "--rattle", 0, "--strain", 0).exit_code == 0
    source, written = read_template(src), read_template(out / "c000" / "h0")
    assert np.allclose(written.atoms.positions, source.atoms.positions, atol=1e-12)
    assert np.allclose(written.atoms.cell.array, source.atoms.cell.array, atol=1e-12)
    assert run_sample(src, tmp_path / "out2", "-n", 1, "--supercell", 1, 1, 2).exit_code == 0
    back = read_template(tmp_path / "out2" / "c000" / "scf")
    assert back.kmesh == mesh and len(back.atoms) == 2 * len(source.atoms)


def test_siesta_includes_are_repointed(tmp_path):
    src = source_run(tmp_path, "siesta")
    (src / "basis.fdf").write_text("PAO.EnergyShift 0.01 Ry\n")
    (src / "dummy.txt").write_text("1 14 Si\n")
    fdf = src / "si_diamond.fdf"
    fdf.write_text("%include basis.fdf\n" + fdf.read_text() + "%block Dummy < dummy.txt\n")
    out = tmp_path / "out"
    assert run_sample(src, out, "-n", 1).exit_code == 0
    written = out / "c000" / "h0"
    lines = (written / "si_diamond.fdf").read_text().splitlines()
    dummy = next(l for l in lines if l.startswith("%block Dummy"))
    assert lines[0] == "%include ../../../src/siesta/si_diamond/scf/basis.fdf"
    assert dummy == "%block Dummy < ../../../src/siesta/si_diamond/scf/dummy.txt"
    assert (written / lines[0].split()[1]).is_file() and (written / dummy.split()[-1]).is_file()
    text = fdf.read_text().replace("%block LatticeVectors", "%block LatticeVectors < cell.txt")
    text = re.sub(r"(%block LatticeVectors < cell.txt)\n.*?%endblock LatticeVectors\n", r"\1\n", text, flags=re.S)
    (src / "cell.txt").write_text("0 2.715 2.715\n2.715 0 2.715\n2.715 2.715 0\n")
    fdf.write_text(text)
    _refused(run_sample(src, tmp_path / "out2", "-n", 1), tmp_path / "out2", "si_diamond.fdf", "LatticeVectors")

"""OpenMX restart folder ``<name>_rst/`` from a DM (issue 20), on OpenMX 3.9's own restart files:
the grid density of the converged DM is OpenMX's ``.crst``, the PAO atomic density its ``.adrst``."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.errors import MismatchError, ParseError
from dftplug.grid_density import orbital_density, spherical_sum
from dftplug.parsers import openmx as om
from dftplug.parsers import openmx_restart as rs
from dftplug.scf_guess import write_scf_guess

from .conftest import TINY_MODEL_TOML, shared_path

BOHR3 = om.BOHR_TO_ANG ** 3


def _case(name):
    run = shared_path("fixtures", "openmx", name, "scf")
    h = om.read_run(run)
    scf = h.file_layout
    template = rs.read_restart_template(run / f"{name}_rst", name, scf)
    paos = rs.species_paos(h, scf, rs.pao_directory(scf, run, shared_path("fixtures", "openmx", "DFT_DATA19")))
    return run, h, scf, template, paos


@pytest.fixture(scope="module")
def graphene():
    return _case("graphene")


def _zeroth_step_run(tmp_path, name="graphene"):
    """A copy of the fixture's zeroth-step run with its ``<name>_rst/`` (the fixture keeps only the
    converged run's: same structure and neighbour list, which is all the template provides)."""
    case = shared_path("fixtures", "openmx", name)
    run = tmp_path / "scf_iter1"
    shutil.copytree(case / "scf_iter1", run)
    shutil.copytree(case / "scf" / f"{name}_rst", run / f"{name}_rst")
    return run


def test_converged_dm_gives_openmx_restart_density(graphene):
    """rho(DM_converged) - rho_atomic/2 on OpenMX's grid = OpenMX's own .crst0_0_0 to the grid's precision
    (OpenMX holds the orbitals on the grid in float32); both integrate to the 8 electrons."""
    run, h, scf, template, paos = graphene
    crst = rs.restart_density(h, paos, template, scf)
    ref = np.fromfile(run / "graphene_rst" / "graphene.crst0_0_0")
    assert crst.shape == (1, 18 * 18 * 128)
    deviation = crst[0] - ref
    assert np.abs(deviation).max() < 1.5e-8  # measured 7.6e-9 (max |rho| 0.16 e/bohr^3)
    assert np.sqrt(np.mean(deviation ** 2)) < 1e-9  # measured 5.2e-10
    dv = rs.openmx_grid(scf, template.shape).voxel_volume / BOHR3
    electrons = 2 * (crst[0] + template.half_atomic).sum() * dv
    assert abs(electrons - 8.0) < 1e-6  # grid quadrature: 7.9999996 (OpenMX's own: the same to 5e-9)
    assert abs(electrons - 2 * (ref + template.half_atomic).sum() * dv) < 1e-7


def test_atomic_density_and_grid_are_openmx(graphene):
    """The superposed PAO valence densities (scaled to the .cc core charges) on our grid and origin are
    OpenMX's .adrst bit for bit up to round-off; shifting the origin by one step breaks it."""
    run, h, scf, template, paos = graphene
    grid = rs.openmx_grid(scf, template.shape)
    densities = {s: p.atomic_density(template.core_charges[0]) for s, p in paos.items()}
    ours = 0.5 * spherical_sum(h, densities, grid).ravel() * BOHR3
    assert np.abs(ours - template.half_atomic).max() < 1e-12
    moved = replace(grid, origin=grid.origin + grid.step[2])
    assert np.abs(0.5 * spherical_sum(h, densities, moved).ravel() * BOHR3 - template.half_atomic).max() > 1e-3


def test_spin_polarised_density_counts_each_spin():
    """fe_bcc (nspin 2): each spin's grid density integrates to Tr(DM_s S); the moment is OpenMX's."""
    run = shared_path("fixtures", "openmx", "fe_bcc", "scf")
    h = om.read_run(run)
    scf = h.file_layout
    paos = rs.species_paos(h, scf, rs.pao_directory(scf, run, shared_path("fixtures", "openmx", "DFT_DATA19")))
    grid = rs.openmx_grid(scf, (18, 18, 18))  # Num.Grid of its .out
    rho = orbital_density(h, rs.species_radials(h, paos), grid)
    counts = rho.reshape(2, -1).sum(axis=1) * grid.voxel_volume
    s = h.S.with_pairs(h.DM.pairs).data[0]
    traces = np.array([h.DM.data[k] @ s for k in range(2)])
    assert np.abs(counts - traces).max() < 1e-5  # measured 1.8e-6
    assert abs(counts[0] - counts[1] - 2.247843524) < 1e-5  # OpenMX's printed moment (muB)


def test_guess_of_exact_h_writes_restart_folder(tmp_path):
    """write_scf_guess on the zeroth-step run with the converged H: DM built from H (k-mesh, smearing),
    its .crst within 3e-7 of OpenMX's (the DM itself is 4e-6 off), every other file the template's."""
    run = _zeroth_step_run(tmp_path)
    h = om.read_h0(run)
    h.H = om.read_run(shared_path("fixtures", "openmx", "graphene", "scf")).H
    guess = write_scf_guess(h, "openmx", tmp_path / "guess", pao_dir=shared_path("fixtures", "openmx", "DFT_DATA19"))
    folder = tmp_path / "guess" / "graphene_rst"
    assert guess.files == [tmp_path / "guess" / "graphene.scfout", folder]
    assert guess.input_lines == ["scf.restart on", "scf.restart.filename graphene"]
    template = run / "graphene_rst"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in template.iterdir())
    for p in template.iterdir():
        if ".crst" not in p.name or p.name.endswith("crst_check"):
            assert (folder / p.name).read_bytes() == p.read_bytes()
    ref = np.fromfile(template / "graphene.crst0_0_0")
    assert np.abs(np.fromfile(folder / "graphene.crst0_0_0") - ref).max() < 3e-7  # measured 1.0e-7


def test_infer_writes_restart_folder(tmp_path):
    """dftplug infer --write openmx --pao-dir: the predicted DM's density is far closer to the
    converged .crst than the density of H0's DM (the zeroth-step run's own)."""
    case = shared_path("fixtures", "openmx", "graphene")
    runner = CliRunner()
    (tmp_path / "t.toml").write_text("[train]\nepochs = 1\nval_fraction = 0.0\nkspace_weight = 0.0\n" + TINY_MODEL_TOML)
    assert runner.invoke(main, ["convert", str(case / "scf"), "-o", str(tmp_path / "d.h5"), "-j", "1"]).exit_code == 0
    res = runner.invoke(main, ["train", str(tmp_path / "d.h5"), "-o", str(tmp_path / "m.pt"),
                               "--config", str(tmp_path / "t.toml")])
    assert res.exit_code == 0, res.output
    run = _zeroth_step_run(tmp_path)
    pao_dir = shared_path("fixtures", "openmx", "DFT_DATA19")
    res = runner.invoke(main, ["infer", str(run), "--model", str(tmp_path / "m.pt"), "-o", str(tmp_path / "guess"),
                               "--write", "openmx", "--pao-dir", str(pao_dir), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["input_lines"]["openmx"] == ["scf.restart on", "scf.restart.filename graphene"]
    converged = np.fromfile(case / "scf" / "graphene_rst" / "graphene.crst0_0_0")
    predicted = np.fromfile(tmp_path / "guess" / "graphene_rst" / "graphene.crst0_0_0")
    h1 = om.read_run(run)  # the one-step run with its DM (of H0's eigenvectors)
    scf = h1.file_layout
    template = rs.read_restart_template(run / "graphene_rst", "graphene", scf)
    from_h0 = rs.restart_density(h1, rs.species_paos(h1, scf, rs.pao_directory(scf, run, pao_dir)), template, scf)[0]
    assert np.abs(predicted - converged).max() < 0.05 * np.abs(from_h0 - converged).max()  # 3.1e-5 vs 7.5e-3


def _guess_error(tmp_path, h, pao_dir, error):
    out = tmp_path / "guess"
    with pytest.raises(error) as caught:
        write_scf_guess(h, "openmx", out, pao_dir=pao_dir)
    assert not out.exists() or not any(out.iterdir())  # nothing written
    return str(caught.value)


def test_bad_inputs_are_refused_naming_the_file(tmp_path):
    pao_dir = shared_path("fixtures", "openmx", "DFT_DATA19")
    run = _zeroth_step_run(tmp_path)
    h = om.read_h0(run)
    h.H = h.H0
    # PAO files not where DATA.PATH (or --pao-dir) says
    assert "C6.0.pao" in _guess_error(tmp_path, h, tmp_path, ParseError)
    # a restart folder of another structure with the same neighbour list (one atom moved by 0.01 bohr):
    # the atomic density disagrees
    scf = h.file_layout
    gxyz = scf.gxyz.copy()
    gxyz[0, 1] += 0.01
    moved = replace(h, file_layout=replace(scf, gxyz=gxyz), atoms=h.atoms.copy())
    moved.atoms.positions[0, 0] += 0.01 * om.BOHR_TO_ANG
    assert "graphene.adrst0" in _guess_error(tmp_path, moved, pao_dir, MismatchError)
    # ... or with another neighbour list
    rst = run / "graphene_rst" / "graphene.rst2"
    good = rst.read_bytes()
    table = np.frombuffer(good, "<i4").copy()
    table[11] += 1  # the lattice vector of neighbour 0
    rst.write_bytes(table.tobytes())
    assert "graphene.rst2" in _guess_error(tmp_path, h, pao_dir, MismatchError)
    rst.write_bytes(good)
    # a grid other than the one the atomic density was written on
    check = run / "graphene_rst" / "graphene.crst_check"
    check.write_text("1 18 18 120 0")
    assert "graphene.adrst0" in _guess_error(tmp_path, h, pao_dir, ParseError)


def test_non_collinear_is_refused(tmp_path):
    case = shared_path("fixtures", "soc", "openmx", "pt_fcc")
    run = tmp_path / "scf_iter1"
    shutil.copytree(case / "scf_iter1", run)
    (run / "pt_fcc_rst").mkdir()
    with pytest.raises(MismatchError, match="non-collinear"):
        rs.write_restart_guess(om.read_h0(run), tmp_path / "guess", "pt_fcc")


def test_pao_orbitals_are_normalised_in_angstrom_units():
    """int R(r)^2 r^2 dr = 1 (Å units, OpenMX's interpolation) for the first radial function of each l."""
    pao = rs.read_pao(shared_path("fixtures", "openmx", "DFT_DATA19", "PAO") / "C6.0.pao")  # .xz read too
    assert pao.rcut == 6.0 and sorted(pao.orbitals) == [0, 1, 2, 3]
    for l in range(4):
        f = pao.radial(l, 1)
        r = np.linspace(0.0, f.rcut, 100001)
        assert abs(np.trapezoid(f.values(r) ** 2 * r ** 2, r) - 1.0) < 3e-5  # l = 3: 0.999989
    with pytest.raises(ParseError, match="multiplicity 16"):
        pao.radial(0, 16)


def test_process_layout_is_openmx_partition_b():
    """MPI process p stores C-order points [ceil(p N1N2/P) N3, ceil((p+1) N1N2/P) N3) (truncation.c)."""
    assert rs.process_slices((18, 18, 128), 1) == [slice(0, 18 * 18 * 128)]
    parts = rs.process_slices((18, 18, 128), 5)
    sizes = [p.stop - p.start for p in parts]
    assert parts[0].start == 0 and parts[-1].stop == 18 * 18 * 128
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert sizes == [65 * 128] * 4 + [64 * 128]  # ceil(k 324/5): 0, 65, 130, 195, 260, 324


def _openmx_style_template(folder, name, scf, shape, core_charge, half_atomic):
    """A ``<name>_rst/`` with the files the template check reads, in OpenMX's layout (RestartFileDFT.c),
    for a fixture whose run did not keep its own: .crst_check, .adrst0, .cc, .rst<N> (header + table)."""
    folder.mkdir()
    (folder / f"{name}.crst_check").write_text(f"1 {shape[0]} {shape[1]} {shape[2]} {scf.spinp_switch}")
    half_atomic.astype("<f8").tofile(folder / f"{name}.adrst0")
    np.array([0.0] + [core_charge] * scf.natoms, "<f8").tofile(folder / f"{name}.cc")
    first = np.cumsum(np.concatenate([[0], scf.fnan + 1]))
    for a in range(scf.natoms):
        seg = slice(first[a], first[a + 1])
        head = [scf.spinp_switch, 0, 0, 0, 0, scf.natoms, 0, scf.tno[a], scf.fnan[a], 0]
        table = np.vstack([scf.natn[seg], scf.atv_ijk[scf.ncn[seg], 1:4].T, np.zeros(seg.stop - seg.start),
                           scf.tno[scf.natn[seg] - 1]])
        np.concatenate([head, table.ravel()]).astype("<i4").tofile(folder / f"{name}.rst{a + 1}")


def test_spin_polarised_restart_folder_has_both_spins(tmp_path):
    """fe_bcc (SpinP_switch 1): crst0 and crst1 hold rho_up and rho_down minus half the atomic density;
    crst0 + adrst integrates to Tr(DM_up S)."""
    case = shared_path("fixtures", "openmx", "fe_bcc")
    run = tmp_path / "scf"
    shutil.copytree(case / "scf", run)
    h = om.read_run(run)
    scf = h.file_layout
    paos = rs.species_paos(h, scf, rs.pao_directory(scf, run, shared_path("fixtures", "openmx", "DFT_DATA19")))
    grid = rs.openmx_grid(scf, (18, 18, 18))
    half = 0.5 * spherical_sum(h, {"Fe": paos["Fe"].atomic_density(14.0)}, grid).ravel() * BOHR3
    _openmx_style_template(run / "fe_bcc_rst", "fe_bcc", scf, grid.shape, 14.0, half)
    folder = rs.write_restart_guess(h, tmp_path / "guess", "fe_bcc", shared_path("fixtures", "openmx", "DFT_DATA19"))
    up, down = (np.fromfile(folder / f"fe_bcc.crst{s}_0_0") for s in (0, 1))
    s = h.S.with_pairs(h.DM.pairs).data[0]
    dv = grid.voxel_volume / BOHR3
    assert abs((up + half).sum() * dv - h.DM.data[0] @ s) < 1e-5
    assert abs((down + half).sum() * dv - h.DM.data[1] @ s) < 1e-5
    assert not (folder / "fe_bcc.crst2_0_0").exists()

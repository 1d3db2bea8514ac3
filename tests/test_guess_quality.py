"""Guess quality (dftplug.guess_quality) on a real ABACUS v3.11 Si8 cell: the density error of a starting
guess vanishes for the exact H, follows the Mulliken/real-space DM of the toolkit, and ranks H0 below a
near-exact H; ``dftplug eval --json`` reports it for the model and H0."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.dataset import write_dataset
from dftplug.density import density_matrix
from dftplug.guess_quality import GuessReference, guess_quality, periodic_gaussian_energy


METRICS = ("charge_error_max_e", "charge_error_rms_e", "population_error", "dm_error_s", "hartree_meV")


@pytest.fixture(scope="module")
def cell(si8_c030):
    """si8_v311 c030 with H, S, DM and H0 (tests/conftest.py)."""
    return si8_c030


@pytest.fixture(scope="module")
def reference(cell):
    return GuessReference.from_hamiltonian(cell)


def test_exact_h_and_constant_shift_give_zero(cell, reference):
    exact = guess_quality(cell.H, reference)
    assert all(v == 0.0 for v in exact.as_dict().values())
    shifted = guess_quality(cell.H + cell.S.with_pairs(cell.H.pairs).scaled(0.37), reference)  # H + μS
    assert shifted.fermi_shift_eV == pytest.approx(0.37, abs=1e-9)
    assert shifted.charge_error_max < 1e-12 and shifted.dm_error_s < 1e-6 and shifted.hartree_meV < 1e-12


def test_mulliken_charges_sum_to_electrons_and_match_real_space_dm(cell, reference):
    assert reference.populations.sum() == pytest.approx(cell.nelec, abs=1e-9)
    dm = density_matrix(cell).DM  # the toolkit's DM(R), reproducing ABACUS's own to 7e-8
    s = cell.S.with_pairs(dm.pairs)
    per_element = dm.data[0] * s.data[0]
    atom_of_block = np.repeat(dm.pairs[:, 0], dm.block_sizes())
    per_atom = np.bincount(atom_of_block, per_element, minlength=cell.natoms)
    mulliken = np.bincount(reference.orbital_atom, reference.populations)
    assert np.abs(mulliken - per_atom).max() < 1e-9
    assert 3.9 < mulliken.min() and mulliken.max() < 4.1  # Si: 4 valence electrons each, rattled


def test_h0_is_a_worse_guess_than_a_nearly_exact_h(cell, reference):
    rng = np.random.default_rng(1)
    noise = cell.H.copy(rng.standard_normal(cell.H.data.shape)).hermitized()
    near = cell.H + noise.scaled(1e-5 / np.abs(noise.data).mean())  # 0.01 meV mean |noise|
    q_near, q_h0 = guess_quality(near, reference).as_dict(), guess_quality(cell.H0, reference).as_dict()
    for m in METRICS:
        assert 0 < q_near[m] < 0.01 * q_h0[m], m
    assert q_h0["charge_error_max_e"] > 1e-3 and q_h0["dm_error_s"] > 1e-2  # measured: 0.016 e, 0.040


def test_gaussian_charges_periodic_energy_is_the_isolated_one_in_a_large_cell():
    cell = 30.0 * np.eye(3)
    positions = np.array([[10.0, 10.0, 10.0], [12.0, 10.0, 10.0]])
    q, width, d = np.array([0.1, -0.1]), 1.0, 2.0
    isolated = 14.399645 * 0.01 * (1 / (width * math.sqrt(math.pi)) - math.erf(d / (2 * width)) / d)
    assert periodic_gaussian_energy(q, positions, cell, width) == pytest.approx(isolated, rel=5e-3)


def test_eval_json_reports_guess_quality_for_model_and_h0(cell, tmp_path):
    data = tmp_path / "c030.h5"
    write_dataset(data, [("c030", cell)])
    res = CliRunner().invoke(main, ["eval", str(data), "--model", "abacus_si8", "--json", "--kpoints", "0"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    guess = report["structures"][0]["guess"]
    for key in ("model", "h0"):
        assert all(math.isfinite(guess[key][m]) for m in METRICS), guess[key]
        assert all(math.isfinite(report["overall"][f"guess_{key}_{m}"]) for m in METRICS)
    assert guess["model"]["dm_error_s"] < guess["h0"]["dm_error_s"]  # measured 0.0033 vs 0.040
    res = CliRunner().invoke(main, ["eval", str(data), "--model", "abacus_si8", "--kpoints", "0"])
    assert res.exit_code == 0 and "SCF starting guess" in res.output


def test_validation_hook_caches_the_reference(cell):
    from dftplug.model import load
    from dftplug.model.evaluate import validation_guess_errors

    cache = {}
    first = validation_guess_errors([("c030", cell)], load("abacus_si8"), cache)
    assert set(cache) == {"c030"} and first["guess_structures"] == 1
    assert 0 < first["guess_model_dm_error_s"] < first["guess_h0_dm_error_s"]
    assert validation_guess_errors([("c030", cell)], load("abacus_si8"), cache) == first

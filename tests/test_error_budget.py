"""scripts/bench_error_budget.py on a real rattled Si8 cell: the per-atom shift fit recovers a planted shift
exactly, and the budget's ends are right (all blocks exact: no density error; the model beats H0)."""
import importlib.util

import numpy as np

from dftplug.model import load
from dftplug.model.graph import graph_pairs

from .conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_error_budget", ROOT / "scripts" / "bench_error_budget.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_per_atom_shift_recovers_a_planted_shift(si8_c030):
    pairs = graph_pairs(si8_c030)
    overlap = si8_c030.S.with_pairs(pairs)
    block = np.repeat(np.arange(len(pairs)), overlap.block_sizes())
    v = np.random.default_rng(3).normal(0.0, 0.05, si8_c030.natoms)  # eV
    planted = 0.5 * (v[pairs[:, 0]] + v[pairs[:, 1]])[block] * overlap.data[0]
    noise = np.random.default_rng(4).normal(0.0, 1e-4, planted.shape)
    fitted, pattern = bench.per_atom_shift(planted, overlap.data[0], pairs, block, si8_c030.natoms)
    assert np.abs(fitted - v).max() < 1e-10 and np.abs(pattern - planted).max() < 1e-10
    fitted, _ = bench.per_atom_shift(planted + noise, overlap.data[0], pairs, block, si8_c030.natoms)
    assert np.abs(fitted - v).max() < 2e-3  # element noise barely moves the per-atom shifts


def test_budget_ends(si8_c030):
    rows = bench.budget(si8_c030, load("abacus_si8"), [100.0])
    assert rows["model, r <= 100 A exact"] < 1e-7  # every block exact: the SCF density itself
    assert rows["model"] < 0.2 * rows["H0"]        # measured 3.3e-3 vs 4.0e-2
    assert rows["exact + per-atom shift"] > 0 and rows["shift rms meV"] > 0
    assert 0.05 < rows["mae meV"] < 1.0  # measured 0.29 meV over the overlap pattern

"""First-order density response of an H error (the density and charge loss terms), on a real rattled 8-atom Si cell (ABACUS v3.11, ../shared/datasets/abacus/si8_v311)."""
import copy

import numpy as np
import pytest
import torch

from dftplug.density import density_matrix
from dftplug.model.graph import build_graph, graph_pairs
from dftplug.model.irreps import BasisLayout
from dftplug.model.loss import density_ratios, to_blocks
from dftplug.model.density_response import first_order_density


@pytest.fixture(scope="module")
def cell(si8_c030):
    """si8_v311 c030 with H, S, DM and H0 (tests/conftest.py)."""
    return si8_c030


@pytest.fixture(scope="module")
def graph(cell):
    layout = BasisLayout.from_basis(cell.basis, ["Si"], cell.nspin)
    return layout, build_graph(cell, layout, "c030", density=True)


def mulliken(h, H):
    """Mulliken charges (natoms,) of the DM of ``H`` (the run's mesh and smearing), via the toolkit."""
    x = copy.copy(h)
    x.H = H
    pairs = graph_pairs(h)
    dm = density_matrix(x, pairs=pairs).DM.data[0]
    s = h.S.with_pairs(pairs).data[0]
    block = np.repeat(np.arange(len(pairs)), h.H.norb[pairs[:, 0]] * h.H.norb[pairs[:, 1]])
    return np.bincount(pairs[:, 0], np.bincount(block, dm * s, len(pairs)), h.natoms)


def test_first_order_charges_equal_finite_differences(cell, graph):
    """δq of δH = ε (H0 − H_scf) from the response formula = (q[H_scf + δH] − q[H_scf]) of two full
    diagonalisations, to the second-order remainder (ε = 1e-3: relative 1e-3)."""
    layout, g = graph
    eps = 1e-3
    blocks = to_blocks([-eps * t for t in g.target], layout)
    _, dq = first_order_density(blocks, g.type_graph, 0, g.density[0], cell.natoms)
    moved = cell.H - cell.delta_h().scaled(eps)
    fd = mulliken(cell, moved) - mulliken(cell, cell.H)
    assert np.abs(fd).max() > 1e-6                    # the test perturbs charges measurably
    np.testing.assert_allclose(dq.numpy(), fd, rtol=0, atol=2e-3 * np.abs(fd).max())
    assert abs(float(dq.sum())) < 1e-10               # the electron count is conserved


def test_density_terms_are_gauge_invariant_and_scaled_by_h0(cell, graph):
    """A constant shift μ·S moves no charge; the H0 guess itself scores exactly 1."""
    layout, g = graph
    shift = to_blocks([0.3 * s[:, None, :].expand(-1, t.shape[1], -1) for s, t in zip(g.s, g.target)], layout)
    dm2, dq = first_order_density(shift, g.type_graph, 0, g.density[0], cell.natoms)
    scale = g.density[0].baseline  # the H0 guess's ‖δDM‖²_S and Σ δq² (stored in single precision: 1e-7)
    assert float(dm2) < 1e-12 * float(scale[0]) and float(dq.abs().max()) < 1e-6 * float(scale[1].sqrt())
    ratios = density_ratios(to_blocks([-t for t in g.target], layout), g)
    np.testing.assert_allclose(ratios.numpy(), [[1.0, 1.0]], rtol=1e-5)


def test_training_with_density_terms_selects_by_density(cell, tmp_path):
    """Training with the density and charge terms logs their validation ratios and picks the best
    checkpoint by the density ratio."""
    from dftplug.dataset import write_dataset
    from dftplug.model.train import TrainConfig, train
    from dftplug.model.model import ModelConfig

    torch.set_num_threads(1)
    h5 = write_dataset(tmp_path / "d.h5", [("a", cell), ("b", cell)])
    cfg = TrainConfig(epochs=2, val_fraction=0.5, density_weight=1.0, charge_weight=0.1, select_by="density",
                      guess_every=2)
    tiny = ModelConfig(num_layers=1, node_mul=(4, 2, 2), edge_mul=(4, 2, 2, 2), num_basis=4, radial_hidden=8,
                       response_basis=6, env_basis=1)
    summary = train([h5], tmp_path / "m.pt", cfg, tiny, progress=False)
    assert summary["selected_by"] == "density_ratio"
    assert 0 < summary["best_val_density_ratio"] < 1
    rows = np.genfromtxt(tmp_path / "m.log.csv", delimiter=",", names=True)
    assert {"loss_density", "loss_charge", "val_density_ratio", "val_charge_ratio"} <= set(rows.dtype.names)
    # the exact guess quality (dftplug.guess_quality) of the validation set: logged every 2nd epoch and for the
    # best model; the model's density error is below H0's by about √(density ratio)
    assert np.isnan(rows["val_guess_model_dm_error_s"][0]) and rows["val_guess_model_dm_error_s"][1] > 0
    best = summary["best_val_guess"]
    ratio = best["val_guess_model_dm_error_s"] / best["val_guess_h0_dm_error_s"]
    assert ratio < 0.5 and abs(np.log(ratio / summary["best_val_density_ratio"] ** 0.5)) < np.log(3)

"""The spin–orbit (nspin 4) ΔH model: the real spin channels, their symmetries, and the model's
equivariance, time reversal and Hermiticity (float64), training, inference and refusals."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.spatial.transform import Rotation

from dftplug.blocksparse import BlockSparse
from dftplug.cli import main
from dftplug.model.checkpoint import ModelMismatchError
from dftplug.model.infer import predict
from dftplug.model.irreps import PairLayout
from dftplug.model.spinor import (REAL_CHANNELS, T_ODD, TRANSPOSE_SIGN, VectorLayout, from_real_channels,
                                  to_real_channels)
from dftplug.model.spinor_model import SpinorDeltaHModel
from dftplug.orbitals import block_rotation, wigner_d
from dftplug.parsers import abacus as ab
from dftplug.parsers import siesta as si

from .conftest import FIXTURES, TINY_MODEL_TOML, shared_path
from .test_model import delta, random_model
from .test_soc_symmetry import PAULI

PT = FIXTURES / "soc" / "siesta" / "pt_fcc"
PB = FIXTURES / "soc" / "abacus311" / "pb_fcc" / "scf"
T_SIGN = np.array([1, 1, 1, 1, -1, -1, -1, -1])  # time reversal per real channel


@pytest.fixture(scope="module")
def pt():
    return si.read_run(PT / "scf").attach_h0(si.read_h0(PT / "h0"))


def with_magnetic_h0(h, size=0.05, seed=0):
    """``h`` with a random Hermitian T-odd part (eV) added to H0 (so the T-odd branch has input)."""
    rng = np.random.default_rng(seed)
    x = h.H0.copy(size * (rng.normal(size=h.H0.data.shape) + 1j * rng.normal(size=h.H0.data.shape)))
    odd = (x - x.time_reversed()).hermitized()
    out = h.rotated(np.eye(3))
    out.H0 = h.H0 + odd.scaled(0.5)
    return out


def spinor_model(h, seed=0):
    """A float64 spinor model with every output path non-zero (random readouts and responses)."""
    ck = random_model(h, seed=seed)
    m = ck.model
    assert isinstance(m, SpinorDeltaHModel)
    with torch.no_grad():
        for lin in m.vector_readouts:
            lin.weight.normal_()
        for t, response in enumerate(m.odd_response):
            getattr(m, f"vector_output_scale_{t}").fill_(1e-2)
            for w in response.weights:
                w.normal_(std=0.1)
    return ck


# ------------------------------------------------------------------ the real spin channels
@pytest.mark.parametrize("run", ["siesta", "abacus"])
def test_real_channels_round_trip_and_meaning(pt, run):
    h = pt if run == "siesta" else ab.read_run(PB, with_matrices=("H", "S"))
    real = to_real_channels(h.H)
    assert real.nspin == 8 and not np.iscomplexobj(real.data)
    assert np.abs(from_real_channels(real).data - h.H.data).max() <= 1e-14 * np.abs(h.H.data).max()
    # H_ij(R) = Σ_a h_a ⊗ σ_a with h_a = Re + i Im of the channels
    c = dict(zip(REAL_CHANNELS, real.data))
    h_a = [c["Re h0"] + 1j * c["Im h0"]] + [c[f"Re h{a}"] + 1j * c[f"Im h{a}"] for a in "xyz"]
    sigma = np.concatenate([np.eye(2)[None], PAULI])  # σ_0, σ_x, σ_y, σ_z
    spinor = np.einsum("an,ast->stn", np.array(h_a), sigma).reshape(4, -1)  # channel 2 s + t
    assert np.abs(spinor - h.H.data).max() < 1e-12
    # time reversal: T-even channels unchanged, T-odd ones flip sign
    tr = to_real_channels(h.H.time_reversed())
    assert np.abs(tr.data - T_SIGN[:, None] * real.data).max() < 1e-12
    # Hermiticity: real parts symmetric, imaginary parts antisymmetric under (i, j, R) -> (j, i, -R)^T
    assert np.abs(real.transposed().data - np.array(TRANSPOSE_SIGN)[:, None] * real.data).max() < 1e-7


def test_real_channels_time_reversal_of_the_non_magnetic_hamiltonian(pt):
    """Non-magnetic SOC H: the T-odd channels vanish; the SOC lives in Im h_a (T-even)."""
    real = to_real_channels(pt.H)
    assert np.abs(real.data[T_ODD]).max() < 1e-12
    assert np.abs(real.data[1:4]).max() > 0.1  # on-site SOC, eV


@pytest.mark.parametrize("improper", [False, True])
def test_vector_layout_is_orthogonal_and_rotates_as_axial_vector_irreps(improper):
    p = PairLayout("Pb", "O", (0, 1, 2), (1, 3))
    v = VectorLayout(p)
    assert np.abs(v.V @ v.V.T - np.eye(v.dim)).max() < 1e-14
    assert "0o" in str(v.irreps)  # 1o ⊗ 1e ∋ 0o
    rot = Rotation.random(random_state=2).as_matrix() * (-1 if improper else 1)
    proper = rot * np.linalg.det(rot)  # spin (h_x, h_y, h_z) is axial
    h = np.random.default_rng(1).normal(size=(3, p.n_a, p.n_b))
    hr = np.einsum("ba,ij,ajk,lk->bil", proper, block_rotation(p.ls_a, rot), h, block_rotation(p.ls_b, rot))
    f = v.V @ np.concatenate([p.Q @ x.ravel() for x in h])
    fr = v.V @ np.concatenate([p.Q @ x.ravel() for x in hr])
    k = 0
    for mul, ir in v.irreps:
        d = wigner_d(ir.l, proper) * (ir.p if improper else 1)
        for _ in range(mul):
            assert np.abs(d @ f[k:k + ir.dim] - fr[k:k + ir.dim]).max() < 1e-12, (ir, improper)
            k += ir.dim
    assert k == v.dim


# ------------------------------------------------------------------ the model's symmetries (float64)
def pb():
    """ABACUS fcc Pb (s, p, d, f: odd-parity blocks and 0o spin-vector irreps) with H0 of h0_smallmag."""
    h0 = ab.read_h0(shared_path("fixtures", "soc", "abacus311", "pb_fcc", "h0_smallmag"))
    return ab.read_run(PB, with_matrices=("H", "S")).attach_h0(h0)


@pytest.mark.parametrize("system", ["Pt", "Pb"])
@pytest.mark.parametrize("improper", [False, True])
def test_prediction_rotates_with_orbital_and_spin_rotations(pt, system, improper):
    """ΔH(rotated structure, rotated H0/S) = (D ⊗ D^{1/2}) ΔH (D ⊗ D^{1/2})† to 1e-10; rotating the
    orbitals only is wrong (guard: the test can fail)."""
    h = with_magnetic_h0(pt if system == "Pt" else pb())
    ck = spinor_model(h)
    rot = Rotation.random(random_state=5).as_matrix() * (-1 if improper else 1)
    ref = delta(predict(h, ck))
    real = to_real_channels(ref)
    assert min(np.abs(real.data[c]).max() for c in range(8)) > 1e-4  # every channel predicted
    got = delta(predict(h.rotated(rot), ck))
    expected = delta(predict(h, ck).rotated(rot))
    scale = np.abs(ref.data).max()
    err = np.abs((got - expected).data).max() / scale
    assert err < 1e-10, err
    orbital_only = ref.transform(np.zeros(1, np.int64), [block_rotation(h.basis.ls(system), rot)])
    assert np.abs((got - orbital_only).data).max() / scale > 1e-3


def test_prediction_commutes_with_time_reversal(pt):
    """ΔH(θ H0 θ⁻¹) = θ ΔH(H0) θ⁻¹ to 1e-10 with a T-odd H0; a T-invariant H0 gives a T-invariant ΔH."""
    h = with_magnetic_h0(pt)
    ck = spinor_model(h)
    ref = delta(predict(h, ck))
    assert np.abs(to_real_channels(ref).data[T_ODD]).max() > 1e-3  # the T-odd branch is exercised
    got = delta(predict(h.time_reversed(), ck))
    err = np.abs((got - ref.time_reversed()).data).max() / np.abs(ref.data).max()
    assert err < 1e-10, err
    even = delta(predict(pt, ck))
    assert np.abs(to_real_channels(even).data[T_ODD]).max() < 1e-12
    assert np.abs((even.time_reversed() - even).data).max() < 1e-12


def test_prediction_is_hermitian(pt):
    d = delta(predict(with_magnetic_h0(pt), spinor_model(pt)))
    assert d.nspin == 4 and np.iscomplexobj(d.data)
    assert d.hermiticity_error() <= 1e-12 * np.abs(d.data).max()


# ------------------------------------------------------------------ training, inference, refusals
TRAIN_TOML = """
[train]
epochs = 4
val_fraction = 0.0
lr = 1e-2
kspace_weight = 0.0
""" + TINY_MODEL_TOML + "linear_response = false\n"  # the network itself must learn


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SOC model trained by the CLI on SIESTA fcc Pt (scf + h0, one structure)."""
    work = tmp_path_factory.mktemp("soc")
    data, cfg, model = work / "pt.h5", work / "t.toml", work / "m.pt"
    cfg.write_text(TRAIN_TOML)
    runner = CliRunner()
    res = runner.invoke(main, ["convert", str(PT / "scf"), "-o", str(data), "-j", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["train", str(data), "-o", str(model), "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    return model, json.loads(res.output[res.output.index("{"):])


def test_soc_training_beats_h0(trained):
    model, summary = trained
    rows = np.genfromtxt(model.with_suffix(".log.csv"), delimiter=",", names=True)
    assert rows["loss_total"][-1] < rows["loss_total"][0]
    assert summary["best_val_mae_meV"] < summary["h0_val_mae_meV"]  # MAE over the complex spinor elements


def test_soc_checkpoint_and_infer_writes_native_files(trained, pt, tmp_path):
    from .test_siesta import _plain_copy
    from dftplug.dataset import read_dataset
    from dftplug.model import load

    model, _ = trained
    ck = load(model)
    assert ck.meta["layout"]["nspin"] == 4 and ck.meta["nspin"] == 4
    out = tmp_path / "guess"
    res = CliRunner().invoke(main, ["infer", str(PT / "h0"), "--model", str(model), "-o", str(out),
                                    "--write", "siesta", "--write", "h5", "--json"])
    assert res.exit_code == 0, res.output
    (pred,) = read_dataset(out / "predicted.h5")
    dh = pred.H - pred.H0
    assert pred.nspin == 4 and np.abs(dh.data).max() > 0
    assert dh.hermiticity_error() < 1e-6 * np.abs(dh.data).max()  # a float32 model
    run = _plain_copy(PT / "h0", tmp_path / "run", keep={"out", "XV", "fdf"})
    (run / "pt_fcc.TSHS").write_bytes((out / "pt_fcc.TSHS").read_bytes())
    back = si.read_run(run)
    stored = np.abs(pred.H0.with_pairs(back.H.pairs).data) > 0  # the run's own (element) sparsity
    err = np.abs((back.H - pred.H.with_pairs(back.H.pairs)).data)
    assert back.nspin == 4 and err[stored].max() < 1e-9 and stored.sum() > 1000


def test_spin_kind_mismatch_is_refused(trained, pt):
    """A SOC checkpoint on nspin-1 data and an nspin-1 checkpoint on SOC data: ModelMismatchError
    naming both, and exit code 2 from the CLI."""
    from dftplug.model import load

    model, _ = trained
    plain = FIXTURES / "siesta" / "si_diamond" / "h0"
    res = CliRunner().invoke(main, ["infer", str(plain), "--model", str(model), "-o", "unused"])
    assert res.exit_code == 2 and "nspin 1" in res.output and "spin-orbit" in res.output
    h = si.read_h0(plain)
    with pytest.raises(ModelMismatchError, match=r"nspin 1 \(spin-restricted\) data, model trained on nspin 4"):
        predict(h, load(model))
    soc_h0 = shared_path("fixtures", "soc", "abacus311", "pb_fcc", "h0_smallmag")
    res = CliRunner().invoke(main, ["infer", str(soc_h0), "--model", "abacus_si8", "-o", "unused"])
    assert res.exit_code == 2 and "nspin 4 (spin-orbit) data, model trained on nspin 1" in res.output

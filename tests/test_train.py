"""Training, checkpoints, evaluation and the train/eval/infer commands, on the shipped fixtures."""
import json
import shutil
import tarfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dftplug.cli import main
from dftplug.dataset import read_dataset, write_dataset
from dftplug.model import CheckpointError, ModelMismatchError, load, load_pretrained
from dftplug.model.evaluate import evaluate
from dftplug.model.infer import predict
from dftplug.model.model import ModelConfig
from dftplug.model.train import ConfigError, TrainConfig, load_config, train
from dftplug.parsers import abacus as ab
from dftplug.parsers import siesta as si

from .conftest import FIXTURES, TINY_MODEL_TOML, point_inputs_at, shared_path

SI = FIXTURES / "abacus311" / "si_diamond"
ROT = FIXTURES / "rotations" / "abacus"
TINY = ModelConfig(num_layers=1, node_mul=(4, 2, 2), edge_mul=(4, 2, 2, 2), num_basis=4, radial_hidden=8)
TINY_TOML = """
[train]
epochs = 2
val_fraction = 0.5
kspace_weight = 0.05
kspace_points = 2
""" + TINY_MODEL_TOML


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two Si2 structures (the diamond cell and its rotated copy) with H, H0 and S."""
    path = tmp_path_factory.mktemp("data") / "si.h5"
    items = []
    for name, folder in (("diamond", SI), ("rotated", ROT / "rotated")):
        items.append((name, ab.read_run(folder / "scf").attach_h0(ab.read_h0(folder / "h0"))))
    return write_dataset(path, items)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("model") / "m.pt"
    cfg = TrainConfig(epochs=6, val_fraction=0.5, kspace_weight=0.05, kspace_points=2, lr=1e-2)
    # without the closed-form linear response, so that it is the network that must learn
    summary = train([data], out, cfg, ModelConfig(**dict(vars(TINY), linear_response=False)), progress=False)
    return out, summary


def test_training_decreases_loss_and_logs(trained):
    out, summary = trained
    rows = list(np.genfromtxt(out.with_suffix(".log.csv"), delimiter=",", names=True))
    assert len(rows) == summary["epochs"] == 6
    assert rows[-1]["loss_total"] < rows[0]["loss_total"]
    assert summary["best_val_mae_meV"] <= summary["val_mae_before_training_meV"] + 1e-9
    assert json.loads(out.with_suffix(".log.json").read_text())["epochs"] == 6


def test_checkpoint_is_self_describing_and_round_trips(trained, data):
    out, _ = trained
    ck = load(out)
    meta = ck.meta
    assert meta["code"] == "abacus" and meta["h0_kind"] == "H[rho_atomic]" and meta["layout"]["species"] == ["Si"]
    assert meta["units"]["energy"] == "eV" and meta["model_config"]["num_layers"] == 1
    assert set(meta["training"]) >= {"train", "validation", "config"} and "metrics" in meta
    h = read_dataset(data, ["diamond"])[0]
    a, b = predict(h, ck), predict(h, load(out))
    assert np.array_equal(a.H.data, b.H.data)
    again = load(out, dtype="float64")  # same weights, evaluated in float64
    assert np.abs((predict(h, again).H - a.H).data).max() < 1e-5


def test_resume_continues_and_is_deterministic(data, tmp_path):
    cfg = TrainConfig(epochs=2, val_fraction=0.5)
    a = train([data], tmp_path / "a.pt", cfg, ModelConfig(**vars(TINY)), progress=False)
    b = train([data], tmp_path / "b.pt", TrainConfig(epochs=1, val_fraction=0.5), ModelConfig(**vars(TINY)),
              progress=False)
    b = train([data], tmp_path / "b.pt", cfg, ModelConfig(**vars(TINY)), resume=True, progress=False)
    assert b["epochs"] == 2
    sa = torch.load(tmp_path / "a.train.pt", weights_only=False)["state_dict"]
    sb = torch.load(tmp_path / "b.train.pt", weights_only=False)["state_dict"]
    assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)


def test_fine_tuning_starts_from_the_checkpoint(trained, data, tmp_path):
    """init_from keeps the checkpoint's fitted buffers and [model] (the one given is ignored): before the first
    step the new run scores exactly what the checkpoint scores; a model of another basis is refused."""
    out, summary = trained
    cfg = TrainConfig(epochs=1, val_fraction=0.5, lr=1e-4, init_from=str(out))
    other = ModelConfig(num_layers=2, node_mul=(8, 4, 2))
    tuned = train([data], tmp_path / "ft.pt", cfg, other, progress=False)
    assert tuned["val_mae_before_training_meV"] == pytest.approx(summary["best_val_mae_meV"], rel=1e-6)
    ck = load(tmp_path / "ft.pt")
    assert ck.meta["model_config"] == load(out).meta["model_config"]
    assert ck.meta["training"]["target_rms_eV"]["fine_tuned_from"] == str(out)
    fe = write_dataset(tmp_path / "fe.h5", [("fe", ab.read_run(shared_path("fixtures", "abacus311", "fe_bcc", "scf"))
                                                    .attach_h0(ab.read_h0(shared_path("fixtures", "abacus311", "fe_bcc", "h0"))))])
    with pytest.raises(ModelMismatchError):
        train([fe], tmp_path / "bad.pt", cfg, other, progress=False)


def test_refusals(trained, tmp_path):
    out, _ = trained
    ck = load(out)
    h = ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))
    h.provenance["code"] = "openmx"
    with pytest.raises(ModelMismatchError, match="openmx"):
        predict(h, ck)
    with pytest.raises(CheckpointError, match="no such model"):
        load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no shipped model"):
        load_pretrained("nonexistent")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochz = 3\n")
    with pytest.raises(ConfigError, match="epochz"):
        load_config(bad)


def test_cli_train_eval_infer(data, tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_TOML)
    model = tmp_path / "m.pt"
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(data), "-o", str(model), "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["epochs"] == 2
    res = runner.invoke(main, ["eval", str(data), "--model", str(model), "--json", "--kpoints", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert {"s-s", "p-d", "d-d"} <= set(report["by_orbital_pair"])
    assert report["structures"][0]["h0_mae_meV"] == pytest.approx(1.0546, abs=1e-3)  # si_diamond
    assert "band_model_mae_meV" in report["overall"] and len(report["structures"]) == 2
    out = tmp_path / "pred"
    res = runner.invoke(main, ["infer", str(SI / "h0"), "--model", str(model), "-o", str(out),
                               "--write", "abacus", "--s-from", str(SI / "scf")])
    assert res.exit_code == 0, res.output
    assert res.output.count("\n") == 2 and "init_chg          hr" in res.output  # summary + input lines
    assert (out / "hrs1_nao.csr").is_file()
    h = ab.read_run(SI / "scf")
    written = ab.read_csr(out / "hrs1_nao.csr")
    assert written.norb == 26
    res = runner.invoke(main, ["infer", str(SI / "h0"), "--model", str(model), "-o", str(out), "--json",
                               "--s-from", str(SI / "scf"), "--force"])  # replaces the folder as a whole
    assert res.exit_code == 0, res.output
    assert not (out / "hrs1_nao.csr").exists()
    (pred,) = read_dataset(out / "predicted.h5")
    assert pred.H is not None and h.check_compatible(pred) is None
    # refusals exit 2 with a message: an H0 run without S (ABACUS wrote none), files of another code
    no_s = tmp_path / "case" / "h0"
    shutil.copytree(SI / "h0", no_s)
    point_inputs_at(no_s, SI / "h0")
    (no_s / "OUT.si_diamond" / "srs1_nao.csr.xz").unlink()
    out = tmp_path / "refused"
    res = runner.invoke(main, ["infer", str(no_s), "--model", str(model), "-o", str(out)])
    assert res.exit_code == 2 and "overlap S" in res.output
    res = runner.invoke(main, ["infer", str(SI / "h0"), "--model", str(model), "-o", str(out), "--write", "siesta"])
    assert res.exit_code == 2 and "siesta zeroth-step run" in res.output
    res = runner.invoke(main, ["infer", str(SI / "h0"), "--model", str(model), "-o", str(out),
                               "--s-from", str(ROT / "rotated" / "scf")])
    assert res.exit_code == 2 and "error" in res.output
    res = runner.invoke(main, ["eval", str(data), "--model", str(tmp_path / "nope.pt")])
    assert res.exit_code == 2 and "no such model" in res.output


def test_species_pairs_missing_from_a_structure(tmp_path):
    """SIESTA H2O and CH4 (molecules dataset): most of the 9 species-pair edge types of the model are
    empty in each molecule (no C in H2O, no O in CH4); training, its validation pass and prediction skip them.
    And the band error of a gapped molecule (HOMO, LUMO) instead of nothing or NaN."""
    items = []
    for name in ("m0000", "m0002"):
        with tarfile.open(shared_path("datasets", "siesta", "molecules", f"{name}.tar.xz")) as tf:
            tf.extractall(tmp_path, filter="data")
        items.append((name, si.read_run(tmp_path / name / "scf").attach_h0(si.read_h0(tmp_path / name / "h0"))))
    assert [h.atoms.get_chemical_formula() for _, h in items] == ["H2O", "CH4"]
    data = write_dataset(tmp_path / "mol.h5", items)
    cfg = TrainConfig(epochs=1, val_fraction=0.5, kspace_weight=0.05, kspace_points=2)
    summary = train([data], tmp_path / "m.pt", cfg, TINY, progress=False)
    assert np.isfinite(summary["best_val_mae_meV"])
    water = items[0][1]
    dh = predict(water, load(tmp_path / "m.pt")).H - water.H0
    assert dh.hermiticity_error() < 1e-6 and np.abs(dh.data).max() > 0
    # every level of H2O lies > 2 eV from its mid-gap E_F: its band error is that of HOMO and LUMO
    report = evaluate(items[:1], load(tmp_path / "m.pt"), nk=1, window=2.0)
    assert report["structures"][0]["bands"]["model"]["nbands"] == 2 and json.dumps(report, allow_nan=False)
    assert report["overall"]["band_structures"] == 1 and np.isfinite(report["overall"]["band_model_mae_meV"])

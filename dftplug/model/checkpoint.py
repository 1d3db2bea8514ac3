"""Self-describing model checkpoints: save, load, and refuse data the model was not trained for.

A checkpoint is one ``torch.save`` file holding a plain dict:

    format="dftplug-model", format_version, dftplug_version, created (UTC ISO time)
    units                {"energy": "eV", "length": "Angstrom"}, orbital_convention
    layout               species, shells' l per species, nspin  (:class:`.irreps.BasisLayout`)
    basis                full basis per species (JSON: l, zeta, n, rcut in Å)
    code, code_versions  DFT code the data came from (compared by name) and its versions
    h0_kind              what H0 is (e.g. "H[rho_atomic]"); r_max_A radial cutoff
    model_config         :class:`.model.ModelConfig`; target_sigma_eV; state_dict
    training             data files, structure names per split, train config, wall time
    metrics              validation MAE etc. (meV)
    resume               optimizer/scheduler/epoch state (only in the per-epoch training file)
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import torch

from dftplug import __version__
from dftplug.basis import Basis
from dftplug.errors import DftplugError, MismatchError
from dftplug.fileio import atomic_path
from dftplug.hamiltonian import Hamiltonian
from dftplug.orbitals import ORBITAL_CONVENTION

from .irreps import BasisLayout
from .model import DeltaHModel, ModelConfig, make_model

FORMAT = "dftplug-model"
FORMAT_VERSION = 3  # 2: edges on the overlap pattern, atom-density descriptors; 3: bond-angle invariants, response shells
PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "models"


class ModelMismatchError(MismatchError):
    """The data is not what the model was trained on (species, basis, code, H0 kind, nspin)."""


class CheckpointError(DftplugError):
    """A file is not a readable dftplug model checkpoint."""


@dataclass
class Checkpoint:
    """A loaded model with its metadata (``meta`` = the checkpoint dict without the weights)."""

    model: DeltaHModel
    meta: dict

    @property
    def layout(self) -> BasisLayout:
        return self.model.layout

    @property
    def basis(self) -> Basis:
        return Basis.from_json(self.meta["basis"])

    def check_compatible(self, h: Hamiltonian, what: str = "") -> None:
        """Refuse (ModelMismatchError) data of another code, H0 kind, species, basis or nspin."""
        tag = f"{what}: " if what else ""
        meta = self.meta
        code = h.provenance.get("code")
        if code != meta["code"]:
            raise ModelMismatchError(f"{tag}data from {code!r}, model trained on {meta['code']!r} data")
        if h.h0_kind != meta["h0_kind"]:
            raise ModelMismatchError(f"{tag}H0 kind {h.h0_kind!r}, model trained on {meta['h0_kind']!r}")
        if h.nspin != self.layout.nspin:
            raise ModelMismatchError(f"{tag}{_spin_kind(h.nspin)} data, model trained on "
                                     f"{_spin_kind(self.layout.nspin)} data")
        unknown = sorted(set(h.symbols) - set(self.layout.species))
        if unknown:
            raise ModelMismatchError(f"{tag}species {', '.join(unknown)} unknown to the model "
                                     f"(trained on {', '.join(self.layout.species)})")
        for s in dict.fromkeys(h.symbols):
            have, want = h.basis.ls(s), list(self.layout.ls[self.layout.species.index(s)])
            if have != want:
                raise ModelMismatchError(f"{tag}basis of {s} is {h.basis.label(s)} (l = {have}), model "
                                         f"trained on {self.basis.label(s)} (l = {want})")


def _spin_kind(nspin: int) -> str:
    return {1: "nspin 1 (spin-restricted)", 2: "nspin 2 (collinear spin)",
            4: "nspin 4 (spin-orbit)"}.get(nspin, f"nspin {nspin}")


def checkpoint_dict(model: DeltaHModel, meta: dict) -> dict:
    """Metadata + weights, ready for :func:`save`."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "dftplug_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "units": {"energy": "eV", "length": "Angstrom"}, "orbital_convention": ORBITAL_CONVENTION,
            "layout": model.layout.to_dict(), "model_config": model.config.to_dict(),
            **meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def save(path, model: DeltaHModel, meta: dict) -> Path:
    """Write a checkpoint atomically (``meta``: code, h0_kind, basis, training, metrics, ...)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(checkpoint_dict(model, meta), tmp)
    return path


def resolve(name_or_path) -> Path:
    """A checkpoint file, or the name of a model shipped in ``dftplug/models/`` (e.g. abacus_si8)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = PRETRAINED_DIR / f"{name_or_path}.pt"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(q.stem for q in PRETRAINED_DIR.glob("*.pt"))) or "none"
    raise CheckpointError(f"{name_or_path}: no such model file, nor a shipped model (shipped: {known})")


def load(name_or_path, device="cpu", dtype: str | None = None) -> Checkpoint:
    """Load a checkpoint (file or shipped name); ``dtype`` overrides the stored float32/float64."""
    path = resolve(name_or_path)
    try:
        d = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"{path}: cannot read as a model checkpoint ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dftplug model checkpoint")
    if d.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format_version {d.get('format_version')} is not {FORMAT_VERSION} "
                              "(written by another dftplug version: retrain the model)")
    cfg = dict(d["model_config"], **({"dtype": dtype} if dtype else {}))
    config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    model = make_model(BasisLayout.from_dict(d["layout"]), config)
    model.load_state_dict(d["state_dict"])
    model.to(device).eval()
    meta = {k: v for k, v in d.items() if k not in ("state_dict", "resume")}
    meta["path"] = str(path)
    return Checkpoint(model, meta)


def load_pretrained(name: str = "abacus_si8", device="cpu") -> Checkpoint:
    """A model shipped with dftplug, by name (``dftplug/models/<name>.pt``)."""
    path = PRETRAINED_DIR / f"{name}.pt"
    if not path.is_file():
        known = ", ".join(sorted(q.stem for q in PRETRAINED_DIR.glob("*.pt"))) or "none"
        raise CheckpointError(f"no shipped model named {name!r} (shipped: {known})")
    return load(path, device)

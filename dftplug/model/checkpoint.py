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
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dftplug import __version__
from dftplug.basis import Basis
from dftplug.errors import DftplugError, MismatchError
from dftplug.fileio import atomic_path
from dftplug.hamiltonian import Hamiltonian
from dftplug.orbitals import ORBITAL_CONVENTION

from .build import make_model
from .irreps import BasisLayout
from .model import DeltaHModel, ModelConfig

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
            differs = h.basis.mismatch(self.basis, s)
            if differs:
                raise ModelMismatchError(f"{tag}basis of {s} differs from the model's: {differs} "
                                         "(data first, model second)")


def _spin_kind(nspin: int) -> str:
    return {1: "nspin 1 (spin-restricted)", 2: "nspin 2 (collinear spin)",
            4: "nspin 4 (spin-orbit)"}.get(nspin, f"nspin {nspin}")


def digest(d: dict) -> str:
    """SHA-256 of a checkpoint dict: its metadata (canonical JSON) and every weight's dtype, shape
    and bytes (the ``resume`` state and the digest itself excluded). Stored as ``sha256``."""
    sha = hashlib.sha256()
    meta = {k: v for k, v in d.items() if k not in ("state_dict", "resume", "sha256")}
    sha.update(json.dumps(meta, sort_keys=True, default=repr).encode())
    for key in sorted(d["state_dict"]):
        t = d["state_dict"][key].detach().cpu().contiguous()
        sha.update(f"{key} {t.dtype} {tuple(t.shape)}".encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def _plain(obj):
    """``obj`` with numpy scalars/arrays and paths as plain Python (what ``weights_only`` loads)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def checkpoint_dict(model: DeltaHModel, meta: dict) -> dict:
    """Metadata + weights + their :func:`digest`, ready for :func:`save`."""
    d = {"format": FORMAT, "format_version": FORMAT_VERSION, "dftplug_version": __version__,
         "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "units": {"energy": "eV", "length": "Angstrom"}, "orbital_convention": ORBITAL_CONVENTION,
         "layout": model.layout.to_dict(), "model_config": model.config.to_dict(),
         **_plain(meta), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    d["sha256"] = digest(d)
    return d


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


def read_checkpoint(path) -> dict:
    """The checkpoint dict of ``path``, unpickled with ``weights_only=True`` (tensors and plain
    containers only: a file from elsewhere cannot run code) and checked against its ``sha256``."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot read as a model checkpoint (corrupt, truncated, or not "
                              f"a plain-data dftplug file: {first[:200]})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dftplug model checkpoint")
    if d.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format_version {d.get('format_version')} is not {FORMAT_VERSION} "
                              "(written by another dftplug version: retrain the model)")
    if "sha256" not in d:
        raise CheckpointError(f"{path}: no sha256 digest (written before checkpoints carried one): retrain, "
                              "or trust the file and add it with dftplug.model.checkpoint.digest")
    try:
        ok = digest(d) == d["sha256"]
    except (KeyError, TypeError, AttributeError, RuntimeError):
        ok = False
    if not ok:
        raise CheckpointError(f"{path}: contents do not match the stored sha256 digest: the file is corrupt")
    return d


def load(name_or_path, device="cpu", dtype: str | None = None) -> Checkpoint:
    """Load a checkpoint (file or shipped name); ``dtype`` overrides the stored float32/float64."""
    path = resolve(name_or_path)
    d = read_checkpoint(path)
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

"""Evaluation of a model on converted data: ΔH errors next to the H0 baseline, band errors, and the
density error of the predicted H as an SCF starting guess (:mod:`dftplug.guess_quality`)."""
from __future__ import annotations

import time
import zlib
from collections import defaultdict

import numpy as np

from dftplug.blocksparse import BlockSparse, union_pairs
from dftplug.errors import DftplugError
from dftplug.guess_quality import GuessReference, guess_quality
from dftplug.hamiltonian import Hamiltonian, spin_identity

from .bands import band_energies, sample_kpoints
from .checkpoint import Checkpoint
from .infer import predict_delta
from .irreps import pair_type_label


def element_pair_types(h: Hamiltonian, pairs: np.ndarray, layout) -> np.ndarray:
    """Orbital-pair label (l_row·10 + l_col) of every element of a block pattern, in storage order."""
    kind = np.array([layout.species.index(s) for s in h.symbols])
    types = kind[pairs[:, 0]] * len(layout.species) + kind[pairs[:, 1]]
    return np.concatenate([layout.pairs[t].orbital_pair_type for t in types]) if len(types) else np.zeros(0, int)


def band_errors(h: Hamiltonian, h_pred, nk: int = 4, window: float = 2.0, seed: int = 0, name: str = "") -> dict:
    """Eigenvalue errors (meV) of H_pred and of H0 against H_scf at Γ + ``nk`` − 1 random k-points,
    for the DFT bands within ``window`` eV of E_F and the highest occupied and lowest empty level at each
    k (a molecule's gap may hold E_F > ``window`` from every level), matched by band index. "shifted"
    removes the mean error first (a constant shift of all bands changes no occupation)."""
    kpts = sample_kpoints(nk, np.random.default_rng([seed, zlib.crc32(name.encode())]), h.atoms.pbc)
    errs = {"model": [], "h0": []}
    for k in kpts:
        for spin in range(1 if h.nspin == 4 else h.nspin):  # nspin 4: one set of spinor levels
            ref = band_energies(h.H, h.S, k, spin)
            sel = np.abs(ref - h.fermi_level) <= window
            occupied = int(np.sum(ref <= h.fermi_level))  # ref is ascending
            sel[max(occupied - 1, 0):occupied + 1] = True  # the frontier levels
            for key, m in (("model", h_pred), ("h0", h.H0)):
                errs[key].append(band_energies(m, h.S, k, spin)[sel] - ref[sel])
    out = {}
    for key, e in errs.items():
        e = np.concatenate(e)
        out[key] = {"mae_meV": 1e3 * float(np.abs(e).mean()) if e.size else None,
                    "max_meV": 1e3 * float(np.abs(e).max(initial=0.0)),
                    "shifted_mae_meV": 1e3 * float(np.abs(e - e.mean()).mean()) if e.size else None,
                    "nbands": int(e.size)}
    return out


GUESS_METRICS = ("dm_error_s", "population_error", "charge_error_max_e", "charge_error_rms_e", "hartree_meV")
"""The density-error numbers of :class:`dftplug.guess_quality.GuessQuality`, best predictor of the
restart cost first (README, "Quality of an SCF starting guess")."""


def _reference(h: Hamiltonian) -> GuessReference | None:
    """The converged state of ``h`` to compare guesses with; None when it states no k-mesh or electron count."""
    try:
        return GuessReference.from_hamiltonian(h)
    except DftplugError:
        return None


def guess_errors(h: Hamiltonian, h_pred: BlockSparse) -> dict | None:
    """Density errors (:func:`dftplug.guess_quality.guess_quality`) of the guess ``h_pred`` and of H0
    against the DM of ``h.H`` on the run's mesh and smearing: {"model": {...}, "h0": {...}}; None when
    the structure states no k-mesh or electron count."""
    ref = _reference(h)
    return ref and {key: guess_quality(m, ref).as_dict() for key, m in (("model", h_pred), ("h0", h.H0))}


def validation_guess_errors(items, checkpoint: Checkpoint, cache: dict) -> dict:
    """Mean density errors of the model's guess (and of H0) over ``items`` ((name, Hamiltonian with H,
    H0, S, k-mesh) pairs), for a training loop's validation: {"guess_structures": n,
    "guess_model_dm_error_s": ..., "guess_h0_dm_error_s": ..., ...} (:data:`GUESS_METRICS`).
    ``cache`` is a dict the caller keeps between calls: each structure's reference state and H0
    numbers are computed once, after that a call costs one prediction and one diagonalisation on the
    run's k-mesh per structure (8-atom Si, 14 k-points: ~0.1 s). ``checkpoint``: the model being
    trained as ``Checkpoint(model, meta)`` (``meta`` with the basis and nspin it was built for)."""
    records = []
    for name, h in items:
        if name not in cache:
            ref = _reference(h)
            cache[name] = (ref, ref and guess_quality(h.H0, ref).as_dict())
        ref, h0_numbers = cache[name]
        if ref is not None:
            model_numbers = guess_quality(h.H0 + predict_delta(h, checkpoint), ref).as_dict()
            records.append({"guess": {"model": model_numbers, "h0": h0_numbers}})
    return _guess_means(records)


def _guess_means(structures: list[dict]) -> dict:
    """Mean of every guess metric over the structures that have them: guess_{model,h0}_{metric}."""
    have = [r["guess"] for r in structures if r.get("guess")]
    out = {"guess_structures": len(have)} if have else {}
    for key in ("model", "h0") if have else ():
        for m in GUESS_METRICS:
            vals = [g[key][m] for g in have if g[key][m] is not None]
            out[f"guess_{key}_{m}"] = float(np.mean(vals)) if vals else None
    return out


def evaluate(items, checkpoint: Checkpoint, nk: int = 4, window: float = 2.0, guess: bool = True) -> dict:
    """Errors of the model on ``items`` ((name, Hamiltonian with H, H0, S) pairs): per structure,
    per orbital-pair type and overall; MAE and max in meV of H_pred − H_scf and of H0 − H_scf over
    the stored elements of H ∪ H0 ∪ S, the MAE after removing the best μ·S, inference time, band errors,
    and with ``guess`` the density errors of H_pred and H0 as SCF starting guesses (:func:`guess_errors`)."""
    structures = []
    by_type = defaultdict(lambda: np.zeros(5))  # sum|model|, sum|h0|, count, max|model|, max|h0|
    totals = np.zeros(4)  # sum|model|, sum|h0|, sum|fixed|, count
    for name, h in items:
        checkpoint.check_compatible(h, what=name)
        t0 = time.perf_counter()
        dh = predict_delta(h, checkpoint)
        seconds = time.perf_counter() - t0
        pattern = union_pairs(h.union_pairs(), dh.pairs, natoms=h.natoms)  # ΔH_pred = 0 outside dh's
        true, dh = (h.H - h.H0).with_pairs(pattern), dh.with_pairs(pattern)
        s = spin_identity(h.S.with_pairs(dh.pairs).data[0], dh.nspin)
        err = dh.data - true.data
        mu = float(np.real(np.sum(err * s)) / np.sum(s * s))
        fixed = err - mu * s
        labels = np.tile(element_pair_types(h, dh.pairs, checkpoint.layout), err.shape[0])
        ae, ab = np.abs(err).ravel(), np.abs(true.data).ravel()
        for lab in np.unique(labels):
            sel = labels == lab
            acc = by_type[pair_type_label(int(lab))]
            acc += [ae[sel].sum(), ab[sel].sum(), sel.sum(), 0, 0]
            acc[3], acc[4] = max(acc[3], ae[sel].max()), max(acc[4], ab[sel].max())
        totals += [ae.sum(), ab.sum(), np.abs(fixed).sum(), ae.size]
        h_pred = h.H0 + dh
        rec = {"name": name, "mae_meV": 1e3 * ae.mean(), "max_meV": 1e3 * ae.max(),
               "gauge_fixed_mae_meV": 1e3 * float(np.abs(fixed).mean()), "mu_residual_meV": 1e3 * mu,
               "h0_mae_meV": 1e3 * ab.mean(), "h0_max_meV": 1e3 * ab.max(), "inference_s": seconds}
        if nk > 0 and h.fermi_level is not None:
            rec["bands"] = band_errors(h, h_pred, nk, window, name=name)
        if guess:
            rec["guess"] = guess_errors(h, h_pred)
        structures.append(rec)
    n = max(totals[3], 1)
    overall = {"structures": len(structures), "mae_meV": 1e3 * totals[0] / n, "h0_mae_meV": 1e3 * totals[1] / n,
               "gauge_fixed_mae_meV": 1e3 * totals[2] / n,
               "max_meV": max((r["max_meV"] for r in structures), default=0.0),
               "h0_max_meV": max((r["h0_max_meV"] for r in structures), default=0.0),
               "inference_s_mean": float(np.mean([r["inference_s"] for r in structures])) if structures else 0.0}
    overall["improvement_over_h0"] = overall["h0_mae_meV"] / max(overall["mae_meV"], 1e-30)
    overall.update(_guess_means(structures))
    with_bands = [r["bands"] for r in structures if "bands" in r and r["bands"]["model"]["nbands"]]
    if with_bands:  # pooled over the levels in the window (a molecule's gap may leave none)
        n = np.array([b["model"]["nbands"] for b in with_bands])
        overall["band_structures"] = len(with_bands)
        for key in ("model", "h0"):
            for stat in ("mae_meV", "shifted_mae_meV"):
                overall[f"band_{key}_{stat}"] = float(np.average([b[key][stat] for b in with_bands], weights=n))
            overall[f"band_{key}_max_meV"] = float(max(b[key]["max_meV"] for b in with_bands))
    per_type = {k: {"mae_meV": 1e3 * v[0] / v[2], "h0_mae_meV": 1e3 * v[1] / v[2], "max_meV": 1e3 * v[3],
                    "h0_max_meV": 1e3 * v[4], "elements": int(v[2])} for k, v in sorted(by_type.items())}
    return {"overall": overall, "by_orbital_pair": per_type, "structures": structures}

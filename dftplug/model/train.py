"""Training: datasets → split by structure → AdamW with plateau schedule → best checkpoint.

Files written next to ``output`` (model.pt): ``model.train.pt`` (state after every epoch, for
``resume``), ``model.log.csv`` (one row per epoch) and ``model.log.json`` (summary).
"""
from __future__ import annotations

import csv
import json
import math
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dftplug.basis import Basis
from dftplug.errors import DftplugError, MismatchError

from dftplug.fileio import atomic_path

from . import checkpoint as ckpt_io
from . import distributed, streaming
from .build import make_model
from .checkpoint import Checkpoint
from .evaluate import validation_guess_errors
from .graph import Graph, build_graph, collate, graph_pairs
from .irreps import BasisLayout
from .loss import LossWeights, density_ratios, error_sums, loss_terms, residuals, to_blocks
from .model import ModelConfig


@dataclass
class TrainConfig:
    """Training settings ([train] table of the TOML config)."""

    seed: int = 0
    val_fraction: float = 0.2
    epochs: int = 300
    batch_size: int = 1             # structures per step
    lr: float = 3e-3
    weight_decay: float = 0.0
    lr_factor: float = 0.5          # ReduceLROnPlateau on the validation MAE
    lr_patience: int = 8
    min_lr: float = 1e-5
    early_stop_patience: int = 30   # epochs without a better validation MAE
    time_limit_min: float = 30.0    # stop (cleanly, best model kept) after this long; 0 = none
    gauge_weight: float = 0.1       # w_gauge of :mod:`.loss`
    kspace_weight: float = 0.0      # w_k of :mod:`.loss`; > 0 turns on the band term
    kspace_points: int = 4          # Γ + random k-points per structure for the band term
    band_window: float = 3.0        # eV around E_F for the band term
    density_weight: float = 0.0     # w_ρ of :mod:`.loss` (first-order density error vs H0's); > 0 turns it on
    charge_weight: float = 0.0      # w_q of :mod:`.loss` (first-order Mulliken charge error vs H0's)
    select_by: str = "mae"          # best checkpoint by validation "mae" or "density" (needs density data)
    init_from: str = ""             # fine-tune this checkpoint (file or shipped name): its fit, weights and [model]
    guess_every: int = 10           # epochs between exact guess-quality numbers of the validation set (0: end only)
    device: str = "cpu"


class ConfigError(DftplugError):
    """A training configuration file is not valid."""


def load_config(path) -> tuple[TrainConfig, ModelConfig]:
    """Read ``[train]`` and ``[model]`` tables of a TOML file (unknown keys are an error)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    out = []
    for table, cls in (("train", TrainConfig), ("model", ModelConfig)):
        values = data.get(table, {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(values) - known)
        if bad:
            raise ConfigError(f"{path}: unknown [{table}] keys {', '.join(bad)}")
        out.append(cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}))
    bad = sorted(set(data) - {"train", "model"})
    if bad:
        raise ConfigError(f"{path}: unknown tables {', '.join(bad)}")
    return out[0], out[1]


def data_description(items) -> dict:
    """Code, H0 kind, species, basis and nspin shared by all structures (refuses a mixture)."""
    first = items[0][1]
    code, kind, nspin = first.provenance.get("code"), first.h0_kind, first.nspin
    shells = {}
    versions = set()
    for name, h in items:
        if h.provenance.get("code") != code or h.h0_kind != kind or h.nspin != nspin:
            raise MismatchError(f"{name}: code/H0 kind/nspin {h.provenance.get('code')}/{h.h0_kind}/{h.nspin} "
                                f"differ from {items[0][0]}'s {code}/{kind}/{nspin}; train one model per kind")
        versions.add(str(h.provenance.get("version")))
        for s in dict.fromkeys(h.symbols):
            if s in shells and h.basis.ls(s) != [sh.l for sh in shells[s]]:
                raise MismatchError(f"{name}: basis of {s} differs from the other structures")
            shells.setdefault(s, h.basis.shells[s])
    outside = max(delta_h_outside_pattern(h) for _, h in items)
    if outside > OUTSIDE_PATTERN_TOLERANCE:
        raise MismatchError(f"H − H0 reaches {1e3 * outside:.3g} meV on blocks where the orbitals do not overlap; "
                            "the model predicts ΔH on the overlap pattern only (local-potential change, "
                            "see dftplug.model.graph.graph_pairs): data of another kind (e.g. hybrid functionals)")
    return {"code": code, "code_versions": sorted(versions), "h0_kind": kind, "nspin": nspin,
            "basis": Basis(shells).to_json(), "species": list(shells),
            "max_delta_h_outside_overlap_eV": outside}


OUTSIDE_PATTERN_TOLERANCE = 1e-4  # eV


def delta_h_outside_pattern(h) -> float:
    """max |H − H0| (eV) on the blocks outside the model's edge pattern (0 when all are inside)."""
    dh = h.delta_h()
    inside = dh.find(graph_pairs(h))
    rest = np.ones(len(dh.pairs), bool)
    rest[inside[inside >= 0]] = False
    return float(np.abs(dh.data[:, np.repeat(rest, dh.block_sizes())]).max(initial=0.0))


def split(names: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split by structure: (train indices, validation indices)."""
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = 0 if len(names) < 2 else min(len(names) - 1, max(1, round(fraction * len(names))))
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def _support_radius(graphs: list[Graph], fraction: float) -> float:
    """Bond length (Å) within which ``fraction`` of Σ|ΔH| of ``graphs`` lies. The linear response
    fits bond-length functions only there: the sparse tail would be fitted to noise."""
    r = torch.cat([g.edge_vec[e].norm(dim=-1) for g in graphs for e in g.type_edges])
    w = torch.cat([t.abs().flatten(1).sum(1) for g in graphs for t in g.target])
    order = torch.argsort(r)
    cum = torch.cumsum(w[order].double(), 0)
    k = int(torch.searchsorted(cum, fraction * cum[-1]))
    return float(r[order][min(k, len(r) - 1)])


def _data_scales(train_g: list[Graph]) -> tuple[float, float, float, float]:
    """From the training graphs: r_max (Å, the longest bond whose H0 block is not zero, + 0.5; codes
    may store zero blocks), the linear response's cutoff (Å), the mean edges per atom, and the RMS of
    the target ΔH (eV)."""
    lengths = torch.cat([g.edge_vec[e].norm(dim=-1)[x.flatten(1).abs().amax(1) > 0]
                         for g in train_g for e, x in zip(g.type_edges, g.h0)])
    avg = float(sum(g.n_edges for g in train_g) / sum(len(g.species) for g in train_g))
    sigma = float(torch.cat([t.reshape(-1) for g in train_g for t in g.target]).pow(2).mean().sqrt())
    return float(lengths.max()) + 0.5, _support_radius(train_g, 0.999) + 0.5, avg, sigma


def _starting_checkpoint(name_or_path: str, item):
    """The checkpoint ``init_from`` names, checked against the data (one structure ``item`` = (name, h))
    for species, basis (l, zeta, cutoff), spin kind and code."""
    start = ckpt_io.load(name_or_path)
    start.check_compatible(item[1])
    return start


def _mae(model, graphs: list[Graph], layout, device, dtype) -> dict:
    """Validation metrics: ΔH MAE (meV, model and H0) and, where the graphs carry density-response
    data, the mean first-order density and charge errors relative to the H0 guess (:func:`.loss.density_ratios`)."""
    model.eval()
    sums = {"raw": 0.0, "fixed": 0.0, "base": 0.0, "count": 0.0}
    ratios = []
    with torch.no_grad():
        for g in graphs:
            gd = g.to(device, dtype)
            pred, _ = model(gd)
            for k, v in error_sums(pred, gd, layout).items():
                if k in sums:
                    sums[k] += float(v.sum())
            if any(d is not None for d in gd.density):
                res, _, _ = residuals(pred, gd, layout.block_channels)
                ratios.append(density_ratios(to_blocks(res, layout), gd).double())
    n = max(sums["count"], 1.0)
    out = {"mae_meV": 1e3 * sums["raw"] / n, "gauge_fixed_mae_meV": 1e3 * sums["fixed"] / n,
           "h0_mae_meV": 1e3 * sums["base"] / n}
    if ratios:
        mean = torch.cat(ratios).mean(0)
        out["density_ratio"], out["charge_ratio"] = float(mean[0]), float(mean[1])
    return out


@dataclass
class _State:
    epoch: int = 0
    best: float = math.inf
    best_epoch: int = -1
    stale: int = 0
    elapsed: float = 0.0
    log: list = field(default_factory=list)


def train(data_paths, output, config: TrainConfig | None = None, model_config: ModelConfig | None = None,
          resume: bool = False, progress: bool = True) -> dict:
    """Train a ΔH model on HDF5 datasets and write the best checkpoint (by validation MAE) to
    ``output``. Deterministic for a given seed (CPU). Returns the summary also written to
    ``<output>.log.json`` (None on the ranks > 0 of a torchrun job, see :mod:`.distributed`)."""
    config = config or TrainConfig()
    model_config = model_config or ModelConfig()
    output = Path(output)
    state_path = output.with_suffix(".train.pt")
    if resume and not state_path.is_file():
        raise DftplugError(f"{state_path}: nothing to resume (no training state file)")
    ctx = distributed.setup(config.device)
    index = streaming.structure_index(data_paths)
    names = [n for _, _, n in index]
    train_idx, val_idx = split(names, config.val_fraction, config.seed)
    shard = ctx.shard(train_idx)  # this rank's training structures; rank 0 reads all (fit, validation)
    if not shard:
        raise DftplugError(f"{len(train_idx)} training structures for {ctx.world} processes: use fewer processes")
    wanted = range(len(names)) if ctx.is_main else shard
    items = {i: (name, h) for i, name, h in streaming.iter_structures(index, wanted)}
    desc = ctx.on_main(lambda: data_description(list(items.values())))
    layout = BasisLayout.from_basis(Basis.from_json(desc["basis"]), desc["species"], desc["nspin"])
    with_density = config.density_weight > 0 or config.charge_weight > 0 or config.select_by == "density"
    if config.select_by not in ("mae", "density"):
        raise ConfigError(f"select_by {config.select_by!r}: use \"mae\" or \"density\"")
    if layout.nspin == 4 and (config.kspace_weight > 0 or with_density):
        raise ConfigError("the band and density terms (kspace_weight, density_weight, charge_weight, select_by "
                          "\"density\") are not implemented for spin-orbit (nspin 4) data; leave them off")
    kpts = config.kspace_points if config.kspace_weight > 0 else 0
    graphs = {i: build_graph(h, layout, name, kpoints=kpts if i in train_idx else 0,
                             band_window=config.band_window, seed=config.seed, density=with_density)
              for i, (name, h) in tqdm(items.items(), desc="graphs", unit="structure",
                                       disable=not (progress and ctx.is_main))}
    train_g, val_g = [graphs[i] for i in train_idx if i in graphs], [graphs[i] for i in val_idx if i in graphs]
    local_g = [graphs[i] for i in shard]
    start = _starting_checkpoint(config.init_from, next(iter(items.values()))) if config.init_from else None
    val_items = [items[i] for i in val_idx if i in items]  # for the guess-quality numbers (dftplug.guess_quality)
    del items
    scales = ctx.on_main(lambda: _data_scales(train_g))
    sigma = scales[3]
    torch.manual_seed(config.seed)
    if start is None:
        model_config.r_max, model_config.response_r_max, model_config.avg_neighbors = scales[:3]
        model = make_model(layout, model_config)
        stats = ctx.on_main(lambda: model.set_statistics(train_g))
    else:  # keep the checkpoint's closed-form fit and scales, fine-tune its network
        model, model_config = start.model.train(), start.model.config
        stats = {"fine_tuned_from": start.meta["path"], **start.meta["training"].get("target_rms_eV", {})}
    device, dtype = ctx.device, getattr(torch, model_config.dtype)
    model.to(device)
    net = ctx.wrap(model)  # DDP: broadcasts rank 0's fitted buffers and parameters
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=config.lr_factor, patience=config.lr_patience,
                                                       min_lr=config.min_lr)
    weights = LossWeights(gauge=config.gauge_weight, kspace=config.kspace_weight, density=config.density_weight,
                          charge=config.charge_weight)
    score = "density_ratio" if config.select_by == "density" else "mae_meV"  # what picks the best checkpoint
    start_metrics = ctx.on_main(lambda: _mae(model, val_g or train_g, layout, device, dtype))  # linear response alone
    st = _State()
    if resume:
        saved = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(saved["state_dict"])
        opt.load_state_dict(saved["resume"]["optimizer"])
        sched.load_state_dict(saved["resume"]["scheduler"])
        st = _State(**saved["resume"]["state"])
    meta = {**desc, "r_max_A": model_config.r_max, "target_sigma_eV": sigma,
            "training": {"data": [str(p) for p in data_paths], "train": [names[i] for i in train_idx],
                         "validation": [names[i] for i in val_idx], "config": asdict(config),
                         "target_rms_eV": stats, "validation_before_training": start_metrics}}
    if not resume:  # the closed-form fit alone is the first candidate for the best model
        st.best, st.best_epoch = start_metrics[score], 0
        meta["metrics"] = {"epoch": 0, "validation": start_metrics, "wall_time_s": 0.0}
        if ctx.is_main:
            ckpt_io.save(output, model, meta)
    guess_cache = {}  # each validation structure's converged reference, computed once
    t_start = time.perf_counter() - st.elapsed
    bar = tqdm(total=config.epochs, initial=st.epoch, desc="train", unit="epoch",
               disable=not (progress and ctx.is_main))
    log_csv = output.with_suffix(".log.csv")
    while st.epoch < config.epochs and st.stale < config.early_stop_patience:
        gen = torch.Generator().manual_seed(config.seed * 100003 + st.epoch)
        order = torch.randperm(len(local_g), generator=gen).tolist()
        model.train()
        losses = []
        longest = ctx.shard_size(len(train_idx))  # a shorter shard wraps around: every rank takes every step
        for b in range(0, longest, config.batch_size):
            picks = range(b, min(b + config.batch_size, longest))
            batch = collate([local_g[order[k % len(order)]] for k in picks]).to(device, dtype)
            pred, _ = net(batch)
            terms = loss_terms(pred, batch, layout, sigma, weights)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            losses.append({k: float(v.detach()) for k, v in terms.items()})
        val = ctx.on_main(lambda: _mae(model, val_g or train_g, layout, device, dtype))
        sched.step(val[score])
        st.epoch += 1
        st.elapsed = time.perf_counter() - t_start
        row = {"epoch": st.epoch, "lr": opt.param_groups[0]["lr"], "time_s": round(st.elapsed, 1),
               **{f"loss_{k}": v for k, v in ctx.average({k: np.mean([x[k] for x in losses])
                                                          for k in losses[0]}).items()},
               **{f"val_{k}": v for k, v in val.items()}}
        due = bool(config.guess_every) and st.epoch % config.guess_every == 0
        row.update(_guess_numbers(model, meta, val_items, guess_cache) if due and ctx.is_main
                   else dict.fromkeys(GUESS_COLUMNS))
        st.log.append(row)
        improved = val[score] < st.best
        if improved:
            st.best, st.best_epoch, st.stale = val[score], st.epoch, 0
            meta["metrics"] = {"epoch": st.epoch, "validation": val, "wall_time_s": st.elapsed}
            if ctx.is_main:
                ckpt_io.save(output, model, meta)
        else:
            st.stale += 1
        if ctx.is_main:
            _write_csv(log_csv, st.log)
            full = ckpt_io.checkpoint_dict(model, meta)
            full["resume"] = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "state": asdict(st)}
            with atomic_path(state_path) as tmp:
                torch.save(full, tmp)
        bar.update()
        bar.set_postfix(val_meV=f"{val['mae_meV']:.3f}", h0_meV=f"{val['h0_mae_meV']:.3f}",
                        best=f"{st.best:.3f}")
        if ctx.on_main(lambda: bool(config.time_limit_min and st.elapsed > 60 * config.time_limit_min)):
            break
    bar.close()
    del net  # the DDP wrapper goes before the process group (see Context.close)
    ctx.close()
    if not ctx.is_main:
        return None
    summary = {"output": str(output), "epochs": st.epoch, "best_epoch": st.best_epoch,
               "best_val_mae_meV": meta.get("metrics", {}).get("validation", {}).get("mae_meV"),
               "best_val_density_ratio": meta.get("metrics", {}).get("validation", {}).get("density_ratio"),
               "selected_by": score, "h0_val_mae_meV": st.log[-1]["val_h0_mae_meV"] if st.log else None,
               "val_mae_before_training_meV": start_metrics["mae_meV"],
               "wall_time_s": st.elapsed, "train_structures": len(train_g), "val_structures": len(val_g),
               # with one structure there is nothing held out: the errors above are training errors
               "error_set": "validation" if val_g else "training",
               "log_csv": str(log_csv)}
    best = ckpt_io.load(output, device)
    summary["best_val_guess"] = _guess_numbers(best.model, best.meta, val_items, guess_cache)
    output.with_suffix(".log.json").write_text(json.dumps(summary, indent=2))
    return summary


GUESS_COLUMNS = ("val_guess_model_dm_error_s", "val_guess_h0_dm_error_s")


def _guess_numbers(model, meta: dict, items: list, cache: dict) -> dict:
    """The exact guess-quality numbers (:mod:`dftplug.guess_quality`: the DM of the predicted H and of H0
    filled like each run, against that of H_scf; ‖ΔD‖_S per electron ranks measured restarts best) of the
    validation ``items`` for the log: {column: mean} (None without validation structures)."""
    if not items:
        return dict.fromkeys(GUESS_COLUMNS)
    was_training = model.training
    numbers = validation_guess_errors(items, Checkpoint(model.eval(), meta), cache)
    model.train(was_training)
    return {c: numbers.get(c.removeprefix("val_")) for c in GUESS_COLUMNS}


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

"""Where a model's SCF-guess error comes from (a benchmark, not a test): the density error of its guess when parts
of the predicted ΔH are replaced by the exact ones.

    OMP_NUM_THREADS=1 python scripts/bench_error_budget.py MODEL DATA.h5 [--shells 2.8 4.2] [--json]

(one BLAS thread: each guess is a diagonalisation on the run's k-mesh, ~10 s for a 64-atom Si cell on one core,
and oversubscribed BLAS threads on a busy machine make that minutes)

For every structure of DATA.h5 (converted SCF runs with their H0) it prints ``dftplug.guess_quality``'s
``dm_error_s`` (‖ΔD‖_S per electron against the SCF density) of the guesses

* H0, and H0 + ΔH_pred (the model);
* the model with its on-site blocks exact, and with every block of bond length ≤ r exact for each ``--shells`` r (Å);
* the model minus its best per-atom potential shift, ΔH_ij(R) − ½(v_i + v_j) S_ij(R) with v (eV) fitted to the
  error by least squares over all elements (the error a per-atom electrostatic correction could remove), and the
  exact ΔH plus that shift alone (what the shift part of the error costs by itself).

A restart pays for ``dm_error_s`` (README, "Quality of a starting guess"), so this says which part of the model to
improve: the shells whose exact blocks lower it most.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from dftplug.blocksparse import BlockSparse
from dftplug.dataset import iter_dataset
from dftplug.guess_quality import GuessReference, guess_quality
from dftplug.model import load
from dftplug.model.graph import graph_pairs
from dftplug.model.infer import predict_delta


def per_atom_shift(error: np.ndarray, overlap: np.ndarray, pairs: np.ndarray, block: np.ndarray,
                   natoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares per-atom shifts v (natoms,) eV of ``error`` ≈ ½(v_i + v_j) S_ij(R) over all elements
    (``error``, ``overlap``: (nnz,) block elements, ``block``: (nnz,) index of each element's pair). Returns
    (v, the shift pattern (nnz,))."""
    nb = len(pairs)
    s2 = np.bincount(block, overlap * overlap, nb)
    se = np.bincount(block, overlap * error, nb)
    i, j = pairs[:, 0], pairs[:, 1]
    normal = np.zeros((natoms, natoms))
    for a, c in ((i, i), (i, j), (j, i), (j, j)):
        np.add.at(normal, (a, c), 0.25 * s2)
    rhs = np.bincount(i, 0.5 * se, natoms) + np.bincount(j, 0.5 * se, natoms)
    v = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    return v, 0.5 * (v[i] + v[j])[block] * overlap


def budget(h, ckpt, shells) -> dict:
    """dm_error_s of each guess variant (module docstring) for one structure ``h`` (spin-unpolarised)."""
    if h.nspin != 1:
        raise SystemExit(f"{h.provenance.get('source', 'structure')}: nspin {h.nspin}, this budget is for nspin 1")
    pairs = graph_pairs(h)
    pred = predict_delta(h, ckpt).with_pairs(pairs).data[0]
    exact = h.delta_h().with_pairs(pairs).data[0]
    overlap = h.S.with_pairs(pairs)
    block = np.repeat(np.arange(len(pairs)), overlap.block_sizes())
    bond = np.linalg.norm(h.bond_vectors(pairs), axis=1)[block]
    v, shift = per_atom_shift(pred - exact, overlap.data[0], pairs, block, h.natoms)
    ref = GuessReference.from_hamiltonian(h)

    def dm_error(delta: np.ndarray) -> float:  # H0 keeps its longer (non-local) range, where ΔH = 0
        return guess_quality(h.H0 + BlockSparse(overlap.norb, pairs, delta[None]), ref).dm_error_s

    out = {"H0": dm_error(np.zeros_like(pred)), "model": dm_error(pred),
           "model, on-site exact": dm_error(np.where(bond < 1e-8, exact, pred))}
    for r in shells:
        out[f"model, r <= {r:g} A exact"] = dm_error(np.where(bond <= r, exact, pred))
    out["model - per-atom shift"] = dm_error(pred - shift)
    out["exact + per-atom shift"] = dm_error(exact + shift)
    out["shift rms meV"] = 1e3 * float(np.std(v))
    out["mae meV"] = 1e3 * float(np.abs(pred - exact).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="checkpoint file or shipped model name")
    ap.add_argument("data", help="HDF5 dataset (dftplug convert) of SCF runs with their H0")
    ap.add_argument("--shells", type=float, nargs="+", default=[2.8, 4.2], help="bond lengths r (Å)")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ckpt = load(args.model)
    rows = {name: budget(h, ckpt, args.shells) for name, h in iter_dataset(args.data)}
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    keys = list(next(iter(rows.values())))
    print(f"{'guess (dm_error_s)':28s}" + "".join(f"{n[:12]:>13s}" for n in rows))
    for k in keys:
        print(f"{k:28s}" + "".join(f"{r[k]:13.3g}" for r in rows.values()))


if __name__ == "__main__":
    main()

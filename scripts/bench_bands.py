"""Timing of the band-structure paths: dense vs number of k-points and orbitals, sparse
shift-invert vs dense on supercells up to 1,000+ atoms (tiled from a fixture's H).

    python scripts/bench_bands.py [--run fixtures/abacus311/si_diamond/scf] [--atoms 1024]

Everything is measured in this one run on this machine; the dense time of the largest cell is
extrapolated from the measured ones with t ∝ nao³ (stated as such) unless --dense-max allows it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.linalg

from dftplug.bands import band_structure, bands_near, explicit_path, standard_path
from dftplug.kspace import BlochSum
from dftplug.parsers import read_run
from dftplug.supercell import tile

ROOT = Path(__file__).resolve().parents[1]


def timed(func, *args, **kwargs):
    t0 = time.perf_counter()
    out = func(*args, **kwargs)
    return time.perf_counter() - t0, out


def kpoint_scaling(h, counts=(50, 100, 200, 400, 800)):
    print("\n[1] dense path, unit cell: time vs number of k-points")
    print(f"{'nk':>6} {'time (s)':>10} {'ms per k':>10}")
    for nk in counts:
        t, _ = timed(band_structure, h, standard_path(h, npoints=nk))
        print(f"{nk:>6} {t:>10.3f} {1e3 * t / nk:>10.3f}")


def orbital_scaling(h, lengths=(1, 2, 4, 8, 16, 32), nk=4):
    print(f"\n[2] dense path, 1x1xL supercells: time per k-point vs orbitals ({nk} k-points)")
    print(f"{'atoms':>6} {'orbitals':>9} {'s per k':>10}")
    for n in lengths:
        big = tile(h, (1, 1, n))
        t, _ = timed(band_structure, big, explicit_path(big, np.random.default_rng(0).random((nk, 3))))
        print(f"{big.natoms:>6} {int(big.norb().sum()):>9} {t / nk:>10.4f}")


def sparse_vs_dense(h, atoms_target, dense_max, count=8):
    print(f"\n[3] sparse shift-invert ({count} bands nearest E_F) vs dense, 1x1xL supercells, 1 k-point")
    print("   dense = band_structure (guarded, canonical orthogonalisation); lapack = scipy eigh(H, S)\n"
          "   eigenvalues only (Cholesky, no guard): the cheapest dense alternative")
    print(f"{'atoms':>6} {'orbitals':>9} {'sparse (s)':>11} {'dense (s)':>10} {'lapack (s)':>11} "
          f"{'dense/sparse':>13} {'lapack/sparse':>14} {'max|dE| (eV)':>13}")
    k = explicit_path(h, [[0.013, 0.027, 0.0]])
    lengths = [16, 32, 64]
    lengths.append(int(np.ceil(atoms_target / h.natoms)))
    measured = []
    for n in lengths:
        big = tile(h, (1, 1, n))
        nao = int(big.norb().sum())
        kb = explicit_path(big, k.kpts)
        ts, near = timed(bands_near, big, kb, count)
        if nao <= dense_max:
            td, full = timed(band_structure, big, kb)
            hk, sk = (BlochSum(m).sparse(kb.kpts[0]).toarray() for m in (big.H, big.S))
            tl, _ = timed(scipy.linalg.eigh, hk, sk, eigvals_only=True)
            e = full.energies[0, 0]
            nearest = np.sort(e[np.argsort(np.abs(e - big.fermi_level))[:count]])
            err = float(np.abs(nearest - near.energies[0, 0]).max())
            measured.append((nao, td, tl))
            print(f"{big.natoms:>6} {nao:>9} {ts:>11.3f} {td:>10.3f} {tl:>11.3f} {td / ts:>13.1f} "
                  f"{tl / ts:>14.1f} {err:>13.1e}")
        else:
            m = np.array(measured)
            a = np.exp(np.mean(np.log(m[:, 1:]) - 3 * np.log(m[:, :1]), axis=0))   # t = a nao^3 fits
            td, tl = a * nao ** 3
            print(f"{big.natoms:>6} {nao:>9} {ts:>11.3f} {td:>9.0f}* {tl:>10.0f}* {td / ts:>12.0f}* "
                  f"{tl / ts:>13.0f}* {'-':>13}")
            print("   * extrapolated as t = a·nao³ from the measured rows above "
                  f"(a = {a[0]:.3g}, {a[1]:.3g} s); raise --dense-max to measure them")


def compact_cell(h, n=4, count=8):
    print(f"\n[4] compact {n}x{n}x{n} supercell (3D fill-in of the sparse LU), 1 k-point")
    big = tile(h, (n, n, n))
    kb = explicit_path(big, [[0.013, 0.027, 0.0]])
    ts, _ = timed(bands_near, big, kb, count)
    td, _ = timed(band_structure, big, kb)
    print(f"atoms {big.natoms}, orbitals {int(big.norb().sum())}: sparse {ts:.2f} s, dense {td:.2f} s, "
          f"dense/sparse {td / ts:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "fixtures/abacus311/si_diamond/scf"), help="DFT run folder")
    ap.add_argument("--atoms", type=int, default=1024, help="atoms of the largest supercell")
    ap.add_argument("--dense-max", type=int, default=3400, help="largest nao diagonalised densely")
    args = ap.parse_args()
    h = read_run(args.run)
    h.DM = None  # only H and S are tiled
    print(f"{args.run}: {h.natoms} atoms, {int(h.norb().sum())} orbitals, {h.H.nedges} H blocks")
    kpoint_scaling(h)
    orbital_scaling(h)
    sparse_vs_dense(h, args.atoms, args.dense_max)
    compact_cell(h)


if __name__ == "__main__":
    main()

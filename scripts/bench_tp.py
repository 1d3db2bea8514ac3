"""Tensor-product cost vs L_max: e3nn Clebsch–Gordan product vs the local-frame (SO(2)) convolution.

Both layers map C×(0e + 1o + 2e + … + L) edge features to the same irreps with per-edge weights
(as a radial MLP would give them) and span the same maps (CG filters Y_{l_f}, l_f ≤ 2L, every
parity-allowed path; ``tests/test_local_frame.py`` proves the equivalence). Measured: forward +
backward wall time per call on ``--edges`` edges, best of ``--repeat``; printed with the ratio.

Usage: python scripts/bench_tp.py [--lmax 2 3 4 5 6] [--channels 8] [--edges 256] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import torch
from e3nn import o3

from dftplug.model.local_frame import LocalFrameConvolution


def irreps_up_to(lmax: int, channels: int) -> o3.Irreps:
    return o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])


def time_call(fn, repeat: int, device) -> float:
    best = float("inf")
    for _ in range(repeat + 1):  # first call warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def bench(lmax: int, channels: int, edges: int, repeat: int, device, skip_cg_above: int):
    irreps = irreps_up_to(lmax, channels)
    x = irreps.randn(edges, -1, device=device).requires_grad_()
    vec = torch.randn(edges, 3, device=device)
    lf = LocalFrameConvolution(irreps, irreps).to(device)
    w_lf = torch.randn(edges, lf.num_weights, device=device, requires_grad=True)
    t_lf = time_call(lambda: lf(x, vec, w_lf).square().sum().backward(), repeat, device)
    t_cg, n_cg = float("nan"), lf.num_weights
    if lmax <= skip_cg_above:
        sh_irreps = o3.Irreps.spherical_harmonics(2 * lmax)
        tp = o3.FullyConnectedTensorProduct(irreps, sh_irreps, irreps, shared_weights=False).to(device)
        n_cg = tp.weight_numel
        w_cg = torch.randn(edges, tp.weight_numel, device=device, requires_grad=True)

        def cg():
            sh = o3.spherical_harmonics(sh_irreps, vec, normalize=True)
            tp(x, sh, w_cg).square().sum().backward()

        t_cg = time_call(cg, repeat, device)
    return t_cg, t_lf, n_cg, lf.num_weights


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmax", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--edges", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-cg-above", type=int, default=6, help="skip the CG product above this L")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, {args.channels} channels per l, {args.edges} edges, forward+backward")
    print(f"{'L_max':>5}{'CG s':>10}{'local-frame s':>15}{'CG/local':>10}{'weights':>10}")
    crossover = None
    for lmax in args.lmax:
        t_cg, t_lf, n_cg, n_lf = bench(lmax, args.channels, args.edges, args.repeat, device, args.skip_cg_above)
        assert n_cg == n_lf
        ratio = t_cg / t_lf
        if crossover is None and ratio > 1:
            crossover = lmax
        print(f"{lmax:5d}{t_cg:10.4f}{t_lf:15.4f}{ratio:10.2f}{n_lf:10d}")
    print(f"local frame faster from L_max = {crossover}" if crossover else "CG faster on every L_max tried")


if __name__ == "__main__":
    main()

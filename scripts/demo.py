"""`make demo`: the main job on a shipped example, end to end.

1. `dftplug convert` the shipped ABACUS Si fixture (SCF run + its zeroth-step run) into a dataset.
2. `dftplug infer` the zeroth-step run with the shipped model (trained on rattled Si8 cells; the
   2-atom cell is out of the training set) and write ABACUS's `init_chg` files.
3. Bands of H0, of the predicted H and of the DFT H along the fcc path: errors near E_F, and a plot
   (demo_out/bands_si_diamond.png).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo_out"
SI = ROOT / "fixtures" / "abacus311" / "si_diamond"


def dftplug(*args) -> str:
    print("$ dftplug", " ".join(str(a).replace(str(ROOT) + "/", "") for a in args))
    res = subprocess.run([sys.executable, "-m", "dftplug.cli", *map(str, args)], capture_output=True, text=True)
    if res.returncode:
        sys.exit(res.stderr)
    return res.stdout


def main():
    from dftplug.bands import band_structure, standard_path
    from dftplug.parsers import abacus

    OUT.mkdir(exist_ok=True)
    s = json.loads(dftplug("convert", SI / "scf", "-o", OUT / "si_diamond.h5", "--json"))["structures"][0]
    d = s["delta_h"]
    print(f"  {s['formula']} ({s['code']}, basis {s['basis']['Si']}, {s['norb']} orbitals): "
          f"|H_scf − H0| mean {d['mae_meV']:.3f} meV, max {d['max_meV']:.0f} meV")

    guess = json.loads(dftplug("infer", SI / "h0", "--model", "abacus_si8", "-o", OUT / "guess",
                               "--force", "--write", "abacus", "--write", "h5", "--dm", "--json"))
    print(f"  predicted in {guess['seconds']:.2f} s; files: {', '.join(Path(f).name for f in guess['files'])}")
    print("  add to the SCF run's INPUT:  " + "  |  ".join(guess["input_lines"]["abacus"]))

    dft = abacus.read_run(SI / "scf")
    from dftplug.dataset import read_dataset
    (pred,) = read_dataset(OUT / "guess" / "predicted.h5")
    path = standard_path(dft, "LGXWKG", npoints=120)
    ef = dft.fermi_level
    curves = {}
    for label, h, mat in (("H0", pred, "H0"), ("predicted H", pred, "H"), ("DFT H", dft, "H")):
        h2 = type(h)(h.atoms, h.basis, H=getattr(h, mat), S=dft.S)
        curves[label] = band_structure(h2, path).energies[0]
    window = np.abs(curves["DFT H"] - ef) < 2.0
    for label in ("H0", "predicted H"):
        diff = (curves[label] - curves["DFT H"])[window]
        err, centred = np.abs(diff), np.abs(diff - diff.mean())
        print(f"  bands within ±2 eV of E_F, {label:>11} vs DFT: mean {1e3 * err.mean():7.2f} meV, "
              f"max {1e3 * err.max():7.2f} meV; after removing the mean shift: max {1e3 * centred.max():6.2f} meV")
    _plot(path, curves, ef, OUT / "bands_si_diamond.png")
    print(f"  plot: {(OUT / 'bands_si_diamond.png').relative_to(ROOT)}")


def _plot(path, curves, ef, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, xt, labels = path.get_linear_kpoint_axis()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    styles = {"DFT H": dict(color="k", lw=2.2), "predicted H": dict(color="tab:red", lw=1.0, ls="--"),
              "H0": dict(color="tab:blue", lw=0.8, ls=":")}
    for label in ("DFT H", "predicted H", "H0"):
        e = curves[label]
        for n, band in enumerate(e.T):
            ax.plot(x, band - ef, label=label if n == 0 else None, **styles[label])
    ax.set_xticks(xt, [lab.replace("G", "Γ") for lab in labels])
    for t in xt:
        ax.axvline(t, color="0.8", lw=0.5)
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_ylim(-6, 6)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("E − E_F (eV)")
    ax.set_title("Si (ABACUS): bands of H0, predicted H and DFT H")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=130)


if __name__ == "__main__":
    main()

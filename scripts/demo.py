"""`make demo`: convert the shipped ABACUS Si fixture and report what dftplug sees.

Extended as the toolkit and model land (bands from the predicted H against the DFT bands).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo_out"


def run(*args):
    cmd = [sys.executable, "-m", "dftplug.cli", *args]
    print("$ dftplug", " ".join(args))
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    OUT.mkdir(exist_ok=True)
    si = ROOT / "fixtures" / "abacus311" / "si_diamond" / "scf"
    summary = json.loads(run("convert", str(si), "-o", str(OUT / "si_diamond.h5"), "--json"))
    s = summary["structures"][0]
    d = s["delta_h"]
    print(f"  {s['formula']} ({s['code']}, basis {s['basis']}, {s['norb']} orbitals, E_F {s['fermi_level_eV']:.4f} eV)")
    print(f"  ΔH = H_scf − H0: mean {d['mae_meV']:.3f} meV, max {d['max_meV']:.1f} meV, "
          f"constant shift μ = {d['mu_eV']:+.4f} eV")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# OpenMX (3.9): one-iteration run (H0 = H[rho_atomic]) -> dftplug infer -> .scfout of the predicted H.
#
# scf_iter1/<name>.dat = scf/<name>.dat with  scf.maxIter 1 ; HS.fileout on
# The predicted guess/<name>.scfout feeds tools built on OpenMX's read_scfout (bands, TB2J,
# transport). OpenMX itself restarts only from its own <name>_rst/ folder, which holds the grid
# density as well as per-atom H and DM; dftplug does not build that grid density (see README).
set -euo pipefail
NAME=${NAME:?set NAME to the System.Name}
MODEL=${MODEL:?set MODEL to a dftplug checkpoint trained on OpenMX data}

(cd scf_iter1 && openmx "$NAME.dat" -nt 1 > "$NAME.std")
dftplug infer scf_iter1 --model "$MODEL" -o guess --write openmx --json > guess.json

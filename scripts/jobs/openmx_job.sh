#!/usr/bin/env bash
# OpenMX (3.9): zeroth-step run -> dftplug infer -> full SCF restarted from the predicted density.
#
# Layout: scf_iter1/ and scf/ hold the same <NAME>.dat (same System.Name, cell, atoms, basis,
# scf.energycutoff, k-grid) except
#   scf_iter1/<NAME>.dat :  scf.maxIter 1 ; HS.fileout on ; scf.restart off
#       -> <NAME>.scfout (H0 = H[rho_atomic]) and, at the end of the run, <NAME>_rst/: the structure
#          template dftplug copies (per-atom neighbour lists .rst<N>, half the atomic density .adrst<p>,
#          the grid .crst_check, core charges .cc, Fourier-transformed PAOs .ft*)
#   scf/<NAME>.dat       :  scf.restart on ; scf.restart.filename <NAME>
# dftplug writes guess/<NAME>.scfout and guess/<NAME>_rst/, whose .crst<spin>_<p>_0 hold the grid density
# of the DM of the predicted H minus the atomic density; the PAO radial functions come from DATA.PATH of
# the input (relative to scf_iter1/) or PAO_DIR. Both runs must use the same number NP of MPI processes
# (the grid files are split per process). Non-collinear runs (scf.SpinPolarization NC) are refused.
# Measured with OpenMX 3.9.0 on graphene8 validation cells (README, "OpenMX: the restart folder"): scratch
# 23-26 SCF iterations, from the openmx_graphene8 prediction 19-20, from OpenMX's own converged _rst/ 3.
# OpenMX overwrites scf/<NAME>_rst/ at the end of a run: copy the guess in again before every rerun.
set -euo pipefail
NAME=${NAME:?set NAME to the System.Name}
MODEL=${MODEL:?set MODEL to a dftplug checkpoint trained on OpenMX data}
NP=${NP:-1}
PAO_DIR=${PAO_DIR:-}   # a DFT_DATA19 folder, when DATA.PATH is not valid from scf_iter1/

(cd scf_iter1 && OMP_NUM_THREADS=1 mpirun -np "$NP" openmx "$NAME.dat" > "$NAME.std")
dftplug infer scf_iter1 --model "$MODEL" -o guess --force --write openmx ${PAO_DIR:+--pao-dir "$PAO_DIR"} --json > guess.json
rm -rf "scf/${NAME}_rst" && cp -r "guess/${NAME}_rst" scf/
(cd scf && OMP_NUM_THREADS=1 mpirun -np "$NP" openmx "$NAME.dat" > "$NAME.std")
grep -cE "^ *SCF= *[0-9]+ +NormRD" "scf/$NAME.out" | sed 's/^/SCF iterations: /'

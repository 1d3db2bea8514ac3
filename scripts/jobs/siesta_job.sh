#!/usr/bin/env bash
# SIESTA (4.1): zeroth-step run -> dftplug infer -> full SCF started from the DM of the predicted H.
#
# h0/<label>.fdf = scf/<label>.fdf plus
#     MaxSCFIterations 1 ; SCF.DM.Tolerance 1.0d10 ; SCF.Mix Density ; SCF.H.Converge false
#     SCF.MustConverge false ; TS.HS.Save true            (writes <label>.TSHS holding H0)
# scf/<label>.fdf gets
#     DM.UseSaveDM true                                    (reads <label>.DM from the run folder)
# Threads are set for every step: each SIESTA run uses NP MPI processes of THREADS OpenMP threads;
# dftplug infer uses INFER_THREADS (default 1; the DM it builds for SIESTA is one diagonalisation per
# k-point, worth more threads only for large cells).
set -euo pipefail
LABEL=${LABEL:?set LABEL to the SystemLabel}
MODEL=${MODEL:?set MODEL to a dftplug checkpoint trained on SIESTA data}
NP=${NP:-1}
THREADS=${THREADS:-1}
INFER_THREADS=${INFER_THREADS:-1}

(cd h0 && OMP_NUM_THREADS=$THREADS mpirun -np "$NP" siesta < "$LABEL.fdf" > "$LABEL.out")
dftplug infer h0 --model "$MODEL" -o guess --force --write siesta --threads "$INFER_THREADS" --json > guess.json
cp "guess/$LABEL.DM" scf/
(cd scf && OMP_NUM_THREADS=$THREADS mpirun -np "$NP" siesta < "$LABEL.fdf" > "$LABEL.out")
grep "SCF cycle converged after" "scf/$LABEL.out"

#!/usr/bin/env bash
# SIESTA (4.1): zeroth-step run -> dftplug infer -> full SCF started from the DM of the predicted H.
#
# h0/<label>.fdf = scf/<label>.fdf plus
#     MaxSCFIterations 1 ; SCF.DM.Tolerance 1.0d10 ; SCF.Mix Density ; SCF.H.Converge false
#     SCF.MustConverge false ; TS.HS.Save true            (writes <label>.TSHS holding H0)
# scf/<label>.fdf gets
#     DM.UseSaveDM true                                    (reads <label>.DM from the run folder)
set -euo pipefail
LABEL=${LABEL:?set LABEL to the SystemLabel}
MODEL=${MODEL:?set MODEL to a dftplug checkpoint trained on SIESTA data}

(cd h0 && siesta < "$LABEL.fdf" > "$LABEL.out")
dftplug infer h0 --model "$MODEL" -o guess --force --write siesta --json > guess.json
cp "guess/$LABEL.DM" scf/
(cd scf && siesta < "$LABEL.fdf" > "$LABEL.out")
grep "SCF cycle converged after" "scf/$LABEL.out"

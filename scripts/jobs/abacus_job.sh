#!/usr/bin/env bash
# ABACUS (v3.11 or later): zeroth-step run -> dftplug infer -> full SCF started from the predicted H.
#
# Layout: h0/ and scf/ hold the same STRU, KPT and PP/orbital settings. Their INPUT files differ in
#   h0/INPUT :  init_chg atomic ; scf_nmax 1 ; scf_thr 1e10 ; out_mat_hs2 1   (H0 = H[rho_atomic])
#   scf/INPUT:  init_chg hr ; read_file_dir ../guess                         (nspin 1)
#               init_chg dm ; read_file_dir ../guess                         (nspin 2: ABACUS v3.11's
#               `init_chg hr` loses the magnetisation, see ../shared/fixtures/README.md; for nspin 2
#               dftplug writes the DM built from the predicted H by itself)
# Threads are set for every step: each ABACUS run uses NP MPI processes of THREADS OpenMP threads;
# dftplug infer uses INFER_THREADS (default 1: below ~100 atoms it is start-up bound, see README).
set -euo pipefail
MODEL=${MODEL:-abacus_si8}          # a checkpoint file or the name of a shipped model
NP=${NP:-1}
THREADS=${THREADS:-1}
INFER_THREADS=${INFER_THREADS:-1}

(cd h0 && OMP_NUM_THREADS=$THREADS mpirun -np "$NP" abacus > abacus.stdout)
dftplug infer h0 --model "$MODEL" -o guess --force --write abacus --threads "$INFER_THREADS" --json > guess.json
(cd scf && OMP_NUM_THREADS=$THREADS mpirun -np "$NP" abacus > abacus.stdout)
grep -c "#ELEC ITER#" scf/OUT.*/running_scf.log | sed 's/^/SCF iterations: /'

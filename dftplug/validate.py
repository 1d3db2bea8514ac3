"""The one check at the boundary: what a parser or a dataset gives is physical before anything uses it.

``convert``, ``train``, ``eval``, ``infer`` and ``bands`` see data only through
:func:`check_hamiltonian` (called by the parser registry for run folders and by
:func:`dftplug.dataset.iter_dataset` for datasets). A refusal is a :class:`ValidationError` naming
the file and the problem; the CLI prints it and exits 2 before anything is written.

Checked, in this order:

* the matrices the caller needs are present (e.g. ``eval`` needs H, H0 and S);
* every element is finite (one ``nan`` in a text file otherwise converts silently);
* Hermiticity, max |M_ij(R) − M_ji(−R)^†| ≤ ``rtol`` · max |M|: every format we read stores
  float64 (or, SIESTA 4.1 ``.HSX``, float32, 6e-8 relative), so the measured errors of real runs
  are ≤ 2e-9 relative (OpenMX grid noise); a flipped byte gives errors of order |M| or far above;
* S(Γ) = Σ_R S(R) is positive definite (Cholesky; skipped above :data:`S_CHECK_MAX_ORBITALS`,
  whose dense factorisation would dominate the run);
* H0, when present next to H, is not H itself (``--h0`` pointing at the SCF run: ΔH ≡ 0);
* a zeroth-step run stopped after one SCF step (:func:`check_zeroth_step`).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .blocksparse import BlockSparse
from .errors import ValidationError
from .hamiltonian import Hamiltonian

HERMITICITY_RTOL = 1e-6
S_CHECK_MAX_ORBITALS = 6000


def _first_bad_block(m: BlockSparse, bad: np.ndarray) -> str:
    element = int(np.nonzero(bad.any(axis=0))[0][0])
    edge = int(np.searchsorted(m.offsets, element, side="right") - 1)
    i, j, *r = (int(x) for x in m.pairs[edge])
    return f"block i={i}, j={j}, R=({r[0]}, {r[1]}, {r[2]})"


def check_finite(m: BlockSparse, name: str, source) -> None:
    bad = ~np.isfinite(m.data)
    if bad.any():
        raise ValidationError(source, f"{name} has {int(bad.sum())} non-finite value(s) (nan or inf), "
                                      f"first in {_first_bad_block(m, bad)}")


def check_hermitian(m: BlockSparse, name: str, source, rtol: float = HERMITICITY_RTOL) -> None:
    err = m.hermiticity_error()
    scale = float(np.abs(m.data).max(initial=0.0))
    if not err <= rtol * max(scale, 1e-300) + 1e-300:
        raise ValidationError(source, f"{name} is not Hermitian: max |M_ij(R) - M_ji(-R)^†| = {err:.3g} "
                                      f"(largest element {scale:.3g}; allowed {rtol:.0e} of it): "
                                      "the file is corrupt")


def check_overlap(s: BlockSparse, source) -> None:
    """S(Γ) positive definite (one Cholesky factorisation of the dense S(Γ))."""
    nao = int(s.norb.sum())
    if nao > S_CHECK_MAX_ORBITALS or nao == 0:
        return
    rows, cols, _, values = s.to_orbital_coo()
    s_gamma = sp.coo_matrix((values[0].real, (rows, cols)), shape=(nao, nao)).toarray()
    try:
        scipy.linalg.cholesky(s_gamma, check_finite=False)
    except scipy.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh(0.5 * (s_gamma + s_gamma.T))[0])
        raise ValidationError(source, f"the overlap S(k=Γ) is not positive definite (lowest eigenvalue "
                                      f"{low:.3g}): the file is corrupt or not of this structure") from None


def check_h0_differs(h: Hamiltonian, source) -> None:
    if h.H is None or h.H0 is None:
        return
    if np.array_equal(h.H.pairs, h.H0.pairs) and np.array_equal(h.H.data, h.H0.data):
        raise ValidationError(source, f"H0 (from {h.provenance.get('h0_source')}) is identical to the "
                                      "converged H: the zeroth-step run is the SCF run itself or a copy of it")


def check_zeroth_step(h: Hamiltonian, source) -> None:
    """A zeroth-step run must stop after one SCF step (its log's iteration count, where it has one)."""
    steps = h.provenance.get("scf_iterations")
    if steps is not None and steps != 1:
        raise ValidationError(source, f"not a zeroth-step run: its log shows {steps} SCF iterations, not 1 "
                                      "(H0 must be H[rho_atomic] of the first step)")


def check_cutoffs(h: Hamiltonian, source) -> None:
    """Every shell's cutoff radius is known (a model is tied to its basis, cutoffs included)."""
    for s in dict.fromkeys(h.symbols):
        if any(shell.rcut is None for shell in h.basis.shells[s]):
            raise ValidationError(source, f"the basis of {s} states no cutoff radius: a model needs the full "
                                          "basis (convert from the run with its orbital files)")


def check_hamiltonian(h: Hamiltonian, source, require=(), rtol: float = HERMITICITY_RTOL,
                      files: dict | None = None) -> Hamiltonian:
    """Refuse (ValidationError naming ``source``) data that is incomplete or not physical; returns ``h``.

    ``require``: names of matrices that must be present (e.g. ``("H", "H0", "S")``); ``files``: the
    file each matrix was read from, named instead of ``source`` where one matrix is at fault.
    """
    missing = [n for n in require if getattr(h, n) is None]
    if missing:
        raise ValidationError(source, f"holds no {', '.join(missing)} (needed here)")
    where = {n: (files or {}).get(n) or source for n in h.matrices()}
    for name, m in h.matrices().items():
        check_finite(m, name, where[name])
    for name, m in h.matrices().items():
        check_hermitian(m, name, where[name], rtol)
    if h.S is not None:
        check_overlap(h.S, where["S"])
    check_h0_differs(h, source)
    return h

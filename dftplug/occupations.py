"""Smearing functions, k-point meshes and the Fermi level for a given electron count.

Smearing follows the common plane-wave convention (Quantum ESPRESSO ``wgauss``/``w0gauss``,
used by ABACUS too): x = (E_F − ε)/σ, occupation θ(x) per spin state,
* gaussian:             θ = erfc(−x)/2                         (δ = e^{−x²}/√π: std σ/√2)
* methfessel-paxton N:  θ = erfc(−x)/2 − Σ_{n=1..N} A_n H_{2n−1}(x) e^{−x²},
                        A_n = (−1)^n / (n! 4^n √π)             (Methfessel & Paxton, PRB 40, 3616)
* fermi-dirac:          θ = 1/(1 + e^{−x})
Energies in eV, σ in eV.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np
from scipy.optimize import brentq
from scipy.special import erfc, eval_hermite, expit

from .errors import DftplugError

_ALIASES = {"gaussian": ("gaussian", 0), "gauss": ("gaussian", 0),
            "fermi-dirac": ("fermi-dirac", 0), "fd": ("fermi-dirac", 0),
            "methfessel-paxton": ("methfessel-paxton", 1), "mp": ("methfessel-paxton", 1),
            "mp1": ("methfessel-paxton", 1), "mp2": ("methfessel-paxton", 2)}
_XMAX = 60.0


@dataclass(frozen=True)
class Smearing:
    """Occupation smearing: ``method`` in gaussian / fermi-dirac / methfessel-paxton,
    ``sigma`` in eV, ``order`` the Methfessel-Paxton order."""

    method: str = "gaussian"
    sigma: float = 0.1
    order: int = 0

    @classmethod
    def named(cls, name: str, sigma: float) -> "Smearing":
        """From a name such as ``gaussian``, ``fd``, ``mp``, ``mp2`` (case-insensitive)."""
        try:
            method, order = _ALIASES[name.strip().lower()]
        except KeyError:
            raise DftplugError(f"unknown smearing {name!r} (known: {', '.join(_ALIASES)})") from None
        return cls(method, float(sigma), order)

    @classmethod
    def from_settings(cls, settings: dict, default: "Smearing | None" = None) -> "Smearing":
        """The run's smearing from ``Hamiltonian.settings`` (``smearing_method``,
        ``smearing_sigma_eV``); ``default`` (or Gaussian 0.1 eV) where the run states none."""
        if "smearing_method" in settings and "smearing_sigma_eV" in settings:
            return cls.named(settings["smearing_method"], settings["smearing_sigma_eV"])
        return default or cls()

    def occupation(self, energies, fermi_level: float) -> np.ndarray:
        """θ((E_F − ε)/σ) in [0, 1] (MP may leave it slightly); 0 for NaN energies.

        |x| is clipped at 60, where every θ is 0 or 1 to < 1e-26."""
        e = np.asarray(energies, dtype=float)
        x = np.clip(np.nan_to_num((fermi_level - e) / self.sigma, nan=-_XMAX), -_XMAX, _XMAX)
        if self.method == "fermi-dirac":
            return expit(x)
        theta = 0.5 * erfc(-x)
        for n in range(1, self.order + 1):
            a = (-1) ** n / (factorial(n) * 4 ** n * np.sqrt(np.pi))
            theta = theta - a * eval_hermite(2 * n - 1, x) * np.exp(-x * x)
        return theta

    def delta(self, x) -> np.ndarray:
        """−dθ/dε · σ as a function of x = (E − ε)/σ (integrates to 1 over x)."""
        x = np.clip(np.asarray(x, dtype=float), -_XMAX, _XMAX)
        if self.method == "fermi-dirac":
            return expit(x) * expit(-x)
        gauss = np.exp(-x * x) / np.sqrt(np.pi)
        out = gauss.copy()
        for n in range(1, self.order + 1):
            a = (-1) ** n / (factorial(n) * 4 ** n)
            out = out + a * eval_hermite(2 * n, x) * gauss
        return out


def monkhorst_pack(mesh, shift=(0, 0, 0), time_reversal: bool = True):
    """Γ-centred (shift 0) Monkhorst-Pack mesh in reduced coordinates.

    k = (i + shift/2)/n_a for i = 0..n_a−1, mapped to [−1/2, 1/2). With ``time_reversal``, k
    and −k are merged (weights added), exact for real H(R), S(R) without spin-orbit.
    Returns kpts (nk, 3) and weights (nk,) summing to 1.
    """
    mesh = np.asarray(mesh, dtype=int)
    axes = [(np.arange(n) + 0.5 * s) / n for n, s in zip(mesh, shift)]
    k = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    k = (k + 0.5) % 1.0 - 0.5
    w = np.full(len(k), 1.0 / len(k))
    if not time_reversal:
        return k, w
    key = np.round(k * 2 * mesh).astype(np.int64)                    # integer labels of k
    minus = np.round(((-k + 0.5) % 1.0 - 0.5) * 2 * mesh).astype(np.int64)
    code = lambda a: (a[:, 0] * 4 * mesh[1] + a[:, 1]) * 4 * mesh[2] + a[:, 2]  # noqa: E731
    rep = np.minimum(code(key), code(minus))
    uniq, first, inv = np.unique(rep, return_index=True, return_inverse=True)
    return k[first], np.bincount(inv.reshape(-1), w)


def electron_count(energies, weights, fermi_level: float, smearing: Smearing,
                   per_state: float | None = None) -> float:
    """N(E_F) = g Σ_{s,k,n} w_k θ_{skn}; energies (nch, nk, nb), weights (nk,); g = ``per_state``
    electrons per state, default 2/nch (nspin 1 or 2); spinor levels (nspin 4, nch 1) need g = 1."""
    e = np.asarray(energies)
    occ = smearing.occupation(e, fermi_level)
    g = 2.0 / e.shape[0] if per_state is None else per_state
    return float(g * np.einsum("skn,k->", occ, weights))


def fermi_level(energies, weights, nelec: float, smearing: Smearing, tolerance: float = 1e-10,
                per_state: float | None = None) -> float:
    """E_F (eV) with N(E_F) = ``nelec``: one level shared by both spin channels.

    Bisection-grade root (Brent) of N(E) − nelec between the band extrema ± 20σ; ``per_state``
    as in :func:`electron_count`.
    """
    e = np.asarray(energies)
    lo, hi = np.nanmin(e) - 20 * smearing.sigma, np.nanmax(e) + 20 * smearing.sigma
    f = lambda ef: electron_count(e, weights, ef, smearing, per_state) - nelec  # noqa: E731
    if f(lo) > 0 or f(hi) < 0:
        raise DftplugError(f"{nelec} electrons do not fit in the {e.shape[-1]} bands given")
    return float(brentq(f, lo, hi, xtol=tolerance, rtol=4 * np.finfo(float).eps))


DEGENERATE = 1e-5  # eV: level pairs closer than this use f' instead of the difference quotient


def response_kernel(energies: np.ndarray, fermi: float, smearing: Smearing) -> np.ndarray:
    """F_nm (1/eV) of energies (..., nb): (f_n − f_m)/(ε_n − ε_m), f'(ε_n) on the diagonal and for
    degenerate pairs — the Lindhard/Adler–Wiser kernel of
    the first-order density response (:mod:`dftplug.model.density_response`)."""
    f = smearing.occupation(energies, fermi)
    dfde = -smearing.delta((fermi - energies) / smearing.sigma) / smearing.sigma
    de = energies[..., :, None] - energies[..., None, :]
    df = f[..., :, None] - f[..., None, :]
    close = np.abs(de) < DEGENERATE
    mean_dfde = 0.5 * (dfde[..., :, None] + dfde[..., None, :])
    return np.where(close, mean_dfde, df / np.where(close, 1.0, de))

"""Atomic-orbital basis: shells per species, orbital counts and per-orbital angular momentum."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

L_LETTERS = "spdfghi"


@dataclass(frozen=True)
class Shell:
    """One radial function times the 2l+1 real spherical harmonics of angular momentum ``l``.

    ``zeta`` counts radial functions of the same l (1-based); ``n`` is the principal quantum
    number where the code states it; ``rcut`` the cutoff radius in Å where known.
    """

    l: int
    zeta: int = 1
    n: int | None = None
    rcut: float | None = None

    @property
    def size(self) -> int:
        return 2 * self.l + 1


@dataclass
class Basis:
    """Shells of every species, in the order the orbitals are stored inside an atom's block.

    Within a shell the 2l+1 orbitals are in the internal order m = -l..l (e3nn convention,
    see :mod:`dftplug.orbitals`).
    """

    shells: dict[str, tuple[Shell, ...]]

    def norb(self, symbol: str) -> int:
        return sum(s.size for s in self.shells[symbol])

    def ls(self, symbol: str) -> list[int]:
        return [s.l for s in self.shells[symbol]]

    def orbital_l(self, symbol: str) -> np.ndarray:
        """Angular momentum of every orbital of ``symbol`` (shape (norb,))."""
        return np.concatenate([np.full(s.size, s.l) for s in self.shells[symbol]])

    def label(self, symbol: str) -> str:
        """Compact label, e.g. ``2s2p1d``."""
        counts: dict[int, int] = {}
        for s in self.shells[symbol]:
            counts[s.l] = counts.get(s.l, 0) + 1
        return "".join(f"{counts[l]}{L_LETTERS[l]}" for l in sorted(counts))

    def same_as(self, other: "Basis") -> bool:
        """Same species with the same sequence of l (radii and n are not compared)."""
        return set(self.shells) == set(other.shells) and all(
            self.ls(s) == other.ls(s) for s in self.shells
        )

    def mismatch(self, other: "Basis", symbol: str, atol: float = 1e-4) -> str | None:
        """How the shells of ``symbol`` differ from ``other``'s (l, zeta and cutoff radius, in
        order), or None when they agree. A cutoff must be known on both sides (``atol`` in Å)."""
        mine, theirs = self.shells[symbol], other.shells[symbol]
        if [(s.l, s.zeta) for s in mine] != [(s.l, s.zeta) for s in theirs]:
            return (f"shells {self.label(symbol)} (l, zeta = {[(s.l, s.zeta) for s in mine]}) vs "
                    f"{other.label(symbol)} ({[(s.l, s.zeta) for s in theirs]})")
        for k, (a, b) in enumerate(zip(mine, theirs)):
            shell = f"shell {k + 1} ({a.zeta}{L_LETTERS[a.l]})"
            if a.rcut is None or b.rcut is None:
                side = "first" if a.rcut is None else "second"
                return f"{shell}: the cutoff radius of the {side} basis is unknown (it must be stated)"
            if abs(a.rcut - b.rcut) > atol:
                return f"{shell}: cutoff radius {a.rcut:.4f} Å vs {b.rcut:.4f} Å"
        return None

    def to_json(self) -> str:
        return json.dumps({k: [asdict(s) for s in v] for k, v in self.shells.items()})

    @classmethod
    def from_json(cls, text: str) -> "Basis":
        return cls({k: tuple(Shell(**s) for s in v) for k, v in json.loads(text).items()})

    def restrict(self, symbols) -> "Basis":
        return Basis({s: self.shells[s] for s in dict.fromkeys(symbols)})

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

    def to_json(self) -> str:
        return json.dumps({k: [asdict(s) for s in v] for k, v in self.shells.items()})

    @classmethod
    def from_json(cls, text: str) -> "Basis":
        return cls({k: tuple(Shell(**s) for s in v) for k, v in json.loads(text).items()})

    def restrict(self, symbols) -> "Basis":
        return Basis({s: self.shells[s] for s in dict.fromkeys(symbols)})

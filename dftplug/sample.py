"""Perturbed copies of a structure for training data: supercell, symmetric strain, Gaussian rattle.

The recipe of the shipped datasets (``../shared/datasets/generators``), per structure ``i``:

    rng   = numpy.random.default_rng([seed, i])
    ε     = symmetric 3x3, its 6 independent components ε_xx, ε_yy, ε_zz, ε_yz, ε_xz, ε_xy ~ U(−ε_max, ε_max)
    cell' = cell · (1 + ε)          (rows = lattice vectors, Å; positions follow: r' = r · (1 + ε))
    r''   = r' + u,  u_a ~ N(0, σ²) for every Cartesian component (Å)

applied to the ``n1 x n2 x n3`` supercell of the input (ase ``Atoms.repeat`` order). The strain is
drawn before the displacements, always (also for ε_max = 0), so a seed gives the same structures
whatever the amplitudes. Per-atom arrays of the input (e.g. the index of each atom in the source
file) travel with the atoms.
"""
from __future__ import annotations

from dataclasses import dataclass

import ase
import numpy as np

from .errors import DftplugError


@dataclass
class Sample:
    """One perturbed structure: ``atoms`` (Å), the strain ε (3x3, symmetric, dimensionless) and the
    displacements u (natoms x 3, Å) added after the strain."""

    name: str
    atoms: ase.Atoms
    strain: np.ndarray
    displacements: np.ndarray

    @property
    def displacement_rms(self) -> float:
        """RMS of the Cartesian displacement components (Å); ≈ σ for many atoms."""
        return float(np.sqrt(np.mean(self.displacements ** 2))) if self.displacements.size else 0.0

    def summary(self) -> dict:
        return {"name": self.name, "natoms": len(self.atoms), "strain": self.strain.tolist(),
                "displacement_rms_A": self.displacement_rms}


def check_amplitudes(rattle: float, strain: float, supercell=(1, 1, 1), n: int = 1) -> None:
    """Refuse amplitudes that describe no sampling: σ < 0, ε_max outside [0, 1), n < 1, repeats < 1."""
    if n < 1:
        raise DftplugError(f"the number of structures must be at least 1 (got {n})")
    if not rattle >= 0:
        raise DftplugError(f"the rattle amplitude σ must be ≥ 0 Å (got {rattle})")
    if not 0 <= strain < 1:
        raise DftplugError(f"the strain amplitude ε_max must be in [0, 1) (got {strain})")
    if len(supercell) != 3 or min(supercell) < 1:
        raise DftplugError(f"the supercell needs three repeats ≥ 1 (got {tuple(supercell)})")


def random_strain(rng: np.random.Generator, strain: float) -> np.ndarray:
    """Symmetric strain with its 6 independent components uniform in [−strain, strain]
    (order xx, yy, zz, yz, xz, xy, as the SIESTA dataset recipe)."""
    e = rng.uniform(-strain, strain, size=6)
    return np.array([[e[0], e[5], e[4]], [e[5], e[1], e[3]], [e[4], e[3], e[2]]])


def perturbed(atoms: ase.Atoms, rng: np.random.Generator, rattle: float, strain: float):
    """``atoms`` strained (cell and positions by 1 + ε) and then rattled; returns (atoms, ε, u)."""
    eps = random_strain(rng, strain)
    out = atoms.copy()
    deform = np.eye(3) + eps
    out.set_cell(atoms.cell.array @ deform)
    u = rng.normal(0.0, rattle, size=(len(atoms), 3))
    out.positions = atoms.positions @ deform + u
    return out, eps, u


def sample_structures(atoms: ase.Atoms, n: int, rattle: float = 0.1, strain: float = 0.02,
                      supercell=(1, 1, 1), seed: int = 0) -> list[Sample]:
    """``n`` perturbed copies of the ``supercell`` of ``atoms`` named c000, c001, …
    (reproducible: structure i depends only on (seed, i) and the amplitudes)."""
    check_amplitudes(rattle, strain, supercell, n)
    base = atoms.repeat(tuple(int(r) for r in supercell))
    width = max(3, len(str(n - 1)))
    out = []
    for i in range(n):
        new, eps, u = perturbed(base, np.random.default_rng([seed, i]), rattle, strain)
        out.append(Sample(f"c{i:0{width}d}", new, eps, u))
    return out


def supercell_kmesh(kmesh, supercell) -> list[int]:
    """The k-mesh of the n1 x n2 x n3 supercell that keeps at least the input's k-point density:
    ceil(k_i / n_i) (3x3x3 → 2x2x2 at 2x2x2, as the ABACUS si64 recipe)."""
    return [max(1, -(-int(k) // int(n))) for k, n in zip(kmesh, supercell)]

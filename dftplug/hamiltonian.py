"""The common object between parsers and everything else: :class:`Hamiltonian`.

Spin: H, H0 and DM carry nspin = 1, 2 (collinear, real) or 4 channels. nspin 4 = spin-orbit /
non-collinear: complex spinor channels (uu, ud, du, dd) with channel (s, s') of block (i, j, R) =
<i s|M|j s' (R)> (see :mod:`dftplug.blocksparse`); S stays one real channel (S x 1_2 implied). The DM
uses the same layout, DM^{ss'}_ij(R) = sum_n f_n c_{i s, n} conj(c_{j s', n}) (Bloch sums as H), so
that Tr(DM S) summed over uu and dd is the electron count and Tr(sigma DM S) the spin moment.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import ase
import numpy as np

from .basis import Basis
from .blocksparse import BlockSparse, union_pairs
from .errors import MismatchError
from .orbitals import block_rotation, spin_half_d

MATRIX_NAMES = ("H", "S", "H0", "DM")


@dataclass
class Hamiltonian:
    """One structure with its real-space matrices, in eV and Å, internal orbital convention.

    Attributes
    ----------
    atoms : ase.Atoms            structure (cell in Å, pbc, positions in Å, species).
    basis : Basis                shells per species, in the order of each atom's block.
    H, S, H0, DM : BlockSparse   converged H (eV), overlap, zeroth-step H (eV), density matrix;
                                 any may be None. H/H0/DM carry nspin channels (1, 2, or 4
                                 complex spinor channels), S one real channel.
    fermi_level : float | None   eV, in the code's own energy reference (that of H).
    nelec : float | None         valence electron count.
    h0_kind : str | None         what H0 is, e.g. ``"H[rho_atomic]"`` (see :data:`H0_KINDS`).
    provenance : dict            code, version, folders and files read.
    settings : dict              run settings useful downstream (smearing, k-mesh, ...), JSON-able.
    file_layout : object | None  the code's own layout of the files read (a typed object of the
                                 parser: ABACUS R lists, OpenMX .scfout template, SIESTA sparsity),
                                 which its writers take explicitly to write files the code reads
                                 back; not stored in datasets.
    """

    atoms: ase.Atoms
    basis: Basis
    H: BlockSparse | None = None
    S: BlockSparse | None = None
    H0: BlockSparse | None = None
    DM: BlockSparse | None = None
    fermi_level: float | None = None
    nelec: float | None = None
    h0_kind: str | None = None
    provenance: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    file_layout: object | None = None

    # ----------------------------------------------------------------- structure/basis
    @property
    def natoms(self) -> int:
        return len(self.atoms)

    @property
    def nspin(self) -> int:
        for m in (self.H, self.H0, self.DM):
            if m is not None:
                return m.nspin
        return 1

    @property
    def symbols(self) -> list[str]:
        return self.atoms.get_chemical_symbols()

    def norb(self) -> np.ndarray:
        """Orbitals per atom, shape (natoms,)."""
        return np.array([self.basis.norb(s) for s in self.symbols], dtype=np.int64)

    def species_index(self) -> tuple[list[str], np.ndarray]:
        """(unique species in first-appearance order, index of each atom's species)."""
        species = list(dict.fromkeys(self.symbols))
        return species, np.array([species.index(s) for s in self.symbols], dtype=np.int64)

    def matrices(self) -> dict[str, BlockSparse]:
        return {n: getattr(self, n) for n in MATRIX_NAMES if getattr(self, n) is not None}

    # ----------------------------------------------------------------- helpers
    def bond_vectors(self, pairs: np.ndarray) -> np.ndarray:
        """r_ij = τ_j + R·cell − τ_i (Å) of blocks ``pairs`` (E, 5) = (i, j, R), shape (E, 3).
        Each parser keeps the atom positions its code indexes R against (ABACUS's are wrapped
        into the cell, see :func:`dftplug.parsers.abacus.wrap_into_cell`)."""
        pos = self.atoms.positions
        return pos[pairs[:, 1]] + pairs[:, 2:5] @ self.atoms.cell.array - pos[pairs[:, 0]]

    def union_pairs(self) -> np.ndarray:
        """Union block pattern of H, S, H0 (and DM): the graph a model must cover.

        Nonlocal pseudopotential projectors couple atoms whose orbitals do not overlap, so H
        has (i, j, R) blocks that S lacks; a graph built from S alone would drop them.
        """
        mats = [m.pairs for n, m in self.matrices().items() if n != "DM"]
        return union_pairs(*mats, natoms=self.natoms)

    def delta_h(self) -> BlockSparse:
        """ΔH = H − H0 on the union pattern (eV)."""
        if self.H is None or self.H0 is None:
            missing = [n for n in ("H", "H0") if getattr(self, n) is None]
            raise MismatchError(f"ΔH needs both H and H0; missing: {', '.join(missing)}")
        return self.H - self.H0

    def delta_h_stats(self) -> dict:
        """Size of ΔH in meV: mean/RMS/max of |H − H0| over the stored elements of H, and the
        best constant shift mu (eV) of ΔH ≈ mu S with the RMS left after removing it."""
        d = self.delta_h()
        dh = d.data
        out = {"mae_meV": 1e3 * float(np.abs(dh).mean()),
               "rms_meV": 1e3 * float(np.sqrt((np.abs(dh) ** 2).mean())),
               "max_meV": 1e3 * float(np.abs(dh).max(initial=0.0))}
        if self.S is not None:
            s = spin_identity(self.S.with_pairs(d.pairs).data[0], d.nspin)
            mu = float(np.real(np.sum(dh * s)) / max(float(np.sum(s * s)), 1e-300))
            out["mu_eV"] = mu
            out["rms_after_mu_meV"] = 1e3 * float(np.sqrt((np.abs(dh - mu * s) ** 2).mean()))
        return out

    def electron_count(self) -> np.ndarray:
        """Tr(DM S) = sum_{ijR} DM_ij(R) S_ij(R), per spin channel; for nspin 4 the real
        (uu, dd) pair (occupations along z: their sum is N, their difference m_z)."""
        if self.DM is None or self.S is None:
            raise MismatchError("the electron count needs DM and S")
        counts = self.DM.contract(self.S)
        return np.real(counts[[0, 3]]) if self.DM.nspin == 4 else counts

    def spin_moment(self) -> np.ndarray:
        """(m_x, m_y, m_z) = Re Tr(sigma DM S) in Bohr magnetons (nspin 2: (0, 0, N_up - N_dn))."""
        if self.DM is None or self.S is None:
            raise MismatchError("the spin moment needs DM and S")
        c = self.DM.contract(self.S)
        if self.DM.nspin == 4:  # Tr(sigma_a rho) = sum_{ss'} (sigma_a)_{s's} rho^{ss'}
            return np.real([c[1] + c[2], 1j * (c[1] - c[2]), c[0] - c[3]])
        return np.array([0.0, 0.0, c[0] - c[-1]])

    def hermiticity_error(self) -> dict[str, float]:
        """max |M − M^dagger| (M_ij(R) vs conj(M_ji(−R))^T, spin swapped) for every matrix present."""
        return {n: m.hermiticity_error() for n, m in self.matrices().items()}

    def check_compatible(self, other: "Hamiltonian", what: str = "", atol: float = 1e-6) -> None:
        """Refuse (MismatchError) unless ``other`` has the same structure and basis."""
        tag = f" ({what})" if what else ""
        if self.symbols != other.symbols:
            raise MismatchError(f"different species/atom order{tag}")
        if not self.basis.restrict(self.symbols).same_as(other.basis.restrict(other.symbols)):
            raise MismatchError(f"different basis{tag}")
        if np.abs(self.atoms.cell.array - other.atoms.cell.array).max() > atol:
            raise MismatchError(f"different cell{tag}")
        dpos = np.abs(self.atoms.positions - other.atoms.positions).max(initial=0.0)
        if dpos > atol:
            raise MismatchError(f"atomic positions differ by up to {dpos:.3g} Å{tag}")

    def attach_h0(self, h0_run: "Hamiltonian") -> "Hamiltonian":
        """Take H0 (and its kind) from the zeroth-step run ``h0_run`` of the same structure.

        Refuses (MismatchError, naming both sources) another structure, basis, nspin, or an
        overlap S that is not exactly the SCF run's (same structure and basis give the same S).
        """
        src = f"SCF run {self.provenance.get('source')} vs H0 run {h0_run.provenance.get('source')}"
        if h0_run.H0 is None:
            raise MismatchError(f"{src}: the H0 run holds no H0")
        self.check_compatible(h0_run, what=src)
        if h0_run.S is not None and self.S is not None:
            same = (np.array_equal(h0_run.S.pairs, self.S.pairs)
                    and np.abs(h0_run.S.data - self.S.data).max(initial=0.0) <= 1e-12)
            if not same:
                raise MismatchError(f"{src}: overlap S differs (not the same structure/basis)")
        if self.H is not None and h0_run.H0.nspin != self.H.nspin:
            raise MismatchError(f"{src}: nspin {self.H.nspin} vs {h0_run.H0.nspin}")
        self.H0 = h0_run.H0
        self.h0_kind = h0_run.h0_kind
        self.provenance["h0_source"] = h0_run.provenance.get("source")
        self.provenance["h0_files"] = h0_run.provenance.get("files")
        if "h0_form" in h0_run.provenance:  # which file form of H0 a code produced (e.g. OpenMX's two)
            self.provenance["h0_form"] = h0_run.provenance["h0_form"]
        return self

    def rotated(self, rot: np.ndarray) -> "Hamiltonian":
        """The same system rotated by the orthogonal 3x3 ``rot`` (r' = rot r): cell and positions
        rotate, every block becomes D_i M_ij(R) D_j^T with the Wigner D of its shells; nspin-4
        blocks become (D_i x U) M_ij(R) (D_j x U)^dagger with U = :func:`spin_half_d` (rot)."""
        species, kinds = self.species_index()
        umats = [block_rotation(self.basis.ls(s), rot) for s in species]
        atoms = self.atoms.copy()
        atoms.set_cell(self.atoms.cell.array @ np.asarray(rot).T, scale_atoms=False)
        atoms.positions = self.atoms.positions @ np.asarray(rot).T
        new = {n: m.transform(kinds, umats) for n, m in self.matrices().items()}
        new = {n: m.spin_transform(spin_half_d(rot)) if m.nspin == 4 else m for n, m in new.items()}
        return self._with_matrices(new, atoms)

    def time_reversed(self) -> "Hamiltonian":
        """The Kramers conjugate theta M theta^-1 (theta = -i sigma_y K, see
        :meth:`BlockSparse.time_reversed`) of H, H0 and DM; S and the structure are unchanged.
        A non-magnetic system is invariant: H.time_reversed() = H."""
        new = {n: (m if n == "S" else m.time_reversed()) for n, m in self.matrices().items()}
        return self._with_matrices(new, self.atoms.copy())

    def _with_matrices(self, mats: dict, atoms: ase.Atoms) -> "Hamiltonian":
        return Hamiltonian(atoms, self.basis, fermi_level=self.fermi_level, nelec=self.nelec,
                           h0_kind=self.h0_kind, provenance=dict(self.provenance),
                           settings=dict(self.settings), file_layout=self.file_layout, **mats)

    def summary(self) -> dict:
        """Small JSON-able description (for ``--json`` outputs and logs)."""
        out = {
            "formula": self.atoms.get_chemical_formula(),
            "natoms": self.natoms,
            "norb": int(self.norb().sum()),
            "basis": {s: self.basis.label(s) for s in dict.fromkeys(self.symbols)},
            "nspin": self.nspin,
            "fermi_level_eV": self.fermi_level,
            "nelec": self.nelec,
            "h0_kind": self.h0_kind,
            "matrices": {n: int(m.nedges) for n, m in self.matrices().items()},
            "code": self.provenance.get("code"),
        }
        return out


def spin_identity(s: np.ndarray, nspin: int) -> np.ndarray:
    """One overlap channel ``s`` (nnz,) as the spin identity in nspin channels, (nspin, nnz):
    repeated for nspin 1/2, (s, 0, 0, s) for spinor nspin 4."""
    if nspin == 4:
        z = np.zeros_like(s)
        return np.stack([s, z, z, s])
    return np.broadcast_to(s, (nspin, len(s)))


# What an H0 can be; a dataset records one of these and never mixes them.
H0_KINDS = {
    "H[rho_atomic]": "Kohn-Sham H of the superposed neutral-atom densities (incl. V_xc), "
                     "before any SCF update",
    "H[rho_atomic]-no-Vxc": "as above without the exchange-correlation potential",
}

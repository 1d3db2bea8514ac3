"""ASE interop: structure and metadata out to ase.Atoms and back."""
import ase.io
import numpy as np
import pytest
from ase.build import bulk

from dftplug.aseio import from_ase, to_ase
from dftplug.errors import MismatchError
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES

SI = FIXTURES / "abacus311" / "si_diamond"


@pytest.fixture(scope="module")
def si():
    return ab.read_run(SI / "scf", with_matrices=("S",))


def test_to_ase_carries_structure_and_metadata(si):
    atoms = to_ase(si)
    assert atoms.get_chemical_symbols() == ["Si", "Si"]
    assert np.array_equal(atoms.positions, si.atoms.positions)  # Å
    assert np.array_equal(atoms.cell.array, si.atoms.cell.array)
    assert atoms.info["fermi_level_eV"] == pytest.approx(6.8540585132, abs=1e-10)
    assert atoms.info["nelec"] == 8 and atoms.info["provenance"]["code"] == "abacus"
    atoms.positions += 1.0
    assert si.atoms.positions[0].tolist() == [0, 0, 0]  # a copy: the Hamiltonian is untouched


def test_from_ase_round_trip(si):
    back = from_ase(to_ase(si), si.basis)
    assert back.matrices() == {}  # structure only
    assert back.fermi_level == si.fermi_level and back.nelec == 8
    assert np.array_equal(back.norb(), si.norb())
    assert back.provenance["source"] == si.provenance["source"]


def test_extxyz_file_round_trip(si, tmp_path):
    ase.io.write(tmp_path / "si.extxyz", to_ase(si))
    back = from_ase(ase.io.read(tmp_path / "si.extxyz"), si.basis)
    assert back.fermi_level == si.fermi_level and back.h0_kind is None
    assert np.abs(back.atoms.positions - si.atoms.positions).max() < 1e-7  # extxyz prints 8 decimals
    assert back.provenance["version"] == "v3.11.0-beta.1"


def test_from_plain_ase_atoms(si):
    h = from_ase(bulk("Si", "diamond", a=5.43), si.basis)
    assert h.natoms == 2 and h.norb().tolist() == [13, 13]
    assert h.fermi_level is None and h.provenance == {"code": "ase"}


def test_from_ase_refuses_species_without_basis(si):
    with pytest.raises(MismatchError, match="C"):
        from_ase(bulk("SiC", "zincblende", a=4.36), si.basis)

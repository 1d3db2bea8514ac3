"""dftplug: learn the correction ΔH = H_scf − H0 to the zeroth-step Hamiltonian of
numerical-atomic-orbital DFT codes (ABACUS, OpenMX, SIESTA) and hand the result back to them."""
from .errors import DftplugError, MismatchError, ParseError

__version__ = "0.1.0"

# imported on first use: the command line starts without numpy/scipy/ase (``dftplug --help``), and
# the bridges to other libraries only load those libraries when asked (sisl is slow to import)
_LAZY = {"Basis": "basis", "Shell": "basis", "BlockSparse": "blocksparse", "Hamiltonian": "hamiltonian",
         "to_sisl": "sislio", "from_sisl": "sislio", "to_ase": "aseio", "from_ase": "aseio"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'dftplug' has no attribute {name!r}")


__all__ = ["Basis", "Shell", "BlockSparse", "Hamiltonian", "DftplugError", "MismatchError", "ParseError",
           "to_sisl", "from_sisl", "to_ase", "from_ase", "__version__"]

"""dftplug: learn the correction ΔH = H_scf − H0 to the zeroth-step Hamiltonian of
numerical-atomic-orbital DFT codes (ABACUS, OpenMX, SIESTA) and hand the result back to them."""
from .basis import Basis, Shell
from .blocksparse import BlockSparse
from .errors import DftplugError, MismatchError, ParseError
from .hamiltonian import Hamiltonian

__version__ = "0.1.0"
__all__ = ["Basis", "Shell", "BlockSparse", "Hamiltonian", "DftplugError", "MismatchError", "ParseError",
           "__version__"]

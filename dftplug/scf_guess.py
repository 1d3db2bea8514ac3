"""SCF starting guesses: from a (predicted) H, the files each code reads to start its SCF.

The physics (the DM built from H on the run's k-mesh with the run's smearing, ``dftplug.density``)
is done here; the file layouts are the parsers' (``write_scf_guess`` of each code module), which
return the files written and the input lines the user adds to the SCF run:

* ABACUS (v3.11+): ``hrs{1,2}_nao.csr`` for ``init_chg hr`` and ``dmrs{1,2}_nao.csr`` for
  ``init_chg dm`` (nspin 2 must use the DM: v3.11's ``init_chg hr`` loses the magnetisation);
* SIESTA: ``<label>.DM`` for ``DM.UseSaveDM true`` (+ ``<label>.TSHS`` and ``H_IN``);
* OpenMX: ``<name>.scfout`` of the predicted H and, on the template of the zeroth-step run's own
  ``<name>_rst/``, that folder with the grid density of the DM built from H (``scf.restart on``; see
  ``dftplug.parsers.openmx_restart``).
"""
from __future__ import annotations

from pathlib import Path

from .density import density_matrix
from .errors import MismatchError
from .hamiltonian import Hamiltonian
from .parsers import ScfGuess, code_io


def write_scf_guess(h: Hamiltonian, code: str, out_dir, with_dm: bool = False,
                    mesh=None, progress: bool = False, pao_dir=None) -> ScfGuess:
    """Write the SCF starting guess of ``h.H`` for ``code`` into ``out_dir``.

    ``h`` carries the structure, S and run settings of the zeroth-step run of the same structure
    (k-mesh, smearing, electron count) and the predicted (or exact) H. When the code's restart
    reads a DM, it is built from H: DM_ij(R) = Re Σ_k w_k Σ_n f_n c_in c*_jn e^{−i2πk·R}.
    ``pao_dir``: OpenMX's PAO folder (default: the input's DATA.PATH).
    """
    if h.H is None or h.S is None:
        raise MismatchError("an SCF guess needs H and S")
    fermi = None
    io = code_io(code)
    options = {"pao_dir": pao_dir} if pao_dir is not None else {}
    unknown = sorted(set(options) - set(io.guess_options))
    if unknown:  # so far the only option: OpenMX's PAO files
        raise MismatchError(f"PAO files (--pao-dir) are OpenMX's; the guess is for {code}")
    if io.guess_needs_dm(h.nspin, with_dm):
        dm = density_matrix(h, mesh=mesh, progress=progress)
        h.DM, fermi = dm.DM, dm.fermi_level
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    guess = io.write_scf_guess(h, out_dir, **options)
    guess.fermi_level = fermi
    return guess

"""The ΔH model: E(3)-equivariant prediction of H − H0 from the structure, H0 and S.

Modules: :mod:`.irreps` (blocks ⇄ irreps), :mod:`.graph` (Hamiltonian → tensors),
:mod:`.blocks` (equivariant layers), :mod:`.model` (the network), :mod:`.loss` (loss and metrics),
:mod:`.bands` (Bloch sums, small eigensolver), :mod:`.train`, :mod:`.evaluate`, :mod:`.infer`,
:mod:`.checkpoint` (self-describing files, refusals).
"""
import sys


def _no_compile_barrier(fn=None, recursive=True, **kwargs):
    """Stand-in for ``torch.compiler.disable`` while e3nn is imported (see :func:`_import_e3nn`)."""
    return fn if fn is not None else (lambda f: f)


def _import_e3nn() -> None:
    """Import e3nn without loading torch's compiler stack (torch._dynamo, sympy: about half the start-up
    of ``dftplug infer``). e3nn 0.6 decorates one function with ``torch.compiler.disable``, whose
    first call imports torch._dynamo; the decorator only matters under ``torch.compile``, which
    dftplug does not use. It is put back right after the import."""
    if "e3nn.o3" in sys.modules or "torch._dynamo" in sys.modules:
        return
    import torch

    real = torch.compiler.disable
    torch.compiler.disable = _no_compile_barrier
    try:
        import e3nn.o3  # noqa: F401
    finally:
        torch.compiler.disable = real


_import_e3nn()

from .checkpoint import Checkpoint, CheckpointError, ModelMismatchError, load, load_pretrained  # noqa: E402

__all__ = ["Checkpoint", "CheckpointError", "ModelMismatchError", "load", "load_pretrained"]

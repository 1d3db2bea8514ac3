"""The ΔH model: E(3)-equivariant prediction of H − H0 from the structure, H0 and S.

Modules: :mod:`.irreps` (blocks ⇄ irreps), :mod:`.graph` (Hamiltonian → tensors),
:mod:`.blocks` (equivariant layers), :mod:`.model` (the network), :mod:`.loss` (loss and metrics),
:mod:`.bands` (Bloch sums, small eigensolver), :mod:`.train`, :mod:`.evaluate`, :mod:`.infer`,
:mod:`.checkpoint` (self-describing files, refusals).
"""
import sys
import types


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


def _memoise_activation_moments() -> None:
    """e3nn normalises each gate's activation f by ⟨f(z)²⟩^{-1/2}, estimated anew for every gate from
    10⁶ normal samples drawn with seed 0 (``e3nn.math._normalize_activation.moment``): about 1 s of
    building this model. The estimate is a pure function of (f, n, dtype, device), so for plain
    functions (silu, sigmoid; not modules, whose identity may be reused) it is computed once."""
    from e3nn.math import _normalize_activation as module

    original = getattr(module, "moment", None)
    if original is None or getattr(original, "memoised", False):
        return
    cache = {}

    def moment(f, n, dtype=None, device=None):
        if not isinstance(f, (types.FunctionType, types.BuiltinFunctionType)):
            return original(f, n, dtype, device)
        key = (f, n, dtype, str(device))
        if key not in cache:
            cache[key] = original(f, n, dtype, device)
        return cache[key]

    moment.memoised = True
    module.moment = moment


_import_e3nn()
_memoise_activation_moments()

from .checkpoint import Checkpoint, CheckpointError, ModelMismatchError, load, load_pretrained  # noqa: E402

__all__ = ["Checkpoint", "CheckpointError", "ModelMismatchError", "load", "load_pretrained"]

"""The ΔH model: E(3)-equivariant prediction of H − H0 from the structure, H0 and S.

Modules: :mod:`.irreps` (blocks ⇄ irreps), :mod:`.graph` (Hamiltonian → tensors),
:mod:`.blocks` (equivariant layers), :mod:`.model` (the network), :mod:`.loss` (loss and metrics),
:mod:`.bands` (Bloch sums, small eigensolver), :mod:`.train`, :mod:`.evaluate`, :mod:`.infer`,
:mod:`.checkpoint` (self-describing files, refusals).
"""
from .checkpoint import Checkpoint, CheckpointError, ModelMismatchError, load, load_pretrained

__all__ = ["Checkpoint", "CheckpointError", "ModelMismatchError", "load", "load_pretrained"]

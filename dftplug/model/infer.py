"""Inference: H = H0 + ΔH_pred for a structure given its zeroth-step H0 and S."""
from __future__ import annotations

import numpy as np
import torch

from dftplug.blocksparse import BlockSparse
from dftplug.errors import MismatchError
from dftplug.hamiltonian import Hamiltonian

from .checkpoint import Checkpoint, load
from .chunked import chunked
from .graph import build_graph, graph_pairs
from .loss import to_blocks
from .spinor import from_real_channels


def _device_dtype(ckpt: Checkpoint):
    p = next(ckpt.model.parameters())
    return p.device, p.dtype


@torch.no_grad()
def predict_delta(h: Hamiltonian, checkpoint: Checkpoint, max_edges_per_chunk: int | None = None,
                  progress: bool = False) -> BlockSparse:
    """ΔH_pred (eV, float64; complex spinor channels uu, ud, du, dd for nspin 4) on the model's
    edge pattern of ``h`` (needs H0 and S; H is ignored except for its block pattern). Refuses
    data the model was not trained for.
    ``max_edges_per_chunk`` bounds the edges the interaction layers process at once (memory cap for
    large structures, same result, :mod:`.chunked`); ``progress`` shows a bar over the chunks."""
    checkpoint.check_compatible(h)
    if h.H0 is None:
        raise MismatchError("the model needs the zeroth-step H0 of the structure")
    if h.S is None:
        raise MismatchError("the zeroth-step run holds no overlap S (ABACUS writes it with out_mat_hs; "
                            "or take it from another run of the same structure, e.g. infer --s-from)")
    device, dtype = _device_dtype(checkpoint)
    g = build_graph(h, checkpoint.layout, with_target=False).to(device, dtype)
    with chunked(checkpoint.model, max_edges_per_chunk, g.n_edges, progress):
        features, _ = checkpoint.model(g)
    blocks = to_blocks(features, checkpoint.layout)
    pairs = graph_pairs(h)
    norb = h.norb()
    nnz = int(np.sum(norb[pairs[:, 0]] * norb[pairs[:, 1]]))
    out = BlockSparse(norb, pairs, np.zeros((checkpoint.layout.channels, nnz)))
    for edges, b in zip(g.type_edges, blocks):
        edges = edges.cpu().numpy()
        if len(edges):
            idx = out.offsets[edges][:, None] + np.arange(b.shape[2])
            out.data[:, idx] = b.double().cpu().numpy().transpose(1, 0, 2)
    return from_real_channels(out) if checkpoint.layout.nspin == 4 else out


def predict(h0: Hamiltonian, checkpoint, max_edges_per_chunk: int | None = None,
            progress: bool = False) -> Hamiltonian:
    """The predicted converged Hamiltonian of the zeroth-step run ``h0``: H = H0 + ΔH_pred.

    ``checkpoint``: a :class:`Checkpoint`, a checkpoint file or a shipped model name. The result
    keeps S, H0 and the structure of ``h0`` (no DM, no Fermi level: those come from the code);
    ``provenance["model"]`` names the checkpoint. H0 + ΔH is summed in float64 on the CPU whatever
    the model's device and dtype. ``max_edges_per_chunk``, ``progress``: see :func:`predict_delta`.
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load(checkpoint)
    dh = predict_delta(h0, ckpt, max_edges_per_chunk, progress)
    h = h0.H0 + dh  # on H0's pattern ∪ the model's (ΔH is zero outside the overlap)
    prov = dict(h0.provenance, model=ckpt.meta.get("path"), predicted="H = H0 + ΔH_pred")
    return Hamiltonian(h0.atoms.copy(), h0.basis, H=h, S=h0.S, H0=h0.H0, nelec=h0.nelec,
                       h0_kind=h0.h0_kind, provenance=prov, settings=dict(h0.settings),
                       file_layout=h0.file_layout)

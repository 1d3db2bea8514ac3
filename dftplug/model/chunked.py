"""Edge chunking: bounded memory for the per-edge work of the interaction layers (large structures).

The graph is never split: inside each layer the per-edge computations (convolution messages, pair
products) run on slices of at most ``max_edges`` edges; node messages are accumulated chunk by chunk
(so neighbours across chunks are seen exactly), and the result equals the unchunked one. Peak
memory of the tensor products is O(max_edges · width) instead of O(E · width).
"""
from __future__ import annotations

from contextlib import contextmanager

from tqdm import tqdm


def edge_chunks(n_edges: int, max_edges: int | None):
    """Slices covering range(n_edges), each at most ``max_edges`` long (one slice when None or 0)."""
    step = max_edges if max_edges and max_edges > 0 else max(n_edges, 1)
    return [slice(a, min(a + step, n_edges)) for a in range(0, max(n_edges, 1), step)]


@contextmanager
def chunked(model, max_edges: int | None, n_edges: int = 0, progress: bool = False):
    """Within the block, every interaction layer of ``model`` (:class:`.model.DeltaHModel`) works in
    edge chunks of at most ``max_edges``; ``progress`` shows one bar over layers × chunks for a
    graph of ``n_edges`` edges."""
    layers = list(model.layers)
    total = 2 * len(layers) * len(edge_chunks(n_edges, max_edges))  # node pass + pair pass
    bar = tqdm(total=total, desc="edge chunks", unit="chunk", disable=not progress)
    for layer in layers:
        layer.max_edges, layer.progress = max_edges, bar
    try:
        yield bar
    finally:
        bar.close()
        for layer in layers:
            layer.max_edges, layer.progress = None, None

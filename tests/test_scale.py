"""Issue 10: tensor-product back-ends (equivariance of every variant) and edge-chunked inference."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dftplug.model.checkpoint import load, save
from dftplug.model.infer import predict, predict_delta

from .test_model import delta, random_model, si  # noqa: F401 - si is a fixture

VARIANTS = ["cg", "local_frame"]


@pytest.mark.parametrize("tensor_product", VARIANTS)
@pytest.mark.parametrize("improper", [False, True])
def test_every_variant_is_equivariant(si, tensor_product, improper):  # noqa: F811
    ck = random_model(si, tensor_product=tensor_product, num_layers=2)
    rot = Rotation.random(random_state=3).as_matrix() * (-1 if improper else 1)
    ref = delta(predict(si, ck))
    scale = np.abs(ref.data).max()
    assert scale > 1e-3
    expected = delta(predict(si, ck).rotated(rot))
    got = delta(predict(si.rotated(rot), ck))
    assert np.abs((got - expected).data).max() / scale < 1e-10


def test_variants_differ_and_unknown_variant_is_refused(si):  # noqa: F811
    a = delta(predict(si, random_model(si, tensor_product="cg"))).data
    b = delta(predict(si, random_model(si, tensor_product="local_frame"))).data
    assert np.abs(a - b).max() > 1e-6  # the switch really changes the network
    with pytest.raises(ValueError, match="tensor_product"):
        random_model(si, tensor_product="gaunt")


def test_tensor_product_is_stored_in_the_checkpoint(si, tmp_path):  # noqa: F811
    ck = random_model(si, tensor_product="local_frame")
    save(tmp_path / "m.pt", ck.model, ck.meta)
    back = load(tmp_path / "m.pt")
    assert back.model.config.tensor_product == "local_frame"
    assert np.abs(predict_delta(si, back).data - predict_delta(si, ck).data).max() < 1e-12


@pytest.mark.parametrize("tensor_product", VARIANTS)
def test_chunked_inference_equals_unchunked(si, tensor_product):  # noqa: F811
    ck = random_model(si, tensor_product=tensor_product, num_layers=2)
    full = predict_delta(si, ck).data
    n_edges = len(predict_delta(si, ck).pairs)
    got = predict_delta(si, ck, max_edges_per_chunk=max(1, n_edges // 7)).data
    assert np.abs(got - full).max() <= 1e-12 * np.abs(full).max()
    assert all(layer.max_edges is None for layer in ck.model.layers)  # reset after use


def test_chunked_training_gradients_equal_unchunked(si):  # noqa: F811
    from dftplug.model.chunked import chunked
    from dftplug.model.graph import build_graph
    ck = random_model(si, num_layers=2)
    g = build_graph(si, ck.layout).to(dtype=torch.float64)

    def grads(max_edges):
        ck.model.zero_grad()
        with chunked(ck.model, max_edges, g.n_edges):
            blocks, _ = ck.model(g)
        sum(b.square().sum() for b in blocks).backward()
        return torch.cat([p.grad.flatten() for p in ck.model.parameters() if p.grad is not None])

    a, b = grads(None), grads(50)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)

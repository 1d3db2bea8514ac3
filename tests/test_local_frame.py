"""Local-frame (SO(2)) edge convolution: O(3) equivariance and the same span as the CG product."""
import pytest
import torch
from e3nn import o3

from dftplug.model.local_frame import LocalFrameConvolution

IR_IN = o3.Irreps("3x0e+2x1o+1x1e+2x2e+1x2o+1x3o")
IR_OUT = o3.Irreps("2x0e+1x0o+2x1o+1x1e+2x2e+1x3o+1x4e")


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_rotation_and_inversion_equivariance():
    torch.manual_seed(0)
    conv = LocalFrameConvolution(IR_IN, IR_OUT)
    x, vec = IR_IN.randn(11, -1), torch.randn(11, 3)
    w = torch.randn(11, conv.num_weights)
    y = conv(x, vec, w)
    assert y.abs().max() > 0.1
    for rot in (o3.rand_matrix(), -o3.rand_matrix()):  # proper, and improper (with inversion)
        y_rot = conv(x @ IR_IN.D_from_matrix(rot).T, vec @ rot.T, w)
        assert (y_rot - y @ IR_OUT.D_from_matrix(rot).T).abs().max() < 1e-10 * y.abs().max()


def test_spans_exactly_the_cg_tensor_product():
    """For random CG weights there are local-frame weights giving the same map for every bond
    direction, and the numbers of free weights agree (eSCN's equivalence, with parity)."""
    torch.manual_seed(1)
    conv = LocalFrameConvolution(IR_IN, IR_OUT)
    lmax = max(ir.l for _, ir in IR_IN) + max(ir.l for _, ir in IR_OUT)
    sh = o3.Irreps.spherical_harmonics(lmax)
    tp = o3.FullyConnectedTensorProduct(IR_IN, sh, IR_OUT)
    assert conv.num_weights == tp.weight_numel
    dirs = torch.randn(6, 3)
    x = IR_IN.randn(6 * 4, -1)
    vec = dirs.repeat_interleave(4, 0)
    y_cg = tp(x, o3.spherical_harmonics(sh, vec, normalize=True))
    basis = torch.stack([conv(x, vec, torch.eye(conv.num_weights)[k].expand(len(x), -1))
                         for k in range(conv.num_weights)], dim=-1)  # (N, out, K)
    sol = torch.linalg.lstsq(basis.reshape(-1, conv.num_weights), y_cg.reshape(-1, 1)).solution
    resid = (basis @ sol).squeeze(-1) - y_cg
    assert resid.abs().max() < 1e-9 * y_cg.abs().max()


def test_backward_runs():
    conv = LocalFrameConvolution("4x0e+4x1o+4x2e", "4x0e+4x1o+4x2e")
    x = torch.randn(5, conv.irreps_in.dim, requires_grad=True)
    w = torch.randn(5, conv.num_weights, requires_grad=True)
    conv(x, torch.randn(5, 3), w).pow(2).sum().backward()
    assert x.grad.abs().sum() > 0 and w.grad.abs().sum() > 0

"""The ΔH model: strict E(3) equivariance, translation invariance, Hermiticity, refusals."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dftplug import Basis, Shell
from dftplug.model.checkpoint import Checkpoint, ModelMismatchError
from dftplug.model.graph import build_graph
from dftplug.model.infer import predict
from dftplug.model.irreps import BasisLayout, PairLayout
from dftplug.model.build import make_model
from dftplug.model.model import ModelConfig
from dftplug.orbitals import block_rotation, wigner_d
from dftplug.parsers import abacus as ab

from .conftest import FIXTURES

SI = FIXTURES / "abacus311" / "si_diamond"
ROT = FIXTURES / "rotations" / "abacus"
TINY = dict(num_layers=1, node_mul=(4, 2, 2), edge_mul=(4, 2, 2, 2), num_basis=4, radial_hidden=8,
            r_max=9.0, avg_neighbors=100.0, env_basis=1, response_basis=4)


@pytest.fixture(scope="module")
def si():
    return ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))


def random_model(h, dtype="float64", seed=0, **config) -> Checkpoint:
    """A float64 model with random (non-zero) readouts, statistics from ``h``; ``config`` overrides TINY."""
    torch.manual_seed(seed)
    layout = BasisLayout.from_basis(h.basis, list(dict.fromkeys(h.symbols)), h.nspin)
    model = make_model(layout, ModelConfig(dtype=dtype, **{**TINY, **config}))
    model.set_statistics([build_graph(h, layout)])
    with torch.no_grad():
        for lin in model.readouts:
            lin.weight.normal_()
        model.mu_readout.weight.normal_(std=0.1)
        for response in model.response:  # a fit to one structure is ill-conditioned
            for w in response.weights:
                w.normal_(std=0.01)
    meta = {"code": h.provenance["code"], "h0_kind": h.h0_kind, "basis": h.basis.to_json(), "path": "memory"}
    return Checkpoint(model.eval(), meta)


def delta(h):
    return h.H - h.H0


def test_block_irreps_map_is_orthogonal_and_equivariant():
    p = PairLayout("Si", "O", (0, 0, 1, 1, 2), (0, 1, 2, 3))
    assert np.abs(p.Q @ p.Q.T - np.eye(p.dim)).max() < 1e-14
    rot = Rotation.random(random_state=1).as_matrix() * -1  # improper
    b = np.random.default_rng(0).normal(size=(p.n_a, p.n_b))
    bb = block_rotation(p.ls_a, rot) @ b @ block_rotation(p.ls_b, rot).T
    q = PairLayout("O", "Si", p.ls_b, p.ls_a)
    assert np.abs(p.transpose_matrix(q) @ (p.Q @ b.ravel()) - q.Q @ b.T.ravel()).max() < 1e-13
    # the features of the rotated block are the rotated features, irrep by irrep (parity included)
    f, fr = p.Q @ b.ravel(), p.Q @ bb.ravel()
    k = 0
    for mul, ir in p.irreps:
        d = wigner_d(ir.l, rot) * (1 if ir.p == (-1) ** ir.l else -1)
        for _ in range(mul):
            assert np.abs(d @ f[k:k + ir.dim] - fr[k:k + ir.dim]).max() < 1e-12
            k += ir.dim
    assert k == p.dim


@pytest.mark.parametrize("improper", [False, True])
def test_prediction_is_equivariant_to_rotation_and_inversion(si, improper):
    ck = random_model(si)
    rot = Rotation.random(random_state=7).as_matrix() * (-1 if improper else 1)
    ref = delta(predict(si, ck)).hermitized()
    scale = np.abs(ref.data).max()
    assert scale > 1e-3  # a non-trivial prediction
    expected = delta(predict(si, ck).rotated(rot))
    got = delta(predict(si.rotated(rot), ck))
    assert np.abs((got - expected).data).max() / scale < 1e-10


def test_prediction_is_translation_invariant_and_hermitian(si):
    ck = random_model(si)
    ref = delta(predict(si, ck))
    moved = si.rotated(np.eye(3))
    moved.atoms.positions += np.array([0.37, -1.2, 2.5])
    got = delta(predict(moved, ck))
    assert np.abs((got - ref).data).max() / np.abs(ref.data).max() < 1e-12
    assert ref.hermiticity_error() <= 1e-14 * np.abs(ref.data).max()


def test_real_rotation_pair_gives_rotated_predictions():
    """ABACUS original vs rotated run (independent calculations): the model's ΔH agrees to the
    level of the file noise (~1e-10 Ry)."""
    rot = np.loadtxt(ROT / "rotation_matrix.txt")
    orig = ab.read_run(ROT / "original" / "scf").attach_h0(ab.read_h0(ROT / "original" / "h0"))
    turned = ab.read_run(ROT / "rotated" / "scf").attach_h0(ab.read_h0(ROT / "rotated" / "h0"))
    ck = random_model(orig)
    expected = delta(predict(orig, ck).rotated(rot))
    got = delta(predict(turned, ck))
    scale = np.abs(expected.data).max()
    assert np.abs((got - expected).data).max() / scale < 1e-6


def test_float32_model_matches_float64(si):
    ck64 = random_model(si, "float64")
    ck32 = random_model(si, "float32")
    ck32.model.load_state_dict({k: v.float() for k, v in ck64.model.state_dict().items()})
    a, b = delta(predict(si, ck64)), delta(predict(si, ck32))
    assert np.abs((a - b).data).max() / np.abs(a.data).max() < 1e-4


def test_nspin2_and_two_species_layouts():
    """Any species and nspin: a fake two-species nspin-2 structure runs and stays Hermitian."""
    h = ab.read_run(SI / "scf", with_matrices=("S",)).attach_h0(ab.read_h0(SI / "h0"))
    h.atoms.symbols = ["Si", "C"]
    h.basis = Basis({"Si": h.basis.shells["Si"], "C": h.basis.shells["Si"]})
    h.H0 = h.H0.copy(np.concatenate([h.H0.data, 1.01 * h.H0.data]))
    h.H = h.H0.copy(1.001 * h.H0.data)  # only for the model's input statistics
    ck = random_model(h)
    assert len(ck.layout.pairs) == 4 and ck.layout.nspin == 2
    d = delta(predict(h, ck))
    assert d.nspin == 2 and d.hermiticity_error() <= 1e-13 * np.abs(d.data).max()


def test_refuses_other_code_kind_species_basis(si):
    ck = random_model(si)
    h = si.rotated(np.eye(3))
    h.provenance["code"] = "siesta"
    with pytest.raises(ModelMismatchError, match="siesta"):
        predict(h, ck)
    h = si.rotated(np.eye(3))
    h.h0_kind = "H[rho_atomic]-no-Vxc"
    with pytest.raises(ModelMismatchError, match="H0 kind"):
        predict(h, ck)
    h = si.rotated(np.eye(3))
    h.atoms.symbols = ["Si", "Ge"]
    h.basis = Basis({"Si": si.basis.shells["Si"], "Ge": si.basis.shells["Si"]})
    with pytest.raises(ModelMismatchError, match="Ge unknown"):
        predict(h, ck)
    h = si.rotated(np.eye(3))
    h.basis = Basis({"Si": si.basis.shells["Si"][:-1] + (Shell(3),)})
    with pytest.raises(ModelMismatchError, match="basis of Si"):
        predict(h, ck)


def test_bond_angle_invariants_are_legendre_sums_and_swap_symmetric():
    """The descriptors' bond-angle invariant a_ij^(nL) = (1/n̄) Σ_k R_n(r_ik) P_L(cos θ_jik) (checked
    against a direct sum over neighbours on rattled Si), and every edge invariant is the same on
    (i, j, R) and (j, i, −R)."""
    from numpy.polynomial.legendre import Legendre
    from dftplug.model.descriptors import EdgeDescriptors
    h = ab.read_run(SI / "scf").attach_h0(ab.read_h0(SI / "h0"))
    h.atoms.positions += np.random.default_rng(0).normal(0.0, 0.1, (2, 3))  # only the geometry matters
    layout = BasisLayout.from_basis(h.basis, ["Si"], 1)
    g = build_graph(h, layout).to(dtype=torch.float64)
    desc = EdgeDescriptors(1, r_max=5.0, num_radial=2, lmax=2, avg_neighbors=10.0).double()
    inv, _ = desc(g)
    assert torch.allclose(inv, inv[g.partner], rtol=1e-12, atol=1e-14)
    vec, src, dst = g.edge_vec.numpy(), g.edge_src.numpy(), g.edge_dst.numpy()
    r = np.linalg.norm(vec, axis=1)
    radial = desc.radial(torch.from_numpy(r)).numpy()
    e = int(np.flatnonzero((r > 2.0) & (r < 2.6))[0])  # a nearest-neighbour bond i → j
    i, u = src[e], vec[e] / r[e]

    def angle_sum(atom, direction, L):  # (1/n̄) Σ_k R_n(r_ik) P_L(r̂_ik · direction), n = 0, 1
        k = (src == atom) & (r > 1e-8)
        cos = vec[k] @ direction / r[k]
        return radial[k].T @ Legendre.basis(L)(cos) / 10.0
    j_atom, back = dst[e], -u
    nch = 2  # radial channels × species
    offset = nch + 3 * nch * (nch + 1) // 2  # after the two-body densities and power spectra (L = 0..2)
    for L in (1, 2):
        a_ij, a_ji = angle_sum(i, u, L), angle_sum(j_atom, back, L)
        block = inv[e, offset + 2 * nch * (L - 1): offset + 2 * nch * L].numpy()
        assert np.allclose(block, np.concatenate([a_ij + a_ji, a_ij * a_ji]), rtol=1e-10, atol=1e-14), L
        assert np.abs(a_ij).max() > 1e-4  # not a trivially zero comparison


def test_linear_response_of_an_edge_type_without_edges(si):
    """A species pair absent from a structure (e.g. H–H in CH4 of a molecules set) has zero edges:
    the closed-form response returns an empty (0, nspin, dim) block instead of failing."""
    model = random_model(si).model
    response, pair = model.response[0], model.layout.pairs[0]
    out = response(torch.zeros(0, 1, pair.dim, dtype=torch.float64), torch.zeros(0, pair.dim, dtype=torch.float64),
                   torch.zeros(0, dtype=torch.float64),
                   torch.zeros(0, model.descriptors.num_invariants, dtype=torch.float64),
                   [torch.zeros(0, model.descriptors.num_equivariant, 2 * L + 1, dtype=torch.float64)
                    for L in range(model.layout.lmax + 1)])
    assert out.shape == (0, 1, pair.dim)

"""Edge convolution in the bond's local frame (SO(2) convolution), O(L^3) instead of O(L^6).

Idea (eSCN, Passaro & Zitnick 2023; Hot-Ham): rotate each edge's features so that the bond points
along the polar axis, where the spherical harmonics of the bond direction are non-zero only for
m = 0. A Clebsch–Gordan tensor product with Y(r̂) then couples only components of equal |m|, so it
collapses to independent small linear maps per m; rotate back.

Conventions: e3nn's real spherical harmonics have their polar axis along **y** (Y^e3nn_l(r) =
Y^std_l(z, x, y)); inside an irrep of degree l, index l+m (m > 0) is the cos(mφ) component and
l−m the sin(mφ) component about that axis. The frame rotation Q = R(α, β, 0) of
``e3nn.o3.xyz_to_angles`` maps e_y onto the bond; features enter the frame as D(Q)ᵀ x.

The kernel between an input irrep (l_a, p_a) and an output irrep (l_b, p_b), per m ≤ min(l_a, l_b):
* "even" pair, (−1)^{l_a+l_b} p_a p_b = +1 (CG filters of degree l_f with (−1)^{l_f} = p_a p_b and
  l_a + l_b + l_f even):  y_{+m} += w x_{+m},  y_{−m} += w x_{−m}  (m = 0 included);
* "odd" pair, = −1:  y_{+m} += −w x_{−m},  y_{−m} += w x_{+m}  (m = 0 excluded).
Both commute with rotations about the polar axis (SO(2)); the parity rule makes the map commute
with inversion as well (a π rotation about an equatorial axis multiplies (±m) components by
±(−1)^{l+m}), so the layer is O(3)-equivariant. With one free weight per (a, b, m, channel pair) it
spans exactly the parity-allowed CG products with Y_{l_f}(r̂), l_f ≤ l_a + l_b (eSCN, Prop. 1).
"""
from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


def _frame_angles(edge_vec: torch.Tensor):
    """(α, β) of e3nn's ``xyz_to_angles``: R(α, β, 0) e_y = r̂ (edge_vec: (E, 3))."""
    return o3.xyz_to_angles(edge_vec)


class LocalFrameConvolution(nn.Module):
    """x_out(e) = D(Q_e) K(|r_e|) D(Q_e)ᵀ x_in(e) with the SO(2) kernel K described above.

    irreps_in, irreps_out : e3nn Irreps of the edge features (any multiplicities and parities).
    num_weights : K's free weights (as many as the CG product's), produced per edge by the caller (e.g. a radial MLP of |r_e|).

    forward(x (E, irreps_in.dim), edge_vec (E, 3), weights (E, num_weights)) -> (E, irreps_out.dim)
    """

    def __init__(self, irreps_in, irreps_out):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in).simplify()
        self.irreps_out = o3.Irreps(irreps_out).simplify()
        self.lmax = max(max(ir.l for _, ir in self.irreps_in), max(ir.l for _, ir in self.irreps_out))
        # per m: component indices (+m, −m) of every input/output channel, and the kernel paths
        self._plans = []
        n_weights = 0
        for m in range(self.lmax + 1):
            plan = {"m": m}
            for side, irreps in (("in", self.irreps_in), ("out", self.irreps_out)):
                pos, neg, owner = [], [], []
                start = 0
                for k, (mul, ir) in enumerate(irreps):
                    d = 2 * ir.l + 1
                    if ir.l >= m:
                        for u in range(mul):
                            pos.append(start + u * d + ir.l + m)
                            neg.append(start + u * d + ir.l - m)
                            owner.append(k)
                    start += mul * d
                plan[side] = (torch.tensor(pos, dtype=torch.long), torch.tensor(neg, dtype=torch.long),
                              torch.tensor(owner, dtype=torch.long))
            n_in, n_out = len(plan["in"][0]), len(plan["out"][0])
            if n_in == 0 or n_out == 0:
                continue
            ia, ib = plan["in"][2], plan["out"][2]
            la = torch.tensor([self.irreps_in[k].ir.l for k in range(len(self.irreps_in))])[ia]
            pa = torch.tensor([self.irreps_in[k].ir.p for k in range(len(self.irreps_in))])[ia]
            lb = torch.tensor([self.irreps_out[k].ir.l for k in range(len(self.irreps_out))])[ib]
            pb = torch.tensor([self.irreps_out[k].ir.p for k in range(len(self.irreps_out))])[ib]
            sign = ((-1) ** (la[:, None] + lb[None, :])) * pa[:, None] * pb[None, :]  # (n_in, n_out)
            even = (sign == 1).to(torch.get_default_dtype())
            odd = (sign == -1).to(torch.get_default_dtype())
            if m == 0:
                odd = torch.zeros_like(odd)
            if even.sum() + odd.sum() == 0:
                continue
            self.register_buffer(f"even_{m}", even, persistent=False)
            self.register_buffer(f"odd_{m}", odd, persistent=False)
            valid = torch.nonzero((even + odd).reshape(-1) > 0).reshape(-1)
            self.register_buffer(f"valid_{m}", valid, persistent=False)
            plan["n"] = (n_in, n_out)
            plan["offset"] = n_weights
            n_weights += len(valid)
            self._plans.append(plan)
        self.num_weights = n_weights

    def frame_rotations(self, edge_vec: torch.Tensor) -> dict[int, torch.Tensor]:
        """D^l(R(α, β, 0)) per degree l ≥ 1, shape (E, 2l+1, 2l+1): the frame of every edge."""
        alpha, beta = _frame_angles(edge_vec)
        zero = torch.zeros_like(alpha)
        return {l: o3.Irrep(l, 1).D_from_angles(alpha, beta, zero) for l in range(1, self.lmax + 1)}

    @staticmethod
    def rotate(irreps, x: torch.Tensor, dmats: dict, inverse: bool) -> torch.Tensor:
        """Apply Dᵀ (into the frame, ``inverse``) or D (back) to x (E, irreps.dim)."""
        out = torch.empty_like(x)
        start = 0
        for mul, ir in irreps:
            d = 2 * ir.l + 1
            block = x[:, start:start + mul * d].reshape(-1, mul, d)
            if ir.l == 0:
                out[:, start:start + mul * d] = block.reshape(-1, mul * d)
            else:
                dmat = dmats[ir.l]
                eq = "eij,eui->euj" if inverse else "eij,euj->eui"
                out[:, start:start + mul * d] = torch.einsum(eq, dmat, block).reshape(-1, mul * d)
            start += mul * d
        return out

    def forward(self, x: torch.Tensor, edge_vec: torch.Tensor, weights: torch.Tensor,
                dmats: dict | None = None) -> torch.Tensor:
        """``dmats`` (from :meth:`frame_rotations`) can be shared by several layers on one graph."""
        dmats = self.frame_rotations(edge_vec) if dmats is None else dmats
        x_loc = self.rotate(self.irreps_in, x, dmats, inverse=True)
        y_loc = x.new_zeros(x.shape[0], self.irreps_out.dim)
        for plan in self._plans:
            m = plan["m"]
            n_in, n_out = plan["n"]
            valid = getattr(self, f"valid_{m}")
            w = weights.new_zeros(weights.shape[0], n_in * n_out)
            w[:, valid] = weights[:, plan["offset"]:plan["offset"] + len(valid)]
            w = w.reshape(-1, n_in, n_out)
            pos_i, neg_i, _ = plan["in"]
            pos_o, neg_o, _ = plan["out"]
            w_even = w * getattr(self, f"even_{m}")
            xp = x_loc[:, pos_i]
            y_loc[:, pos_o] += torch.einsum("ei,eio->eo", xp, w_even)
            if m > 0:
                xn = x_loc[:, neg_i]
                w_odd = w * getattr(self, f"odd_{m}")
                y_loc[:, neg_o] += torch.einsum("ei,eio->eo", xn, w_even)
                y_loc[:, pos_o] -= torch.einsum("ei,eio->eo", xn, w_odd)
                y_loc[:, neg_o] += torch.einsum("ei,eio->eo", xp, w_odd)
        return self.rotate(self.irreps_out, y_loc, dmats, inverse=False)

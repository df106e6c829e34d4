"""Helpers shared by the e3nn-based architectures (SO3Net, NequIP, MACE, SEGNN): irreps,
Clebsch–Gordan couplings of edges, the gated nonlinearity, and exact constants.

e3nn builds its Clebsch–Gordan (Wigner-3j) buffers in the default dtype. A model built
in float32 and converted to float64 would keep float32-rounded couplings, i.e.
equivariance errors of ~1e-7; :func:`restore_exact_constants_` resets them (and the
constants registered with :func:`register_constant`) from float64 values, and the
models call it after every ``.to()`` and ``load_state_dict``.
"""

from __future__ import annotations

import math
import re

import torch
from e3nn import o3
from torch import nn

_W3J_NAME = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)$")


def register_constant(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """A non-persistent buffer whose float64 value is restored after every ``.to()``."""
    module.register_buffer(name, value.to(torch.get_default_dtype()), persistent=False)
    module.__dict__.setdefault("_exact_constants", {})[name] = value


@torch.no_grad()
def restore_exact_constants_(module: nn.Module) -> None:
    """Reset constants of :func:`register_constant` and e3nn's Wigner-3j buffers to exact values."""
    for sub in module.modules():
        for name, value in sub.__dict__.get("_exact_constants", {}).items():
            getattr(sub, name).copy_(value)
    for name, buffer in module.named_buffers():
        match = _W3J_NAME.search(name)
        if match and buffer.is_floating_point():
            exact = o3.wigner_3j(*(int(l) for l in match.groups()), dtype=torch.float64)
            buffer.copy_(exact.reshape(buffer.shape))


def symmetric_basis() -> torch.Tensor:
    """Q (6, 3, 3), float64: orthonormal symmetric matrices that rotate as e3nn's 1x0e + 1x2e.

    Q₀ = I/√3; Q_{2m} is the quadratic form of e3nn's ℓ = 2 harmonic, Y_{2m}(r) = rᵀ Q_{2m} r
    (normalised), evaluated exactly as Q_ij = (Y(e_i + e_j) − Y(e_i − e_j)) / 4. This is
    e3nn's ``CartesianTensor("ij=ji")`` basis, computed in float64.
    """
    e = torch.eye(3, dtype=torch.float64)
    plus = o3.spherical_harmonics(2, (e[:, None] + e[None, :]).reshape(9, 3), normalize=False)
    minus = o3.spherical_harmonics(2, (e[:, None] - e[None, :]).reshape(9, 3), normalize=False)
    q2 = ((plus - minus) / 4).T.reshape(5, 3, 3)
    return torch.cat(
        [e[None] / math.sqrt(3.0), q2 / torch.linalg.norm(q2, dim=(1, 2), keepdim=True)]
    )


class SymmetricTensorOut(nn.Module):
    """Per-atom symmetric 3×3 tensors from the 0e and 2e channels: t = Σ_k y_k Q_k, y = W x."""

    def __init__(self, irreps_in: o3.Irreps):
        super().__init__()
        self.linear = o3.Linear(irreps_in, "1x0e + 1x2e")
        register_constant(self, "basis", symmetric_basis())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nk,kij->nij", self.linear(x), self.basis)


def natural_irreps(mul: int, lmax: int) -> o3.Irreps:
    """``mul×0e + mul×1o + mul×2e + ...`` up to ℓ_max: parity (−1)^ℓ."""
    return o3.Irreps([(mul, (l, (-1) ** l)) for l in range(lmax + 1)])


def nonzero_couplings(irreps1: o3.Irreps, irreps2: o3.Irreps, irreps_out: o3.Irreps, instructions: list):
    """Nonzero c_ijp of e3nn's one-channel product out_p = Σ c_ijp x_i y_j: (i, j, p, c), c in
    float64, read off e3nn's ``TensorProduct`` (so its normalisation and phases)."""
    tp = o3.TensorProduct(irreps1, irreps2, irreps_out, instructions).double()
    restore_exact_constants_(tp)  # e3nn builds its couplings in the default dtype
    d1, d2 = irreps1.dim, irreps2.dim
    eye1 = torch.eye(d1, dtype=torch.float64)
    eye2 = torch.eye(d2, dtype=torch.float64)
    with torch.no_grad():
        c = tp(eye1.repeat_interleave(d2, 0), eye2.repeat(d1, 1))  # row i·d2 + j
    i_j, p = torch.nonzero(c.abs() > 1e-12, as_tuple=True)
    return i_j // d2, i_j % d2, p, c[i_j, p]


def m_major_index(irreps: o3.Irreps) -> torch.Tensor:
    """Permutation of e3nn's layout (blocks of (u, m)) to (row = block, m; column = u).

    ``x.index_select(1, index).view(n, Σ(2ℓ+1), F)`` for irreps that all have multiplicity F.
    """
    blocks, start = [], 0
    for mul, ir in irreps:
        blocks.append(torch.arange(start, start + mul * ir.dim).view(mul, ir.dim).T.reshape(-1))
        start += mul * ir.dim
    return torch.cat(blocks)


def coupling(l1: int, l2: int, l: int) -> torch.Tensor:
    """√(2ℓ+1) (ℓ1 ℓ2 ℓ; m1 m2 m) in float64 as [m, m2, m1]: e3nn's 'component' coupling."""
    return math.sqrt(2 * l + 1) * o3.wigner_3j(l1, l2, l, dtype=torch.float64).permute(2, 1, 0)


def edge_couplings(sh: torch.Tensor, couplings: torch.Tensor) -> torch.Tensor:
    """B_e[r, a] = Σ_y K[r, y, a] Y_y(r̂_e): (n_edges, rows, dim in); K (rows, dim Y, dim in)."""
    rows, dim_sh, dim_in = couplings.shape
    flat = couplings.transpose(0, 1).reshape(dim_sh, rows * dim_in)
    return (sh @ flat).view(-1, rows, dim_in)


#: e3nn's second-moment normalisation of SiLU and the sigmoid, 1/sqrt(E[f(z)²]) for z ~ N(0, 1)
#: as ``e3nn.math.normalize2mom`` estimates it (10⁶ samples, seed 0; tested equal), so that
#: NequIP and SO3Net files trained with e3nn's Gate give the same functions.
SILU_2MOM = 1.6791767923989418
SIGMOID_2MOM = 1.8467055342154763


class Gate(nn.Module):
    """[scalars, gates, gated] -> [a·SiLU(scalars), b·σ(gate_c)·gated_c]: the zoo's one gate.

    One scalar gate per ℓ > 0 channel (``irreps_in`` = scalars + gates + gated,
    ``irreps_out`` = scalars + gated, e3nn's layout). Smooth: SiLU and the sigmoid are C∞,
    and an ℓ > 0 channel is only multiplied, never normed. ``normalize=True`` scales the
    activations to unit second moment as e3nn's ``Gate`` does (a = :data:`SILU_2MOM`,
    b = :data:`SIGMOID_2MOM`; NequIP, SO3Net); ``False`` leaves them as they are (SEGNN).
    Written out instead of e3nn's ``Gate``: no element-wise tensor product and no million
    samples drawn per instance to find a and b.
    """

    def __init__(self, irreps_out: o3.Irreps, normalize: bool = False):
        super().__init__()
        self.irreps_out = o3.Irreps(irreps_out)
        gated = o3.Irreps([(mul, ir) for mul, ir in self.irreps_out if ir.l > 0])
        if self.irreps_out[: len(self.irreps_out) - len(gated)] + gated != self.irreps_out:
            raise ValueError(f"scalars must come first in {self.irreps_out}")
        self.n_scalars = self.irreps_out.dim - gated.dim
        self.gated = [(mul, ir.dim) for mul, ir in gated]
        self.irreps_in = o3.Irreps(f"{self.n_scalars + gated.num_irreps}x0e") + gated
        self.scalar_scale, self.gate_scale = (SILU_2MOM, SIGMOID_2MOM) if normalize else (1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, S = x.shape[0], self.n_scalars
        scalars = nn.functional.silu(x[:, :S])
        out = [scalars * self.scalar_scale if self.scalar_scale != 1.0 else scalars]
        gate_at, at = S, S + sum(mul for mul, _ in self.gated)
        for mul, dim in self.gated:
            gates = torch.sigmoid(x[:, gate_at: gate_at + mul])
            if self.gate_scale != 1.0:
                gates = gates * self.gate_scale
            gated = x[:, at: at + mul * dim].reshape(n, mul, dim) * gates[:, :, None]
            out.append(gated.reshape(n, mul * dim))
            gate_at, at = gate_at + mul, at + mul * dim
        return torch.cat(out, dim=1)


def gated_nonlinearity(n_features: int, lmax: int) -> Gate:
    """Gate of F×0e + F×1o + F×2e…: SiLU on F scalars, each ℓ > 0 channel times σ of its own gate (normalised)."""
    return Gate(natural_irreps(n_features, lmax), normalize=True)


def parity_paths(lmax_in: int, lmax_sh: int, lmax_out: int) -> list[tuple[int, int, int]]:
    """(ℓ1, ℓ2, ℓ) with |ℓ1 − ℓ2| ≤ ℓ ≤ min(ℓ1 + ℓ2, ℓ_out) and ℓ1 + ℓ2 + ℓ even (parity kept)."""
    return [
        (l1, l2, l)
        for l1 in range(lmax_in + 1)
        for l2 in range(lmax_sh + 1)
        for l in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1)
        if (l1 + l2 + l) % 2 == 0
    ]

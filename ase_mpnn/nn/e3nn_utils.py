"""Helpers shared by the e3nn-based architectures (SO3Net, NequIP, MACE, SEGNN).

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

"""Read-outs from atomic features to energy, charges, dipole and polarizability.

Every representation returns invariant scalars ``s`` (n_atoms, F) and, if it has
them, equivariant vectors ``v`` (n_atoms, 3, F). The heads below turn those into
physical properties with the right transformation behaviour:

* energy: Σ_i E_i, invariant.
* charges q_i: invariant scalars corrected so that Σ_i q_i equals the total charge.
* dipole μ = Σ_i q_i r_i + Σ_i μ_i(v_i): the second term is a learned linear map of
  the vectors (zero for scalar-only models). With Σ q_i = Q the dipole of a neutral
  structure does not depend on the origin.
* polarizability α (3×3, symmetric), three terms:
    α = Σ_i α₀(s_i) I                                  isotropic, per atom
      + Σ_(i,j) b(s_i) f_c(r_ij) r̂_ij ⊗ r̂_ij            bond anisotropy, local
      + Σ_i ν_i ⊗ r̃_i + r̃_i ⊗ ν_i                       (vector models only)
  where r̃_i are positions relative to the structure's centre of mass (so α is
  translation invariant) and ν_i a learned linear map of v_i. Each term rotates as
  R α Rᵀ. The bond term lets scalar-only models such as SchNet predict an
  anisotropic, equivariant polarizability; the ν ⊗ r̃ term is PaiNN's polarizability
  read-out (Schütt, Unke and Gastegger, ICML 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from .nn import MLP, CosineCutoff, scatter_sum


class ScalarReadout(nn.Module):
    """Per-atom scalar from invariant features: a two-layer MLP, F -> F/2 -> n_out."""

    def __init__(self, n_features: int, n_out: int = 1, act: str = "silu"):
        super().__init__()
        self.net = MLP([n_features, max(n_features // 2, 1), n_out], act=act)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)


class VectorReadout(nn.Module):
    """Per-atom vectors ν (n_atoms, 3, n_out) as a bias-free linear map of v: stays equivariant."""

    def __init__(self, n_features: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(n_features, n_out, bias=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.linear(v)


def corrected_charges(
    raw: torch.Tensor, batch: torch.Tensor, n_graphs: int, total_charge: torch.Tensor
) -> torch.Tensor:
    """Shift raw charges (n_atoms,) uniformly within each structure so they sum to its total charge."""
    n_atoms = scatter_sum(torch.ones_like(raw), batch, n_graphs)
    excess = (total_charge - scatter_sum(raw, batch, n_graphs)) / n_atoms
    return raw + excess[batch]


def centre_of_mass(
    positions: torch.Tensor, masses: torch.Tensor, batch: torch.Tensor, n_graphs: int
) -> torch.Tensor:
    """(n_graphs, 3) mass-weighted centre of each structure."""
    total = scatter_sum(masses, batch, n_graphs)
    return scatter_sum(positions * masses[:, None], batch, n_graphs) / total[:, None]


class BondPolarizability(nn.Module):
    """Σ_(i,j) b(s_i) f_c(r_ij) r̂_ij ⊗ r̂_ij per structure: local, equivariant anisotropy."""

    def __init__(self, n_features: int, cutoff: float, act: str = "silu"):
        super().__init__()
        self.strength = ScalarReadout(n_features, 1, act)
        self.cutoff_fn = CosineCutoff(cutoff)

    def forward(
        self,
        s: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        batch: torch.Tensor,
        n_graphs: int,
    ) -> torch.Tensor:
        receiver = edge_index[0]
        b = self.strength(s).squeeze(-1)[receiver] * self.cutoff_fn(lengths)
        unit = vectors / lengths[:, None]
        outer = unit[:, :, None] * unit[:, None, :] * b[:, None, None]
        return scatter_sum(outer, batch[receiver], n_graphs)

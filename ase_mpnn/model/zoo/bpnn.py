"""Behler–Parrinello network: atom-centred symmetry functions and one MLP per element.

Behler & Parrinello, PRL 98, 146401 (2007); Behler, J. Chem. Phys. 134, 074106 (2011).
No message passing: each atom is described by fixed, element-resolved symmetry
functions of its neighbors within the cutoff, with the cosine cutoff
f_c(r) = ½ (cos(π r / r_c) + 1):

* radial, for every neighbor element Z and every shift k:

    G2_i[Z, k] = Σ_{j: Z_j = Z} exp(−η_r (r_ij − R_k)²) f_c(r_ij)

  R_k = r_0 + k Δ (k = 0 .. n_radial − 1), Δ = (r_c − r_0) / n_radial, η_r = 1 / (2 Δ²),
  r_0 = ``radial_start``: Gaussians one spacing wide tiling [r_0, r_c).

* angular, for every unordered neighbor-element pair {Z, Z'} and every (η, ζ, λ):

    G4_i[{Z,Z'}, η, ζ, λ] = 2^(1−ζ) Σ_{j, k≠j} (1 + λ cos θ_jik)^ζ exp(−η (r_ij² + r_ik²))
                            f_c(r_ij) f_c(r_ik) [× exp(−η r_jk²) f_c(r_jk)]

  over ordered pairs of distinct neighbors (edges) of i with {Z_j, Z_k} = {Z, Z'};
  cos θ_jik = r_ij · r_ik / (r_ij r_ik); λ ∈ {+1, −1}; ζ ∈ {1, 2, 4, ..., 2^(n_zeta−1)};
  η_m = 1 / (2 ρ_m²), ρ_m = r_c (n − m) / n for m = 0 .. n − 1 (n = ``n_angular_eta``;
  for r_c = 5 Å and n = 3: η ≈ 0.020, 0.045, 0.18 Å⁻²). The bracketed factor (Behler's
  original G4, ``angular_jk=True``) uses r_jk = |vectors_ik − vectors_ij|, correct for
  periodic images. Without it (default) the function is Behler's G5 form.

Triplets are built in torch from ``edge_index``: pairs of edges with the same receiver,
each unordered pair once (its sum over both orders is twice one term), Σ_i n_i (n_i − 1)/2
pairs for n_i neighbors of atom i, vectorized with ``repeat_interleave``.

The descriptors G ≥ 0 are normalized by the fixed map x = ln(1 + G) (smooth, zero for
an isolated atom, compresses large neighbor counts), then element Z_i's own MLP
(``n_hidden_layers`` hidden layers of ``n_hidden``, tanh or SiLU) gives ``n_features``
invariant scalars s_i. The shared heads turn s into atomic energies, charges (dipole
μ = Σ q_i r_i) and the isotropic plus bond polarizability Σ b(s_i) f_c r̂_ij ⊗ r̂_ij,
which makes α anisotropic and equivariant without vector features.

Default sizes for water (2 elements, r_c = 5 Å): 2 × 12 radial + 3 × 3 × 3 × 2 angular
= 78 descriptors per atom.

Smoothness: the angular terms (1 ± cos θ)^ζ use integer ζ = 1, 2, 4, ... (repeated
squaring), polynomials in cos θ that stay smooth where 1 ± cos θ reaches zero (linear
arrangements); a non-integer ζ would have a cusp there. With Gaussians, tanh/SiLU and
the cosine cutoff the surface is C∞ away from the cutoff (``tests/test_smoothness.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import MLP, CosineCutoff, scatter_sum
from ..nn.representation import Features, Representation


def edge_pairs(receiver: torch.Tensor, n_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge indices (a, b), a ≠ b, of every unordered pair of edges with the same receiver."""
    n_edges = receiver.shape[0]
    device = receiver.device
    order = torch.argsort(receiver, stable=True)
    sorted_receiver = receiver.index_select(0, order)
    counts = torch.bincount(receiver, minlength=n_nodes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n_edges, device=device) - starts.index_select(0, sorted_receiver)
    # The edge at sorted position p pairs with the later edges of its group.
    partners = counts.index_select(0, sorted_receiver) - rank - 1
    n_pairs = int(partners.sum())
    first = torch.repeat_interleave(torch.arange(n_edges, device=device), partners, output_size=n_pairs)
    begin = torch.cumsum(partners, 0) - partners
    offset = torch.arange(n_pairs, device=device) - torch.repeat_interleave(begin, partners, output_size=n_pairs)
    second = first + 1 + offset
    return order.index_select(0, first), order.index_select(0, second)


class BPNN(Representation):
    """Behler–Parrinello representation: returns per-element-MLP scalars (n, F), no vectors.

    Args:
        n_species: number of elements S (one MLP each).
        cutoff: radial cutoff r_c in Å of the symmetry functions.
        n_features: outputs F of each element's MLP, read by the shared heads (default 64).
        n_radial: radial functions per neighbor element (default 12).
        radial_start: r_0, first radial shift R_0 in Å (default 0.5).
        n_angular_eta: angular widths η per element pair (default 3).
        n_zeta: angular exponents ζ = 1, 2, 4, ..., 2^(n_zeta−1) (default 3).
        angular_jk: multiply the angular terms by exp(−η r_jk²) f_c(r_jk) (Behler's G4;
            default False: G5 form).
        n_hidden: width of the hidden layers of the element MLPs (default 64).
        n_hidden_layers: number of hidden layers of the element MLPs (default 2).
        act: activation of the element MLPs, "tanh" (Behler, default) or "silu".
    """

    has_vectors = False

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_features: int = 64,
        n_radial: int = 12,
        radial_start: float = 0.5,
        n_angular_eta: int = 3,
        n_zeta: int = 3,
        angular_jk: bool = False,
        n_hidden: int = 64,
        n_hidden_layers: int = 2,
        act: str = "tanh",
    ):
        super().__init__()
        if min(n_features, n_radial, n_angular_eta, n_zeta, n_hidden) < 1 or n_hidden_layers < 0:
            raise ValueError("n_features, n_radial, n_angular_eta, n_zeta and n_hidden must be positive")
        if not 0 <= radial_start < cutoff:
            raise ValueError(f"radial_start must lie in [0, cutoff), got {radial_start}")
        if act not in ("tanh", "silu"):
            raise ValueError(f"unknown activation {act!r}; choose 'tanh' or 'silu'")
        self.n_species = n_species
        self.n_features = n_features
        self.angular_jk = bool(angular_jk)
        self.cutoff_fn = CosineCutoff(cutoff)
        spacing = (cutoff - radial_start) / n_radial
        shifts = radial_start + spacing * torch.arange(n_radial, dtype=torch.float64)
        self.register_buffer("radial_shifts", shifts)
        self.radial_eta = 0.5 / spacing**2
        widths = cutoff * (n_angular_eta - torch.arange(n_angular_eta, dtype=torch.float64)) / n_angular_eta
        self.register_buffer("angular_etas", 0.5 / widths**2)
        zetas = 2.0 ** torch.arange(n_zeta, dtype=torch.float64)
        # 2^(1−ζ), times 2 for the two orders (j, k) and (k, j) of each pair.
        self.register_buffer("angular_prefactors", 2.0 * 2.0 ** (1.0 - zetas))
        self.n_pairs = n_species * (n_species + 1) // 2
        self.n_angular = n_angular_eta * n_zeta * 2
        self.n_descriptors = n_species * n_radial + self.n_pairs * self.n_angular
        sizes = [self.n_descriptors] + [n_hidden] * n_hidden_layers + [n_features]
        self.networks = nn.ModuleList(MLP(sizes, act) for _ in range(n_species))

    def descriptors(self, species, edge_index, vectors, lengths) -> torch.Tensor:
        """Raw symmetry functions G (n_nodes, S·n_radial + pairs·n_angular), before ln(1 + G)."""
        receiver, sender = edge_index[0], edge_index[1]
        n, S = species.shape[0], self.n_species
        fcut = self.cutoff_fn(lengths)
        neighbor = species.index_select(0, sender)

        g2 = torch.exp(-self.radial_eta * (lengths[:, None] - self.radial_shifts) ** 2) * fcut[:, None]
        radial = scatter_sum(g2, receiver * S + neighbor, n * S)

        a, b = edge_pairs(receiver, n)
        r_ij, r_ik = vectors.index_select(0, a), vectors.index_select(0, b)
        l_ij, l_ik = lengths.index_select(0, a), lengths.index_select(0, b)
        cos = (r_ij * r_ik).sum(dim=1) / (l_ij * l_ik)
        radial_part = torch.exp(-self.angular_etas * (l_ij * l_ij + l_ik * l_ik)[:, None])
        radial_part = radial_part * (fcut.index_select(0, a) * fcut.index_select(0, b))[:, None]
        if self.angular_jk:
            l_jk = torch.linalg.vector_norm(r_ik - r_ij, dim=1)
            radial_part = radial_part * torch.exp(-self.angular_etas * (l_jk * l_jk)[:, None])
            radial_part = radial_part * self.cutoff_fn(l_jk)[:, None]
        # (1 + λ cos)^ζ for ζ = 1, 2, 4, ... by repeated squaring (no pow: finite second
        # derivatives at 1 + λ cos = 0).
        powers = [torch.stack([1.0 + cos, 1.0 - cos], dim=1)]  # λ = +1, −1
        while len(powers) < self.angular_prefactors.shape[0]:
            powers.append(powers[-1] * powers[-1])
        angle_part = (torch.stack(powers, dim=1) * self.angular_prefactors[:, None]).flatten(1)  # (T, 2 n_zeta)
        # Outer product per triplet as a batched matrix product: its backward is two
        # bmm's, several times faster on CPU than the reductions of a broadcast product.
        g4 = torch.bmm(radial_part[:, :, None], angle_part[:, None, :]).reshape(cos.shape[0], self.n_angular)
        z_j, z_k = neighbor.index_select(0, a), neighbor.index_select(0, b)
        low, high = torch.minimum(z_j, z_k), torch.maximum(z_j, z_k)
        pair = low * S - low * (low - 1) // 2 + (high - low)
        index = receiver.index_select(0, a) * self.n_pairs + pair
        angular = scatter_sum(g4, index, n * self.n_pairs)
        return torch.cat([radial.reshape(n, -1), angular.reshape(n, -1)], dim=1)

    def forward(self, species, edge_index, vectors, lengths):
        x = torch.log1p(self.descriptors(species, edge_index, vectors, lengths))
        s = x.new_zeros((x.shape[0], self.n_features))
        for element, network in enumerate(self.networks):
            nodes = torch.nonzero(species == element).squeeze(1)
            s = s.index_copy(0, nodes, network(x.index_select(0, nodes)))
        return Features(s)

    def extra_repr(self) -> str:
        return (
            f"descriptors={self.n_descriptors} (radial η={self.radial_eta:.3g}, angular "
            f"{self.n_angular} per element pair), F={self.n_features}, out: scalars (n, F)"
        )

"""NequIP: E(3)-equivariant interatomic potentials (Batzner et al., Nat. Commun. 2022).

Atom features h_i are e3nn irreps, F×0e at the start (a learned embedding of the
element) and ``F×0e + F×1o + F×2e + ...`` up to ℓ_max after the first layer. Edges carry

    Bessel basis   e_n(r) = sin(nπ r / r_c) / r,  n = 1..N_rbf
    envelope       u(r) = 1 − (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) − p(p+1)/2 x^(p+2),  x = r / r_c
    harmonics      Y_ℓm(r̂_ij),  ℓ = 0..ℓ_max

and each interaction layer is

    h'_i   = W₁ h_i                                  self-interaction (linear)
    m_i    = (1/√N_avg) Σ_j  h'_j ⊗_{w_ij} Y(r̂_ij)     convolution
    w_ij   = MLP(e(r_ij) u(r_ij))                   one weight per path and channel
    h_i   ← Gate(W₂ m_i) + W_sc h_i                 nonlinearity + self-connection

The tensor product is channel-wise ('uvu'): every allowed path ℓ1 ⊗ ℓ2 → ℓ (|ℓ1 − ℓ2| ≤ ℓ
≤ ℓ1 + ℓ2, ℓ ≤ ℓ_max) writes its own F channels, which W₂ then mixes, as in NequIP. The
radial MLP has no biases (SiLU(0) = 0), so the weights, and with them every message,
vanish smoothly as r → r_c. The Gate applies SiLU to F scalars and multiplies each ℓ > 0
channel by the sigmoid of its own extra scalar. Dividing by √N_avg keeps the sum over
neighbors of order one (NequIP's avg_num_neighbors normalisation).

Parity: features and paths are restricted to the "natural" irreps 0e, 1o, 2e, ... (parity
(−1)^ℓ, the parity of the spherical harmonics). NequIP can also carry 0o, 1e, 2o channels;
they double the cost, and the natural subset already gives the invariant energy, the polar
vectors and the 0e + 2e tensors the heads need. Each convolution is evaluated with per-edge
coupling matrices (:class:`NequIPLayer`), 2–3× faster on CPU than e3nn's generic kernel.

Outputs: s = the final F×0e, v = the final F×1o as Cartesian (n, 3, F) (e3nn 0.6's ℓ = 1
basis is x, y, z), t = a linear map of the final 0e and 2e channels to a symmetric 3×3
tensor per atom (see :class:`~ase_mpnn.model.zoo.so3net.SymmetricTensorOut`).

Smoothness: tensor products, linear maps and a gate whose ℓ > 0 channels are multiplied
by a sigmoid of scalars are C∞ in the features (no norms of equivariant features); the
Bessel basis times the polynomial envelope is C∞ for r < r_c and Y(r̂) for r > 0. The
surface is C∞ away from the cutoff (``tests/test_smoothness.py``).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from ..nn import MLP, PolynomialCutoff, SineRBF, scatter_sum
from ..nn.e3nn_utils import (
    SymmetricTensorOut,
    coupling,
    edge_couplings,
    gated_nonlinearity,
    m_major_index,
    natural_irreps,
    parity_paths,
    register_constant,
)
from ..nn.representation import E3nnRepresentation, Features, split_scalars_vectors


class NequIPLayer(nn.Module):
    """Linear → tensor-product convolution with radial weights → linear → gate, + self-connection.

    The convolution is e3nn's ``TensorProduct(irreps_in, Y, irreps_mid, 'uvu' paths,
    shared_weights=False, internal_weights=False)`` (tests/test_nequip.py checks this),
    evaluated with per-edge coupling matrices B_ij[(p, m), ℓ1m1] = Σ_{m2} C_p Y_{ℓ2m2}(r̂_ij):
    one batched product B_ij h'_j per output degree ℓ for all its paths p, then the weights.
    """

    def __init__(
        self,
        lmax_in: int,
        n_features: int,
        lmax: int,
        radial_sizes: list[int],
        avg_neighbors: float,
    ):
        super().__init__()
        F = n_features
        irreps_in = natural_irreps(F, lmax_in)
        # One output slot (F channels) per path, grouped by output degree ℓ.
        self.paths = sorted(parity_paths(lmax_in, lmax, lmax), key=lambda path: path[2])
        self.irreps_mid = o3.Irreps([(F, (l, (-1) ** l)) for _, _, l in self.paths])
        self.n_features, self.dim_in = F, (lmax_in + 1) ** 2
        self.paths_per_l = [sum(1 for path in self.paths if path[2] == l) for l in range(lmax + 1)]
        self.rows_per_l = [n * (2 * l + 1) for l, n in enumerate(self.paths_per_l)]
        K = torch.zeros(sum(self.rows_per_l), (lmax + 1) ** 2, self.dim_in, dtype=torch.float64)
        start = 0
        for l1, l2, l in self.paths:
            K[start : start + 2 * l + 1, l2 * l2 : (l2 + 1) ** 2, l1 * l1 : (l1 + 1) ** 2] = (
                coupling(l1, l2, l)
            )
            start += 2 * l + 1
        register_constant(self, "couplings", K)  # (rows (p, m), dim Y, dim in)
        self.register_buffer("in_to_m_major", m_major_index(irreps_in), persistent=False)
        self.register_buffer(
            "mid_to_e3nn", torch.argsort(m_major_index(self.irreps_mid)), persistent=False
        )
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.radial = MLP(radial_sizes + [len(self.paths) * F], bias=False)  # MLP(0) = 0: filters vanish at r_c
        self.gate = gated_nonlinearity(F, lmax)
        self.linear_out = o3.Linear(self.irreps_mid, self.gate.irreps_in, biases=True)
        self.self_connection = o3.Linear(irreps_in, natural_irreps(F, lmax))
        self.norm = 1.0 / math.sqrt(avg_neighbors)

    def convolve(self, h, sh, weights, receiver, sender):
        """Σ_j h_j ⊗_{w_ij} Y(r̂_ij) as (n, irreps_mid.dim); weights (n_edges, paths × F)."""
        n, F = h.shape[0], self.n_features
        h_j = h.index_select(1, self.in_to_m_major).view(n, self.dim_in, F).index_select(0, sender)
        couplings = edge_couplings(sh, self.couplings).split(self.rows_per_l, dim=1)
        weights = weights.view(-1, len(self.paths), F).split(self.paths_per_l, dim=1)
        out = []
        for l, (b, w) in enumerate(zip(couplings, weights)):
            bh = b * h_j if self.dim_in == 1 else torch.bmm(b, h_j)  # (n_edges, paths_ℓ (2ℓ+1), F)
            messages = (bh.view(-1, w.shape[1], 2 * l + 1, F) * w[:, :, None, :]).view(bh.shape)
            out.append(scatter_sum(messages, receiver, n))
        return torch.cat(out, dim=1).view(n, -1).index_select(1, self.mid_to_e3nn)

    def forward(self, h, edge_basis, sh, receiver, sender):
        """h (n, dim in); edge_basis e(r) u(r) (n_edges, N_rbf); sh Y(r̂) (n_edges, (ℓ_max+1)²)."""
        m = self.convolve(self.linear_in(h), sh, self.radial(edge_basis), receiver, sender)
        return self.gate(self.linear_out(m * self.norm)) + self.self_connection(h)


class NequIP(E3nnRepresentation):
    """NequIP representation: scalars (n, F), vectors (n, 3, F), symmetric tensors (n, 3, 3).

    Args:
        n_species: number of elements (embedding rows).
        cutoff: radial cutoff r_c in Å.
        n_features: channels F of every irrep, features F×0e + F×1o + F×2e (default 32).
        lmax: highest degree ℓ of features and spherical harmonics (default 2; at least 1
            for vectors, 2 for the 0e + 2e polarizability tensors).
        n_layers: number of interaction layers (default 4).
        n_rbf: number of Bessel functions sin(nπr/r_c)/r (default 8).
        envelope_p: degree p of the polynomial envelope u(r) (default 6).
        radial_hidden: width of the hidden layers of the radial MLP (default 64).
        radial_layers: number of hidden layers of the radial MLP (default 2, i.e. [64, 64]).
        avg_neighbors: N_avg, the sum over neighbors is divided by √N_avg (default 30:
            liquid water has about 27 atoms within 4 Å and 52 within 5 Å).
    """

    has_vectors = True

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_features: int = 32,
        lmax: int = 2,
        n_layers: int = 4,
        n_rbf: int = 8,
        envelope_p: int = 6,
        radial_hidden: int = 64,
        radial_layers: int = 2,
        avg_neighbors: float = 30.0,
    ):
        super().__init__()
        if min(n_features, n_layers, n_rbf, radial_hidden) < 1 or radial_layers < 0:
            raise ValueError("n_features, n_layers, n_rbf and radial_hidden must be positive")
        if lmax < 1:
            raise ValueError(f"lmax must be at least 1 (vectors are ℓ = 1), got {lmax}")
        if envelope_p < 2 or avg_neighbors <= 0:
            raise ValueError("envelope_p must be at least 2 and avg_neighbors positive")
        self.n_features = n_features
        self.lmax = lmax
        self.n_layers = n_layers
        self.irreps = natural_irreps(n_features, lmax)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.embedding = nn.Embedding(n_species, n_features)
        self.rbf = SineRBF(n_rbf, cutoff)
        self.envelope = PolynomialCutoff(cutoff, envelope_p)
        radial_sizes = [n_rbf] + [radial_hidden] * radial_layers
        self.layers = nn.ModuleList(
            NequIPLayer(0 if k == 0 else lmax, n_features, lmax, radial_sizes, avg_neighbors)
            for k in range(n_layers)
        )
        self.tensor_out = SymmetricTensorOut(self.irreps) if lmax >= 2 else None

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        sh = self.edge_harmonics(self.irreps_sh, vectors)
        edge_basis = self.rbf(lengths) * self.envelope(lengths)[:, None]  # (n_edges, n_rbf)
        h = self.embedding(species)
        for layer in self.layers:
            h = layer(h, edge_basis, sh, receiver, sender)
        t = self.tensor_out(h) if self.tensor_out is not None else None
        return Features(*split_scalars_vectors(h, self.n_features), t)

    def extra_repr(self) -> str:
        return (
            f"irreps={self.irreps}, layers={self.n_layers}, "
            "out: scalars (n, F), vectors (n, 3, F), tensors (n, 3, 3)"
        )

"""SEGNN: steerable E(3)-equivariant graph neural network (Brandstetter et al. 2022).

Node features h_i are steerable vectors (default 32 × 0e + 16 × 1o + 8 × 2e). Every
layer is steered by geometric attributes through Clebsch-Gordan tensor products:

    a_ij = Y(r̂_ij)                                     edge attributes, ℓ ≤ ℓ_a (a^0 = 1)
    a_i  = (1, Σ_j u(r_ij) Y^{ℓ≥1}(r̂_ij) / (1 + Σ_j u(r_ij)))     node attributes
    steerable layer:  x' = Gate(W (x ⊗ a) + b)          b: bias on the scalars

a_i is a smooth neighbor mean of Y (a plain mean jumps as a neighbor crosses r_c). The
gate applies SiLU to scalars and multiplies each ℓ > 0 channel by the sigmoid of its own
scalar. Embedding h_i^0 = W (onehot(Z_i) ⊗ a_i); one layer has two steerable layers in
φ_m and two in φ_f (the last without gate):

    m_ij = u(r_ij) · φ_m([h_i, h_j, e(r_ij) u(r_ij)]; a_ij)      e_n(r) = sin(nπr/r_c)/r
    h_i' = h_i + φ_f([h_i, (1/N̄) Σ_j m_ij]; a_i)                u: polynomial envelope

The paper's ‖x_j − x_i‖² input is replaced by the Bessel basis times the envelope and the
messages are multiplied by u, so the energy is smooth as a neighbor crosses the cutoff;
the neighbor sum divided by a constant N̄ (not a mean) keeps it smooth too.

Outputs: s = W_s h[0e] (n, F) with F the number of 0e channels, v = W_v h[1o] (n, 3, F)
(e3nn 0.6's 1o basis is Cartesian x, y, z), t = Q · W_t h[0e + 2e] (n, 3, 3) symmetric.

Smoothness: steerable layers are tensor products with Y(r̂) (C∞ for r > 0) and gates that
scale ℓ > 0 channels by sigmoids of scalars, never by a norm of a feature that can
vanish. The surface is C∞ away from the cutoff (``tests/test_smoothness.py``).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from ..nn import PolynomialCutoff, SineRBF, scatter_sum
from ..nn.e3nn_utils import Gate, SymmetricTensorOut
from ..nn.representation import E3nnRepresentation, Features, split_scalars_vectors

SCALAR = o3.Irrep("0e")


def sorted_concat(irreps_list: list[o3.Irreps]) -> tuple[o3.Irreps, torch.Tensor]:
    """Irreps of concatenated features, sorted and merged, and the column order that gives them."""
    cat = sum((o3.Irreps(irreps) for irreps in irreps_list), o3.Irreps())
    order = cat.sort()
    slices = cat.slices()
    index = torch.cat([torch.arange(slices[i].start, slices[i].stop) for i in order.inv])
    return order.irreps.simplify(), index


class SteerableLayer(nn.Module):
    """x' = Gate(W (x ⊗ a) + b): fully connected CG tensor product with attributes a."""

    def __init__(self, irreps_in, irreps_attr, irreps_out, gate: bool = True):
        super().__init__()
        self.gate = Gate(irreps_out) if gate else None
        irreps_out = self.gate.irreps_in if gate else o3.Irreps(irreps_out)
        self.tp = o3.FullyConnectedTensorProduct(irreps_in, irreps_attr, irreps_out)
        columns = [
            torch.arange(part.start, part.stop)
            for (_, ir), part in zip(irreps_out, irreps_out.slices())
            if ir == SCALAR
        ]
        self.register_buffer("scalar_index", torch.cat(columns), persistent=False)
        self.bias = nn.Parameter(torch.zeros(len(self.scalar_index)))

    def forward(self, x: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
        y = self.tp(x, attr)
        y = y + y.new_zeros(y.shape[1]).index_copy(0, self.scalar_index, self.bias)
        return y if self.gate is None else self.gate(y)


class SEGNNLayer(nn.Module):
    """Message φ_m (two gated steerable layers on edges) and residual node update φ_f."""

    def __init__(self, hidden: o3.Irreps, irreps_attr: o3.Irreps, n_rbf: int, avg: float):
        super().__init__()
        self.inv_avg_neighbors = 1.0 / avg
        message_irreps, message_index = sorted_concat([hidden, hidden, o3.Irreps(f"{n_rbf}x0e")])
        update_irreps, update_index = sorted_concat([hidden, hidden])
        self.register_buffer("message_index", message_index, persistent=False)
        self.register_buffer("update_index", update_index, persistent=False)
        self.message1 = SteerableLayer(message_irreps, irreps_attr, hidden)
        self.message2 = SteerableLayer(hidden, irreps_attr, hidden)
        self.update1 = SteerableLayer(update_irreps, irreps_attr, hidden)
        self.update2 = SteerableLayer(hidden, irreps_attr, hidden, gate=False)

    def forward(self, h, edge_attr, node_attr, radial, envelope, receiver, sender):
        x = torch.cat([h.index_select(0, receiver), h.index_select(0, sender), radial], dim=1)
        x = x.index_select(1, self.message_index)
        m = self.message2(self.message1(x, edge_attr), edge_attr) * envelope[:, None]
        summed = scatter_sum(m, receiver, h.shape[0]) * self.inv_avg_neighbors
        y = torch.cat([h, summed], dim=1).index_select(1, self.update_index)
        return h + self.update2(self.update1(y, node_attr), node_attr)


class SEGNN(E3nnRepresentation):
    """SEGNN representation: scalars (n, F), Cartesian vectors (n, 3, F), tensors (n, 3, 3).

    Args:
        n_species: number of elements.
        cutoff: radial cutoff in Å.
        hidden_irreps: irreps of the node features in e3nn notation (default
            "32x0e+16x1o+8x2e"); ``n_features`` F is the number of 0e channels. No 0o
            (SiLU is not odd); 2e channels feed the polarizability tensor t.
        lmax_attr: highest ℓ of the edge and node attributes Y (default 2).
        n_layers: number of message-passing layers (default 4).
        n_rbf: number of Bessel functions sin(nπr/r_c)/r describing the distance (default 8).
        envelope_p: degree p of the polynomial cutoff envelope u (default 6).
        avg_num_neighbors: N̄, the message sum is divided by it (default 20; ideally the
            mean neighbor count of the training data: ~55 for liquid water at 5 Å).
    """

    has_vectors = True

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        hidden_irreps: str = "32x0e+16x1o+8x2e",
        lmax_attr: int = 2,
        n_layers: int = 4,
        n_rbf: int = 8,
        envelope_p: int = 6,
        avg_num_neighbors: float = 20.0,
    ):
        super().__init__()
        hidden = o3.Irreps(hidden_irreps).sort().irreps.simplify()
        F = self.n_features = sum(mul for mul, ir in hidden if ir == SCALAR)
        if F < 1 or any(ir == o3.Irrep("0o") for _, ir in hidden):
            raise ValueError(f"hidden_irreps needs 0e channels and no 0o, got {hidden_irreps!r}")
        if min(lmax_attr, n_layers, n_rbf, envelope_p) < 1 or avg_num_neighbors <= 0:
            raise ValueError(
                "lmax_attr, n_layers, n_rbf and envelope_p must be ≥ 1, avg_num_neighbors > 0"
            )
        self.n_species = n_species
        self.attr_irreps = attr = o3.Irreps.spherical_harmonics(lmax_attr)
        self.rbf = SineRBF(n_rbf, cutoff)
        self.envelope = PolynomialCutoff(cutoff, envelope_p)
        self.embedding = SteerableLayer(o3.Irreps(f"{n_species}x0e"), attr, hidden, gate=False)
        self.layers = nn.ModuleList(
            SEGNNLayer(hidden, attr, n_rbf, avg_num_neighbors) for _ in range(n_layers)
        )
        self.readout = o3.Linear(hidden, o3.Irreps(f"{F}x0e + {F}x1o"))
        self.tensor_readout = SymmetricTensorOut(hidden)

    def node_attributes(self, edge_attr, envelope, receiver, n: int) -> torch.Tensor:
        """a_i = (1, Σ_j u_ij Y^{ℓ≥1}_ij / (1 + Σ_j u_ij)): smooth in every neighbor's position."""
        weighted = edge_attr[:, 1:] * envelope[:, None]
        total = scatter_sum(envelope, receiver, n)
        summed = scatter_sum(weighted, receiver, n)
        return torch.cat([summed.new_ones((n, 1)), summed / (1.0 + total[:, None])], dim=1)

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        n = species.shape[0]
        edge_attr = self.edge_harmonics(self.attr_irreps, vectors)
        envelope = self.envelope(lengths)
        radial = self.rbf(lengths) * envelope[:, None]
        node_attr = self.node_attributes(edge_attr, envelope, receiver, n)
        onehot = nn.functional.one_hot(species, self.n_species).to(vectors.dtype)
        h = self.embedding(onehot, node_attr)
        for layer in self.layers:
            h = layer(h, edge_attr, node_attr, radial, envelope, receiver, sender)
        return Features(*split_scalars_vectors(self.readout(h), self.n_features), self.tensor_readout(h))

    def extra_repr(self) -> str:
        F, layers = self.n_features, len(self.layers)
        return f"F={F}, layers={layers}, out: s (n, F), v (n, 3, F), t (n, 3, 3)"

"""EGNN: E(n)-equivariant graph neural network (Satorras, Hoogeboom, Welling 2021).

Each atom carries invariant features h_i (F) and a coordinate displacement Δx_i (3),
Δx_i = 0 at the start. With periodic images an atom's absolute position is not
unique, so EGNN's coordinates are used through the *edge* vectors only: the current
vector of edge j -> i is

    e_ij = vectors_ij + Δx_j − Δx_i           (vectors_ij = r_j − r_i + shift)

and x_i − x_j = −e_ij. One layer (φ are small MLPs, SiLU):

    m_ij  = φ_e(h_i, h_j, ‖e_ij‖² / r_c², RBF(r_ij)) · f_c(r_ij)
    Δx_i ← Δx_i + C Σ_j (x_i − x_j) φ_x(m_ij) f_c(r_ij)
    h_i  ← h_i + φ_h(h_i, C Σ_j m_ij)

with C = 1 / ``neighbor_norm`` (keeps sums over many neighbors O(1)), a Gaussian RBF of
the input distance r_ij and the cosine cutoff f_c: every edge term vanishes smoothly
as a neighbor crosses the cutoff, so energies and forces are continuous. For the dipole and polarizability heads each
layer also accumulates equivariant Cartesian vector channels and a traceless tensor

    v_i += C Σ_j e_ij ⊗ φ_v(m_ij)                                 (3, F), x y z order
    t_i += C Σ_j φ_t(m_ij) f_c(r_ij) (e_ij ⊗ e_ij − ‖e_ij‖² I / 3) / r_c²   (3, 3)

φ_x and φ_t are one linear map of m_ij (2 outputs) and φ_v(m) = w_v ∘ m a learned
per-channel scale: m_ij is already the output of a two-layer MLP, and a full F × F map
here would double the per-edge matrix work for little gain. Every quantity depends on
positions through edge vectors only (translation invariance), h through lengths and
dot products (rotation/reflection invariance), v and t through e_ij (equivariance).
The first linear layer of φ_e is split into per-atom parts W_i h_i + W_j h_j (computed
once per atom and gathered) plus a per-edge part, the same function at lower cost.

Smoothness: distances enter as ‖e_ij‖² (a polynomial) and through the Gaussian RBF of
r_ij, the coordinate, vector and tensor updates are polynomials in e_ij times C∞
functions of the messages; there is no ‖·‖ of a vector that can vanish. The surface is
C∞ away from the cutoff (``tests/test_smoothness.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import MLP, CosineCutoff, GaussianRBF, scatter_sum
from ..nn.representation import Features, Representation


class EGNNLayer(nn.Module):
    """One EGNN layer: messages, feature update, coordinate/vector/tensor increments."""

    def __init__(self, n_features: int, n_rbf: int, update_coordinates: bool):
        super().__init__()
        F = n_features
        self.update_coordinates = update_coordinates
        self.w_i = nn.Linear(F, F)  # φ_e's first layer, receiver part (carries the bias)
        self.w_j = nn.Linear(F, F, bias=False)  # sender part
        self.w_edge = nn.Linear(1 + n_rbf, F, bias=False)  # ‖e‖²/r_c² and RBF part
        # φ_e = SiLU ∘ Linear ∘ SiLU ∘ (first layer): an MLP whose first layer is split by
        # input (above) so that W h is computed per atom and gathered, not per edge on a
        # concatenation; the paper's φ_e ends with an activation, hence no shared MLP here.
        self.message = nn.Sequential(nn.SiLU(), nn.Linear(F, F), nn.SiLU())
        self.edge_out = nn.Linear(F, 2)  # φ_x, φ_t
        self.phi_h = MLP([2 * F, F, F])
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # Variance-preserving (1/fan_in) instead of PyTorch's 1/(3 fan_in): the
                # energy's initial dependence on geometry is then not vanishingly small.
                nn.init.normal_(module.weight, std=module.in_features**-0.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.vector_weight = nn.Parameter(torch.ones(F))  # φ_v(m) = w_v ∘ m

    def forward(self, h, dx, v, t, vectors, rbf, fcut, c, receiver, sender, inv_rc2):
        """One layer; ``fcut`` = f_c(r_ij) (n_edges, 1), ``c`` = C = 1/neighbor_norm."""
        n, F = h.shape
        if dx is None:
            e = vectors
        else:
            e = vectors + dx.index_select(0, sender) - dx.index_select(0, receiver)
        sq = (e * e).sum(dim=1, keepdim=True)  # ‖e_ij‖², (n_edges, 1)
        pre = (
            self.w_i(h).index_select(0, receiver)
            + self.w_j(h).index_select(0, sender)
            + self.w_edge(torch.cat([sq * inv_rc2, rbf], dim=1))
        )
        m = self.message(pre) * fcut  # m_ij, (n_edges, F)
        out = self.edge_out(m) * (c * fcut)  # C φ_x f_c, C φ_t f_c
        aggregated = scatter_sum(m * c, receiver, n)
        h = h + self.phi_h(torch.cat([h, aggregated], dim=1))

        v = v + scatter_sum(e[:, :, None] * (m * (c * self.vector_weight))[:, None, :], receiver, n)
        eye = torch.eye(3, dtype=e.dtype, device=e.device)
        traceless = e[:, :, None] * e[:, None, :] - (sq[:, :, None] / 3.0) * eye
        t = t + scatter_sum(traceless * (out[:, 1:] * inv_rc2)[:, :, None], receiver, n)
        if self.update_coordinates:
            # x_i − x_j = −e_ij
            step = scatter_sum(e * -out[:, :1], receiver, n)
            dx = step if dx is None else dx + step
        return h, dx, v, t


class EGNN(Representation):
    """EGNN representation: returns scalars (n, F), vectors (n, 3, F) and tensors (n, 3, 3).

    Args:
        n_species: number of elements (embedding rows).
        cutoff: radial cutoff r_c in Å.
        n_features: feature width F of h, m and the vector channels (default 128).
        n_layers: number of EGNN layers (default 4).
        n_rbf: number of Gaussians of the input distance between 0 and r_c (default 20).
        neighbor_norm: every sum over neighbors (messages, coordinate, vector and tensor
            updates) is divided by this, EGNN's C = 1/neighbor_norm. Set it to the typical
            neighbor count within the cutoff of the training data (default 32: liquid
            water has ~30 neighbors within 4 Å, ~55 within 5 Å; gas-phase water 2).
    """

    has_vectors = True

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_features: int = 128,
        n_layers: int = 4,
        n_rbf: int = 20,
        neighbor_norm: float = 32.0,
    ):
        super().__init__()
        if min(n_features, n_layers, n_rbf) < 1 or neighbor_norm <= 0:
            raise ValueError("n_features, n_layers, n_rbf and neighbor_norm must be positive")
        self.n_features = n_features
        self.n_layers = n_layers
        self.cutoff = float(cutoff)
        self.neighbor_norm = float(neighbor_norm)
        self.embedding = nn.Embedding(n_species, n_features)
        self.rbf = GaussianRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        # The last layer's coordinate update would not be used by anything.
        self.layers = nn.ModuleList(
            EGNNLayer(n_features, n_rbf, update_coordinates=k < n_layers - 1) for k in range(n_layers)
        )

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        fcut = self.cutoff_fn(lengths)[:, None]  # (n_edges, 1)
        rbf = self.rbf(lengths)
        h = self.embedding(species)
        n = h.shape[0]
        v = h.new_zeros((n, 3, self.n_features))
        t = h.new_zeros((n, 3, 3))
        dx = None  # Δx = 0 before the first layer
        inv_rc2 = 1.0 / self.cutoff**2
        c = 1.0 / self.neighbor_norm
        for layer in self.layers:
            h, dx, v, t = layer(h, dx, v, t, vectors, rbf, fcut, c, receiver, sender, inv_rc2)
        return Features(h, v, t)

    def extra_repr(self) -> str:
        return f"F={self.n_features}, layers={self.n_layers}, out: scalars (n, F), vectors (n, 3, F), tensors (n, 3, 3)"

"""SchNet: continuous-filter convolutions (Schütt et al. 2017/2018).

Invariant features only. Each interaction block:

    x_j = Dense(s_j)                                  (atom-wise, no bias)
    W_ij = Dense(ssp(Dense(e(r_ij)))) · f_cut(r_ij)    e_k = exp(−γ (r − μ_k)²)
    y_i = Σ_j x_j ∘ W_ij                              continuous-filter convolution
    s_i ← s_i + Dense(ssp(Dense(y_i)))

with the shifted softplus ssp(x) = ln(0.5 eˣ + 0.5). Having no vectors, SchNet's
dipole comes from partial charges (μ = Σ q_i r_i) and its polarizability from the
isotropic per-atom term plus the bond term Σ b(s_i) f_c(r_ij) r̂_ij ⊗ r̂_ij of
:mod:`ase_mpnn.model.heads`: both rotate correctly (μ → Rμ, α → RαRᵀ) and do not change
under translation of a neutral structure.

Smoothness: every operation is C∞ for distances r > 0 (Gaussian radial basis, shifted
softplus, products and sums); the cosine cutoff is C¹ at r_c only, so the surface is C∞
away from the cutoff and harmonic and spectroscopic second derivatives are exact limits
(``tests/test_smoothness.py``).
"""

from __future__ import annotations

from torch import nn

from ..nn import MLP, CosineCutoff, GaussianRBF, scatter_sum
from ..nn.representation import Features, Representation


class SchNetInteraction(nn.Module):
    def __init__(self, n_features: int, n_filters: int, n_rbf: int):
        super().__init__()
        self.in2f = nn.Linear(n_features, n_filters, bias=False)
        self.filter_net = MLP([n_rbf, n_filters, n_filters], act="ssp")
        self.f2out = MLP([n_filters, n_features, n_features], act="ssp")

    def forward(self, s, rbf, fcut, receiver, sender):
        filters = self.filter_net(rbf) * fcut[:, None]
        x = self.in2f(s).index_select(0, sender) * filters
        y = scatter_sum(x, receiver, s.shape[0])
        return s + self.f2out(y)


class SchNet(Representation):
    """SchNet representation: returns scalars (n, F) and no vectors.

    Args:
        n_species: number of elements.
        cutoff: radial cutoff in Å.
        n_features: atom feature width (default 128).
        n_filters: convolution filter width (default 128).
        n_interactions: number of interaction blocks (default 3).
        n_rbf: number of Gaussians between 0 and the cutoff (default 20).
    """

    has_vectors = False

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_features: int = 128,
        n_filters: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 20,
    ):
        super().__init__()
        if min(n_features, n_filters, n_interactions, n_rbf) < 1:
            raise ValueError("n_features, n_filters, n_interactions and n_rbf must be positive")
        self.n_features = n_features
        self.embedding = nn.Embedding(n_species, n_features)
        self.rbf = GaussianRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        self.interactions = nn.ModuleList(
            SchNetInteraction(n_features, n_filters, n_rbf) for _ in range(n_interactions)
        )

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        rbf, fcut = self.rbf(lengths), self.cutoff_fn(lengths)
        s = self.embedding(species)
        for interaction in self.interactions:
            s = interaction(s, rbf, fcut, receiver, sender)
        return Features(s)

"""PaiNN: polarizable atom interaction neural network (Schütt, Unke, Gastegger 2021).

Each atom carries invariant scalars s_i (F) and equivariant vectors v_i (3, F),
v_i = 0 at the start. An interaction block sums messages from neighbors j:

    Δs_i = Σ_j φ_s(s_j) ∘ W_s(r_ij)
    Δv_i = Σ_j v_j ∘ φ_vv(s_j) ∘ W_vv(r_ij) + Σ_j φ_vs(s_j) ∘ W_vs(r_ij) r̂_ij

with φ = Dense(F) SiLU Dense(3F) on nodes and filters W = Dense(sin(nπr/r_c)/r) · f_cut(r).
An update block mixes the channels of each atom through linear maps U, V of v:

    a = Dense(SiLU(Dense([s, ‖V v‖])))            split into a_vv, a_sv, a_ss
    Δv = a_vv ∘ (U v),   Δs = a_ss + a_sv ∘ ⟨U v, V v⟩

Speed: φ is evaluated per atom and gathered per edge; the filters of all blocks come
from one matrix product; the v_j term is skipped in the first block, where v = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import MLP, CosineCutoff, SineRBF

# ‖V v‖ is evaluated at v = 0 (every atom before the first message, isolated atoms);
# the epsilon keeps its gradient finite there.
_NORM_EPS = 1e-8


class PaiNNInteraction(nn.Module):
    """Message block: per-atom φ(s), gathered and multiplied by the edge filter."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.phi = MLP([n_features, n_features, 3 * n_features])

    def forward(self, s, v, filters, unit, receiver, sender, first: bool = False):
        F = self.n_features
        n_nodes = s.shape[0]
        # index_select rather than x[sender]: its backward is an index_add, far
        # cheaper on CPU than the accumulate-index_put of advanced indexing.
        x = self.phi(s).index_select(0, sender) * filters  # (n_edges, 3F)
        ds, dvv, dvs = torch.split(x, F, dim=1)
        dv = unit[:, :, None] * dvs[:, None, :]  # (n_edges, 3, F)
        if not first:  # v = 0 before the first block: skip the zero term
            dv = dv + v.index_select(0, sender) * dvv[:, None, :]
        ds = s.new_zeros((n_nodes, F)).index_add(0, receiver, ds)
        dv = v.new_zeros((n_nodes, 3, F)).index_add(0, receiver, dv)
        return s + ds, v + dv


class PaiNNUpdate(nn.Module):
    """Update block: couples scalars and vectors within each atom."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.uv = nn.Linear(n_features, 2 * n_features, bias=False)
        self.mix = MLP([2 * n_features, n_features, 3 * n_features])

    def forward(self, s, v):
        F = self.n_features
        u, w = torch.split(self.uv(v), F, dim=-1)  # U v and V v, (n, 3, F) each
        w_norm = torch.sqrt((w * w).sum(dim=1) + _NORM_EPS)
        a = self.mix(torch.cat([s, w_norm], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, F, dim=-1)
        s = s + a_ss + a_sv * (u * w).sum(dim=1)
        v = v + a_vv[:, None, :] * u
        return s, v


class PaiNN(nn.Module):
    """PaiNN representation: returns scalars (n, F) and vectors (n, 3, F).

    Args:
        n_species: number of elements (embedding rows).
        cutoff: radial cutoff in Å.
        n_features: feature width F (default 128).
        n_interactions: number of message + update blocks (default 3).
        n_rbf: number of sine radial basis functions (default 20).
        shared_filters: one filter network for all blocks (fewer parameters).
    """

    n_features: int
    has_vectors = True

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_features: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 20,
        shared_filters: bool = False,
    ):
        super().__init__()
        if n_features < 1 or n_interactions < 1 or n_rbf < 1:
            raise ValueError("n_features, n_interactions and n_rbf must be positive")
        self.n_features = n_features
        self.n_interactions = n_interactions
        self.shared_filters = shared_filters
        self.embedding = nn.Embedding(n_species, n_features)
        self.rbf = SineRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        n_filter_sets = 1 if shared_filters else n_interactions
        # W(r) f_c(r) = (A e(r) + b) f_c(r), computed as A (e f_c) + b f_c so autograd does
        # not keep a second (n_edges, 3F × blocks) copy of the filters for the f_c product.
        self.filter_net = nn.Linear(n_rbf, n_filter_sets * 3 * n_features, bias=False)
        bound = 1.0 / n_rbf**0.5  # nn.Linear's bias initialisation
        self.filter_bias = nn.Parameter(torch.empty(n_filter_sets * 3 * n_features).uniform_(-bound, bound))
        self.interactions = nn.ModuleList(PaiNNInteraction(n_features) for _ in range(n_interactions))
        self.updates = nn.ModuleList(PaiNNUpdate(n_features) for _ in range(n_interactions))

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        unit = vectors / lengths[:, None]
        fcut = self.cutoff_fn(lengths)[:, None]
        filters = self.filter_net(self.rbf(lengths) * fcut) + fcut * self.filter_bias
        filters = torch.split(filters, 3 * self.n_features, dim=1)
        s = self.embedding(species)
        v = s.new_zeros((s.shape[0], 3, self.n_features))
        for k, (interaction, update) in enumerate(zip(self.interactions, self.updates)):
            s, v = interaction(s, v, filters[0 if self.shared_filters else k], unit, receiver, sender, first=k == 0)
            s, v = update(s, v)
        return s, v

    def extra_repr(self) -> str:
        return f"F={self.n_features}, interactions={self.n_interactions}, out: scalars (n, F), vectors (n, 3, F)"

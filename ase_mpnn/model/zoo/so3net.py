"""SO3Net: SO(3)-equivariant convolutions on spherical-harmonic features (schnetpack).

Every atom carries F channels of each degree ℓ = 0..ℓ_max, x_i(ℓm)f, stored as the
e3nn irreps ``F×0e + F×1o + F×2e + ...``. The embedding fills the ℓ = 0 part,
x⁰_i(00)f = a_{Z_i,f}, and pads the rest with zeros. Interaction t:

    h_i(ℓm)f  = Σ_j Σ_{ℓ1m1,ℓ2m2} C^{ℓm}_{ℓ1m1,ℓ2m2} x_j(ℓ1m1)f R^t_{ℓ2f}(r_ij) Y_{ℓ2m2}(r̂_ij)
    y_i       = W₁ h_i                        atom-wise linear, per ℓ (bias on ℓ = 0 only)
    h_i(ℓm)f ← h_i(ℓm)f + Σ C^{ℓm}_{ℓ1m1,ℓ2m2} w_{path,f} h_i(ℓ1m1)f y_i(ℓ2m2)f
    x_i      ← x_i + W₃ Gate(W₂ h_i)

(SO(3) convolution, atom-wise linear, Clebsch–Gordan self-product, gated mixing, residual),
with radial filters R^t_{ℓf}(r) = (A e(r) + b) f_c(r) from Gaussians e_k(r) and the
cosine cutoff f_c, and Gate: SiLU on scalars, ℓ > 0 channels times sigmoid(scalar gates).
C = √(2ℓ+1) (ℓ1 ℓ2 ℓ; m1 m2 m) / √(paths into ℓ) is e3nn's normalised coupling, so the
convolution equals e3nn's ``TensorProduct`` ('uvu', per-edge weights R_{ℓ2}); it is
evaluated as h_i = Σ_j Σ_ℓ2 R_ℓ2(r_ij) (B^ℓ2_ij x_j), a batched matrix product per edge with
B^ℓ2_ij[ℓm, ℓ1m1] = Σ_{m2} C Y_{ℓ2m2}(r̂_ij) computed once for all interactions (2–3× faster
on CPU than e3nn's generic kernel); the first interaction uses only the ℓ1 = 0 column
(x⁰ has no ℓ > 0 part). Node-wise steps use e3nn modules.

Parity: the features are the "natural" irreps ℓ with parity (−1)^ℓ (0e, 1o, 2e) and
only couplings with ℓ1 + ℓ2 + ℓ even are kept, so the network is O(3)- and not just
SO(3)-equivariant (schnetpack also keeps 1⊗1→1, a cross product: a pseudovector that,
stored in the same channels as vectors, would break the dipole's reflection symmetry).

Outputs: s = ℓ = 0 channels (n, F); v = ℓ = 1 channels (n, 3, F): e3nn 0.6 orders its
ℓ = 1 basis as (x, y, z) (``Irreps("1o").D_from_matrix(R) == R``), so no permutation is
needed; t = a linear map of the ℓ = 0 and ℓ = 2 channels to one 0e + 2e, turned into a
symmetric 3×3 tensor (:class:`SymmetricTensorOut`).

Float64: e3nn computes its Clebsch–Gordan buffers in the default dtype; a model built in
float32 and converted would keep float32-rounded couplings (equivariance errors ~1e-8).
All such constants are restored from float64 values after every ``.to()`` and
``load_state_dict`` (:func:`~ase_mpnn.model.nn.e3nn_utils.restore_exact_constants_`).
The convolution helpers here are shared with :mod:`.nequip`.

Smoothness: the features enter only through linear maps, Clebsch–Gordan products and
gates that multiply ℓ > 0 channels by SiLU/sigmoid of scalars: polynomials and C∞
functions of the edge vectors, with no norm of a feature that can vanish; Y(r̂) is C∞
for r > 0. The surface is C∞ away from the cutoff (``tests/test_smoothness.py``).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from ..nn import CosineCutoff, GaussianRBF, scatter_sum
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


def so3_couplings(lmax: int) -> torch.Tensor:
    """K ((ℓ2, ℓm), dim Y, ℓ1m1) of the SO(3) convolution; paths into each ℓ summed, normalised."""
    dim = (lmax + 1) ** 2
    paths = parity_paths(lmax, lmax, lmax)
    into = {l: sum(1 for p in paths if p[2] == l) for l in range(lmax + 1)}
    K = torch.zeros(lmax + 1, dim, dim, dim, dtype=torch.float64)
    for l1, l2, l in paths:
        block = coupling(l1, l2, l) / math.sqrt(into[l])
        K[l2, l * l : (l + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l1 * l1 : (l1 + 1) ** 2] += block
    return K.reshape((lmax + 1) * dim, dim, dim)


class SO3Interaction(nn.Module):
    """One interaction: SO(3) convolution, linear, CG self-product, gated mixing, residual."""

    def __init__(self, n_features: int, lmax: int):
        super().__init__()
        irreps = natural_irreps(n_features, lmax)
        self.n_features, self.lmax = n_features, lmax
        index = m_major_index(irreps)
        self.register_buffer("to_m_major", index, persistent=False)
        self.register_buffer("to_e3nn", torch.argsort(index), persistent=False)
        self.mixing1 = o3.Linear(irreps, irreps, biases=True)
        # h ⊗ y channel-wise ('uuu'), with a learned weight per path and channel.
        paths = [(i1, i2, i, "uuu", True) for i1, i2, i in parity_paths(lmax, lmax, lmax)]
        self.self_product = o3.TensorProduct(irreps, irreps, irreps, paths)
        self.gate = gated_nonlinearity(n_features, lmax)
        self.mixing2 = o3.Linear(irreps, self.gate.irreps_in, biases=True)
        self.mixing3 = o3.Linear(self.gate.irreps_out, irreps, biases=True)

    def convolve(self, x, couplings, filters, receiver, sender, first: bool = False):
        """h_i = Σ_j Σ_ℓ2 R_ℓ2(r_ij) (B^ℓ2_ij x_j) in e3nn layout (n, D).

        couplings B (n_edges, (ℓ_max+1)·dim, dim), rows (ℓ2, ℓm); filters R (n_edges, ℓ_max + 1, F).
        ``first``: x has no ℓ > 0 part, only the first column of each B^ℓ2 is used.
        """
        n, F, dim = x.shape[0], self.n_features, (self.lmax + 1) ** 2
        x_m = x.index_select(1, self.to_m_major).view(n, dim, F)
        if first:
            x_j, couplings = x_m[:, :1].index_select(0, sender), couplings[:, :, :1]
        else:
            x_j = x_m.index_select(0, sender)  # (n_edges, dim, F)
        messages = 0
        for l2, b in enumerate(couplings.split(dim, dim=1)):
            bx = b * x_j if first else torch.bmm(b, x_j)
            messages = messages + bx * filters[:, l2, None, :]
        h = scatter_sum(messages, receiver, n)
        return h.view(n, dim * F).index_select(1, self.to_e3nn)

    def forward(self, x, couplings, filters, receiver, sender, first: bool = False):
        h = self.convolve(x, couplings, filters, receiver, sender, first)
        h = h + self.self_product(h, self.mixing1(h))
        return x + self.mixing3(self.gate(self.mixing2(h)))


class SO3Net(E3nnRepresentation):
    """SO3Net representation: scalars (n, F), vectors (n, 3, F), symmetric tensors (n, 3, 3).

    Args:
        n_species: number of elements (embedding rows).
        cutoff: radial cutoff in Å.
        n_features: channels F per degree ℓ (default 64).
        lmax: highest degree ℓ of the features and spherical harmonics (default 2;
            at least 1 for vectors, 2 for the 0e + 2e polarizability tensors).
        n_interactions: number of interaction blocks (default 3).
        n_rbf: number of Gaussians between 0 and the cutoff for the radial filters
            (default 20).
    """

    has_vectors = True

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_features: int = 64,
        lmax: int = 2,
        n_interactions: int = 3,
        n_rbf: int = 20,
    ):
        super().__init__()
        if n_features < 1 or n_interactions < 1 or n_rbf < 1:
            raise ValueError("n_features, n_interactions and n_rbf must be positive")
        if lmax < 1:
            raise ValueError(f"lmax must be at least 1 (vectors are ℓ = 1), got {lmax}")
        self.n_features = n_features
        self.lmax = lmax
        self.n_interactions = n_interactions
        self.irreps = natural_irreps(n_features, lmax)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.embedding = nn.Embedding(n_species, n_features)
        self.rbf = GaussianRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        # The filters R_{ℓf} of all blocks and degrees come from one matrix product.
        self.filter_net = nn.Linear(n_rbf, n_interactions * (lmax + 1) * n_features)
        register_constant(self, "couplings", so3_couplings(lmax))
        self.interactions = nn.ModuleList(
            SO3Interaction(n_features, lmax) for _ in range(n_interactions)
        )
        self.tensor_out = SymmetricTensorOut(self.irreps) if lmax >= 2 else None

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        sh = self.edge_harmonics(self.irreps_sh, vectors)
        couplings = edge_couplings(sh, self.couplings)  # (n_edges, (ℓ_max+1)·dim, dim)
        filters = self.filter_net(self.rbf(lengths)) * self.cutoff_fn(lengths)[:, None]
        filters = filters.view(-1, self.n_interactions, self.lmax + 1, self.n_features)
        s = self.embedding(species)
        x = torch.cat([s, s.new_zeros((s.shape[0], self.irreps.dim - self.n_features))], dim=1)
        for k, interaction in enumerate(self.interactions):
            x = interaction(x, couplings, filters[:, k], receiver, sender, first=k == 0)
        t = self.tensor_out(x) if self.tensor_out is not None else None
        return Features(*split_scalars_vectors(x, self.n_features), t)

    def extra_repr(self) -> str:
        return (
            f"irreps={self.irreps}, interactions={self.n_interactions}, "
            "out: s (n, F), v (n, 3, F), t (n, 3, 3)"
        )

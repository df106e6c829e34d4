"""MACE: higher-order equivariant message passing (Batatia et al. 2022).

Node features h_i hold C channels of every irrep ℓ ≤ ℓ_h with natural parity
(0e, 1o, ...); the first layer starts from an element embedding (C × 0e). One layer:

    R(r_ij)  = MLP(e(r_ij)) · u(r_ij)           e_n(r) = sin(nπr/r_c)/r, u: polynomial envelope
    A_i      = W_A (1/N̄) Σ_j R(r_ij) Y(r̂_ij) ⊗ W_up h_j     one-particle basis, C × (0e, ..., ℓ_Y)
    B_i,kLM  = Σ_ν Σ_η w^ν_{Z_i,η,k} [A_ik^{⊗ν}]_η,LM       symmetric contraction, ν ≤ correlation
    h_i'     = W_B B_i + W^sc_{Z_i} h_i                    message + element-dependent skip

The B-basis is built channel by channel (k) from products of A_ik with itself:
ν = 1: A_ℓ;  ν = 2: (A_ℓ1 ⊗ A_ℓ2)_L;  ν = 3: ((A_ℓ1 ⊗ A_ℓ2)_ℓ12 ⊗ A_ℓ3)_L, with every
coupling η (ℓ1 ≤ ℓ2 ≤ ℓ3, intermediate ℓ12 of either parity) kept as its own term, so the
weights w span all equivariant polynomials of degree ν in A_ik (the factors commute,
so ordered ℓ's suffice; couplings that vanish for identical factors are dropped).

Outputs: MACE sums energy contributions of every layer, so s = Σ_t W^s_t h_t[0e] and
v = Σ_t W^v_t h_t[1o] (per-layer linear read-outs, Cartesian xyz: e3nn 0.6's 1o basis
is x, y, z). The last layer also contracts to C × 2e, read out to 1 × 0e + 1 × 2e and
turned into a symmetric 3×3 tensor t (per-atom polarizability contribution).

Smoothness: the symmetric contraction is a polynomial in A, the interaction a tensor
product with radial weights from a SiLU MLP, the read-outs linear maps: C∞ in the edge
vectors (no norms of equivariant features). The surface is C∞ away from the cutoff
(``tests/test_smoothness.py``).

Memory: graphs with more edges than one chunk (8 MiB of messages on a CPU) build and sum
their messages a chunk at a time, recomputed in the backward pass
(:func:`~ase_mpnn.model.nn.chunks.chunked_edge_sum`), so per-edge tensors never exceed a
chunk; the results and derivatives are those of the direct sum (``tests/test_chunks.py``).

Speed: a frozen model on a CPU (the calculator, MD) runs the interaction and the
symmetric contraction as C kernels (``mace_fused.py``; the same numbers,
``tests/test_mace_fused.py``).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..nn import MLP, PolynomialCutoff, SineRBF, native, scatter_sum
from ..nn.chunks import chunk_budget, chunked_edge_sum, edge_chunk_size
from ..nn.e3nn_utils import (
    SymmetricTensorOut,
    m_major_index,
    natural_irreps,
    nonzero_couplings,
    register_constant,
)
from ..nn.edge_groups import EdgeGroups
from ..nn.representation import E3nnRepresentation, Features, split_scalars_vectors
from . import mace_fused
from .mace_fused import FusedConv

#: Bytes of one block's widest temporary in the symmetric contraction on a CPU (see
#: :meth:`SymmetricContraction.forward`).
CONTRACTION_CPU_BYTES = 2**22
#: The fused convolution (frozen models on a CPU) takes the per-edge radial weights of the
#: whole graph at once: up to this size (256 MiB: ~100k edges of the default model in
#: float32, a 2,000-atom water box); larger graphs take e3nn's chunked path.
FUSED_WEIGHT_BYTES = 2**28


@torch.no_grad()
def unit_variance_(mlp: nn.Sequential, gain: float = 1.68) -> None:
    """Initialise an MLP's Dense layers so activations keep unit second moment (SiLU gain ≈ 1.68).

    PyTorch's default initialisation shrinks the signal ~3× per layer: a 4-layer radial
    MLP would start with filters ~1e-3 and tiny vector and tensor features.
    """
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    for k, linear in enumerate(linears):
        std = (gain if k > 0 else 1.0) / linear.in_features**0.5
        linear.weight.normal_(0.0, std)
        if linear.bias is not None:
            linear.bias.zero_()


class ElementLinear(nn.Module):
    """Element-dependent equivariant linear map W_{Z_i} h_i.

    One o3.Linear computes every element's output; each atom keeps its own element's.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, n_species: int):
        super().__init__()
        self.irreps_out = o3.Irreps(irreps_out)
        self.n_species = n_species
        self.wide = o3.Irreps([(mul * n_species, ir) for mul, ir in self.irreps_out])
        self.linear = o3.Linear(irreps_in, self.wide)

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        y, n = self.linear(x), x.shape[0]
        blocks = []
        for (mul, ir), part in zip(self.irreps_out, self.wide.slices()):
            block = y[:, part].reshape(n, self.n_species, mul * ir.dim)
            index = species.view(n, 1, 1).expand(n, 1, mul * ir.dim)
            blocks.append(block.gather(1, index).squeeze(1))
        return torch.cat(blocks, dim=1)


class SymmetricContraction(nn.Module):
    """B_kLM = Σ_ν Σ_η w^ν_{Z,η,k} [A_k^{⊗ν}]_η,LM: channel-wise ('uuu') products of A with itself.

    Level ν holds every coupling η of ν factors (ℓ's of the factors non-decreasing) that
    can still reach a target irrep; the targets' terms of all levels are summed with
    element- and channel-dependent weights.

    Each level is the previous one times A, coupled by Clebsch–Gordan coefficients that
    are the same for every channel: level_ν[p] = Σ c_ijp level_ν−1[i] A[j] over the few
    hundred nonzero c (533 and 825 in the default MACE's second layer). The c are read
    off e3nn's ``TensorProduct`` of one channel (so normalisation and phases are e3nn's)
    and applied as one gather–multiply–index_add over all channels, instead of e3nn's
    few operations for each of its coupling paths (23 and 42 there): the same numbers
    from 5 operations per level, where the per-path operations were most of the cost of
    a small molecule (``tests/test_mace.py`` checks equality with e3nn). Features are
    held as (component, atom × channel) so that every gather and sum runs over rows.
    """

    def __init__(
        self,
        n_channels: int,
        l_max_a: int,
        targets: list[o3.Irrep],
        correlation: int,
        n_species: int,
    ):
        super().__init__()
        C, self.n_channels, self.targets = n_channels, n_channels, list(targets)
        self.irreps_a = natural_irreps(C, l_max_a)
        self.register_buffer("a_index", m_major_index(self.irreps_a), persistent=False)
        a_irs = [ir for _, ir in natural_irreps(1, l_max_a)]
        # reach[r]: irreps that still reach a target after r more factors of A.
        reach = [set(self.targets)]
        for _ in range(correlation - 1):
            reach.append({ir for t in reach[-1] for a in a_irs for ir in t * a})
        entries = [(ir, i) for i, ir in enumerate(a_irs)]  # (irrep, index of the last factor)
        levels = [entries]
        # One channel's coupling of each level (e3nn irreps, instructions): also what the
        # tests rebuild with C channels to check this module against e3nn.
        self.couplings: list[tuple[o3.Irreps, o3.Irreps, o3.Irreps, list]] = []
        for k in range(2, correlation + 1):
            useful = set(self.targets).union(*reach[1 : correlation - k + 1])
            new, instructions = [], []
            for e, (ir1, last) in enumerate(entries):
                for a in range(last, len(a_irs)):
                    for ir in ir1 * a_irs[a]:
                        if k == 2 and a == last and (ir1.l + a_irs[a].l + ir.l) % 2:
                            continue  # antisymmetric coupling of a factor with itself: zero
                        if ir in useful:
                            instructions.append((e, a, len(new), "uuu", False))
                            new.append((ir, a))
            irreps1 = o3.Irreps([(1, ir) for ir, _ in entries])
            irreps_out = o3.Irreps([(1, ir) for ir, _ in new])
            self.couplings.append((irreps1, natural_irreps(1, l_max_a), irreps_out, instructions))
            levels.append(new)
            entries = new
        self.level_dims = [o3.Irreps([(1, ir) for ir, _ in level]).dim for level in levels]
        self.widest_level = 0  # most nonzero couplings of one level: rows of its products
        for k, coupling in enumerate(self.couplings):
            first, second, out, value = nonzero_couplings(*coupling)
            self.widest_level = max(self.widest_level, len(first))
            for name, index in (("first", first), ("second", second), ("out", out)):
                self.register_buffer(f"{name}_{k}", index, persistent=False)
            register_constant(self, f"value_{k}", value)
        # Terms of each target: (level, start, stop) rows of that level.
        self.terms: list[list[tuple[int, int, int]]] = []
        for t in self.targets:
            terms = []
            for k, level in enumerate(levels):
                starts = torch.tensor([0] + [ir.dim for ir, _ in level]).cumsum(0).tolist()
                terms += [
                    (k, starts[e], starts[e + 1]) for e, (ir, _) in enumerate(level) if ir == t
                ]
            self.terms.append(terms)
        sizes = [max(len(terms), 1) for terms in self.terms]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(n_species, size, C) / size**0.5) for size in sizes
        )
        # The C kernels' description of this module (fixed by the architecture, not state).
        self.fused_table = mace_fused.ContractionTable(self)

    def forward(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        if native.usable(a, *self.weights):  # frozen model on a CPU: the C kernels (mace_fused.py)
            return mace_fused.FusedContraction.apply(a, species, self, self.fused_table)
        # Large graphs a block of atoms at a time: the (couplings × atoms·channels) products
        # then stay a few MB, reused from the heap instead of page-faulted in on every
        # operation (nn/chunks.py says why that matters on a CPU). Each block is recomputed
        # in the backward pass (activation checkpointing), so autograd keeps a block's
        # input, not its products (benchmarks/bench_zoo.py --only mace: 1.5 GB at 1,029
        # atoms, against 3.1 GB without the recompute).
        per_atom = self.widest_level * self.n_channels * a.element_size()
        block = max(1, chunk_budget(a.device.type, CONTRACTION_CPU_BYTES) // per_atom)
        if a.shape[0] <= block:
            return self._contract(a, species)
        track = torch.is_grad_enabled() and (a.requires_grad or any(w.requires_grad for w in self.weights))
        parts = []
        for a_part, species_part in zip(a.split(block), species.split(block)):
            if track:
                parts.append(checkpoint(self._contract, a_part, species_part, use_reentrant=False))
            else:
                parts.append(self._contract(a_part, species_part))
        return torch.cat(parts)

    def _contract(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        n, C = a.shape[0], self.n_channels
        # (n, C·16) in e3nn's layout -> (16, n·C): component rows, one column per atom and channel.
        rows = a.index_select(1, self.a_index).view(n, -1, C).transpose(0, 1).reshape(-1, n * C)
        levels = [rows]
        for k in range(len(self.couplings)):
            first, second = getattr(self, f"first_{k}"), getattr(self, f"second_{k}")
            products = levels[-1].index_select(0, first) * rows.index_select(0, second)
            products = products * getattr(self, f"value_{k}")[:, None]
            level = rows.new_zeros((self.level_dims[k + 1], n * C))
            levels.append(level.index_add(0, getattr(self, f"out_{k}"), products))
        out = []
        for t, terms, weight in zip(self.targets, self.terms, self.weights):
            if not terms:  # target out of reach (small ℓ_Y and correlation)
                out.append(a.new_zeros((n, C * t.dim)))
                continue
            stacked = torch.stack([levels[k][i:j] for k, i, j in terms])  # (terms, 2L + 1, n·C)
            w = weight.index_select(0, species)  # (n, terms, C)
            b = torch.einsum("ednk,nek->nkd", stacked.view(len(terms), t.dim, n, C), w)
            out.append(b.reshape(n, C * t.dim))
        return torch.cat(out, dim=1)


class MACELayer(nn.Module):
    """One interaction: A-basis from neighbors, symmetric contraction, message + self-connection."""

    def __init__(
        self, irreps_in, irreps_out, n_channels, l_max_sh, correlation, n_species, radial_sizes, avg
    ):
        super().__init__()
        sh = natural_irreps(1, l_max_sh)
        a_set = {ir for _, ir in sh}
        self.inv_avg_neighbors = 1.0 / avg
        self.linear_up = o3.Linear(irreps_in, irreps_in)
        mid, instructions = [], []
        for i1, (mul, ir1) in enumerate(irreps_in):
            for i2, (_, ir2) in enumerate(sh):
                for ir in ir1 * ir2:
                    if ir in a_set:
                        instructions.append((i1, i2, len(mid), "uvu", True))
                        mid.append((mul, ir))
        self.conv = o3.TensorProduct(
            irreps_in, sh, mid, instructions, shared_weights=False, internal_weights=False
        )
        self.radial = MLP(list(radial_sizes) + [self.conv.weight_numel])
        unit_variance_(self.radial)
        self.linear_a = o3.Linear(o3.Irreps(mid), natural_irreps(n_channels, l_max_sh))
        targets = [ir for _, ir in irreps_out]
        self.contraction = SymmetricContraction(
            n_channels, l_max_sh, targets, correlation, n_species
        )
        self.linear_b = o3.Linear(o3.Irreps([(n_channels, ir) for ir in targets]), irreps_out)
        self.self_connection = ElementLinear(irreps_in, irreps_out, n_species)
        # The C kernels' description of the convolution (fixed by the architecture, not state).
        self.fused_table = mace_fused.ConvTable(self.conv) if mace_fused.supported(self.conv) else None

    def forward(self, h, species, sh, radial, envelope, receiver, sender, groups=None):
        """``groups`` (:class:`~ase_mpnn.model.nn.edge_groups.EdgeGroups`, for frozen models on
        a CPU) selects the fused C convolution where its per-edge weights fit in memory."""
        h_up = self.linear_up(h)
        chunk = edge_chunk_size(self.conv.irreps_out.dim * radial.element_size(), radial.device.type)
        weight_bytes = radial.shape[0] * self.conv.weight_numel * radial.element_size()
        if groups is not None and weight_bytes <= FUSED_WEIGHT_BYTES and self.fused_table is not None:
            weights = self.radial(radial) * envelope[:, None]
            a = FusedConv.apply(h_up, sh, weights, receiver, sender, self.fused_table, groups, self.conv)
        elif radial.shape[0] <= chunk:
            a = scatter_sum(self._messages(h_up, sh, radial, envelope, sender), receiver, h.shape[0])
        else:  # large graphs: a chunk of edges at a time (nn/chunks.py)
            a = chunked_edge_sum(self._messages, (h_up,), (sh, radial, envelope, sender), receiver,
                                 h.shape[0], chunk)
        a = self.linear_a(a * self.inv_avg_neighbors)
        return self.linear_b(self.contraction(a, species)) + self.self_connection(h, species)

    def _messages(self, h_up, sh, radial, envelope, sender):
        """Per-edge messages R(r_ij) Y(r̂_ij) ⊗ W_up h_j, (n_edges, width)."""
        weights = self.radial(radial) * envelope[:, None]  # (n_edges, weight_numel), 0 at r_c
        return self.conv(h_up.index_select(0, sender), sh, weights)


class MACE(E3nnRepresentation):
    """MACE representation: scalars (n, C), Cartesian vectors (n, 3, C), tensors (n, 3, 3).

    Defaults follow MACE-MP-0 "small/medium": 64 × (0e + 1o) features, ℓ_Y = 3,
    correlation order 3, 2 layers, 8 Bessel functions, radial MLP [64, 64, 64].

    Args:
        n_species: number of elements.
        cutoff: radial cutoff in Å.
        n_channels: channels C per irrep of the node features and of A (default 64);
            also ``n_features``, the width of s and v.
        l_max_hidden: highest ℓ of the node features, natural parity (default 1: 0e + 1o).
        l_max_sh: highest ℓ of the spherical harmonics Y and of the A-basis (default 3).
        correlation: body order ν of the symmetric contraction (default 3: 4-body messages).
        n_layers: number of interaction layers (default 2).
        n_rbf: number of Bessel functions sin(nπr/r_c)/r (default 8).
        radial_hidden: width of the radial MLP's hidden layers (default 64).
        radial_layers: number of hidden layers of the radial MLP (default 3).
        envelope_p: degree p of the polynomial cutoff envelope (default 5; smooth to order p).
        avg_num_neighbors: N̄, the neighbor sum is divided by it (default 20; ideally the
            mean neighbor count of the training data: ~55 for liquid water at 5 Å).
    """

    has_vectors = True

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_channels: int = 64,
        l_max_hidden: int = 1,
        l_max_sh: int = 3,
        correlation: int = 3,
        n_layers: int = 2,
        n_rbf: int = 8,
        radial_hidden: int = 64,
        radial_layers: int = 3,
        envelope_p: int = 5,
        avg_num_neighbors: float = 20.0,
    ):
        super().__init__()
        positive = (n_channels, l_max_sh, correlation, n_layers, n_rbf, radial_hidden, envelope_p)
        if min(positive) < 1:
            raise ValueError(
                "n_channels, l_max_sh, correlation, n_layers, n_rbf, radial_hidden and "
                f"envelope_p must be ≥ 1, got {positive}"
            )
        if l_max_hidden < 0 or radial_layers < 0 or avg_num_neighbors <= 0:
            raise ValueError("l_max_hidden and radial_layers must be ≥ 0, avg_num_neighbors > 0")
        C = self.n_features = n_channels
        self.embedding = nn.Embedding(n_species, C)
        self.rbf = SineRBF(n_rbf, cutoff)
        self.envelope = PolynomialCutoff(cutoff, envelope_p)
        self.sh_irreps = natural_irreps(1, l_max_sh)
        hidden = natural_irreps(C, l_max_hidden)
        last = hidden if l_max_hidden >= 2 else hidden + o3.Irreps(f"{C}x2e")  # 2e for t
        radial_sizes = [n_rbf] + [radial_hidden] * radial_layers
        irreps_in = o3.Irreps(f"{C}x0e")
        self.layers, self.readouts = nn.ModuleList(), nn.ModuleList()
        for t in range(n_layers):
            irreps_out = last if t == n_layers - 1 else hidden
            self.layers.append(
                MACELayer(
                    irreps_in, irreps_out, C, l_max_sh, correlation, n_species, radial_sizes,
                    avg_num_neighbors,
                )
            )
            self.readouts.append(o3.Linear(irreps_out, o3.Irreps(f"{C}x0e + {C}x1o")))
            irreps_in = irreps_out
        self.tensor_readout = SymmetricTensorOut(irreps_in)

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        sh = self.edge_harmonics(self.sh_irreps, vectors)
        radial, envelope = self.rbf(lengths), self.envelope(lengths)
        h = self.embedding(species)
        fused = native.usable(lengths, *self.layers[0].radial.parameters())
        groups = EdgeGroups(receiver, sender, species.shape[0]) if fused else None
        out = 0.0
        for layer, readout in zip(self.layers, self.readouts):
            h = layer(h, species, sh, radial, envelope, receiver, sender, groups)
            out = out + readout(h)
        return Features(*split_scalars_vectors(out, self.n_features), self.tensor_readout(h))

    def extra_repr(self) -> str:
        C, layers = self.n_features, len(self.layers)
        return f"C={C}, layers={layers}, out: s (n, C), v (n, 3, C), t (n, 3, 3)"

"""PaiNN: polarizable atom interaction neural network (Schütt, Unke, Gastegger 2021).

Each atom carries invariant scalars s_i (F) and equivariant vectors v_i (3, F),
v_i = 0 at the start. An interaction block sums messages from neighbors j:

    Δs_i = Σ_j φ_s(s_j) ∘ W_s(r_ij)
    Δv_i = Σ_j v_j ∘ φ_vv(s_j) ∘ W_vv(r_ij) + Σ_j φ_vs(s_j) ∘ W_vs(r_ij) r̂_ij

with φ = Dense(F) SiLU Dense(3F) on nodes and filters W = Dense(sin(nπr/r_c)/r) · f_cut(r).
An update block mixes the channels of each atom through linear maps U, V of v:

    a = Dense(SiLU(Dense([s, ‖V v‖_ε])))          split into a_vv, a_sv, a_ss
    Δv = a_vv ∘ (U v),   Δs = a_ss + a_sv ∘ ⟨U v, V v⟩

Smoothness: the paper's ‖V v‖ has a corner wherever a channel passes through zero,
and by symmetry that happens at every symmetric geometry (the vectors of a C2v
molecule's central atom, of every atom of an ideal crystal, vanish there). Harmonic
frequencies, phonons and spectra are second derivatives, so the norm is replaced by

    ‖w‖_ε = sqrt(‖w‖² + ε²),    ε = ``norm_softening`` (default 1)

which is C∞ in w: ≈ ε + ‖w‖²/(2ε) near zero, ≈ ‖w‖ for ‖w‖ ≫ ε, with second
derivative at most 1/ε. The usual ε = 1e-4 (sqrt(1e-8)) only keeps the gradient
finite; its curvature of 1e4 per feature unit is a near-corner that shows up as
spikes of d²E/dx² and force constants that depend on the finite-difference step.

Speed and memory: φ is evaluated per atom and gathered per edge; the v_j term is
skipped in the first block, where v = 0. A frozen model on a CPU (the calculator, MD)
runs the message step as C kernels (:class:`~.painn_fused.FusedMessages`): radial
basis, filters, gathers, messages and sums of one edge at a time, in cache. Otherwise
(training, GPUs, ``ASE_MPNN_NATIVE=0``), graphs of more than ``low_memory_edges`` edges take
:class:`ChunkedMessages`, which walks the edges in cache-sized chunks and keeps only
per-atom and radial tensors for the backward pass. Either way memory grows like
atoms × F rather than edges × 3F × blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import MLP, CosineCutoff, SineRBF, native, scatter_sum
from ..nn.chunks import edge_chunk_size
from ..nn.edge_groups import EdgeGroups
from ..nn.representation import Features, Representation
from .painn_fused import FusedMessages


def _edge_messages(phi, v, filters, unit, sender):
    """Per-edge messages (ds, dv) of edges j -> i; v None means v = 0."""
    F = phi.shape[1] // 3
    x = phi.index_select(0, sender) * filters  # (n_edges, 3F)
    ds, dvv, dvs = torch.split(x, F, dim=1)
    dv = unit[:, :, None] * dvs[:, None, :]  # (n_edges, 3, F)
    if v is not None:
        dv = dv + v.index_select(0, sender) * dvv[:, None, :]
    return ds, dv


def _messages(phi, v, filters, unit, receiver, sender):
    """Δs_i, Δv_i summed over edges j -> i (see the module docstring); v None means v = 0."""
    ds, dv = _edge_messages(phi, v, filters, unit, sender)
    return scatter_sum(ds, receiver, phi.shape[0]), scatter_sum(dv, receiver, phi.shape[0])


def _filters(radial, fcut, weight, bias):
    """W(r) f_c(r) = (A e(r) + b) f_c(r), written A (e f_c) + b f_c: (n_edges, 3F)."""
    return radial @ weight.T + fcut * bias


#: Bytes of one (edges × 3F) temporary of the chunked message step on a CPU: 768 KiB
#: (512 edges of PaiNN 128 in float32) keeps a chunk's temporaries in a core's L2 cache,
#: reused from the heap instead of being mapped, page-faulted and returned for every
#: operation (benchmarks/bench_memory.py). GPU sizes and sleeping OpenMP threads:
#: :func:`~ase_mpnn.model.nn.chunks.edge_chunk_size`.
CPU_CHUNK_BYTES = 3 * 2**18


class ChunkedMessages(torch.autograd.Function):
    """Filters and messages of one block, edge chunk by edge chunk, saving only per-atom
    and radial tensors.

    Plain autograd keeps the filters and three (n_edges, 3F) intermediates per block
    until the backward pass: about 23 kB per edge for PaiNN 128×3, more than 20 GB for
    10,000 water atoms, and every one of those large temporaries is a fresh memory
    mapping that the kernel page-faults in and zeroes. This Function saves the inputs
    (per-atom φ(s) and v, the radial basis (n_edges, n_rbf)) and, in forward and in
    backward, walks the edges in chunks of ``chunk`` edges: filters, gathers and
    messages of one chunk at a time, summed into per-atom results. Temporaries are then
    a few hundred kB whatever the graph's size, so memory grows like atoms × F +
    edges × n_rbf and the time per edge stays flat. Backward is written in
    differentiable operations, so second derivatives (training on forces) work too.

    Inputs: phi (n, 3F), v (n, 3, F) or None, radial = e(r) f_c(r) (n_edges, n_rbf),
    fcut (n_edges, 1), weight (3F, n_rbf), bias (3F,), unit (n_edges, 3), receiver,
    sender (n_edges,), chunk (edges per chunk). Returns Δs (n, F), Δv (n, 3, F).
    """

    @staticmethod
    def forward(ctx, phi, v, radial, fcut, weight, bias, unit, receiver, sender, chunk):
        ctx.save_for_backward(phi, v, radial, fcut, weight, bias, unit, receiver, sender)
        ctx.chunk = chunk
        F = phi.shape[1] // 3
        delta_s = phi.new_zeros((phi.shape[0], F))
        delta_v = phi.new_zeros((phi.shape[0], 3, F))
        with torch.no_grad():
            for c in _chunks(radial.shape[0], chunk):
                filters = _filters(radial[c], fcut[c], weight, bias)
                ds, dv = _edge_messages(phi, v, filters, unit[c], sender[c])
                delta_s.index_add_(0, receiver[c], ds)
                delta_v.index_add_(0, receiver[c], dv)
        return delta_s, delta_v

    @staticmethod
    def backward(ctx, grad_s, grad_v):
        saved = ctx.saved_tensors
        return (*chunked_backward(*saved, ctx.chunk, grad_s, grad_v, ctx.needs_input_grad), None, None, None)


def chunked_backward(phi, v, radial, fcut, weight, bias, unit, receiver, sender, chunk, grad_s, grad_v, need):
    """Gradients of the message step with respect to (phi, v, radial, fcut, weight, bias,
    unit), chunk by chunk; ``need`` (``ctx.needs_input_grad``) flags which are wanted.

    Written in differentiable operations, so it builds a graph when grad mode is on."""
    F = phi.shape[1] // 3
    # In-place sums into tensors made here are recorded by autograd like any other
    # operation, so this stays differentiable when backward builds a graph.
    grad_phi = torch.zeros_like(phi)
    grad_v_in = None if v is None else torch.zeros_like(v)
    grad_weight = torch.zeros_like(weight) if need[4] else None
    grad_bias = torch.zeros_like(bias) if need[5] else None
    grad_radial, grad_fcut, grad_unit = [], [], []
    for c in _chunks(radial.shape[0], chunk):
        rad, fc, snd = radial[c], fcut[c], sender[c]
        filters = _filters(rad, fc, weight, bias)
        phi_j = phi.index_select(0, snd)
        x = phi_j * filters
        dvv, dvs = x[:, F : 2 * F], x[:, 2 * F :]
        gs = grad_s.index_select(0, receiver[c])  # (chunk, F)
        gv = grad_v.index_select(0, receiver[c])  # (chunk, 3, F)
        grad_dvs = (gv * unit[c][:, :, None]).sum(dim=1)
        grad_unit.append((gv * dvs[:, None, :]).sum(dim=2))
        if v is None:
            grad_dvv = torch.zeros_like(gs)
        else:
            grad_dvv = (gv * v.index_select(0, snd)).sum(dim=1)
            grad_v_in = grad_v_in.index_add_(0, snd, gv * dvv[:, None, :])
        grad_x = torch.cat([gs, grad_dvv, grad_dvs], dim=1)  # (chunk, 3F)
        grad_phi = grad_phi.index_add_(0, snd, grad_x * filters)
        grad_filters = grad_x * phi_j
        if need[2]:
            grad_radial.append(grad_filters @ weight)
        if need[3]:
            grad_fcut.append((grad_filters * bias).sum(dim=1, keepdim=True))
        if need[4]:
            grad_weight = grad_weight.addmm_(grad_filters.T, rad)
        if need[5]:
            grad_bias = grad_bias.add_((grad_filters * fc).sum(dim=0))
    return (grad_phi, grad_v_in, torch.cat(grad_radial) if need[2] else None,
            torch.cat(grad_fcut) if need[3] else None, grad_weight, grad_bias, torch.cat(grad_unit))


def _chunks(n_edges: int, chunk: int) -> list[slice]:
    return [slice(start, start + chunk) for start in range(0, max(n_edges, 1), chunk)]


@dataclass
class FilterInputs:
    """What one block's filters are made from on the chunked path: radial = e(r) f_c(r)
    (n_edges, n_rbf), fcut (n_edges, 1), the block's weight (3F, n_rbf) and bias (3F,),
    and edges per chunk."""

    radial: torch.Tensor
    fcut: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    chunk: int


@dataclass
class RadialBasis:
    """PaiNN's e(r) f_c(r) and f_c(r) as one function of the edge lengths, with what the
    C kernels need to make it themselves: sin(n θ)/r with θ = step · r, n = 1..n_rbf
    (:class:`~ase_mpnn.model.nn.SineRBF`'s frequencies are n π / r_c), and the cosine
    cutoff at ``cutoff``."""

    rbf: SineRBF
    cutoff_fn: CosineCutoff

    @property
    def n_rbf(self) -> int:
        return self.rbf.n_rbf

    @property
    def cutoff(self) -> float:
        return self.cutoff_fn.cutoff

    @property
    def step(self) -> float:
        return math.pi / self.rbf.cutoff

    def __call__(self, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fcut = self.cutoff_fn(lengths)[:, None]
        return self.rbf(lengths) * fcut, fcut


@dataclass
class FusedFilterInputs:
    """What one block's filters are made from on the fused path: the edge lengths and
    their :class:`RadialBasis`, the block's weight and bias, the edge groups, and edges
    per chunk (for the differentiable fallback)."""

    lengths: torch.Tensor
    basis: RadialBasis
    weight: torch.Tensor
    bias: torch.Tensor
    groups: EdgeGroups
    chunk: int


class PaiNNInteraction(nn.Module):
    """Message block: per-atom φ(s) = Dense SiLU Dense, combined with the edge filters."""

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.phi = MLP([n_features, n_features, 3 * n_features])

    def forward(self, s, v, filters, unit, receiver, sender, first: bool = False):
        """``filters``: the (n_edges, 3F) tensor, or for the chunked and fused paths the
        :class:`FilterInputs` or :class:`FusedFilterInputs` it is made from."""
        phi = self.phi(s)
        v_in = None if first else v  # v = 0 before the first block: skip the zero term
        f = filters
        if isinstance(f, FusedFilterInputs):
            ds, dv = FusedMessages.apply(phi, v_in, f.lengths, f.weight, f.bias, unit, receiver, sender, f.basis,
                                         f.groups, f.chunk)
        elif isinstance(f, FilterInputs):
            ds, dv = ChunkedMessages.apply(phi, v_in, f.radial, f.fcut, f.weight, f.bias, unit, receiver, sender,
                                           f.chunk)
        else:
            ds, dv = _messages(phi, v_in, filters, unit, receiver, sender)
        return s + ds, v + dv


class PaiNNUpdate(nn.Module):
    """Update block: couples scalars and vectors within each atom."""

    def __init__(self, n_features: int, norm_softening: float = 1.0):
        super().__init__()
        self.n_features = n_features
        self.softening_squared = float(norm_softening) ** 2
        self.uv = nn.Linear(n_features, 2 * n_features, bias=False)
        self.mix = MLP([2 * n_features, n_features, 3 * n_features])

    def forward(self, s, v):
        F = self.n_features
        u, w = torch.split(self.uv(v), F, dim=-1)  # U v and V v, (n, 3, F) each
        w_norm = torch.sqrt((w * w).sum(dim=1) + self.softening_squared)  # ‖V v‖_ε, smooth
        a = self.mix(torch.cat([s, w_norm], dim=-1))
        a_vv, a_sv, a_ss = torch.split(a, F, dim=-1)
        s = s + a_ss + a_sv * (u * w).sum(dim=1)
        v = v + a_vv[:, None, :] * u
        return s, v


class PaiNN(Representation):
    """PaiNN representation: returns scalars (n, F) and vectors (n, 3, F).

    Args:
        n_species: number of elements (embedding rows).
        cutoff: radial cutoff in Å.
        n_features: feature width F (default 128).
        n_interactions: number of message + update blocks (default 3).
        n_rbf: number of sine radial basis functions (default 20).
        low_memory_edges: above this many edges the message step walks the edges in
            cache-sized chunks and saves only per-atom and radial tensors for backward
            (:class:`ChunkedMessages`): the same numbers in less time and a fraction
            of the memory. The default None means more than one chunk
            (:data:`CPU_CHUNK_BYTES`: on a CPU 512 edges for F = 128 in float32, where it
            starts to pay, 2048 per thread with sleeping OpenMP threads; on a GPU 175k
            edges, where it starts to save memory). A setting of the code path, not
            of the model: files store it, but loading uses the current default.
        norm_softening: ε of the smooth vector norm sqrt(‖V v‖² + ε²) in the update
            block (feature units, > 0). The default 1 keeps the potential surface C∞
            with bounded curvature; 1e-4 reproduces the original near-corner (files
            written before this option load with it).
    """

    has_vectors = True

    def __init__(
        self,
        n_species: int,
        cutoff: float,
        n_features: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 20,
        low_memory_edges: int | None = None,
        norm_softening: float = 1.0,
    ):
        super().__init__()
        if n_features < 1 or n_interactions < 1 or n_rbf < 1:
            raise ValueError("n_features, n_interactions and n_rbf must be positive")
        if not norm_softening > 0:
            raise ValueError(f"norm_softening must be positive, got {norm_softening}")
        self.n_features = n_features
        self.n_interactions = n_interactions
        self.low_memory_edges = low_memory_edges
        self.embedding = nn.Embedding(n_species, n_features)
        self.rbf = SineRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        # The filters of all blocks come from one matrix product (W f_c = A (e f_c) + b f_c).
        self.filter_net = nn.Linear(n_rbf, n_interactions * 3 * n_features, bias=False)
        bound = 1.0 / n_rbf**0.5  # nn.Linear's bias initialisation
        self.filter_bias = nn.Parameter(torch.empty(n_interactions * 3 * n_features).uniform_(-bound, bound))
        self.interactions = nn.ModuleList(PaiNNInteraction(n_features) for _ in range(n_interactions))
        self.updates = nn.ModuleList(PaiNNUpdate(n_features, norm_softening) for _ in range(n_interactions))

    def edges_per_chunk(self, lengths: torch.Tensor) -> int | None:
        """Edges per chunk of the message step for these edges; None: no chunks (plain autograd)."""
        chunk = edge_chunk_size(3 * self.n_features * lengths.element_size(), lengths.device.type, CPU_CHUNK_BYTES)
        threshold = chunk if self.low_memory_edges is None else self.low_memory_edges
        return chunk if lengths.shape[0] > threshold else None

    def compiled_pays_for(self, lengths: torch.Tensor) -> bool:
        """Graphs of the chunked path run eagerly: a Python loop over chunks would make
        ``torch.compile`` recompile for every edge count, and the eager path is faster
        there anyway (benchmarks/anchors, ``--compile``)."""
        return self.edges_per_chunk(lengths) is None

    def _block_filter_weights(self):
        """(weight (3F, n_rbf), bias (3F,)) of each block's filters, views of the shared matrix."""
        width = 3 * self.n_features
        return zip(torch.split(self.filter_net.weight, width), torch.split(self.filter_bias, width))

    def forward(self, species, edge_index, vectors, lengths):
        receiver, sender = edge_index[0], edge_index[1]
        unit = vectors / lengths[:, None]
        basis = RadialBasis(self.rbf, self.cutoff_fn)
        width = 3 * self.n_features
        chunk = self.edges_per_chunk(lengths)
        if native.usable(lengths, self.filter_net.weight):
            groups = EdgeGroups(receiver, sender, species.shape[0])
            chunk = chunk or edge_chunk_size(width * lengths.element_size(), lengths.device.type, CPU_CHUNK_BYTES)
            filters = [FusedFilterInputs(lengths, basis, w, b, groups, chunk)
                       for w, b in self._block_filter_weights()]
        else:
            radial, fcut = basis(lengths)  # (n_edges, n_rbf), (n_edges, 1)
            if chunk is not None:
                filters = [FilterInputs(radial, fcut, w, b, chunk)
                           for w, b in self._block_filter_weights()]
            else:
                filters = torch.split(_filters(radial, fcut, self.filter_net.weight, self.filter_bias), width, dim=1)
        s = self.embedding(species)
        v = s.new_zeros((s.shape[0], 3, self.n_features))
        for k, (interaction, update) in enumerate(zip(self.interactions, self.updates)):
            s, v = interaction(s, v, filters[k], unit, receiver, sender, first=k == 0)
            s, v = update(s, v)
        return Features(s, v)

    def extra_repr(self) -> str:
        return f"F={self.n_features}, interactions={self.n_interactions}, out: scalars (n, F), vectors (n, 3, F)"

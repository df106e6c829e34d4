"""MACE's interaction and symmetric contraction as C loops, forward and backward (CPU inference).

* The interaction A_i = Σ_j R(r_ij) Y(r̂_ij) ⊗ h_j is e3nn's "uvu" tensor product of each
  neighbor's features with the edge's spherical harmonics, weighted per edge, path and
  channel, summed into the receiver. e3nn evaluates it path by path on (edges × width)
  tensors; :class:`FusedConv` applies the nonzero Clebsch–Gordan couplings of every path
  (read off e3nn's own product, so its normalisation and phases are e3nn's) edge by edge
  (``ase_mpnn/model/nn/equivariant_conv.c``), with one edge's numbers in L1 cache.
* The symmetric contraction (:class:`~ase_mpnn.model.zoo.mace.SymmetricContraction`)
  applies the same couplings as its torch path, one atom at a time
  (:class:`FusedContraction`, ``symmetric_contraction.c``): an atom's correlation levels
  stay in cache instead of (couplings × atoms × channels) tensors.

Used for frozen models on a CPU in float32 or float64 (the calculator, MD); training,
GPUs, ``torch.compile`` tracing and ``vmap`` take the e3nn and torch paths. A second
derivative (``create_graph=True``) recomputes the step with those paths in the backward
pass (``torch.func.vjp``, so only the step's own inputs are differentiated).
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch
from e3nn import o3

from ..nn import native, scatter_sum
from ..nn.e3nn_utils import m_major_index, nonzero_couplings


class _Table(ctypes.Structure):
    """The C ``conv_table``: sizes, per-path offsets and per-coupling indices."""

    _fields_ = [(name, ctypes.c_int64) for name in ("n_paths", "channels", "d_in", "d_sh", "d_out", "max_in_dim")]
    _fields_ += [(name, ctypes.c_void_p) for name in ("in_off", "in_dim", "out_off", "start", "a", "b", "k")]


def supported(conv: o3.TensorProduct) -> bool:
    """Whether :class:`ConvTable` can describe ``conv``: "uvu" paths with per-edge weights,
    one channel of each irrep in the second input, the same channel count everywhere else."""
    muls = {mul for mul, _ in conv.irreps_in1} | {mul for mul, _ in conv.irreps_out}
    return (
        len(muls) == 1
        and all(mul == 1 for mul, _ in conv.irreps_in2)
        and all(ins.connection_mode == "uvu" and ins.has_weight for ins in conv.instructions)
        and not conv.internal_weights
        and not conv.shared_weights
    )


class ConvTable:
    """The couplings of one e3nn ``TensorProduct`` (see :func:`supported`) in the kernel's layout.

    Features go to the kernel with each irrep's components as rows of C channels (the
    layout of :func:`m_major_index`), and come back in e3nn's layout.
    """

    def __init__(self, conv: o3.TensorProduct):
        if not supported(conv):
            raise ValueError("the fused convolution needs uvu paths with per-edge weights, one channel per "
                             "irrep of the second input and the same channel count elsewhere")
        irreps1, irreps2, irreps_out = conv.irreps_in1, conv.irreps_in2, conv.irreps_out
        C = irreps1[0].mul
        self.in_to_kernel = m_major_index(irreps1)
        self.in_from_kernel = torch.argsort(self.in_to_kernel)
        self.out_to_kernel = m_major_index(irreps_out)
        self.out_from_kernel = torch.argsort(self.out_to_kernel)
        starts1 = np.cumsum([0] + [ir.dim for _, ir in irreps1])
        starts_out = np.cumsum([0] + [ir.dim for _, ir in irreps_out])
        in_off, in_dim, out_off, start, a, b, k, coeff = [], [], [], [0], [], [], [], []
        for q, (ins, (ia, ib, ik, c)) in enumerate(zip(conv.instructions, _path_couplings(conv))):
            in_off.append(C * starts1[ins.i_in1])
            in_dim.append(irreps1[ins.i_in1].ir.dim)
            out_off.append(C * starts_out[ins.i_out])
            a.append(ia - starts1[ins.i_in1])
            b.append(ib)
            k.append(ik - starts_out[ins.i_out])
            coeff.append(c)
            start.append(start[-1] + len(c))
        arrays = dict(in_off=in_off, in_dim=in_dim, out_off=out_off, start=start, a=np.concatenate(a),
                      b=np.concatenate(b), k=np.concatenate(k))
        self._arrays = {name: np.ascontiguousarray(v, dtype=np.int64) for name, v in arrays.items()}
        self._coeff = torch.from_numpy(np.concatenate(coeff))  # float64
        self._coeff_as: dict[torch.dtype, torch.Tensor] = {}
        self.n_paths = len(conv.instructions)
        self.d_out = irreps_out.dim
        self.struct = _Table(n_paths=self.n_paths, channels=C, d_in=irreps1.dim, d_sh=irreps2.dim,
                             d_out=irreps_out.dim, max_in_dim=max(in_dim),
                             **{name: v.ctypes.data for name, v in self._arrays.items()})
        self.n_couplings = len(self._coeff)

    def __deepcopy__(self, memo) -> ConvTable:
        # Immutable, and ``struct`` holds raw addresses of this object's arrays: a copy of
        # a model shares its table rather than copying arrays the addresses do not follow.
        return self

    def coefficients(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._coeff_as:
            self._coeff_as[dtype] = self._coeff.to(dtype)
        return self._coeff_as[dtype]


def _path_couplings(conv: o3.TensorProduct) -> list[tuple[np.ndarray, ...]]:
    """Per path: nonzero (index in input 1, index in input 2, output index, coefficient) of
    ``conv`` with one channel, that path alone. e3nn normalises a "uvu" path by the fan-in
    of its output block, which here is that one path with the second input's single
    channel, so these are ``conv``'s coefficients (tests/test_mace_fused.py compares)."""
    irreps1 = o3.Irreps([(1, ir) for _, ir in conv.irreps_in1])
    irreps_out = o3.Irreps([(1, ir) for _, ir in conv.irreps_out])
    return [
        tuple(t.numpy() for t in nonzero_couplings(irreps1, conv.irreps_in2, irreps_out,
                                                     [(i.i_in1, i.i_in2, i.i_out, i.connection_mode, False)]))
        for i in conv.instructions
    ]


class FusedConv(torch.autograd.Function):
    """A = Σ_j conv(h_j, Y_ij, w_ij) summed into receivers, (n, width of conv's output).

    Inputs: h (n, d_in) and Y (n_edges, d_sh) in e3nn's layout, per-edge weights w
    (n_edges, weight_numel), receiver and sender (n_edges,), the :class:`ConvTable`, the
    :class:`~ase_mpnn.model.nn.edge_groups.EdgeGroups`, and ``conv`` itself (e3nn's
    product, for the differentiable fallback).
    """

    @staticmethod
    def forward(ctx, h, sh, weights, receiver, sender, table, groups, conv):
        h_k = h.index_select(1, table.in_to_kernel).contiguous()
        sh, weights, sender = sh.contiguous(), weights.contiguous(), sender.long().contiguous()
        ctx.save_for_backward(h, sh, weights, receiver, sender, h_k)
        ctx.table, ctx.groups, ctx.conv = table, groups, conv
        out = h.new_empty((h.shape[0], table.d_out))
        p = native.pointer
        status = getattr(native.library(), "conv_forward" + native.suffix(h.dtype))(
            ctypes.byref(table.struct), h.shape[0], p(table.coefficients(h.dtype)), p(h_k), p(sh), p(weights),
            p(sender), *groups.receiver_addresses, p(out), native.threads_for(sh.shape[0] * table.n_couplings))
        if status:
            raise MemoryError("the fused convolution could not allocate its per-thread buffer")
        return out.index_select(1, table.out_from_kernel)

    @staticmethod
    def backward(ctx, grad_out):
        h, sh, weights, receiver, sender, h_k = ctx.saved_tensors
        table = ctx.table
        if torch.is_grad_enabled():  # a second derivative is wanted: recompute with e3nn
            # torch.func.vjp differentiates with respect to these three tensors only (not
            # through h's own dependence on Y in an earlier layer), and its result stays
            # differentiable with respect to them under ordinary autograd.
            def conv_sum(h_, sh_, weights_):
                return scatter_sum(ctx.conv(h_.index_select(0, sender), sh_, weights_), receiver, h.shape[0])

            _, vjp = torch.func.vjp(conv_sum, h, sh, weights)
            grads = vjp(grad_out)
            need = ctx.needs_input_grad[:3]
            return (*(grad if wanted else None for grad, wanted in zip(grads, need)), None, None, None, None, None)
        g = grad_out.index_select(1, table.out_to_kernel).contiguous()
        grad_h_k = torch.empty_like(h_k)
        grad_sh = torch.empty_like(sh)
        grad_weights = torch.empty_like(weights)
        receiver = receiver.long().contiguous()
        p = native.pointer
        status = getattr(native.library(), "conv_backward" + native.suffix(h.dtype))(
            ctypes.byref(table.struct), h.shape[0], p(table.coefficients(h.dtype)), p(h_k), p(sh), p(weights),
            p(receiver), *ctx.groups.sender_addresses, p(g), p(grad_h_k), p(grad_sh), p(grad_weights),
            native.threads_for(sh.shape[0] * table.n_couplings))
        if status:
            raise MemoryError("the fused convolution could not allocate its per-thread buffer")
        return grad_h_k.index_select(1, table.in_from_kernel), grad_sh, grad_weights, None, None, None, None, None


class _ContractionTable(ctypes.Structure):
    """The C ``contraction_table``."""

    _fields_ = [(name, ctypes.c_int64) for name in ("n_levels", "channels", "d_a", "total_rows", "n_species",
                                                    "n_targets", "d_out")]
    _fields_ += [(name, ctypes.c_void_p) for name in ("level_off", "coupling_start", "first", "second", "out",
                                                      "target_dim", "target_row", "term_start", "term_level",
                                                      "term_row", "term_index", "n_terms")]


class ContractionTable:
    """A :class:`~ase_mpnn.model.zoo.mace.SymmetricContraction`'s couplings and terms in the
    kernel's layout: A as (n, components, C), B as (n, Σ target dims, C)."""

    def __init__(self, contraction):
        m = contraction
        C, n_levels = m.n_channels, len(m.couplings) + 1
        level_off = np.cumsum([0] + list(m.level_dims))
        firsts = [getattr(m, f"first_{k}") for k in range(n_levels - 1)]
        coupling_start = np.cumsum([0] + [len(f) for f in firsts])
        target_dim = [t.dim for t in m.targets]
        term_start = np.cumsum([0] + [len(terms) for terms in m.terms])
        terms = [(k, i, index) for target_terms in m.terms for index, (k, i, _) in enumerate(target_terms)]
        arrays = dict(
            level_off=level_off, coupling_start=coupling_start,
            first=_cat([getattr(m, f"first_{k}") for k in range(n_levels - 1)]),
            second=_cat([getattr(m, f"second_{k}") for k in range(n_levels - 1)]),
            out=_cat([getattr(m, f"out_{k}") for k in range(n_levels - 1)]),
            target_dim=target_dim, target_row=np.cumsum([0] + target_dim)[:-1], term_start=term_start,
            term_level=[k for k, _, _ in terms], term_row=[i for _, i, _ in terms],
            term_index=[j for _, _, j in terms], n_terms=[w.shape[1] for w in m.weights],
        )
        self._arrays = {name: np.ascontiguousarray(v, dtype=np.int64) for name, v in arrays.items()}
        self.n_levels, self.d_out = n_levels, sum(target_dim)
        self.struct = _ContractionTable(
            n_levels=n_levels, channels=C, d_a=m.level_dims[0], total_rows=int(level_off[-1]),
            n_species=m.weights[0].shape[0], n_targets=len(m.targets), d_out=self.d_out,
            **{name: v.ctypes.data for name, v in self._arrays.items()})
        self.a_to_kernel = m.a_index.cpu()
        self.a_from_kernel = torch.argsort(self.a_to_kernel)
        # Output: e3nn's layout per target, (u, m) -> u·dim + m, from the kernel's rows.
        blocks = []
        for row, dim in zip(arrays["target_row"], target_dim):
            rows = torch.arange(int(row), int(row) + dim)
            blocks.append((rows[None, :] * C + torch.arange(C)[:, None]).reshape(-1))
        self.b_from_kernel = torch.cat(blocks)
        self.n_couplings = int(coupling_start[-1])  # per atom and channel: the thread count's work

    def __deepcopy__(self, memo) -> ContractionTable:
        return self  # immutable; ``struct`` holds addresses of this object's arrays

    @staticmethod
    def coefficients(contraction, dtype: torch.dtype) -> torch.Tensor:
        """The module's current coupling values (its constants, exact in float64)."""
        n = len(contraction.couplings)
        return torch.cat([getattr(contraction, f"value_{k}") for k in range(n)]).to(dtype).contiguous()


def _cat(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([t.cpu() for t in tensors]).numpy() if tensors else np.zeros(0, dtype=np.int64)


class FusedContraction(torch.autograd.Function):
    """B = SymmetricContraction(A) by the C kernels, (n, width) in e3nn's layout.

    Inputs: A (n, C × components) in e3nn's layout, species (n,), the module (frozen
    weights; its torch path is the differentiable fallback) and its :class:`ContractionTable`.
    """

    @staticmethod
    def forward(ctx, a, species, contraction, table):
        n, C = a.shape[0], contraction.n_channels
        a_k = a.index_select(1, table.a_to_kernel).contiguous()
        species = species.long().contiguous()  # the kernel reads int64
        coeff = ContractionTable.coefficients(contraction, a.dtype)
        weights = [w.contiguous() for w in contraction.weights]
        pointers = (ctypes.c_void_p * len(weights))(*[w.data_ptr() for w in weights])
        b = a.new_empty((n, table.d_out * C))
        status = getattr(native.library(), "contraction_forward" + native.suffix(a.dtype))(
            ctypes.byref(table.struct), n, native.pointer(coeff), pointers, native.pointer(species),
            native.pointer(a_k), native.pointer(b), native.threads_for(n * table.n_couplings))
        if status:
            raise MemoryError("the fused contraction could not allocate its per-thread buffer")
        ctx.save_for_backward(a, species, a_k, coeff, *weights)
        ctx.contraction, ctx.table = contraction, table
        return b.index_select(1, table.b_from_kernel)

    @staticmethod
    def backward(ctx, grad_b):
        a, species, a_k, coeff, *weights = ctx.saved_tensors
        table, contraction = ctx.table, ctx.contraction
        if torch.is_grad_enabled():  # a second derivative is wanted: the module's torch path
            _, vjp = torch.func.vjp(lambda a_: contraction._contract(a_, species), a)
            return vjp(grad_b)[0], None, None, None
        g = grad_b.new_empty(grad_b.shape).index_copy_(1, table.b_from_kernel, grad_b)  # to the kernel's rows
        grad_a_k = torch.empty_like(a_k)
        pointers = (ctypes.c_void_p * len(weights))(*[w.data_ptr() for w in weights])
        status = getattr(native.library(), "contraction_backward" + native.suffix(a.dtype))(
            ctypes.byref(table.struct), a.shape[0], native.pointer(coeff), pointers, native.pointer(species),
            native.pointer(a_k), native.pointer(g), native.pointer(grad_a_k),
            native.threads_for(a.shape[0] * table.n_couplings))
        if status:
            raise MemoryError("the fused contraction could not allocate its per-thread buffer")
        return grad_a_k.index_select(1, table.a_from_kernel), None, None, None

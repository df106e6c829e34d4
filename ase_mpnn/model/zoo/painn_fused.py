"""PaiNN's message step as one C loop over edges, forward and backward (CPU inference).

:class:`FusedMessages` computes what ``painn._messages`` and :class:`~.painn.ChunkedMessages`
compute, with the C kernels of ``ase_mpnn/model/nn/painn_messages.c``: per edge, the
filters, the gathered φ(s_j) and v_j, the messages and their sums stay in a few kB of L1
cache instead of (edges × 3F) tensors that each torch operation writes out and the next
reads back, and a block costs two calls (forward, backward) instead of dozens of
operations with their dispatch and OpenMP wake-ups.

Used when the answer is energy and forces of a frozen model (the calculator, MD,
harmonic analysis) on a CPU in float32 or float64: :func:`usable` says when. Training
(weights that need gradients), GPUs, ``torch.compile`` tracing and ``vmap`` (committees)
take the torch paths. A second derivative through a fused block (``create_graph=True``
with a frozen model) falls back to the chunked, differentiable backward.
"""

from __future__ import annotations

import numpy as np
import torch
from torch._C._functorch import is_functorch_wrapped_tensor

from ..nn import native

_SUFFIX = {torch.float32: "_f32", torch.float64: "_f64"}
_is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling  # torch < 2.3
#: Below this many (edges × features) a second OpenMP thread costs more than it saves.
MIN_PARALLEL_WORK = 2**16


def _kernels():
    return native.library("painn_messages")


def usable(phi: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the fused kernels can run this block: CPU, float32/float64, frozen filter
    weights, not under ``torch.compile`` tracing or ``vmap``, and the library built."""
    return (
        phi.device.type == "cpu"
        and phi.dtype in _SUFFIX
        and not weight.requires_grad
        and not _is_compiling()
        and not is_functorch_wrapped_tensor(phi)
        and not is_functorch_wrapped_tensor(weight)
        and _kernels() is not None
    )


class EdgeGroups:
    """The edges grouped by receiver (forward sums) and by sender (backward sums): CSR
    arrays ``order`` and ``ptr`` per grouping, made once per graph and shared by the blocks."""

    def __init__(self, receiver: torch.Tensor, sender: torch.Tensor, n_atoms: int):
        self.by_receiver = _group(receiver, n_atoms)
        self.by_sender = _group(sender, n_atoms)


def _group(index: torch.Tensor, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.ascontiguousarray(index.detach().cpu().numpy(), dtype=np.int64)
    order = np.empty(index.shape[0], dtype=np.int64)
    ptr = np.empty(n_atoms + 1, dtype=np.int64)
    status = _kernels().group_edges(n_atoms, index.shape[0], index.ctypes.data, order.ctypes.data, ptr.ctypes.data)
    if status:
        raise ValueError(f"edge index outside [0, {n_atoms}) (status {status})")
    return order, ptr


def _ptr(t: torch.Tensor | np.ndarray | None) -> int | None:
    if t is None:
        return None
    return t.ctypes.data if isinstance(t, np.ndarray) else t.data_ptr()


def _threads(n_edges: int, n_features: int) -> int:
    return torch.get_num_threads() if n_edges * n_features >= MIN_PARALLEL_WORK else 1


class FusedMessages(torch.autograd.Function):
    """Δs (n, F), Δv (n, 3, F) of one PaiNN block by the C kernels.

    Inputs as :class:`~.painn.ChunkedMessages`, with ``groups`` (:class:`EdgeGroups`) in
    place of the chunk size; ``chunk`` is only used by the differentiable fallback.
    """

    @staticmethod
    def forward(ctx, phi, v, radial, fcut, weight, bias, unit, receiver, sender, groups, chunk):
        phi, radial, fcut, unit = (t.contiguous() for t in (phi, radial, fcut, unit))
        v = None if v is None else v.contiguous()
        weight_t = weight.t().contiguous()  # (n_rbf, 3F): unit-stride rows in the kernel
        bias = bias.contiguous()
        ctx.save_for_backward(phi, v, radial, fcut, weight, bias, unit, receiver, sender, weight_t)
        ctx.groups, ctx.chunk = groups, chunk
        n, width = phi.shape
        F, n_rbf = width // 3, radial.shape[1]
        delta_s = phi.new_empty((n, F))
        delta_v = phi.new_empty((n, 3, F))
        order, ptr = groups.by_receiver
        sender = sender.contiguous()
        status = getattr(_kernels(), "painn_forward" + _SUFFIX[phi.dtype])(
            n, F, n_rbf, v is not None, _ptr(phi), _ptr(v), _ptr(radial), _ptr(fcut), _ptr(weight_t), _ptr(bias),
            _ptr(unit), _ptr(sender), _ptr(order), _ptr(ptr), _ptr(delta_s), _ptr(delta_v),
            _threads(radial.shape[0], F))
        if status:
            raise MemoryError("PaiNN's fused message kernel could not allocate its per-thread buffer")
        return delta_s, delta_v

    @staticmethod
    def backward(ctx, grad_s, grad_v):
        phi, v, radial, fcut, weight, bias, unit, receiver, sender, weight_t = ctx.saved_tensors
        if torch.is_grad_enabled():  # a second derivative is wanted: differentiable torch backward
            from .painn import chunked_backward

            grads = chunked_backward(phi, v, radial, fcut, weight, bias, unit, receiver, sender, ctx.chunk,
                                     grad_s, grad_v, ctx.needs_input_grad)
            return (*grads[:7], None, None, None, None)
        grad_s, grad_v = grad_s.contiguous(), grad_v.contiguous()
        n, width = phi.shape
        F, n_rbf = width // 3, radial.shape[1]
        grad_phi = torch.empty_like(phi)
        grad_v_in = None if v is None else torch.empty_like(v)
        grad_radial = torch.empty_like(radial)
        grad_fcut = torch.empty_like(fcut)
        grad_unit = torch.empty_like(unit)
        order, ptr = ctx.groups.by_sender
        receiver = receiver.contiguous()
        status = getattr(_kernels(), "painn_backward" + _SUFFIX[phi.dtype])(
            n, F, n_rbf, v is not None, _ptr(phi), _ptr(v), _ptr(radial), _ptr(fcut), _ptr(weight_t), _ptr(bias),
            _ptr(unit), _ptr(receiver), _ptr(order), _ptr(ptr), _ptr(grad_s), _ptr(grad_v),
            _ptr(grad_phi), _ptr(grad_v_in), _ptr(grad_radial), _ptr(grad_fcut), _ptr(grad_unit),
            _threads(radial.shape[0], F))
        if status:
            raise MemoryError("PaiNN's fused message kernel could not allocate its per-thread buffer")
        return grad_phi, grad_v_in, grad_radial, grad_fcut, None, None, grad_unit, None, None, None, None

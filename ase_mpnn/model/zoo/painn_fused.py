"""PaiNN's message step as one C loop over edges, forward and backward (CPU inference).

:class:`FusedMessages` computes what ``painn._messages`` and :class:`~.painn.ChunkedMessages`
compute, with the C kernels of ``ase_mpnn/model/nn/painn_messages.c``: per edge, the
filters, the gathered φ(s_j) and v_j, the messages and their sums stay in a few kB of L1
cache instead of (edges × 3F) tensors that each torch operation writes out and the next
reads back, and a block costs two calls (forward, backward) instead of dozens of
operations with their dispatch and OpenMP wake-ups.

Used when the answer is energy and forces of a frozen model (the calculator, MD,
harmonic analysis) on a CPU in float32 or float64: :func:`~ase_mpnn.model.nn.native.usable` says when. Training
(weights that need gradients), GPUs, ``torch.compile`` tracing and ``vmap`` (committees)
take the torch paths. A second derivative through a fused block (``create_graph=True``
with a frozen model) falls back to the chunked, differentiable backward.

The radial basis is made inside the kernels too, from the edge lengths: at 12,288 water
atoms each (edges × 20) tensor is about 50 MB, which glibc maps fresh and the kernel
page-faults in on every call, and the forward and backward passes of the basis made
about a dozen of them (benchmarks/bench_scaling.py).
"""

from __future__ import annotations

import torch

from ..nn import native


class FusedMessages(torch.autograd.Function):
    """Δs (n, F), Δv (n, 3, F) of one PaiNN block by the C kernels.

    Inputs: phi (n, 3F), v (n, 3, F) or None, the edge ``lengths`` (n_edges,), the
    block's filter weight (3F, n_rbf) and bias (3F,), unit (n_edges, 3), receiver,
    sender, ``basis`` (:class:`~.painn.RadialBasis`: the kernels make its sine basis and
    cosine cutoff per edge, so no (edges × n_rbf) tensor exists, and the backward pass
    returns dL/d(length) directly), ``groups``
    (:class:`~ase_mpnn.model.nn.edge_groups.EdgeGroups`) and ``chunk`` (only used by the
    differentiable fallback).
    """

    @staticmethod
    def forward(ctx, phi, v, lengths, weight, bias, unit, receiver, sender, basis, groups, chunk):
        phi, lengths, unit = (t.contiguous() for t in (phi, lengths, unit))
        v = None if v is None else v.contiguous()
        weight_t = weight.t().contiguous()  # (n_rbf, 3F): unit-stride rows in the kernel
        bias = bias.contiguous()
        ctx.save_for_backward(phi, v, lengths, weight, bias, unit, receiver, sender, weight_t)
        ctx.basis, ctx.groups, ctx.chunk = basis, groups, chunk
        n, width = phi.shape
        F = width // 3
        delta_s = phi.new_empty((n, F))
        delta_v = phi.new_empty((n, 3, F))
        sender = sender.long().contiguous()  # the kernel reads int64
        # Addresses read directly: this runs three times per call of a 3-atom molecule.
        status = getattr(native.library(), "painn_forward" + native.suffix(phi.dtype))(
            n, F, basis.n_rbf, v is not None, basis.step, basis.cutoff, phi.data_ptr(),
            None if v is None else v.data_ptr(), lengths.data_ptr(), weight_t.data_ptr(), bias.data_ptr(),
            unit.data_ptr(), sender.data_ptr(), *groups.receiver_addresses, delta_s.data_ptr(), delta_v.data_ptr(),
            native.threads_for(lengths.shape[0] * F))
        if status:
            raise MemoryError("PaiNN's fused message kernel could not allocate its per-thread buffer")
        return delta_s, delta_v

    @staticmethod
    def backward(ctx, grad_s, grad_v):
        saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # a second derivative is wanted: differentiable torch backward
            return (*_differentiable_backward(ctx, saved, grad_s, grad_v), None, None, None, None, None)
        phi, v, lengths, weight, bias, unit, receiver, sender, weight_t = saved
        grad_s, grad_v = grad_s.contiguous(), grad_v.contiguous()
        n, width = phi.shape
        F = width // 3
        grad_phi = torch.empty_like(phi)
        grad_v_in = None if v is None else torch.empty_like(v)
        grad_lengths = torch.empty_like(lengths)
        grad_unit = torch.empty_like(unit)
        receiver = receiver.long().contiguous()
        p, basis = native.pointer, ctx.basis
        status = getattr(native.library(), "painn_backward" + native.suffix(phi.dtype))(
            n, F, basis.n_rbf, v is not None, basis.step, basis.cutoff, phi.data_ptr(), p(v), lengths.data_ptr(),
            weight_t.data_ptr(), bias.data_ptr(), unit.data_ptr(), receiver.data_ptr(),
            *ctx.groups.sender_addresses, grad_s.data_ptr(), grad_v.data_ptr(), grad_phi.data_ptr(), p(grad_v_in),
            grad_lengths.data_ptr(), grad_unit.data_ptr(), native.threads_for(lengths.shape[0] * F))
        if status:
            raise MemoryError("PaiNN's fused message kernel could not allocate its per-thread buffer")
        return grad_phi, grad_v_in, grad_lengths, None, None, grad_unit, None, None, None, None, None


def _differentiable_backward(ctx, saved, grad_s, grad_v):
    """(grad_phi, grad_v, grad_lengths, grad_weight, grad_bias, grad_unit) in torch
    operations, so that grad mode records them: the radial basis is made from the lengths
    with the model's own modules and the chunked backward does the rest. ``torch.func.vjp``
    takes the basis's derivative with respect to the lengths alone, not through what the
    lengths were made from (that is the outer graph's job)."""
    from .painn import chunked_backward

    phi, v, lengths, weight, bias, unit, receiver, sender, _ = saved
    (radial, fcut), basis_vjp = torch.func.vjp(ctx.basis, lengths)
    need = ctx.needs_input_grad
    grads = chunked_backward(phi, v, radial, fcut, weight, bias, unit, receiver, sender, ctx.chunk, grad_s, grad_v,
                             (need[0], need[1], need[2], need[2], need[3], need[4], need[5]))
    grad_phi, grad_v_in, grad_radial, grad_fcut, grad_weight, grad_bias, grad_unit = grads
    grad_lengths = basis_vjp((grad_radial, grad_fcut))[0] if need[2] else None
    return grad_phi, grad_v_in, grad_lengths, grad_weight, grad_bias, grad_unit

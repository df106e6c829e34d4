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
"""

from __future__ import annotations

import torch

from ..nn import native


class FusedMessages(torch.autograd.Function):
    """Δs (n, F), Δv (n, 3, F) of one PaiNN block by the C kernels.

    Inputs as :class:`~.painn.ChunkedMessages`, plus ``groups``
    (:class:`~ase_mpnn.model.nn.edge_groups.EdgeGroups`); ``chunk`` is only used by the
    differentiable fallback.
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
        sender = sender.long().contiguous()  # the kernel reads int64
        # Addresses read directly: this runs three times per call of a 3-atom molecule.
        status = getattr(native.library(), "painn_forward" + native.suffix(phi.dtype))(
            n, F, n_rbf, v is not None, phi.data_ptr(), None if v is None else v.data_ptr(), radial.data_ptr(),
            fcut.data_ptr(), weight_t.data_ptr(), bias.data_ptr(), unit.data_ptr(), sender.data_ptr(),
            *groups.receiver_addresses, delta_s.data_ptr(), delta_v.data_ptr(), native.threads_for(radial.shape[0] * F))
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
        receiver = receiver.long().contiguous()
        p = native.pointer
        status = getattr(native.library(), "painn_backward" + native.suffix(phi.dtype))(
            n, F, n_rbf, v is not None, phi.data_ptr(), p(v), radial.data_ptr(), fcut.data_ptr(), weight_t.data_ptr(),
            bias.data_ptr(), unit.data_ptr(), receiver.data_ptr(), *ctx.groups.sender_addresses, grad_s.data_ptr(),
            grad_v.data_ptr(), grad_phi.data_ptr(), p(grad_v_in), grad_radial.data_ptr(), grad_fcut.data_ptr(),
            grad_unit.data_ptr(), native.threads_for(radial.shape[0] * F))
        if status:
            raise MemoryError("PaiNN's fused message kernel could not allocate its per-thread buffer")
        return grad_phi, grad_v_in, grad_radial, grad_fcut, None, None, grad_unit, None, None, None, None

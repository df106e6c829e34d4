"""Sums over edges computed a chunk of edges at a time, for large graphs.

A message step that builds (n_edges, width) tensors makes, on a CPU, temporaries of tens
of MB for a few hundred atoms: glibc hands such blocks back to the kernel after every
use, so each operation pays page faults and zeroing for fresh memory, and autograd
keeps several of them per layer until the backward pass. :func:`chunked_edge_sum` runs
the per-edge function on chunks of edges under activation checkpointing
(``torch.utils.checkpoint``, non-reentrant): each chunk's temporaries are a few MB, and
only the chunk's inputs are kept for backward, where the chunk is recomputed. The
result, first and second derivatives (training on forces) are those of the direct sum.

PaiNN has its own hand-written chunked step (``zoo.painn.ChunkedMessages``), which also
avoids recomputing the per-atom part; this one serves any message function.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch.utils.checkpoint import checkpoint

#: Bytes of one chunk's (edges × width) message tensor, by default: 8 MiB on a CPU
#: (below glibc's mmap threshold, so the memory is reused from the heap; 2,048 edges of
#: MACE's 1024-wide first-layer messages in float32), 256 MiB on a GPU (there chunks only
#: bound the memory: a GPU needs large operations, and its caching allocator reuses
#: memory anyway). With sleeping OpenMP threads (see :func:`threads_sleep`) every
#: parallel operation pays a wake-up, so there a CPU chunk is 4 × threads times larger
#: (PaiNN, 192-atom box, ASE call on two PASSIVE threads: 235 ms with the plain CPU size,
#: 170 ms with this rule; benchmarks/anchors/bench_anchors.py, 2026-11-30).
CHUNK_BYTES = {"cpu": 2**23, "gpu": 2**28}


def threads_sleep() -> bool:
    """Whether torch runs several OpenMP threads that sleep between operations
    (``OMP_WAIT_POLICY=PASSIVE``, which the ``ase-mpnn`` command sets): each multi-threaded
    operation then pays their wake-up, so fewer, larger operations are faster."""
    return torch.get_num_threads() > 1 and os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def edge_chunk_size(bytes_per_edge: int, device_type: str = "cpu", cpu_bytes: int = CHUNK_BYTES["cpu"]) -> int:
    """Edges per chunk when one edge's widest temporary takes ``bytes_per_edge`` bytes and a
    CPU chunk's takes ``cpu_bytes`` (see :data:`CHUNK_BYTES`). At least 256 edges, so a
    committee's vmapped pass (up to 128 edges) never chunks."""
    return max(256, chunk_budget(device_type, cpu_bytes) // bytes_per_edge)


def chunk_budget(device_type: str = "cpu", cpu_bytes: int = CHUNK_BYTES["cpu"]) -> int:
    """Bytes of one chunk's widest temporary on ``device_type`` (see :data:`CHUNK_BYTES`)."""
    if device_type != "cpu":
        return CHUNK_BYTES["gpu"]
    if threads_sleep():
        return cpu_bytes * 4 * torch.get_num_threads()
    return cpu_bytes


def chunked_edge_sum(
    message_fn: Callable[..., torch.Tensor],
    shared: Sequence[torch.Tensor],
    per_edge: Sequence[torch.Tensor],
    receiver: torch.Tensor,
    n_nodes: int,
    chunk: int,
) -> torch.Tensor:
    """Σ over edges into receivers of ``message_fn(*shared, *per_edge_chunk)``, chunk by chunk.

    ``shared`` are tensors every chunk reads whole (per-atom features); ``per_edge`` are
    sliced along their first dimension (edge attributes, sender indices). Returns
    (n_nodes, width).
    """
    n_edges = receiver.shape[0]
    track = torch.is_grad_enabled() and any(t.requires_grad for t in (*shared, *per_edge))
    total = None
    for start in range(0, n_edges, chunk):
        part = slice(start, start + chunk)
        args = (*shared, *(t[part] for t in per_edge))
        if track:
            messages = checkpoint(message_fn, *args, use_reentrant=False)
        else:
            messages = message_fn(*args)
        if total is None:
            total = messages.new_zeros((n_nodes, messages.shape[1]))
        # In-place sums into a tensor made here are recorded by autograd like any other op.
        total = total.index_add_(0, receiver[part], messages)
    return total

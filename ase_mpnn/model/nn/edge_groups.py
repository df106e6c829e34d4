"""Edges grouped by receiver and by sender, for the C kernels' race-free sums over edges.

A kernel that sums per-edge terms into atoms runs in parallel without atomics when
each thread owns the atoms it writes: the forward sum (into receivers) walks the edges
grouped by receiver, the backward sum (gradients into senders) grouped by sender. The
groupings are CSR arrays made by a stable counting sort in C (``edge_groups.c``), once
per graph, and shared by every layer.
"""

from __future__ import annotations

import numpy as np
import torch

from . import native


class EdgeGroups:
    """``by_receiver`` and ``by_sender``: each a pair (order, ptr) of int64 arrays, where
    ``order[ptr[a]:ptr[a + 1]]`` are the edges of atom a in increasing edge order;
    ``receiver_addresses`` and ``sender_addresses``: the arrays' addresses, for the kernels."""

    def __init__(self, receiver: torch.Tensor, sender: torch.Tensor, n_atoms: int):
        self.by_receiver = _group(receiver, n_atoms)
        self.by_sender = _group(sender, n_atoms)
        self.receiver_addresses = tuple(a.ctypes.data for a in self.by_receiver)
        self.sender_addresses = tuple(a.ctypes.data for a in self.by_sender)


def _group(index: torch.Tensor, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.ascontiguousarray(index.detach().cpu().numpy(), dtype=np.int64)
    order = np.empty(index.shape[0], dtype=np.int64)
    ptr = np.empty(n_atoms + 1, dtype=np.int64)
    status = native.library().group_edges(n_atoms, index.shape[0], native.pointer(index), native.pointer(order),
                                          native.pointer(ptr))
    if status:
        raise ValueError(f"edge index outside [0, {n_atoms}) (status {status})")
    return order, ptr

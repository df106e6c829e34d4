"""Sum edge quantities onto nodes (or nodes onto graphs).

``Tensor.index_add`` is as fast as ``torch_scatter.scatter_add`` on CPU (forward and
backward at 7.7k and 120k edges with 128 features, measured on a 2-core machine) and
is differentiable twice, so torch-scatter is never required; MACE and SchNetPack use
native torch scatter too.
"""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum rows of ``src`` (n, ...) into ``dim_size`` rows selected by ``index`` (n,)."""
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add(0, index, src)

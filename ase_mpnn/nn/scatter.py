"""Sum edge quantities onto nodes (or nodes onto graphs).

``Tensor.index_add`` is as fast as torch-scatter on CPU for our sizes (REFERENCE
measurements) and is differentiable twice, so torch-scatter is never required.
"""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum rows of ``src`` (n, ...) into ``dim_size`` rows selected by ``index`` (n,)."""
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add(0, index, src)

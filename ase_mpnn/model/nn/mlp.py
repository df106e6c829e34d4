"""Multilayer perceptrons and the activations the seed papers use."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class ShiftedSoftplus(nn.Module):
    """ssp(x) = ln(0.5 e^x + 0.5): softplus shifted so that ssp(0) = 0 (SchNet)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


def activation(name: str) -> nn.Module:
    """Activation module by name: 'silu', 'ssp' or 'tanh' (all C∞: no corner in any derivative)."""
    if name == "silu":
        return nn.SiLU()
    if name == "ssp":
        return ShiftedSoftplus()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; choose 'silu', 'ssp' or 'tanh'")


class MLP(nn.Sequential):
    """Dense layers with an activation between them (none after the last): the zoo's one MLP.

    ``MLP([128, 64, 1])`` maps 128 features to 1 through a hidden layer of 64.
    ``bias=False`` drops every bias, so that MLP(0) = 0 (NequIP's radial network: filters
    that vanish with the envelope at the cutoff); ``bias_last=False`` only the last one.
    Layers are ``Linear, act, Linear, ...`` (state-dict keys ``0.weight``, ``2.weight`` ...).
    """

    def __init__(self, sizes: Sequence[int], act: str = "silu", bias: bool = True, bias_last: bool = True):
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
        layers: list[nn.Module] = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            layers.append(nn.Linear(n_in, n_out, bias=bias and (bias_last or not last)))
            if not last:
                layers.append(activation(act))
        super().__init__(*layers)

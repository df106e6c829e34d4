"""Radial basis functions and smooth cutoffs of the interatomic distance."""

from __future__ import annotations

import math

import torch
from torch import nn


class CosineCutoff(nn.Module):
    """f(r) = ½ (cos(π r / r_c) + 1) for r < r_c, else 0 (SchNet, PaiNN, Behler).

    Continuous with a continuous first derivative at r_c, so energies are smooth and
    forces are continuous as a neighbor crosses the cutoff.
    """

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        f = 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0)
        return f * (r < self.cutoff).to(r.dtype)


class PolynomialCutoff(nn.Module):
    """Polynomial envelope of degree p (NequIP, DimeNet): smooth to order p at r_c."""

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        p = self.p
        x = r / self.cutoff
        f = (
            1.0
            - 0.5 * (p + 1) * (p + 2) * x**p
            + p * (p + 2) * x ** (p + 1)
            - 0.5 * p * (p + 1) * x ** (p + 2)
        )
        return f * (x < 1.0).to(r.dtype)


class GaussianRBF(nn.Module):
    """e_k(r) = exp(−γ (r − μ_k)²), centres μ_k evenly spaced on [start, cutoff] (SchNet)."""

    def __init__(self, n_rbf: int, cutoff: float, start: float = 0.0):
        super().__init__()
        centers = torch.linspace(start, cutoff, n_rbf, dtype=torch.float64)
        width = float(centers[1] - centers[0]) if n_rbf > 1 else float(cutoff)
        self.register_buffer("centers", centers)
        self.gamma = 0.5 / width**2
        self.n_rbf = n_rbf

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (r[:, None] - self.centers) ** 2)


class SineRBF(nn.Module):
    """e_n(r) = sin(n π r / r_c) / r, n = 1..N (PaiNN; the Bessel basis of NequIP/DimeNet).

    The frequencies n π / r_c are reset from float64 after every ``.to()`` and
    ``load_state_dict``: a model built or saved in float32 and run in float64 would
    otherwise keep float32-rounded frequencies (relative errors of ~1e-7), and PaiNN's
    C kernels, which make the basis themselves from π / r_c, would then disagree with the
    torch path at that level.
    """

    def __init__(self, n_rbf: int, cutoff: float):
        super().__init__()
        self.n_rbf = n_rbf
        self.cutoff = float(cutoff)
        self.register_buffer("freqs", self._exact_freqs())
        self.register_load_state_dict_post_hook(lambda module, _: module._restore_freqs())

    def _exact_freqs(self) -> torch.Tensor:
        return torch.arange(1, self.n_rbf + 1, dtype=torch.float64) * (math.pi / self.cutoff)

    @torch.no_grad()
    def _restore_freqs(self) -> None:
        self.freqs.copy_(self._exact_freqs())

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._restore_freqs()
        return self

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.sin(r[:, None] * self.freqs) / r[:, None]

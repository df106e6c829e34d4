"""Building blocks shared by the architectures: radial bases, cutoffs, MLPs, scatter."""

from .mlp import MLP, ShiftedSoftplus
from .radial import CosineCutoff, GaussianRBF, PolynomialCutoff, SineRBF
from .scatter import scatter_sum

__all__ = [
    "MLP",
    "ShiftedSoftplus",
    "CosineCutoff",
    "PolynomialCutoff",
    "GaussianRBF",
    "SineRBF",
    "scatter_sum",
]

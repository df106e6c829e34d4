"""The representation contract: what every architecture in :mod:`ase_mpnn.model.zoo` computes.

A representation maps a graph's atoms and edges to per-atom features; everything
physical (energy, forces, charges, dipole, polarizability) happens in
:class:`~ase_mpnn.model.potential.AtomisticModel` and its heads. In one place:

* input: ``species`` (n_nodes,) species indices (0 … n_species − 1), ``edge_index``
  (2, n_edges) [receiver i, source j], ``vectors`` (n_edges, 3) r_j − r_i + S·cell in Å,
  ``lengths`` (n_edges,) their norms. Nodes without edges (isolated atoms) are allowed.
* output: :class:`Features`: invariant ``scalars`` (n_nodes, F); equivariant
  ``vectors`` (n_nodes, 3, F), rotating as R v, or None; symmetric ``tensors``
  (n_nodes, 3, 3), rotating as R T Rᵀ, or None (e3nn models, from 0e + 2e features).
* class attributes: ``n_features`` (F) and ``has_vectors``.
* smooth: no operation with a corner (see :mod:`ase_mpnn.testing.smoothness`), and
  independent of the order of atoms and edges.

:class:`E3nnRepresentation` adds what every e3nn-based architecture needs: its
Clebsch–Gordan and Wigner constants kept exact after ``.to(float64)`` and after
``load_state_dict`` (files may hold float32-rounded copies), and the spherical
harmonics of the edges.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from e3nn import o3
from torch import nn

from .e3nn_utils import restore_exact_constants_


class Features(NamedTuple):
    """Per-atom features returned by a representation (shapes in the module docstring)."""

    scalars: torch.Tensor
    vectors: torch.Tensor | None = None
    tensors: torch.Tensor | None = None


class Representation(nn.Module):
    """Base class of the architectures: ``forward(species, edge_index, vectors, lengths) -> Features``."""

    n_features: int
    has_vectors: bool = False
    #: Whether ``torch.compile`` can trace it (``AtomisticModel.compile_representation``).
    compilable: bool = True

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, vectors: torch.Tensor,
                lengths: torch.Tensor) -> Features:
        raise NotImplementedError

    def compiled_pays_for(self, lengths: torch.Tensor) -> bool:
        """Whether a compiled model should run the graph of these edge lengths compiled
        (else eagerly); default yes."""
        return True


class E3nnRepresentation(Representation):
    """A representation built from e3nn blocks: exact coupling constants and edge harmonics."""

    # torch.compile (2.13) fails inside e3nn 0.5 (its Irreps objects cannot be traced).
    compilable = False

    def __init__(self) -> None:
        super().__init__()
        # load_state_dict copies e3nn's saved (possibly float32-rounded) couplings back in.
        self.register_load_state_dict_post_hook(lambda module, _: restore_exact_constants_(module))

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        restore_exact_constants_(self)  # couplings exact in float64 after .to()
        return self

    @staticmethod
    def edge_harmonics(irreps: o3.Irreps, vectors: torch.Tensor) -> torch.Tensor:
        """Real spherical harmonics Y(r̂) of the edge directions, component-normalised (n_edges, irreps.dim)."""
        return o3.spherical_harmonics(irreps, vectors, normalize=True, normalization="component")


def split_scalars_vectors(h: torch.Tensor, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, F) scalars and (n, 3, F) vectors from features laid out as F×0e + F×1o (+ more)."""
    scalars = h[:, :n_features]
    vectors = h[:, n_features: 4 * n_features].reshape(-1, n_features, 3).transpose(1, 2)
    return scalars, vectors

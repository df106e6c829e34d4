"""EGNN: the representation's own vectors and tensors rotate as Cartesian objects."""

from __future__ import annotations

import numpy as np
import torch

import ase_mpnn
from ase_mpnn.model.zoo.egnn import EGNN
from ase_mpnn.testing import random_crystal, random_rotation
from conftest import TEST_CUTOFF


def _outputs(model, atoms):
    graph = ase_mpnn.build_graph([atoms], TEST_CUTOFF, dtype=torch.float64)
    receiver, sender = graph.edge_index
    vectors = graph.positions[sender] - graph.positions[receiver] + graph.shifts @ graph.cell[0]
    species = (graph.numbers == 8).long()
    with torch.no_grad():
        return model(species, graph.edge_index, vectors, torch.linalg.vector_norm(vectors, dim=1))


def test_vectors_and_tensors_are_equivariant_with_periodic_images():
    torch.manual_seed(0)
    model = EGNN(2, TEST_CUTOFF, n_features=8, n_layers=3, n_rbf=6, neighbor_norm=2.0).double()
    atoms = random_crystal(seed=6)  # small cell: atoms see their own images
    R = random_rotation(np.random.default_rng(2), reflect=True)
    turned = atoms.copy()
    turned.positions = atoms.positions @ R.T
    turned.cell = atoms.cell.array @ R.T
    s, v, t = _outputs(model, atoms)
    s2, v2, t2 = _outputs(model, turned)
    Rt = torch.as_tensor(R)
    torch.testing.assert_close(s2, s, atol=1e-10, rtol=0)
    torch.testing.assert_close(v2, torch.einsum("ab,nbf->naf", Rt, v), atol=1e-10, rtol=0)
    torch.testing.assert_close(t2, Rt @ t @ Rt.T, atol=1e-10, rtol=0)
    torch.testing.assert_close(t, t.transpose(1, 2), atol=1e-12, rtol=0)
    assert torch.diagonal(t, dim1=1, dim2=2).sum(dim=1).abs().max() < 1e-12
    assert v.abs().max() > 1e-3 and t.abs().max() > 1e-6


def test_node_without_edges():
    model = EGNN(2, TEST_CUTOFF, n_features=8, n_layers=2, n_rbf=6).double()
    species = torch.tensor([0, 1])
    no_edges = torch.zeros((2, 0), dtype=torch.long)
    s, v, t = model(species, no_edges, torch.zeros((0, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    assert s.shape == (2, 8) and torch.isfinite(s).all()
    assert v.abs().max() == 0 and t.abs().max() == 0

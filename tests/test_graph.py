"""ase_mpnn.model.graph: batching structures into one graph, as ASE sees them."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ase_mpnn.model.graph import build_graph
from ase_mpnn.model.potential import _edge_vectors


def test_build_graph_batches_structures_as_ase_sees_them():
    water = molecule("H2O")
    crystal = Atoms("Cu", cell=np.eye(3) * 2.6, pbc=True, positions=[[0.3, 0.2, 0.1]])
    crystal.info["charge"] = 1.0
    structures = [water, crystal]
    graph = build_graph(structures, 3.0)
    assert graph.n_graphs == 2 and graph.n_atoms == 4
    assert graph.batch.tolist() == [0, 0, 0, 1] and graph.total_charge.tolist() == [0.0, 1.0]
    # Positions are relative to each structure's first atom, which the origin keeps in float64.
    torch.testing.assert_close(graph.origin[1], torch.tensor([0.3, 0.2, 0.1], dtype=torch.float64))
    assert torch.all(graph.positions[3] == 0)
    vectors = _edge_vectors(graph.positions, graph.cell, graph).numpy()
    offset = 0
    for atoms in structures:
        i, j, d = ase_neighbor_list("ijD", atoms, 3.0)
        mine = (graph.edge_index[0] >= offset) & (graph.edge_index[0] < offset + len(atoms))
        ours = sorted(zip((graph.edge_index[0][mine] - offset).tolist(), (graph.edge_index[1][mine] - offset).tolist(),
                          map(tuple, np.round(vectors[mine.numpy()], 9))))
        theirs = sorted(zip(i.tolist(), j.tolist(), map(tuple, np.round(d, 9))))
        assert ours == theirs
        offset += len(atoms)


def test_graph_to_float32_keeps_integers_and_the_float64_origin():
    graph = build_graph([molecule("H2O")], 3.0).to(dtype=torch.float32)
    assert graph.positions.dtype == torch.float32 and graph.shifts.dtype == torch.float32
    assert graph.edge_index.dtype == torch.int64 and graph.numbers.dtype == torch.int64
    assert graph.origin.dtype == torch.float64

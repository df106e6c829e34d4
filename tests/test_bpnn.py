"""BPNN: edge pairs and symmetry functions against a plain-Python evaluation of the formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import ase_mpnn
from ase_mpnn.model.zoo.bpnn import BPNN, edge_pairs
from ase_mpnn.testing import random_crystal, random_rotation
from conftest import TEST_CUTOFF


def test_edge_pairs_are_all_unordered_pairs_with_a_shared_receiver():
    receiver = torch.randint(0, 5, (30,), generator=torch.Generator().manual_seed(0))
    a, b = edge_pairs(receiver, 7)
    got = sorted(tuple(sorted(p)) for p in zip(a.tolist(), b.tolist()))
    expected = [(i, j) for i, j in itertools.combinations(range(30), 2) if receiver[i] == receiver[j]]
    assert got == expected
    empty = edge_pairs(receiver[:0], 3)
    assert empty[0].numel() == 0 and empty[1].numel() == 0


def _graph_inputs(atoms):
    graph = ase_mpnn.build_graph([atoms], TEST_CUTOFF, dtype=torch.float64)
    receiver, sender = graph.edge_index
    vectors = graph.positions[sender] - graph.positions[receiver] + graph.shifts @ graph.cell[0]
    species = (graph.numbers == 8).long()  # H -> 0, O -> 1
    return species, graph.edge_index, vectors, torch.linalg.vector_norm(vectors, dim=1)


@pytest.mark.parametrize("angular_jk", [False, True])
def test_descriptors_match_formulas(angular_jk):
    model = BPNN(2, TEST_CUTOFF, n_radial=3, n_angular_eta=2, n_zeta=3, angular_jk=angular_jk).double()
    species, edge_index, vectors, lengths = _graph_inputs(random_crystal(seed=2))
    G = model.descriptors(species, edge_index, vectors, lengths).numpy()

    def fc(r):
        return 0.5 * (math.cos(math.pi * r / TEST_CUTOFF) + 1.0) if r < TEST_CUTOFF else 0.0

    vec, L = vectors.numpy(), lengths.numpy()
    reference = np.zeros_like(G)
    n_ang, pairs = model.n_angular, {(0, 0): 0, (0, 1): 1, (1, 1): 2}
    for i in range(len(species)):
        edges = [e for e in range(len(L)) if edge_index[0, e] == i]
        z = [int(species[edge_index[1, e]]) for e in range(len(L))]
        for e in edges:
            for k, shift in enumerate(model.radial_shifts.tolist()):
                reference[i, 3 * z[e] + k] += math.exp(-model.radial_eta * (L[e] - shift) ** 2) * fc(L[e])
        for e, f in itertools.permutations(edges, 2):
            cos = vec[e] @ vec[f] / (L[e] * L[f])
            column = 6 + pairs[tuple(sorted((z[e], z[f])))] * n_ang
            for eta in model.angular_etas.tolist():
                for zeta in (1, 2, 4):
                    for lam in (1, -1):
                        value = 2 ** (1 - zeta) * (1 + lam * cos) ** zeta
                        value *= math.exp(-eta * (L[e] ** 2 + L[f] ** 2)) * fc(L[e]) * fc(L[f])
                        if angular_jk:
                            r_jk = np.linalg.norm(vec[f] - vec[e])
                            value *= math.exp(-eta * r_jk**2) * fc(r_jk)
                        reference[i, column] += value
                        column += 1
    np.testing.assert_allclose(G, reference, atol=1e-12)
    assert reference[:, 6:].max() > 0.1


def test_angular_jk_model_is_invariant_and_conservative():
    torch.manual_seed(0)
    model = ase_mpnn.build_model("bpnn", ["H", "O"], cutoff=TEST_CUTOFF, n_features=8, n_radial=4,
                                 n_angular_eta=1, n_zeta=2, angular_jk=True, n_hidden=8).double()
    atoms = random_crystal(seed=3)
    R = random_rotation(np.random.default_rng(1), reflect=True)
    turned = atoms.copy()
    turned.positions = atoms.positions @ R.T
    turned.cell = atoms.cell.array @ R.T
    outs = [model(ase_mpnn.build_graph([a], TEST_CUTOFF, dtype=torch.float64), ("energy", "forces"))
            for a in (atoms, turned)]
    assert outs[1]["energy"].item() == pytest.approx(outs[0]["energy"].item(), abs=1e-10)
    np.testing.assert_allclose(outs[1]["forces"].numpy(), outs[0]["forces"].numpy() @ R.T, atol=1e-10)
    h, a, c = 1e-5, 1, 2
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[a, c] += sign * h
        energies.append(model(ase_mpnn.build_graph([moved], TEST_CUTOFF, dtype=torch.float64))["energy"].item())
    assert outs[0]["forces"][a, c].item() == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=1e-7)

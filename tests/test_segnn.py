"""SEGNN-specific checks: gate, steerable layers, feature concatenation, smooth cutoff."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from ase_mpnn.model.nn.e3nn_utils import restore_exact_constants_
from ase_mpnn.model.nn.e3nn_utils import Gate
from ase_mpnn.model.zoo.segnn import SEGNN, SteerableLayer, sorted_concat
from test_mace import exact_wigner


def test_sorted_concat_orders_columns_by_irrep():
    irreps, index = sorted_concat([o3.Irreps("2x0e + 1x1o"), o3.Irreps("1x0e + 1x1o")])
    assert irreps == o3.Irreps("3x0e + 2x1o")
    assert index.tolist() == [0, 1, 5, 2, 3, 4, 6, 7, 8]


def test_steerable_layer_with_gate_is_equivariant():
    torch.manual_seed(0)
    irreps_in, irreps_out = o3.Irreps("3x0e + 2x1o + 1x2e"), o3.Irreps("2x0e + 2x1o + 1x2e")
    attr = o3.Irreps.spherical_harmonics(2)
    layer = SteerableLayer(irreps_in, attr, irreps_out).double()
    restore_exact_constants_(layer)  # built in float32
    assert isinstance(layer.gate, Gate)
    assert layer.gate.irreps_in == o3.Irreps("5x0e + 2x1o + 1x2e")
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(5, irreps_in.dim, dtype=torch.float64)
    a = o3.spherical_harmonics(attr, torch.randn(5, 3).double(), True, normalization="component")
    R = -o3.rand_matrix(dtype=torch.float64)
    out = layer(x @ exact_wigner(irreps_in, R).T, a @ exact_wigner(attr, R).T)
    torch.testing.assert_close(out, layer(x, a) @ exact_wigner(irreps_out, R).T)


def test_pseudoscalar_features_are_refused():
    with pytest.raises(ValueError):
        SEGNN(2, 4.0, hidden_irreps="4x0e + 2x0o + 2x1o")


def test_vectors_are_cartesian_xyz_and_messages_vanish_at_the_cutoff():
    torch.manual_seed(0)
    model = SEGNN(1, 3.0, hidden_irreps="4x0e + 2x1o + 1x2e", n_layers=1).double()
    species, edges = torch.tensor([0, 0]), torch.tensor([[0, 1], [1, 0]])

    def run(r):
        vectors = torch.tensor([[0.0, 0.0, r], [0.0, 0.0, -r]], dtype=torch.float64)
        return model(species, edges, vectors, vectors.norm(dim=1))

    s, v, t = run(1.2)
    assert v[:, 2].abs().max() > 1e-6 and v[:, :2].abs().max() < 1e-12  # dimer along z
    torch.testing.assert_close(t, t.transpose(1, 2))
    nothing = torch.zeros(0, 3, dtype=torch.float64)
    free = model(torch.tensor([0]), edges[:, :0], nothing, nothing[:, 0])
    near = run(3.0 - 1e-4)  # just inside the cutoff: the same as two free atoms
    for x, y in zip(near, free):
        torch.testing.assert_close(x[:1], y, atol=1e-9, rtol=0)

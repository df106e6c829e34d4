"""SO3Net specifics: e3nn conventions it relies on, its convolution against e3nn's TensorProduct."""

from __future__ import annotations

import pytest
import torch
from ase_mpnn.testing import random_molecule
from e3nn import o3

import ase_mpnn
from ase_mpnn.model.nn.e3nn_utils import restore_exact_constants_, symmetric_basis
from ase_mpnn.model.nn.e3nn_utils import edge_couplings, parity_paths
from ase_mpnn.model.zoo.so3net import SO3Net


def test_e3nn_l1_basis_is_xyz():
    """v is read straight from the 1o channels: e3nn's ℓ = 1 basis must be (x, y, z)."""
    R = o3.rand_matrix(dtype=torch.float64)
    torch.testing.assert_close(o3.Irreps("1o").D_from_matrix(R), R, atol=1e-5, rtol=0)
    r = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(
        o3.spherical_harmonics(1, r, True, normalization="component"),
        3**0.5 * r / r.norm(dim=1, keepdim=True),
    )


def test_symmetric_basis_rotates_like_cartesian_tensors():
    Q = symmetric_basis()
    assert torch.allclose(torch.einsum("aij,bij->ab", Q, Q), torch.eye(6, dtype=torch.float64))
    assert torch.allclose(Q, Q.transpose(1, 2))
    R = o3.rand_matrix(dtype=torch.float64)
    r = torch.randn(30, 3, dtype=torch.float64)
    Y, YR = (
        o3.spherical_harmonics("0e+2e", r, False),
        o3.spherical_harmonics("0e+2e", r @ R.T, False),
    )
    D = torch.linalg.lstsq(Y, YR).solution.T  # exact float64 D(R) of 0e + 2e
    torch.testing.assert_close(torch.einsum("ab,aij->bij", D, Q), R @ Q @ R.T)


@pytest.mark.parametrize("first", [False, True])
def test_convolution_equals_e3nn_tensor_product(first):
    torch.manual_seed(0)
    F, lmax, n, n_edges = 3, 2, 5, 12
    net = SO3Net(2, 4.0, n_features=F, lmax=lmax, n_interactions=1, n_rbf=4).double()
    interaction = net.interactions[0]
    irreps, sh_irreps = net.irreps, net.irreps_sh
    paths = parity_paths(lmax, lmax, lmax)
    tp = o3.TensorProduct(
        irreps,
        sh_irreps,
        irreps,
        [(l1, l2, l, "uvu", True) for l1, l2, l in paths],
        shared_weights=False,
        internal_weights=False,
    ).double()
    restore_exact_constants_(tp)
    x = torch.randn(n, irreps.dim, dtype=torch.float64)
    if first:
        x[:, F:] = 0.0
    receiver, sender = torch.randint(0, n, (2, n_edges))
    sh = o3.spherical_harmonics(
        sh_irreps, torch.randn(n_edges, 3, dtype=torch.float64), True, normalization="component"
    )
    filters = torch.randn(n_edges, lmax + 1, F, dtype=torch.float64)
    weights = torch.cat([filters[:, l2] for _, l2, _ in paths], dim=1)
    expected = torch.zeros(n, irreps.dim, dtype=torch.float64).index_add(
        0, receiver, tp(x[sender], sh, weights)
    )
    out = interaction.convolve(
        x, edge_couplings(sh, net.couplings), filters, receiver, sender, first=first
    )
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_lmax_1_has_no_tensor_output():
    model = ase_mpnn.build_model(
        "so3net", ["H", "O"], cutoff=3.0, n_features=4, lmax=1, n_interactions=1, n_rbf=4
    )
    graph = ase_mpnn.build_graph([random_molecule(seed=3, n=4)], model.cutoff, dtype=torch.float32)
    out = model(graph, ("energy", "forces", "dipole", "polarizability"))
    assert model.representation.tensor_out is None
    assert torch.isfinite(out["polarizability"]).all()
    with pytest.raises(ValueError):
        SO3Net(2, 3.0, lmax=0)

"""MACE-specific checks: body order and equivariance of the symmetric contraction, tensor basis."""

from __future__ import annotations

import torch
from e3nn import o3

from ase_mpnn.model.nn.e3nn_utils import restore_exact_constants_, symmetric_basis
from ase_mpnn.model.zoo.mace import MACE, SymmetricContraction, natural_irreps


def exact_wigner(irreps: o3.Irreps, R: torch.Tensor) -> torch.Tensor:
    """Block-diagonal D(R) for ℓ ≤ 2 in float64 (e3nn's D_from_matrix is float32-accurate only)."""
    Q = symmetric_basis()[1:]
    det = torch.linalg.det(R)
    P = R * det  # proper rotation
    D2 = torch.einsum("nij,ik,mkl,jl->nm", Q, P, Q, P)
    by_l = {0: torch.ones(1, 1, dtype=R.dtype), 1: P, 2: D2}
    blocks = [by_l[ir.l] * det ** ((1 - ir.p) // 2) for mul, ir in irreps for _ in range(mul)]
    return torch.block_diag(*blocks)


def test_symmetric_basis_is_e3nn_2e_basis():
    Q = symmetric_basis()
    torch.testing.assert_close(torch.einsum("kij,lij->kl", Q, Q), torch.eye(6, dtype=torch.float64))
    u = torch.nn.functional.normalize(torch.randn(10, 3, dtype=torch.float64), dim=1)
    quadratic = torch.einsum("ni,kij,nj->nk", u, Q[1:], u)
    ratio = o3.spherical_harmonics(2, u, normalize=True) / quadratic  # r̂ᵀ Q_m r̂ ∝ Y_2m(r̂)
    torch.testing.assert_close(ratio, torch.full_like(ratio, ratio[0, 0].item()))
    R = o3.rand_matrix(dtype=torch.float64)
    D = exact_wigner(o3.Irreps("0e + 2e"), R)
    torch.testing.assert_close(D @ D.T, torch.eye(6, dtype=torch.float64))
    x = torch.randn(6, dtype=torch.float64)
    matrix = torch.einsum("k,kij->ij", x, Q)
    torch.testing.assert_close(torch.einsum("k,kij->ij", D @ x, Q), R @ matrix @ R.T)


def test_contraction_is_equivariant_and_of_the_right_body_order():
    torch.manual_seed(0)
    targets = [o3.Irrep("0e"), o3.Irrep("1o"), o3.Irrep("2e")]
    sc = SymmetricContraction(3, 2, targets, correlation=3, n_species=2).double()
    restore_exact_constants_(sc)  # built in float32
    irreps_a, irreps_b = natural_irreps(3, 2), o3.Irreps([(3, ir) for ir in targets])
    a = torch.randn(4, irreps_a.dim, dtype=torch.float64)
    species = torch.tensor([0, 1, 1, 0])
    R = o3.rand_matrix(dtype=torch.float64) * -1.0  # with inversion
    turned = sc(a @ exact_wigner(irreps_a, R).T, species)
    torch.testing.assert_close(turned, sc(a, species) @ exact_wigner(irreps_b, R).T)
    # Keep only the terms of one order ν: B is then homogeneous of degree ν in A.
    for order in (1, 2, 3):
        with torch.no_grad():
            for terms, weight in zip(sc.terms, sc.weights):
                keep = torch.tensor([float(k == order - 1) for k, _, _ in terms]).double()
                weight.copy_(torch.randn_like(weight) * keep[None, :, None])
        torch.testing.assert_close(sc(2.0 * a, species), 2.0**order * sc(a, species))
        assert sc(a, species).abs().max() > 1e-3


def test_vectors_are_cartesian_xyz():
    torch.manual_seed(0)
    model = MACE(1, 3.0, n_channels=4, l_max_sh=2, n_layers=1, radial_hidden=8).double()
    vectors = torch.tensor([[0.0, 0.0, 1.2], [0.0, 0.0, -1.2]], dtype=torch.float64)
    edges = torch.tensor([[0, 1], [1, 0]])
    s, v, t = model(torch.tensor([0, 0]), edges, vectors, vectors.norm(dim=1))
    assert v[:, 2].abs().max() > 1e-6  # a dimer along z has vectors along z only
    assert v[:, :2].abs().max() < 1e-12
    torch.testing.assert_close(t, t.transpose(1, 2))

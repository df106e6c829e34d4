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


def e3nn_contraction(sc: SymmetricContraction, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
    """The symmetric contraction written with e3nn's own C-channel tensor products (float64)."""
    C, n = sc.n_channels, a.shape[0]
    levels = [a]
    for irreps1, irreps2, irreps_out, instructions in sc.couplings:
        widen = lambda irreps: o3.Irreps([(C, ir) for _, ir in irreps])  # noqa: E731
        tp = o3.TensorProduct(widen(irreps1), widen(irreps2), widen(irreps_out), instructions).double()
        restore_exact_constants_(tp)
        levels.append(tp(levels[-1], a))
    out = []
    for t, terms, weight in zip(sc.targets, sc.terms, sc.weights):
        parts = [levels[k][:, C * i : C * j].reshape(n, C, t.dim) for k, i, j in terms]
        w = weight.index_select(0, species)
        out.append(torch.einsum("nekd,nek->nkd", torch.stack(parts, 1), w).reshape(n, -1))
    return torch.cat(out, dim=1)


def test_contraction_equals_e3nn_tensor_products_in_blocks_of_atoms(monkeypatch):
    """The gathered nonzero couplings give e3nn's numbers, whole and a few atoms at a time."""
    torch.manual_seed(0)
    targets = [o3.Irrep("0e"), o3.Irrep("1o"), o3.Irrep("2e")]
    sc = SymmetricContraction(4, 3, targets, correlation=3, n_species=2).double()
    restore_exact_constants_(sc)
    a = torch.randn(7, natural_irreps(4, 3).dim, dtype=torch.float64, requires_grad=True)
    species = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    expected = e3nn_contraction(sc, a, species)
    assert expected.abs().max() > 1.0
    torch.testing.assert_close(sc(a, species), expected, rtol=0, atol=1e-12)
    import ase_mpnn.model.zoo.mace as mace_module

    # Blocks of 3 atoms, whatever the thread settings.
    monkeypatch.setattr(mace_module, "chunk_budget", lambda device_type, cpu_bytes: 3 * sc.widest_level * 4 * 8)
    blocked = sc(a, species)
    torch.testing.assert_close(blocked, expected, rtol=0, atol=1e-12)
    (g_blocked,) = torch.autograd.grad((blocked**2).sum(), a)
    (g_e3nn,) = torch.autograd.grad((expected**2).sum(), a)
    torch.testing.assert_close(g_blocked, g_e3nn, rtol=0, atol=1e-10)


def test_files_with_the_old_contraction_buffers_load(tmp_path):
    """Files written when the contraction held e3nn products keep loading (their buffers had no weights)."""
    import ase_mpnn
    from ase_mpnn.model.io import without_legacy_buffers

    model = ase_mpnn.build_model("mace", ["H", "O"], cutoff=3.0, n_channels=4, l_max_sh=2, n_layers=1)
    state = model.state_dict()
    old = dict(state, **{"representation.layers.0.contraction.tps.0.output_mask": torch.ones(3),
                         "representation.layers.0.contraction.tps.1._compiled_main_left_right._w3j_1_1_2":
                             torch.ones(3, 3, 5)})
    model.load_state_dict(without_legacy_buffers(old, model))


def test_blocked_contraction_has_exact_first_and_second_derivatives(monkeypatch):
    """Blocks of atoms recomputed in the backward pass (checkpointing) keep gradcheck and
    gradgradcheck exact: training on forces differentiates through them twice."""
    import ase_mpnn.model.zoo.mace as mace_module

    torch.manual_seed(1)
    targets = [o3.Irrep("0e"), o3.Irrep("1o")]
    sc = SymmetricContraction(2, 2, targets, correlation=3, n_species=2).double()
    restore_exact_constants_(sc)
    monkeypatch.setattr(mace_module, "chunk_budget", lambda device_type, cpu_bytes: 2 * sc.widest_level * 2 * 8)
    a = torch.randn(5, natural_irreps(2, 2).dim, dtype=torch.float64, requires_grad=True)
    species = torch.tensor([0, 1, 1, 0, 1])
    torch.testing.assert_close(sc(a, species), e3nn_contraction(sc, a, species), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: sc(x, species), (a,))
    assert torch.autograd.gradgradcheck(lambda x: sc(x, species), (a,))

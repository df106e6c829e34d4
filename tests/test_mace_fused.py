"""MACE's C kernels (convolution, symmetric contraction) equal the e3nn and torch paths,
to second derivatives, inside the model too."""

from __future__ import annotations

import pytest
import torch
from ase.build import molecule
from e3nn import o3

import ase_mpnn
from ase_mpnn.model.nn import native, scatter_sum
from ase_mpnn.model.nn.edge_groups import EdgeGroups
from ase_mpnn.model.zoo import mace as mace_module
from ase_mpnn.model.zoo.mace import MACE, SymmetricContraction
from ase_mpnn.model.zoo.mace_fused import ConvTable, FusedContraction, FusedConv
from ase_mpnn.testing import random_crystal
from conftest import count_forward_calls, make_model

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler here")


def layer_inputs(conv, dtype=torch.float64, seed=0):
    """Random features, harmonics and weights on 23 edges among 7 atoms; atom 6 has no edges."""
    g = torch.Generator().manual_seed(seed)
    n, e = 7, 23

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(True)

    receiver = torch.randint(0, n - 1, (e,), generator=g)
    sender = torch.randint(0, n - 1, (e,), generator=g)
    tensors = (rand(n, conv.irreps_in1.dim), rand(e, conv.irreps_in2.dim), rand(e, conv.weight_numel))
    return tensors, receiver, sender, EdgeGroups(receiver, sender, n)


def e3nn_sum(conv, h, sh, weights, receiver, sender):
    return scatter_sum(conv(h.index_select(0, sender), sh, weights), receiver, h.shape[0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_conv_equals_e3nn_with_gradients(dtype):
    model = MACE(2, 5.0, n_channels=5, l_max_sh=3).to(dtype)
    for layer in model.layers:  # first layer: 5x0e in; second: 5x0e + 5x1o in, ten paths
        conv = layer.conv
        (h, sh, w), receiver, sender, groups = layer_inputs(conv, dtype)
        ours = FusedConv.apply(h, sh, w, receiver, sender, ConvTable(conv), groups, conv)
        reference = e3nn_sum(conv, h, sh, w, receiver, sender)
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours, reference, **tol)
        projection = torch.randn_like(reference)
        for a, b in zip(torch.autograd.grad(ours, (h, sh, w), projection),
                        torch.autograd.grad(reference, (h, sh, w), projection)):
            torch.testing.assert_close(a, b, **tol)


def test_fused_conv_first_and_second_derivatives():
    """gradcheck runs the C backward; gradgradcheck the e3nn recomputation."""
    conv = MACE(2, 5.0, n_channels=2, l_max_sh=2).double().layers[1].conv
    tensors, receiver, sender, groups = layer_inputs(conv, seed=1)
    table = ConvTable(conv)

    def fn(h, sh, w):
        return FusedConv.apply(h, sh, w, receiver, sender, table, groups, conv)

    assert torch.autograd.gradcheck(fn, tensors)
    assert torch.autograd.gradgradcheck(fn, tensors)


def contraction_inputs(dtype=torch.float64, seed=0):
    """The default model's second-layer contraction (ℓ ≤ 3, ν = 3) with 3 channels, 3 elements."""
    torch.manual_seed(seed)
    targets = [o3.Irrep("0e"), o3.Irrep("1o"), o3.Irrep("2e")]
    module = SymmetricContraction(3, 3, targets, 3, 3).to(dtype).requires_grad_(False)
    a = torch.randn(5, module.irreps_a.dim, dtype=dtype, requires_grad=True)
    return module, a, torch.tensor([0, 2, 1, 2, 0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_contraction_equals_torch_with_gradients(dtype):
    module, a, species = contraction_inputs(dtype)
    ours = FusedContraction.apply(a, species, module, module.fused_table)
    reference = module._contract(a, species)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, reference, **tol)
    projection = torch.randn_like(reference)
    (g_ours,) = torch.autograd.grad(ours, a, projection)
    (g_ref,) = torch.autograd.grad(reference, a, projection)
    torch.testing.assert_close(g_ours, g_ref, **tol)


def test_fused_contraction_first_and_second_derivatives():
    module, a, species = contraction_inputs(seed=1)

    def fn(a_):
        return FusedContraction.apply(a_, species, module, module.fused_table)

    assert torch.autograd.gradcheck(fn, (a,))
    assert torch.autograd.gradgradcheck(fn, (a,))


def frozen_mace():
    model = make_model("mace")
    with torch.no_grad():  # weights well away from zero
        for p in model.parameters():
            p.mul_(1.2)
    return model.eval().requires_grad_(False)


def test_frozen_model_takes_the_fused_path_with_the_same_results(monkeypatch):
    """Energy, forces, stress and forces with create_graph (whose second derivatives go
    through h's dependence on earlier layers) equal the e3nn path."""
    model = frozen_mace()
    calls = count_forward_calls(monkeypatch, FusedConv)
    model(ase_mpnn.build_graph([molecule("H2O")], model.cutoff, dtype=torch.float64))  # fills the isolated-atom cache
    for atoms in (molecule("H2O"), random_crystal(seed=3)):
        graph = ase_mpnn.build_graph([atoms], model.cutoff, dtype=torch.float64)
        props = ("energy", "forces") + (("stress",) if atoms.pbc.all() else ())
        n_calls = len(calls)
        fused = model(graph, props)
        assert len(calls) == n_calls + len(model.representation.layers)
        fused_graph = model(graph, props, create_graph=True)
        with monkeypatch.context() as m:
            m.setattr(native, "usable", lambda *args: False)
            plain = model(graph, props)
        for key in props:
            scale = float(plain[key].detach().abs().max())  # weights scaled up: forces of ~1e6 for a water
            torch.testing.assert_close(fused[key], plain[key], rtol=1e-12, atol=1e-14 * scale)
            torch.testing.assert_close(fused_graph[key], plain[key], rtol=1e-12, atol=1e-14 * scale)


def test_hessian_through_the_fused_path_equals_e3nn(monkeypatch):
    model = frozen_mace()
    graph = ase_mpnn.build_graph([molecule("H2O")], model.cutoff, dtype=torch.float64)

    def hessian():
        positions = graph.positions.detach().requires_grad_(True)
        vectors, lengths = model.edge_geometry(graph, positions, None)
        energy = model.predict_from_edges(graph, model.species_of(graph.numbers), vectors, lengths,
                                          model._cached_isolated_scalars(), {"energy"})["energy"].sum()
        (grad,) = torch.autograd.grad(energy, positions, create_graph=True)
        return torch.stack([torch.autograd.grad(g, positions, retain_graph=True)[0] for g in grad.reshape(-1)])

    fused = hessian()
    monkeypatch.setattr(native, "usable", lambda *args: False)
    reference = hessian()
    torch.testing.assert_close(fused, reference, rtol=1e-10, atol=1e-12 * float(reference.abs().max()))


def test_large_graphs_and_copies_of_the_model(monkeypatch):
    model = frozen_mace()
    graph = ase_mpnn.build_graph([random_crystal(seed=3)], model.cutoff, dtype=torch.float64)
    fused = model(graph, ("energy", "forces"))
    monkeypatch.setattr(mace_module, "FUSED_WEIGHT_BYTES", 0)  # too large for the fused path: e3nn's
    chunked = model(graph, ("energy", "forces"))
    monkeypatch.undo()
    for key in fused:
        torch.testing.assert_close(fused[key], chunked[key], rtol=1e-12, atol=1e-14 * float(chunked[key].detach().abs().max()))
    import copy
    copied = copy.deepcopy(model)  # the copy shares the immutable coupling table
    del model
    torch.testing.assert_close(copied(graph, ("energy", "forces"))["forces"], fused["forces"])

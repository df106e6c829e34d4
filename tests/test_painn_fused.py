"""PaiNN's fused C message kernels equal the torch code paths, to second derivatives."""

from __future__ import annotations

import pytest
import torch
from ase import Atoms
from ase.build import molecule

import ase_mpnn
from ase_mpnn.model.nn import native
from ase_mpnn.model.nn import CosineCutoff, SineRBF
from ase_mpnn.model.zoo.painn import ChunkedMessages, RadialBasis
from ase_mpnn.model.nn.edge_groups import EdgeGroups
from ase_mpnn.model.zoo.painn_fused import FusedMessages
from ase_mpnn.testing import random_crystal
from conftest import count_forward_calls, make_model

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler here")


CUTOFF = 3.0


def inputs(with_vectors: bool, dtype=torch.float64, seed: int = 0):
    """Random block inputs; atom 5 has no edges, atom 0 only sends, and some edges are
    longer than the cutoff (a Verlet list's skin)."""
    g = torch.Generator().manual_seed(seed)
    n, e, F, n_rbf = 6, 17, 3, 4

    def rand(*shape, grad=True):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)

    lengths = (0.3 + 3.2 * torch.rand(e, generator=g, dtype=dtype)).requires_grad_()
    tensors = dict(
        phi=rand(n, 3 * F), v=rand(n, 3, F) if with_vectors else None, lengths=lengths,
        weight=rand(3 * F, n_rbf, grad=False), bias=rand(3 * F, grad=False), unit=rand(e, 3),
    )
    receiver = torch.randint(1, n - 1, (e,), generator=g)
    sender = torch.randint(0, n - 1, (e,), generator=g)
    basis = RadialBasis(SineRBF(n_rbf, CUTOFF).to(dtype), CosineCutoff(CUTOFF))
    return tensors, receiver, sender, basis


def chunked(t, receiver, sender, basis, chunk):
    """The same block by the chunked torch path, the basis made by the model's modules."""
    radial, fcut = basis(t["lengths"])
    return ChunkedMessages.apply(t["phi"], t["v"], radial, fcut, t["weight"], t["bias"], t["unit"], receiver, sender,
                                 chunk)


def differentiable(t):
    return [k for k, x in t.items() if x is not None and x.requires_grad]


def test_inputs_cover_edges_beyond_the_cutoff():
    t = inputs(True)[0]
    assert (t["lengths"] > CUTOFF).any() and (t["lengths"] < CUTOFF).sum() > 10


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_vectors", [True, False])
def test_fused_equals_chunked_with_gradients(with_vectors, dtype):
    t, receiver, sender, basis = inputs(with_vectors, dtype)
    groups = EdgeGroups(receiver, sender, t["phi"].shape[0])
    fused = FusedMessages.apply(*t.values(), receiver, sender, basis, groups, 4)
    reference = chunked(t, receiver, sender, basis, 4)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    projection = [torch.randn_like(x) for x in reference]
    wrt = [t[k] for k in differentiable(t)]
    for a, b in zip(fused, reference):
        torch.testing.assert_close(a, b, **tol)
    grads_fused = torch.autograd.grad(fused, wrt, projection)
    grads_chunked = torch.autograd.grad(reference, wrt, projection)
    for a, b in zip(grads_fused, grads_chunked):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("with_vectors", [True, False])
def test_fused_first_and_second_derivatives(with_vectors):
    """gradcheck runs the C backward; gradgradcheck (a graph of the backward) the torch fallback."""
    t, receiver, sender, basis = inputs(with_vectors, seed=1)
    names = differentiable(t)
    groups = EdgeGroups(receiver, sender, t["phi"].shape[0])

    def fn(*tensors):
        args = dict(t, **dict(zip(names, tensors)))
        return FusedMessages.apply(*args.values(), receiver, sender, basis, groups, 5)

    wrt = tuple(t[k] for k in names)
    assert torch.autograd.gradcheck(fn, wrt)
    assert torch.autograd.gradgradcheck(fn, wrt)


def frozen_painn():
    model = make_model("painn", species=("H", "C", "O"))
    with torch.no_grad():  # weights well away from zero, so every vector channel matters
        for p in model.parameters():
            p.mul_(1.5)
    return model.eval().requires_grad_(False)


def test_frozen_model_takes_the_fused_path_with_the_same_results(monkeypatch):
    model = frozen_painn()
    calls = count_forward_calls(monkeypatch, FusedMessages)
    structures = [molecule("CH3CH2OH"), Atoms("O", positions=[[0, 0, 0]]), random_crystal(seed=3)]
    model(ase_mpnn.build_graph(structures[:1], model.cutoff, dtype=torch.float64))  # fills the isolated-atom cache
    for batch in (structures[:2], [structures[2]]):
        graph = ase_mpnn.build_graph(batch, model.cutoff, dtype=torch.float64)
        props = ("energy", "forces") + (("stress",) if batch[0].pbc.all() else ())
        n_calls = len(calls)
        fused = model(graph, props)
        assert len(calls) == n_calls + model.representation.n_interactions
        with monkeypatch.context() as m:
            m.setattr(native, "usable", lambda *args: False)
            plain = model(graph, props)
        for key in props:
            torch.testing.assert_close(fused[key], plain[key], rtol=1e-12, atol=1e-10)


def test_training_and_other_devices_take_the_torch_paths():
    lengths = torch.ones(3, dtype=torch.float64)
    assert native.usable(lengths, torch.ones(2, requires_grad=False))
    assert not native.usable(lengths, torch.ones(2, requires_grad=True))  # training: weights need gradients
    assert not native.usable(lengths.half(), torch.ones(2))
    assert not native.usable(torch.ones(3, device="meta"), torch.ones(2))

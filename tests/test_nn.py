"""ase_mpnn.model.nn: the representation contract and the shared blocks."""

from __future__ import annotations

import math
import re

import pytest
import torch
from ase.build import molecule
from e3nn import o3

from ase_mpnn.model.graph import build_graph
from ase_mpnn.model.nn import CosineCutoff, GaussianRBF, PolynomialCutoff, SineRBF, scatter_sum
from ase_mpnn.model.nn.representation import E3nnRepresentation, Features, Representation, split_scalars_vectors
from ase_mpnn.model.potential import _edge_vectors
from conftest import make_model

E3NN = ("mace", "nequip", "segnn", "so3net")


# The representation contract -------------------------------------------------------------------
def test_every_architecture_fills_the_representation_contract(architecture):
    model = make_model(architecture)
    rep = model.representation
    assert isinstance(rep, Representation)
    assert isinstance(rep, E3nnRepresentation) == (architecture in E3NN)
    atoms = molecule("CH3OH")[[1, 3, 4, 5]]  # O and three H: elements of the test models
    atoms.numbers[:] = [8, 1, 1, 1]
    graph = build_graph([atoms], model.cutoff)
    species = torch.cat([model.species_of(graph.numbers), torch.tensor([0])])  # + an isolated node
    vectors = _edge_vectors(graph.positions, graph.cell, graph)
    out = rep(species, graph.edge_index, vectors, vectors.norm(dim=1))
    n, F = len(species), rep.n_features
    assert isinstance(out, Features) and out.scalars.shape == (n, F)
    assert (out.vectors is not None) == rep.has_vectors
    if out.vectors is not None:
        assert out.vectors.shape == (n, 3, F)
        assert torch.all(out.vectors[-1] == 0)  # an isolated atom has no direction
    if out.tensors is not None:
        assert out.tensors.shape == (n, 3, 3)
        torch.testing.assert_close(out.tensors, out.tensors.transpose(1, 2))


@pytest.mark.parametrize("architecture", E3NN)
def test_e3nn_constants_are_exact_after_loading_rounded_copies(architecture):
    """A file written in float32 holds rounded Wigner constants; loading and .to() restore them exactly."""
    model = make_model(architecture)
    exact = {k: v.clone() for k, v in model.named_buffers() if re.search(r"w3j|couplings", k)}
    assert exact
    state = model.state_dict()
    saved = [k for k in exact if k in state]  # NequIP's couplings are not saved at all
    if saved:
        rounded = {k: v.float().double() if k in exact else v for k, v in state.items()}
        assert any(not torch.equal(rounded[k], exact[k]) for k in saved), "nothing rounded: the test tests nothing"
        model.load_state_dict(rounded)
        assert all(torch.equal(dict(model.named_buffers())[k], exact[k]) for k in saved)
    model.float()
    assert any(not torch.equal(v.double(), exact[k]) for k, v in model.named_buffers() if k in exact)
    model.double()
    assert all(torch.equal(dict(model.named_buffers())[k], exact[k]) for k in exact)


def test_edge_harmonics_are_e3nn_component_normalised():
    vectors = torch.randn(5, 3, dtype=torch.float64)
    sh = E3nnRepresentation.edge_harmonics(o3.Irreps.spherical_harmonics(2), vectors)
    assert sh.shape == (5, 9)
    torch.testing.assert_close(sh[:, 0], torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close((sh[:, 1:4] ** 2).sum(dim=1), torch.full((5,), 3.0, dtype=torch.float64))


def test_split_scalars_vectors_reads_e3nn_layout():
    F = 2
    h = torch.arange(4 * F + 5, dtype=torch.float64)[None].repeat(3, 1)  # F×0e + F×1o + extra
    s, v = split_scalars_vectors(h, F)
    assert s.shape == (3, F) and v.shape == (3, 3, F)
    # e3nn stores F vectors one after another, (x, y, z) each: channel c, component k is F + 3c + k.
    assert v[0, 1, 1] == F + 3 * 1 + 1 and v[0, 2, 0] == F + 2


# Shared blocks ---------------------------------------------------------------------------------
def test_scatter_sum_equals_a_loop():
    src = torch.randn(7, 2, dtype=torch.float64)
    index = torch.tensor([0, 2, 2, 0, 3, 3, 3])
    out = scatter_sum(src, index, 5)
    expected = torch.zeros(5, 2, dtype=torch.float64)
    for i, row in zip(index.tolist(), src):
        expected[i] += row
    torch.testing.assert_close(out, expected)
    assert torch.all(out[1] == 0) and torch.all(out[4] == 0)


@pytest.mark.parametrize("cutoff_fn", [CosineCutoff(4.0), PolynomialCutoff(4.0, 6)])
def test_cutoffs_go_smoothly_to_zero(cutoff_fn):
    r = torch.tensor([0.0, 3.999, 4.0, 4.5], dtype=torch.float64, requires_grad=True)
    f = cutoff_fn(r)
    (grad,) = torch.autograd.grad(f.sum(), r)
    f = f.detach()
    assert float(f[0]) == pytest.approx(1.0) and f[2] == 0 and f[3] == 0 and 0 < f[1] < 1e-5
    assert abs(grad[1]) < 1e-2 and grad[2] == 0 and grad[3] == 0


def test_radial_bases_have_their_size_and_centres():
    r = torch.linspace(0.5, 4.5, 9, dtype=torch.float64)
    gauss = GaussianRBF(5, 4.0)(r)
    assert gauss.shape == (9, 5)
    assert int(torch.argmax(gauss[2])) == 1  # r = 1.5 Å is nearest to the centre at 1 Å of 0, 1, 2, 3, 4
    sine = SineRBF(6, 4.0)(r)
    assert sine.shape == (9, 6) and torch.isfinite(sine).all()


def test_sine_frequencies_stay_exact_through_float32():
    """A model built or saved in float32 and run in float64 has the float64 frequencies
    n π / r_c (PaiNN's C kernels make the basis from π / r_c and must agree to 1e-12)."""
    exact = torch.arange(1, 7, dtype=torch.float64) * math.pi / 4.0
    rbf = SineRBF(6, 4.0).float()
    assert rbf.freqs.dtype == torch.float32
    assert torch.equal(rbf.double().freqs, exact)
    saved = SineRBF(6, 4.0).float().state_dict()
    loaded = SineRBF(6, 4.0).double()
    loaded.load_state_dict(saved)
    assert torch.equal(loaded.freqs, exact)
    assert not torch.equal(saved["freqs"].double(), exact)  # what the file holds is rounded


def test_the_one_gate_equals_e3nns_gate():
    """NequIP and SO3Net files were trained with e3nn's Gate: the written-out gate is the same function."""
    from e3nn import nn as e3nn_nn
    from e3nn.math import normalize2mom

    from ase_mpnn.model.nn.e3nn_utils import SIGMOID_2MOM, SILU_2MOM, gated_nonlinearity, natural_irreps

    assert SILU_2MOM == normalize2mom(torch.nn.functional.silu).cst
    assert SIGMOID_2MOM == normalize2mom(torch.sigmoid).cst
    ours = gated_nonlinearity(3, 2)
    theirs = e3nn_nn.Gate("3x0e", [torch.nn.functional.silu], "6x0e", [torch.sigmoid], natural_irreps(3, 2)[1:])
    assert ours.irreps_in == theirs.irreps_in and ours.irreps_out == theirs.irreps_out
    x = torch.randn(5, ours.irreps_in.dim, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs.to(torch.float64)(x), rtol=1e-12, atol=1e-12)

"""PaiNN's chunked (low-memory) message step equals plain autograd, to second derivatives."""

from __future__ import annotations

import pytest
import torch

import ase_mpnn
from ase_mpnn.model.zoo import painn
from ase_mpnn.model.zoo.painn import ChunkedMessages, _filters, _messages
from ase_mpnn.testing import random_crystal
from conftest import make_model


def inputs(with_vectors: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, e, F, n_rbf = 5, 14, 2, 3

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    tensors = dict(
        phi=rand(n, 3 * F), v=rand(n, 3, F) if with_vectors else None, radial=rand(e, n_rbf),
        fcut=rand(e, 1), weight=rand(3 * F, n_rbf), bias=rand(3 * F), unit=rand(e, 3),
    )
    receiver = torch.randint(0, n, (e,), generator=g)
    sender = torch.randint(0, n, (e,), generator=g)
    return tensors, receiver, sender


# 14 edges: chunks of 4 (the last one short), of 14 (exactly one) and of 64 (one, partly empty)
@pytest.mark.parametrize("chunk", [4, 14, 64])
@pytest.mark.parametrize("with_vectors", [True, False])
def test_low_memory_equals_plain_messages(with_vectors, chunk):
    t, receiver, sender = inputs(with_vectors)
    ours = ChunkedMessages.apply(*t.values(), receiver, sender, chunk)
    filters = _filters(t["radial"], t["fcut"], t["weight"], t["bias"])
    plain = _messages(t["phi"], t["v"], filters, t["unit"], receiver, sender)
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("chunk", [4, 64])
@pytest.mark.parametrize("with_vectors", [True, False])
def test_low_memory_first_and_second_derivatives(with_vectors, chunk):
    t, receiver, sender = inputs(with_vectors, seed=1)
    names = [k for k, x in t.items() if x is not None]

    def fn(*tensors):
        args = dict(t, **dict(zip(names, tensors)))
        return ChunkedMessages.apply(*args.values(), receiver, sender, chunk)

    differentiable = tuple(t[k] for k in names)
    assert torch.autograd.gradcheck(fn, differentiable)
    assert torch.autograd.gradgradcheck(fn, differentiable)


def test_low_memory_model_equals_plain_model(monkeypatch):
    monkeypatch.setattr(painn, "edge_chunk_size", lambda *args: 7)  # many chunks, a short last one
    model = make_model("painn")
    crystal = random_crystal(seed=3)
    graph = ase_mpnn.build_graph([crystal], model.cutoff, dtype=torch.float64)
    plain = model(graph, ("energy", "forces", "stress"))
    model.representation.low_memory_edges = 0  # every graph takes the low-memory path
    low = model(graph, ("energy", "forces", "stress"))
    for key in plain:
        torch.testing.assert_close(low[key], plain[key], rtol=1e-12, atol=1e-12)


def test_chunk_size_follows_width_dtype_device_and_threads(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    model = painn.PaiNN(2, 5.0, n_features=128)
    threads = torch.get_num_threads()

    def chunk(n_edges, dtype=torch.float32, device="cpu"):
        lengths = torch.ones(n_edges, dtype=dtype)
        if device != "cpu":  # no GPU needed: only the tensor's device type is read
            lengths = torch.empty(n_edges, dtype=dtype, device="meta")
        return model.edges_per_chunk(lengths)

    try:
        torch.set_num_threads(2)
        assert chunk(512) is None and chunk(513) == 512  # (512, 384) float32 temporaries: 768 KiB
        assert chunk(1000, torch.float64) == 256
        assert chunk(200_000, device="meta") == 174762  # off the CPU chunks only bound the memory
        monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # sleeping threads: 3 MiB per thread
        assert chunk(10_000) == 4096
        torch.set_num_threads(1)
        assert chunk(10_000) == 512
    finally:
        torch.set_num_threads(threads)
    from ase_mpnn.model.committee_model import ONE_PASS_MAX_EDGES
    assert painn.PaiNN(2, 5.0, n_features=4096).edges_per_chunk(torch.ones(300, dtype=torch.float64)) == 256
    assert 256 > ONE_PASS_MAX_EDGES  # vmapped committees never chunk


def test_loading_uses_the_current_low_memory_threshold(tmp_path):
    """The threshold picks a code path: a file's stored value (older files: 50,000) is not used."""
    model = ase_mpnn.build_model("painn", ["H", "O"], n_features=8, n_interactions=1, low_memory_edges=123)
    ase_mpnn.save_model(model, tmp_path / "m.pt")
    default = painn.PaiNN(2, 5.0).low_memory_edges
    assert ase_mpnn.load_model(tmp_path / "m.pt").representation.low_memory_edges == default

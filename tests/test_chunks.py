"""Edge sums in chunks (nn/chunks.py) equal the direct sums, to second derivatives."""

from __future__ import annotations

import pytest
import torch

import ase_mpnn
from ase_mpnn.model.nn import scatter_sum
from ase_mpnn.model.nn.chunks import chunked_edge_sum, edge_chunk_size
from ase_mpnn.model.zoo import mace
from ase_mpnn.testing import random_crystal
from conftest import make_model


def message(h, attr, sender):
    """A nonlinear message of the sender's features and an edge attribute."""
    return torch.tanh(h.index_select(0, sender) * attr[:, :1]) * attr[:, 1:]


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    n, e = 4, 10
    h = torch.randn(n, 3, generator=g, dtype=torch.float64, requires_grad=True)
    attr = torch.randn(e, 4, generator=g, dtype=torch.float64, requires_grad=True)
    return h, attr, torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)


@pytest.mark.parametrize("chunk", [3, 10, 64])  # a short last chunk, exactly one, one partly empty
def test_chunked_sum_equals_direct_sum_with_first_and_second_derivatives(chunk):
    h, attr, sender, receiver = inputs()

    def chunked(h, attr):
        return chunked_edge_sum(message, (h,), (attr, sender), receiver, h.shape[0], chunk)

    def direct(h, attr):
        return scatter_sum(message(h, attr, sender), receiver, h.shape[0])

    torch.testing.assert_close(chunked(h, attr), direct(h, attr), rtol=0, atol=1e-15)
    assert torch.autograd.gradcheck(chunked, (h, attr))
    assert torch.autograd.gradgradcheck(chunked, (h, attr))


def test_chunk_size_follows_width_device_and_threads(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert edge_chunk_size(1024 * 4) == 2048  # MACE's first-layer messages in float32: 8 MiB
    assert edge_chunk_size(10**6) == 256  # never fewer than 256 edges (committees vmap up to 128)
    assert edge_chunk_size(1024 * 4, "cuda") == 65536
    assert edge_chunk_size(384 * 4, cpu_bytes=3 * 2**18) == 512  # PaiNN's own CPU size
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # sleeping threads: fewer, larger operations
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert edge_chunk_size(1024 * 4) == 2048 * 4 * 2
        torch.set_num_threads(1)
        assert edge_chunk_size(1024 * 4) == 2048
    finally:
        torch.set_num_threads(threads)


def test_mace_in_chunks_equals_mace_in_one_piece(monkeypatch):
    """Energy, forces, stress and the parameter gradient of a force loss (training)."""
    model = make_model("mace")
    graph = ase_mpnn.build_graph([random_crystal(seed=3)], model.cutoff, dtype=torch.float64)
    params = [p for p in model.parameters() if p.requires_grad]

    def run():
        out = model(graph, ("energy", "forces", "stress"), create_graph=True)
        loss = out["energy"].sum() + (out["forces"] ** 2).sum()
        return {k: v.detach() for k, v in out.items()}, torch.autograd.grad(loss, params, allow_unused=True)

    whole, whole_grads = run()
    monkeypatch.setattr(mace, "edge_chunk_size", lambda *args: 7)  # many chunks, a short last one
    assert graph.edge_index.shape[1] > 7 * 3
    chunked, chunked_grads = run()
    for key in whole:
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-12, atol=1e-12)
    for a, b in zip(chunked_grads, whole_grads):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

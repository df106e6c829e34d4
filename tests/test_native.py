"""The C kernels: built once per CPU kind, switched off on request, never required."""

from __future__ import annotations

import warnings

import pytest
import torch

from ase_mpnn.model.nn import native

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler here")


def test_switched_off_missing_compiler_and_failed_build(monkeypatch, tmp_path):
    monkeypatch.setenv("ASE_MPNN_CACHE", str(tmp_path))  # a fresh cache: every case builds
    try:
        native.library.cache_clear()
        monkeypatch.setenv("ASE_MPNN_NATIVE", "0")
        assert native.library() is None
        assert not native.usable(torch.ones(3), torch.ones(2))
        monkeypatch.delenv("ASE_MPNN_NATIVE")

        native.library.cache_clear()
        monkeypatch.setattr(native, "_compiler", lambda: None)
        with pytest.warns(UserWarning, match="no C compiler found"):
            assert native.library() is None
        monkeypatch.undo()

        native.library.cache_clear()
        monkeypatch.setenv("ASE_MPNN_CACHE", str(tmp_path))
        monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
        with pytest.warns(UserWarning, match="building ase_mpnn's C kernels failed"):
            assert native.library() is None
        assert list(tmp_path.iterdir()) == []  # no half-written library left behind
        monkeypatch.delenv("CC")

        native.library.cache_clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert native.library() is not None
        assert [p.suffix for p in tmp_path.iterdir()] == [".so"]
    finally:
        native.library.cache_clear()


@pytest.mark.parametrize("architecture", ["painn", "mace"])
def test_kernels_on_several_threads_equal_the_torch_paths(monkeypatch, architecture):
    """The OpenMP-parallel kernels (each thread owns the atoms it sums into) give the
    single-threaded and torch results: every call is made parallel here."""
    import ase_mpnn
    from ase_mpnn.testing import random_crystal
    from conftest import make_model

    model = make_model(architecture).eval().requires_grad_(False)
    graph = ase_mpnn.build_graph([random_crystal(seed=3, n=12)], model.cutoff, dtype=torch.float64)
    threads = torch.get_num_threads()
    results = {}
    try:
        monkeypatch.setattr(native, "MIN_PARALLEL_WORK", 0)
        for n in (1, 2):
            torch.set_num_threads(n)
            results[n] = model(graph, ("energy", "forces", "stress"))
        with monkeypatch.context() as m:
            m.setattr(native, "usable", lambda *args: False)
            results["torch"] = model(graph, ("energy", "forces", "stress"))
    finally:
        torch.set_num_threads(threads)
    for key in results[1]:
        scale = float(results["torch"][key].detach().abs().max())
        torch.testing.assert_close(results[2][key], results[1][key], rtol=1e-13, atol=1e-13 * scale)
        torch.testing.assert_close(results[1][key], results["torch"][key], rtol=1e-12, atol=1e-12 * scale)

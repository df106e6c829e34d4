"""The C kernels: built once per CPU kind, switched off on request, never required."""

from __future__ import annotations

import warnings

import pytest
import torch

from ase_mpnn.model.nn import native
from ase_mpnn.model.zoo import painn_fused

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler here")


def test_switched_off_missing_compiler_and_failed_build(monkeypatch, tmp_path):
    monkeypatch.setenv("ASE_MPNN_CACHE", str(tmp_path))  # a fresh cache: every case builds
    try:
        native.library.cache_clear()
        monkeypatch.setenv("ASE_MPNN_NATIVE", "0")
        assert native.library() is None
        assert not painn_fused.usable(torch.ones(3), torch.ones(2))
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

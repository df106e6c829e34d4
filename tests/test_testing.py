"""ase_mpnn.testing: the model suite passes for a correct model and fails for broken ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ase_mpnn.testing import (
    assert_equivariant,
    assert_forces_match_finite_differences,
    assert_translation_invariant,
    check_model,
    random_molecule,
    random_rotation,
)
from conftest import make_model


class Broken(torch.nn.Module):
    """A model with one defect added to its outputs."""

    def __init__(self, inner, defect):
        super().__init__()
        self.inner = inner
        self.defect = defect

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, graph, properties):
        return self.defect(self.inner(graph, properties), graph)


def test_check_model_passes_for_a_zoo_model():
    check_model(make_model("painn"))


def test_the_assertions_can_fail():
    model = make_model("painn")
    atoms = random_molecule(seed=1)
    rotation = random_rotation(np.random.default_rng(7))

    def fixed_dipole(out, graph):  # a dipole that does not turn with the molecule
        if "dipole" in out:
            out["dipole"] = out["dipole"] + torch.tensor([0.1, 0.0, 0.0], dtype=out["dipole"].dtype)
        return out

    with pytest.raises(AssertionError, match="dipole"):
        assert_equivariant(Broken(model, fixed_dipole), atoms, rotation)

    def absolute_position(out, graph):  # energy that knows where the molecule is
        out["energy"] = out["energy"] + 1e-3 * graph.origin[:, 0]
        return out

    with pytest.raises(AssertionError, match="energy"):
        assert_translation_invariant(Broken(model, absolute_position), atoms)

    def scaled_forces(out, graph):  # forces not the gradient of the energy
        if "forces" in out:
            out["forces"] = 1.001 * out["forces"]
        return out

    with pytest.raises(AssertionError, match="finite differences"):
        assert_forces_match_finite_differences(Broken(model, scaled_forces), atoms)

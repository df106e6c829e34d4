"""Every architecture: explicit hyperparameters, identical predictions after save/load."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import ase_mpnn
from ase_mpnn.model.zoo import REPRESENTATIONS
from ase_mpnn.testing import random_crystal, random_molecule
from conftest import ARCHITECTURES, make_model


def test_every_registered_architecture_is_tested():
    assert sorted(REPRESENTATIONS) == ARCHITECTURES


def test_hyperparameters_are_explicit_keywords(architecture):
    """No **kwargs that would swallow typos; every hyperparameter has a documented default."""
    cls = REPRESENTATIONS[architecture]
    parameters = inspect.signature(cls).parameters
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name, p in parameters.items():
        if name not in ("n_species", "cutoff"):
            assert p.default is not inspect.Parameter.empty, name
            assert name in (cls.__doc__ or ""), f"{name} is not documented in {cls.__name__}'s docstring"
    with pytest.raises(TypeError):
        ase_mpnn.build_model(architecture, ["H", "O"], not_a_hyperparameter=1)


def test_save_load_gives_identical_predictions(architecture, tmp_path):
    model = make_model(architecture)
    path = ase_mpnn.save_model(model, tmp_path / f"{architecture}.pt", metadata={"test": True})
    loaded = ase_mpnn.load_model(path, dtype=torch.float64)
    assert loaded.config == model.config
    properties = ("energy", "forces", "stress", "dipole", "charges", "polarizability")
    for atoms in (random_molecule(seed=40), random_crystal(seed=41)):
        props = [p for p in properties if p != "stress" or atoms.pbc.all()]
        graph = ase_mpnn.build_graph([atoms], model.cutoff, dtype=torch.float64)
        a, b = model(graph, props), loaded(graph, props)
        for key in props:
            np.testing.assert_array_equal(a[key].detach().numpy(), b[key].detach().numpy(), err_msg=key)

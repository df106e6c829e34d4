"""models/recipes/reference.yaml documents every training key with its true default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from ase_mpnn.training.train import TrainConfig

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "recipes" / "reference.yaml"


def test_reference_config_lists_every_key_with_its_default():
    documented = yaml.safe_load(REFERENCE.read_text())
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(documented) == set(fields)
    for name, f in fields.items():
        if name == "data":
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert documented[name] == default, name


def test_reference_config_is_a_valid_config():
    TrainConfig.from_yaml(REFERENCE).validate()

"""The property table is what every part of the package uses."""

from __future__ import annotations

import torch
from ase.build import bulk, molecule

from ase_mpnn import MPNNCalculator, build_model
from ase_mpnn.training.data import LABELS as DATA_LABELS
from ase_mpnn.training.evaluate import UNITS as EVAL_UNITS
from ase_mpnn.md.record_file import UNITS as RECORD_UNITS
from ase_mpnn.model.potential import PROPERTIES
from ase_mpnn.model.properties import ERROR_UNITS, LABELS, MODEL_PROPERTIES, PROPERTY_TABLE, computable


def test_every_part_reads_the_table():
    assert PROPERTIES == MODEL_PROPERTIES
    assert DATA_LABELS == LABELS
    assert EVAL_UNITS == ERROR_UNITS and ERROR_UNITS["energy"] == "eV/atom"
    for name, prop in PROPERTY_TABLE.items():
        if name != "energy":
            assert RECORD_UNITS[name] == prop.unit
    assert set(MPNNCalculator.implemented_properties) == set(MODEL_PROPERTIES) | {"free_energy"}


def test_outputs_have_the_table_shapes():
    torch.manual_seed(0)
    calc = MPNNCalculator(build_model("painn", ["H", "O", "Cu"], cutoff=4.0, n_features=8, n_interactions=1),
                          dtype=torch.float64)
    for atoms in (molecule("H2O"), bulk("Cu", cubic=True)):
        names = sorted(computable(MODEL_PROPERTIES, [atoms]))
        assert ("stress" in names) == bool(atoms.pbc.all())
        result = calc.predict([atoms], names)[0]
        for name in names:
            prop = PROPERTY_TABLE[name]
            expected = ((len(atoms),) if prop.per_atom else ()) + prop.shape
            shape = (6,) if name == "stress" else expected  # ASE's results hold Voigt stress
            assert getattr(result[name], "shape", ()) == shape, name

"""Inputs a user gets wrong, through MPNNCalculator: each must give a clear error, never NaN."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from ase_mpnn import InputError, ModelFileError, MPNNCalculator, NeighborListError, build_model


@pytest.fixture(scope="module")
def calc():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("painn", species=["H", "O"], cutoff=4.0, n_features=16, n_interactions=2)
    return MPNNCalculator(model, dtype=torch.float64)


def _attach(atoms, calc):
    calc.reset()
    atoms.calc = calc
    return atoms


def test_sane_input_works(calc):
    """The baseline the other tests break: a water molecule evaluates to finite numbers."""
    atoms = _attach(molecule("H2O"), calc)
    assert np.isfinite(atoms.get_potential_energy())
    assert np.isfinite(atoms.get_forces()).all()


def test_unknown_element(calc):
    atoms = _attach(molecule("CH3OH"), calc)
    with pytest.raises(InputError, match=r"\bC\b.*H, O") as info:
        atoms.get_potential_energy()
    assert "not supported" in str(info.value)
    with pytest.raises(InputError, match=r"\bC\b"):
        calc.predict([molecule("H2O"), molecule("CH4")])
    # Atomic number 0 (ASE's 'X' dummy) is not an obscure indexing error either.
    dummy = _attach(Atoms("XH", positions=[[0, 0, 0], [1, 0, 0]]), calc)
    with pytest.raises(InputError, match="not supported"):
        dummy.get_forces()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_positions(calc, bad):
    atoms = molecule("H2O")
    atoms.positions[2, 1] = bad
    _attach(atoms, calc)
    with pytest.raises(NeighborListError, match="NaN or infinite") as info:
        atoms.get_potential_energy()
    assert "atoms 2" in str(info.value)
    with pytest.raises(NeighborListError, match="NaN or infinite"):
        calc.predict([molecule("H2O"), atoms])


def test_non_finite_positions_after_valid_step(calc):
    """An MD run that blows up: the stored (skin) neighbor list must not hide the NaN."""
    atoms = _attach(molecule("H2O"), calc)
    atoms.get_forces()
    atoms.positions[0, 0] = np.nan
    with pytest.raises(NeighborListError, match="NaN"):
        atoms.get_forces()


def test_overlapping_atoms(calc):
    atoms = molecule("H2O")
    atoms.positions[2] = atoms.positions[1]
    _attach(atoms, calc)
    with pytest.raises(InputError, match=r"atoms 1 and 2 .*overlapping"):
        atoms.get_potential_energy()
    with pytest.raises(InputError, match=r"structure 1: atoms 1 and 2 .*overlapping"):
        calc.predict([molecule("H2O"), atoms])
    # Overlap with a periodic image of itself / another atom across the boundary.
    box = Atoms("OH", positions=[[0.0, 0, 0], [3.0, 0, 0]], cell=[3.0, 3.0, 3.0], pbc=True)
    _attach(box, calc)
    with pytest.raises(InputError, match="overlapping"):
        box.get_forces()


def test_periodic_without_cell(calc):
    atoms = molecule("H2O")
    atoms.pbc = True  # cell stays all zeros
    _attach(atoms, calc)
    with pytest.raises(NeighborListError, match="no cell was set"):
        atoms.get_potential_energy()
    with pytest.raises(NeighborListError, match="no cell"):
        calc.predict([atoms])


def test_periodic_singular_cell(calc):
    atoms = molecule("H2O")
    atoms.set_cell([[4.0, 0, 0], [0, 4.0, 0], [4.0, 4.0, 0]])  # c = a + b
    atoms.pbc = True
    _attach(atoms, calc)
    with pytest.raises(NeighborListError, match="singular"):
        atoms.get_forces()
    # The same cell is fine when the degenerate direction is not periodic.
    atoms.pbc = [True, True, False]
    assert np.isfinite(atoms.get_forces()).all()


def test_empty_atoms(calc):
    atoms = _attach(Atoms(), calc)
    with pytest.raises(InputError, match="no atoms"):
        atoms.get_potential_energy()
    with pytest.raises(InputError, match="structure 1 has no atoms"):
        calc.predict([molecule("H2O"), Atoms()])
    with pytest.raises(InputError, match="no structures"):
        calc.predict([])


def test_model_path_is_not_a_model(tmp_path):
    path = tmp_path / "some_file.txt"
    path.write_text("energy = -14.2 eV\n")
    with pytest.raises(ModelFileError, match="not a readable model file") as info:
        MPNNCalculator(str(path))
    assert str(path) in str(info.value)


def test_model_path_missing(tmp_path):
    path = tmp_path / "models" / "painn_water.pt"
    with pytest.raises(ModelFileError, match="no such model file") as info:
        MPNNCalculator(path)
    assert str(path) in str(info.value)


def test_model_of_wrong_type():
    with pytest.raises(TypeError, match="AtomisticModel"):
        MPNNCalculator(torch.nn.Linear(3, 1))


def test_errors_are_value_errors():
    for error in (InputError, ModelFileError, NeighborListError):
        assert issubclass(error, ValueError)

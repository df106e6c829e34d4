"""Close contacts: a trained model refuses pairs far closer than anything in its training data.

A pair at 0.1 Å gave E = −3e10 eV from a shipped model. Training now records the shortest
distance of each element pair in the data (model file: ``training_min_distances``) and
the model refuses pairs closer than half of it; older trained files fall back to half
the covalent bond length; untrained models keep only ``min_distance``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from ase_mpnn import InputError, MPNNCalculator, build_model, load_model, read_header
from ase_mpnn.training.data import DataError, read_dataset
from ase_mpnn.model.potential import CLOSE_CONTACT_FRACTION, pair_key
from ase_mpnn.training.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "water_small.extxyz"


def _brute_force_shortest(frames, cutoff):
    shortest = {}
    for atoms in frames:
        for i, j in itertools.combinations(range(len(atoms)), 2):
            d = atoms.get_distance(i, j)
            if d < cutoff:
                key = pair_key(atoms.numbers[i], atoms.numbers[j])
                shortest[key] = min(shortest.get(key, np.inf), d)
    return shortest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("close")
    config = TrainConfig.from_dict(dict(
        data=str(DATA), output=str(tmp / "m.pt"), architecture="painn", cutoff=4.0,
        hyperparameters={"n_features": 8, "n_interactions": 1, "n_rbf": 6}, split=[0.6, 0.2, 0.2],
        batch_size=6, max_epochs=1, dtype="float64", loss_weights={"energy": 1.0, "forces": 1.0}))
    train(config, progress=False)
    return tmp / "m.pt"


def test_training_records_the_shortest_distance_of_each_pair(trained):
    recorded = read_header(trained)["config"]["training_min_distances"]
    expected = _brute_force_shortest(ase.io.read(DATA, ":"), 4.0)
    assert set(recorded) == {"H-H", "H-O"} == set(expected)  # one O per frame: no O-O pair
    for key in recorded:
        assert recorded[key] == pytest.approx(expected[key], abs=1e-12)
    assert load_model(trained).training_min_distances == recorded


def test_trained_model_refuses_pairs_far_closer_than_its_data(trained):
    shortest = read_header(trained)["config"]["training_min_distances"]["H-O"]
    calc = MPNNCalculator(trained, dtype=torch.float64)
    water = molecule("H2O")
    direction = water.positions[1] - water.positions[0]
    direction /= np.linalg.norm(direction)
    for fraction, refused in ((0.45, True), (0.55, False)):
        atoms = water.copy()
        atoms.positions[1] = atoms.positions[0] + fraction * shortest * direction
        atoms.calc = calc
        if refused:
            with pytest.raises(InputError, match=r"atoms 0 and 1 \(O, H\) are 0\.\d+ Å apart, closer than 0\.5 × the "
                               r"shortest H-O distance in the model's training data") as info:
                atoms.get_potential_energy()
            assert f"refused below {CLOSE_CONTACT_FRACTION * shortest:.3g} Å" in str(info.value)
        else:
            assert np.isfinite(atoms.get_potential_energy())


def test_old_trained_files_use_covalent_bond_lengths(tmp_path):
    """A trained file that predates the record (the shipped files have all been retrained with
    it since; here the shipped painn_water.pt written without it): a pair at min_distance
    (0.1 Å) is refused, not −3e10 eV."""
    from ase_mpnn import save_model

    shipped = load_model(REPO / "models" / "painn_water.pt")
    assert shipped.training_min_distances["H-H"] > 0.9
    shipped.set_training_min_distances(None)
    save_model(shipped, tmp_path / "old.pt", metadata=shipped.metadata)
    model = load_model(tmp_path / "old.pt")
    assert model.training_min_distances == {}
    atoms = molecule("H2O")
    atoms.positions[2] = atoms.positions[1] + [0.1, 0.0, 0.0]
    atoms.calc = MPNNCalculator(model)
    with pytest.raises(InputError, match=r"atoms 1 and 2 \(H, H\) are 0\.1 Å apart, closer than 0\.5 × the H-H "
                       r"covalent bond length \(0\.62 Å\); refused below 0\.31 Å"):
        atoms.get_potential_energy()


def test_untrained_models_keep_only_min_distance():
    model = build_model("painn", ["H", "O"], cutoff=4.0, n_features=8, n_interactions=1)
    assert model.training_min_distances is None
    atoms = Atoms("OH", positions=[[0, 0, 0], [0.2, 0, 0]])
    atoms.calc = MPNNCalculator(model)
    assert np.isfinite(atoms.get_potential_energy())  # 0.2 Å > min_distance 0.1 Å
    atoms.positions[1, 0] = 0.05
    with pytest.raises(InputError, match="less than the model's min_distance 0.1 Å"):
        atoms.get_potential_energy()


def test_overlapping_training_frame_is_named_by_file_and_frame(tmp_path):
    frames = ase.io.read(DATA, ":")
    frames[7].positions[2] = frames[7].positions[1] + [0.01, 0.0, 0.0]
    path = tmp_path / "bad.extxyz"
    ase.io.write(path, frames)
    dataset = read_dataset(path)
    with pytest.raises(DataError, match=rf"{path} frame 7: atoms 1 \(H\) and 2 \(H\) are 0\.01 Å apart .*overlapping"):
        dataset.attach_neighbors(4.0)

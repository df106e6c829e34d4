"""Fine-tuning (init_from): new elements get fresh rows and fitted reference energies, and
fine-tuning the shipped water model on a few new frames beats training from scratch on them."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from ase_mpnn import MPNNCalculator, build_model, load_model, read_header, save_model
from ase_mpnn.training.data import read_dataset
from ase_mpnn.training.evaluate import error_metrics, predict_dataset
from ase_mpnn.training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_features": 8, "n_interactions": 1, "n_rbf": 6}


def labelled(frames, teacher):
    """Frames with energies and forces of ``teacher`` (a model standing in for a reference method)."""
    calc = MPNNCalculator(teacher, dtype=torch.float64)
    out = []
    for atoms in frames:
        r = calc.predict([atoms], ["energy", "forces"])[0]
        atoms = atoms.copy()
        atoms.calc = SinglePointCalculator(atoms, energy=r["energy"], forces=r["forces"])
        out.append(atoms)
    return out


def rattled(name, n, seed):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = molecule(name)
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def test_new_element_gets_fresh_rows_and_a_fitted_reference_energy(tmp_path):
    torch.manual_seed(0)
    start = build_model("painn", ["H", "O"], cutoff=4.0, **SMALL)
    with torch.no_grad():
        start.atomic_energies.copy_(torch.tensor([-13.6, -2040.0]))
    save_model(start, tmp_path / "start.pt")
    torch.manual_seed(1)
    teacher = build_model("painn", ["H", "C", "O"], cutoff=4.0, **SMALL)
    with torch.no_grad():
        teacher.atomic_energies.copy_(torch.tensor([-13.6, -1030.0, -2040.0]))
    data = tmp_path / "hco.extxyz"
    ase.io.write(data, labelled(rattled("CH4", 10, 0) + rattled("CH3OH", 10, 1) + rattled("H2O", 10, 2), teacher))
    config = TrainConfig(data=str(data), output=str(tmp_path / "tuned.pt"), architecture="painn", cutoff=4.0,
                         hyperparameters=SMALL, init_from=str(tmp_path / "start.pt"), max_epochs=0,
                         split=[0.8, 0.1, 0.1])
    tuned = train(config, progress=False).to(torch.float64)
    assert read_header(config.output)["config"]["species"] == [1, 6, 8]
    old = start.state_dict()
    new = tuned.state_dict()
    embedding = "representation.embedding.weight"
    np.testing.assert_allclose(new[embedding][[0, 2]], old[embedding].double(), rtol=1e-6)  # H, O rows kept
    for name, value in old.items():
        if value.shape == new[name].shape and name not in ("atomic_energies", "species_index"):
            np.testing.assert_allclose(new[name].double(), value.double(), rtol=1e-6, err_msg=name)
    # C's reference energy: least squares on what the start model leaves unexplained (about -1030 eV).
    assert float(tuned.atomic_energies[1]) == pytest.approx(-1030.0, abs=15.0)
    assert float(tuned.atomic_energies[0]) == pytest.approx(-13.6, abs=1e-4)


def test_adding_elements_is_refused_clearly_where_weights_cannot_carry_over(tmp_path):
    torch.manual_seed(0)
    save_model(build_model("bpnn", ["H", "O"], cutoff=4.0), tmp_path / "start.pt")
    data = tmp_path / "hco.extxyz"
    frames = rattled("CH3OH", 6, 0)
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(atoms), 3)))
    ase.io.write(data, frames)
    config = TrainConfig(data=str(data), output=str(tmp_path / "t.pt"), architecture="bpnn", cutoff=4.0,
                         init_from=str(tmp_path / "start.pt"), max_epochs=0, split=[0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="cannot carry .* over to the new elements"):
        train(config, progress=False)


def test_fine_tuning_the_shipped_model_beats_training_from_scratch(tmp_path):
    """20 frames the shipped model never trained on (its test split); errors on the other 118."""
    shipped = ROOT / "models" / "painn_water.pt"
    meta = read_header(shipped)["metadata"]
    files = [str(ROOT / "data" / name) for name in meta["data"]]
    unseen = read_dataset(files).subset(meta["split"]["test"])
    new_frames, held_out = list(range(20)), list(range(20, len(unseen.samples)))
    data = tmp_path / "new.extxyz"
    ase.io.write(data, [s.atoms for s in unseen.subset(new_frames).samples])
    hyper = {k: v for k, v in read_header(shipped)["config"]["hyperparameters"].items()
             if k in ("n_features", "n_interactions", "n_rbf")}
    common = dict(data=str(data), architecture="painn", cutoff=5.0, hyperparameters=hyper, split=[0.9, 0.1, 0.0],
                  batch_size=6, max_epochs=30, loss_weights={"energy": 400.0, "forces": 1.0}, dtype="float64")
    tuned = train(TrainConfig(output=str(tmp_path / "tuned.pt"), init_from=str(shipped), lr=2e-4, **common),
                  progress=False)
    scratch = train(TrainConfig(output=str(tmp_path / "scratch.pt"), lr=2e-3, **common), progress=False)
    test = unseen.subset(held_out)
    errors = {name: error_metrics(*predict_dataset(model.to(torch.float64), test))
              for name, model in (("fine-tuned", tuned), ("scratch", scratch),
                                  ("shipped", load_model(shipped, dtype=torch.float64)))}
    print({name: (round(e["energy_mae"] * 1000, 3), round(e["forces_mae"] * 1000, 1)) for name, e in errors.items()})
    assert errors["fine-tuned"]["forces_mae"] < 0.2 * errors["scratch"]["forces_mae"]
    assert errors["fine-tuned"]["energy_mae"] < 0.2 * errors["scratch"]["energy_mae"]

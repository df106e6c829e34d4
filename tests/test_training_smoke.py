"""Every architecture trains: a few optimizer steps on real water data lower the loss.

The data (tests/data/water_small.extxyz) are 30 B3LYP/aug-cc-pVDZ water geometries
with energies, forces, dipoles and polarizabilities, taken from the project's water
data set (300, 600 and 1000 K).
"""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

import ase_mpnn
from conftest import SMALL_HYPERPARAMETERS

DATA = Path(__file__).parent / "data" / "water_small.extxyz"


def polarizability_of(atoms):
    # Once ase_mpnn registers 'polarizability' with ASE, ase.io puts it among the
    # calculator's results instead of atoms.info.
    if "polarizability" in atoms.info:
        return atoms.info["polarizability"]
    return atoms.calc.results["polarizability"]


def water_batch():
    frames = ase.io.read(DATA, ":")
    targets = {
        "energy": torch.tensor([a.get_potential_energy() for a in frames]),
        "forces": torch.tensor(np.concatenate([a.get_forces() for a in frames])),
        "dipole": torch.tensor(np.array([a.get_dipole_moment() for a in frames])),
        "polarizability": torch.tensor(np.array([np.reshape(polarizability_of(a), (3, 3)) for a in frames])),
    }
    return frames, targets


def loss_fn(out, targets, n_atoms_per_frame: int) -> torch.Tensor:
    energy = ((out["energy"] - targets["energy"]) / n_atoms_per_frame).pow(2).mean()
    forces = (out["forces"].double() - targets["forces"]).pow(2).mean()
    dipole = (out["dipole"].double() - targets["dipole"]).pow(2).mean()
    alpha = (out["polarizability"].double() - targets["polarizability"]).pow(2).mean()
    return energy + forces + 10 * dipole + 10 * alpha


@pytest.mark.parametrize("architecture", sorted(SMALL_HYPERPARAMETERS))
def test_a_few_steps_lower_the_loss(architecture):
    frames, targets = water_batch()
    torch.manual_seed(0)
    model = ase_mpnn.build_model(architecture, ["H", "O"], cutoff=4.0, **SMALL_HYPERPARAMETERS[architecture])
    with torch.no_grad():  # water only: the oxygen reference carries the mean energy
        model.atomic_energies[model.species.index(8)] = float(targets["energy"].mean())
    model.train()
    graph = ase_mpnn.build_graph(frames, model.cutoff, dtype=torch.float32)
    properties = ("energy", "forces", "dipole", "polarizability")
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = loss_fn(model(graph, properties, create_graph=True), targets, 3)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses

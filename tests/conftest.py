"""Shared fixtures: small models of every architecture and random test structures."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

import ase_mpnn

# Small hyperparameters per architecture keep the physics suite fast; an architecture
# added to the zoo is tested as soon as it appears here.
SMALL_HYPERPARAMETERS: dict[str, dict] = {
    "bpnn": dict(n_features=8, n_radial=4, n_angular_eta=1, n_zeta=2, n_hidden=8, n_hidden_layers=1),
    "egnn": dict(n_features=16, n_layers=2, n_rbf=8, neighbor_norm=8.0),
    "mace": dict(n_channels=4, l_max_sh=2, correlation=3, n_layers=2, n_rbf=6, radial_hidden=8, radial_layers=2, avg_num_neighbors=4.0),
    "nequip": dict(n_features=8, lmax=2, n_layers=2, n_rbf=8, radial_hidden=16, radial_layers=1, avg_neighbors=4.0),
    "painn": dict(n_features=16, n_interactions=2, n_rbf=8),
    "schnet": dict(n_features=16, n_filters=16, n_interactions=2, n_rbf=8),
    "segnn": dict(hidden_irreps="8x0e+4x1o+2x2e", lmax_attr=2, n_layers=2, n_rbf=6, avg_num_neighbors=4.0),
    "so3net": dict(n_features=8, lmax=2, n_interactions=2, n_rbf=8),
}
ARCHITECTURES = sorted(SMALL_HYPERPARAMETERS)
TEST_CUTOFF = 4.0


def make_model(architecture: str, species=("H", "O"), cutoff: float = TEST_CUTOFF, seed: int = 0):
    """A small float64 model with non-trivial reference energies and scale."""
    torch.manual_seed(seed)
    model = ase_mpnn.build_model(architecture, species, cutoff=cutoff, **SMALL_HYPERPARAMETERS[architecture])
    model = model.to(torch.float64)
    with torch.no_grad():
        model.atomic_energies.copy_(torch.linspace(-3.0, -1.0, len(model.species), dtype=torch.float64))
        model.energy_scale.fill_(2.0)
    return model.eval()


@pytest.fixture(params=ARCHITECTURES)
def architecture(request) -> str:
    return request.param


@pytest.fixture
def model(architecture):
    return make_model(architecture)


def random_positions(rng: np.random.Generator, n: int, box: np.ndarray, min_distance: float = 0.9) -> np.ndarray:
    """n points in the box spanned by the rows of ``box``, no two closer than min_distance."""
    points: list[np.ndarray] = []
    while len(points) < n:
        p = rng.random(3) @ box
        if all(np.linalg.norm(p - q) > min_distance for q in points):
            points.append(p)
    return np.array(points)


def random_molecule(seed: int = 0, n: int = 6) -> Atoms:
    """A random H/O cluster (non-periodic), neutral."""
    rng = np.random.default_rng(seed)
    numbers = rng.choice([1, 8], size=n)
    numbers[0] = 8
    return Atoms(numbers=numbers, positions=random_positions(rng, n, np.eye(3) * 3.0))


def random_crystal(seed: int = 0, n: int = 5) -> Atoms:
    """A random triclinic periodic H/O cell, smaller than twice the cutoff (atoms see their images)."""
    rng = np.random.default_rng(seed)
    cell = np.diag([4.2, 4.5, 4.8]) + rng.uniform(-0.6, 0.6, (3, 3))
    numbers = rng.choice([1, 8], size=n)
    atoms = Atoms(numbers=numbers, cell=cell, pbc=True)
    # Place atoms with the minimum-image distance respected.
    positions: list[np.ndarray] = []
    while len(positions) < n:
        p = rng.random(3) @ cell
        trial = Atoms(numbers=numbers[: len(positions) + 1], positions=positions + [p], cell=cell, pbc=True)
        if len(positions) == 0 or trial.get_distances(len(positions), range(len(positions)), mic=True).min() > 0.9:
            positions.append(p)
    atoms.positions = np.array(positions)
    return atoms


def random_rotation(rng: np.random.Generator, reflect: bool = False) -> np.ndarray:
    """A random 3×3 orthogonal matrix (det +1, or −1 with ``reflect``)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    if reflect:
        q = q @ np.diag([1.0, 1.0, -1.0])
    return q


def ipi_command() -> list[str]:
    """The command that starts an i-PI server with this interpreter (skips without i-PI)."""
    pytest.importorskip("ipi", reason="i-PI is not installed (pip install ipi, or the 'test' extra)")
    script = Path(sys.executable).parent / "i-pi"
    if not script.exists():
        found = shutil.which("i-pi")
        if found is None:
            pytest.skip("the ipi package is installed but its i-pi script is not on PATH")
        script = Path(found)
    return [sys.executable, str(script)]

"""Random test structures: H/O clusters, small triclinic crystals, rotations."""

from __future__ import annotations

import numpy as np
from ase import Atoms

__all__ = ["random_crystal", "random_molecule", "random_positions", "random_rotation"]


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
    """A random triclinic periodic H/O cell, smaller than twice a 4 Å cutoff (atoms see their images)."""
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

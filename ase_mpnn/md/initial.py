"""Starting velocities for MD: Maxwell–Boltzmann at the target temperature.

A structure built or relaxed has no momenta; started at 0 K, a thermostat spends its
first 1/γ heating the system and that transient ends up in the spectra. The velocities
drawn here have zero total momentum and, for an isolated system (no periodic
direction), zero angular momentum, and are scaled so that the kinetic temperature over
the remaining degrees of freedom is exactly the target: an NVE run then starts at the
asked temperature's total kinetic energy (the potential energy takes about half of it
within a few vibrational periods; an equilibration period absorbs that).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units


def degrees_of_freedom(atoms: Atoms) -> int:
    """3N minus the centre-of-mass motion, minus rotations for an isolated system."""
    n = len(atoms)
    dof = 3 * n - 3
    if not atoms.pbc.any() and n > 1:
        # A linear molecule has two rotations; its smallest principal moment vanishes.
        moments = atoms.get_moments_of_inertia()
        dof -= 2 if moments.min() < 1e-8 * max(moments.max(), 1e-300) else 3
    return max(dof, 0)


def maxwell_boltzmann_momenta(atoms: Atoms, temperature_K: float,
                              rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Momenta (ASE units) drawn at ``temperature_K``, without net translation or rotation.

    Returns the momenta; :func:`thermalize` also sets them on ``atoms``.
    """
    if not np.isfinite(temperature_K) or temperature_K < 0:
        raise ValueError(f"temperature must be a finite number ≥ 0 K, got {temperature_K}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    masses = atoms.get_masses()[:, None]
    momenta = rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * temperature_K)
    momenta -= masses * momenta.sum(axis=0) / masses.sum()  # zero total momentum
    if not atoms.pbc.any() and len(atoms) > 1:
        momenta = _without_rotation(atoms, momenta)
    dof = degrees_of_freedom(atoms)
    kinetic = 0.5 * (momenta**2 / masses).sum()
    if dof and kinetic > 0:
        momenta *= np.sqrt(0.5 * dof * units.kB * temperature_K / kinetic)
    return momenta


def thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator | int | None = None) -> None:
    """Set Maxwell–Boltzmann momenta at ``temperature_K`` on ``atoms`` (see the module doc)."""
    atoms.set_momenta(maxwell_boltzmann_momenta(atoms, temperature_K, rng))


def has_momenta(atoms: Atoms) -> bool:
    """Whether ``atoms`` came with non-zero momenta (e.g. read from a restart file)."""
    return atoms.has("momenta") and bool(np.any(atoms.get_momenta() != 0))


def _without_rotation(atoms: Atoms, momenta: np.ndarray) -> np.ndarray:
    """Remove the rigid rotation ω × r about the centre of mass (least-squares, I ω = L)."""
    masses = atoms.get_masses()[:, None]
    r = atoms.positions - (masses * atoms.positions).sum(axis=0) / masses.sum()
    angular = np.cross(r, momenta).sum(axis=0)
    inertia = (masses[:, :, None] * ((r**2).sum(axis=1)[:, None, None] * np.eye(3)
                                     - r[:, :, None] * r[:, None, :])).sum(axis=0)
    omega = np.linalg.pinv(inertia, rcond=1e-8) @ angular  # pinv: linear molecules
    return momenta - masses * np.cross(omega, r)

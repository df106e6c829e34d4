"""The physics every model must obey, as assertions that take a model and a structure.

Rotations and reflections, translations, permutations, forces and stress against finite
differences, extensivity, continuity at the cutoff, isolated atoms, and batched against
single evaluation. ``tests/test_physics.py`` runs them for every architecture; a new
architecture runs the same suite with :func:`check_model`. Use float64 models: the
tolerances (1e-10 for symmetries, 1e-7 eV/Å for finite differences) assume it.

Each assertion also checks that what it compares is not trivially zero, so it can fail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from ..model.graph import build_graph
from ..model.properties import MODEL_PROPERTIES, PROPERTY_TABLE
from .structures import random_crystal, random_molecule, random_rotation

__all__ = [
    "ALL_PROPERTIES",
    "assert_batched_equals_single",
    "assert_equivariant",
    "assert_extensive",
    "assert_forces_match_finite_differences",
    "assert_isolated_atoms",
    "assert_permutation_equivariant",
    "assert_smooth_at_cutoff",
    "assert_stress_matches_finite_strain",
    "assert_translation_invariant",
    "check_model",
    "predict",
]

#: Every property of the table (:mod:`ase_mpnn.model.properties`) but the per-atom energies
#: (an arbitrary split of the energy): a property added to the table is tested at once.
ALL_PROPERTIES = tuple(name for name in MODEL_PROPERTIES if name != "energies")
PER_STRUCTURE = tuple(name for name in ALL_PROPERTIES if not PROPERTY_TABLE[name].per_atom)


def predict(model: torch.nn.Module, atoms: Atoms, properties: Sequence[str] = ALL_PROPERTIES) -> dict[str, np.ndarray]:
    """Model outputs for one structure as float64 numpy arrays (stress 3×3; stress only if periodic)."""
    wanted = [p for p in properties if p != "stress" or atoms.pbc.all()]
    dtype = next(model.parameters()).dtype
    graph = build_graph([atoms], model.cutoff, dtype=dtype, device=next(model.parameters()).device)
    out = model(graph, wanted)
    return {k: v.detach().to("cpu", torch.float64).numpy().squeeze(0) if k in PER_STRUCTURE
            else v.detach().to("cpu", torch.float64).numpy() for k, v in out.items()}


def _close(actual, expected, atol: float, what: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=what)


def assert_equivariant(model: torch.nn.Module, atoms: Atoms, rotation: np.ndarray, atol: float = 1e-10) -> None:
    """Energy and charges invariant; forces, dipole rotate as R v; α and stress as R α Rᵀ.

    ``rotation`` may be a reflection (det −1): the outputs are polar vectors and tensors.
    """
    R = np.asarray(rotation, dtype=float)
    ref = predict(model, atoms)
    turned = atoms.copy()
    turned.positions = atoms.positions @ R.T
    turned.cell = atoms.cell.array @ R.T
    out = predict(model, turned)
    for name, value in ref.items():  # by the rank of each property's shape in the table
        _close(out[name], _rotated(value, R, len(PROPERTY_TABLE[name].shape)), atol, name)
    # The outputs must not be trivially zero or isotropic, or the comparison proves nothing.
    assert np.abs(ref["forces"]).max() > 1e-4, "forces are ~0: the equivariance check proves nothing"
    anisotropy = ref["polarizability"] - np.trace(ref["polarizability"]) / 3 * np.eye(3)
    assert np.abs(anisotropy).max() > 1e-6, "polarizability is isotropic: the check proves nothing"


def _rotated(value: np.ndarray, R: np.ndarray, rank: int) -> np.ndarray:
    """A scalar (rank 0), vector (v → R v) or rank-2 tensor (T → R T Rᵀ), one or one per atom."""
    if rank == 0:
        return value
    if rank == 1:
        return value @ R.T
    if rank == 2:
        return R @ value @ R.T
    raise ValueError(f"no rotation rule for rank {rank}: add one for the new property")


def assert_translation_invariant(model: torch.nn.Module, atoms: Atoms, shift=(1.7, -3.2, 12.5),
                                 atol: float = 1e-10) -> None:
    """Everything unchanged when all atoms move by ``shift`` (a neutral structure's dipole too)."""
    ref = predict(model, atoms)
    moved = atoms.copy()
    moved.positions += np.asarray(shift, dtype=float)
    out = predict(model, moved)
    for name, value in ref.items():
        _close(out[name], value, atol, name)


def assert_permutation_equivariant(model: torch.nn.Module, atoms: Atoms, seed: int = 3, atol: float = 1e-10) -> None:
    """Per-atom outputs follow a permutation of the atoms; totals do not change."""
    ref = predict(model, atoms)
    order = np.random.default_rng(seed).permutation(len(atoms))
    out = predict(model, atoms[order])
    for name, value in ref.items():
        _close(out[name], value[order] if PROPERTY_TABLE[name].per_atom else value, atol, name)


def assert_forces_match_finite_differences(model: torch.nn.Module, atoms: Atoms, h: float = 1e-5,
                                           atol: float = 1e-7) -> None:
    """Forces equal −∂E/∂r by central differences of the energy (step ``h`` Å)."""
    forces = predict(model, atoms, ("energy", "forces"))["forces"]
    numeric = np.zeros_like(forces)
    for a in range(len(atoms)):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            numeric[a, c] = -(predict(model, plus, ("energy",))["energy"]
                              - predict(model, minus, ("energy",))["energy"]) / (2 * h)
    _close(forces, numeric, atol, "forces against finite differences")
    assert np.abs(forces).max() > 1e-3, "forces are ~0: the check proves nothing"


def assert_stress_matches_finite_strain(model: torch.nn.Module, crystal: Atoms, h: float = 1e-5,
                                        atol: float = 1e-8) -> None:
    """Stress equals (1/V) ∂E/∂ε by central differences of symmetric strains; it is symmetric."""
    stress = predict(model, crystal, ("energy", "stress"))["stress"]
    volume = crystal.get_volume()
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.zeros((3, 3))
                strain[a, b] += 0.5 * sign * h
                strain[b, a] += 0.5 * sign * h
                deformed = crystal.copy()
                deformed.set_cell(crystal.cell.array @ (np.eye(3) + strain), scale_atoms=True)
                energies.append(predict(model, deformed, ("energy",))["energy"])
            numeric[a, b] = (energies[0] - energies[1]) / (2 * h) / volume
    _close(stress, numeric, atol, "stress against finite strain")
    _close(stress, stress.T, 1e-12, "stress symmetry")
    assert np.abs(stress).max() > 1e-5, "stress is ~0: the check proves nothing"


def assert_extensive(model: torch.nn.Module, crystal: Atoms, atol: float = 1e-10) -> None:
    """A 2×2×2 supercell has 8× the energy, the same forces per image and the same stress."""
    ref = predict(model, crystal, ("energy", "forces", "stress"))
    out = predict(model, crystal.repeat((2, 2, 2)), ("energy", "forces", "stress"))
    np.testing.assert_allclose(out["energy"], 8 * ref["energy"], rtol=1e-10, err_msg="energy")
    _close(out["forces"], np.tile(ref["forces"], (8, 1)), atol, "forces")
    _close(out["stress"], ref["stress"], atol, "stress")


def assert_smooth_at_cutoff(model: torch.nn.Module, pair: tuple[int, int] | None = None) -> None:
    """A neighbor crossing the cutoff: energy continuous, forces bounded and vanishing there."""
    z1, z2 = pair or (model.species[-1], model.species[0])
    cutoff = float(model.cutoff)
    e0 = dict(zip(model.species, model.atomic_energies.detach().cpu().numpy()))
    distances = np.concatenate([np.linspace(cutoff - 0.5, cutoff - 1e-3, 30), [cutoff + 1e-3]])
    energies, force_norms = [], []
    for r in distances:
        dimer = Atoms(numbers=[z1, z2], positions=[[0, 0, 0], [r, 0, 0]])
        out = predict(model, dimer, ("energy", "forces"))
        energies.append(out["energy"])
        force_norms.append(np.abs(out["forces"]).max())
    energies = np.array(energies) - (e0[z1] + e0[z2])
    assert abs(energies[-1]) < 1e-12, "beyond the cutoff the atoms must be free"
    assert abs(energies[-2]) < 1e-6, f"energy jumps at the cutoff by {energies[-2]:.2e} eV"
    assert force_norms[-2] < 1e-3, f"force {force_norms[-2]:.2e} eV/Å just inside the cutoff"
    assert np.max(np.abs(np.diff(energies))) < 1e-2, "the energy jumps along the scan"
    assert np.abs(energies[0]) > 1e-6, "no interaction further in: the check proves nothing"


def assert_isolated_atoms(model: torch.nn.Module) -> None:
    """An isolated atom has exactly its reference energy and no charge; so do atoms far apart."""
    e0 = dict(zip(model.species, model.atomic_energies.detach().cpu().numpy()))
    for z, energy in e0.items():
        out = predict(model, Atoms(numbers=[z], positions=[[0.3, -0.2, 1.0]]), ("energy", "charges", "dipole"))
        _close(out["energy"], energy, 1e-12, f"isolated Z={z}")
        _close(out["charges"], [0.0], 1e-12, f"charge of isolated Z={z}")
    numbers = [model.species[-1], model.species[0], model.species[0]]
    far_apart = Atoms(numbers=numbers, positions=[[0, 0, 0], [10, 0, 0], [0, 20, 0]])
    _close(predict(model, far_apart, ("energy",))["energy"], sum(e0[z] for z in numbers), 1e-12, "atoms far apart")


def assert_batched_equals_single(model: torch.nn.Module, structures: Sequence[Atoms], atol: float = 1e-10) -> None:
    """One batched call gives each structure what it gets alone (charged ones included)."""
    properties = ("energy", "forces", "dipole", "charges", "polarizability")
    dtype = next(model.parameters()).dtype
    graph = build_graph(list(structures), model.cutoff, dtype=dtype, device=next(model.parameters()).device)
    batch = {k: v.detach().to("cpu", torch.float64).numpy() for k, v in model(graph, properties).items()}
    start = 0
    for k, atoms in enumerate(structures):
        single = predict(model, atoms, properties)
        stop = start + len(atoms)
        _close(batch["energy"][k], single["energy"], atol, f"energy of structure {k}")
        for key in ("forces", "charges"):
            _close(batch[key][start:stop], single[key], atol, f"{key} of structure {k}")
        for key in ("dipole", "polarizability"):
            _close(batch[key][k], single[key], atol, f"{key} of structure {k}")
        start = stop


def check_model(model: torch.nn.Module, smoothness: bool = True) -> None:
    """The whole suite for a float64 model that knows H and O (and Cu for the smoothness scans).

    For a new architecture::

        from ase_mpnn.testing import check_model
        check_model(build_model("myarch", ["H", "O", "C", "Cu"], cutoff=4.0).double())
    """
    rng = np.random.default_rng(7)
    molecule_, crystal = random_molecule(seed=1), random_crystal(seed=2)
    for atoms in (molecule_, crystal):
        assert_equivariant(model, atoms, random_rotation(rng))
        assert_equivariant(model, atoms, random_rotation(rng, reflect=True))
        assert_translation_invariant(model, atoms)
        assert_permutation_equivariant(model, atoms)
        assert_forces_match_finite_differences(model, atoms)
    assert_stress_matches_finite_strain(model, random_crystal(seed=4))
    assert_extensive(model, random_crystal(seed=5))
    assert_smooth_at_cutoff(model)
    assert_isolated_atoms(model)
    charged = random_molecule(seed=11, n=7)
    charged.info["charge"] = 1.0
    assert_batched_equals_single(model, [random_molecule(seed=10, n=3), charged, random_crystal(seed=12),
                                         random_crystal(seed=13, n=3)])
    if smoothness:
        from .smoothness import assert_smooth, symmetric_scans

        known = set(model.species)
        for name, (atoms, direction) in symmetric_scans().items():
            if set(atoms.numbers) <= known:
                assert_smooth(model, atoms, direction, name=name)

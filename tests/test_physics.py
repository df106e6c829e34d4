"""Physics every model must obey, written once and run for every architecture.

All in float64: rotations and reflections, translations, permutations, forces and
stress against finite differences, extensivity, smoothness at the cutoff, isolated
atoms, and batched against single evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

import ase_mpnn
from conftest import TEST_CUTOFF, random_crystal, random_molecule, random_rotation

ALL = ("energy", "forces", "stress", "dipole", "charges", "polarizability")


def predict(model, atoms: Atoms, properties=ALL) -> dict[str, np.ndarray]:
    """Model outputs for one structure as float64 numpy arrays (3×3 stress)."""
    props = [p for p in properties if p != "stress" or atoms.pbc.all()]
    graph = ase_mpnn.build_graph([atoms], model.cutoff, dtype=torch.float64)
    out = model(graph, props)
    return {k: v.detach().numpy().squeeze(0) if k in ("energy", "stress", "dipole", "polarizability")
            else v.detach().numpy() for k, v in out.items()}


@pytest.fixture(params=["molecule", "crystal"])
def structure(request) -> Atoms:
    return random_molecule(seed=1) if request.param == "molecule" else random_crystal(seed=2)


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_rotation_and_reflection_equivariance(model, structure, reflect):
    rng = np.random.default_rng(7)
    R = random_rotation(rng, reflect=reflect)
    ref = predict(model, structure)
    turned = structure.copy()
    turned.positions = structure.positions @ R.T
    turned.cell = structure.cell.array @ R.T
    out = predict(model, turned)

    assert out["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"] @ R.T, atol=1e-10)
    np.testing.assert_allclose(out["dipole"], R @ ref["dipole"], atol=1e-10)
    np.testing.assert_allclose(out["polarizability"], R @ ref["polarizability"] @ R.T, atol=1e-10)
    np.testing.assert_allclose(out["charges"], ref["charges"], atol=1e-10)
    if structure.pbc.all():
        np.testing.assert_allclose(out["stress"], R @ ref["stress"] @ R.T, atol=1e-10)
    # The check can fail: the outputs must not be trivially zero or isotropic.
    assert np.abs(ref["forces"]).max() > 1e-4
    assert np.abs(ref["polarizability"] - np.trace(ref["polarizability"]) / 3 * np.eye(3)).max() > 1e-6


def test_translation_invariance(model, structure):
    ref = predict(model, structure)
    moved = structure.copy()
    moved.positions += np.array([1.7, -3.2, 12.5])
    out = predict(model, moved)
    assert out["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    for key in ("forces", "dipole", "polarizability", "charges"):
        np.testing.assert_allclose(out[key], ref[key], atol=1e-10, err_msg=key)


def test_permutation_equivariance(model, structure):
    ref = predict(model, structure)
    order = np.random.default_rng(3).permutation(len(structure))
    out = predict(model, structure[order])
    assert out["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(out["forces"], ref["forces"][order], atol=1e-10)
    np.testing.assert_allclose(out["charges"], ref["charges"][order], atol=1e-10)
    np.testing.assert_allclose(out["dipole"], ref["dipole"], atol=1e-10)
    np.testing.assert_allclose(out["polarizability"], ref["polarizability"], atol=1e-10)


def test_forces_match_finite_differences(model, structure):
    forces = predict(model, structure, ("energy", "forces"))["forces"]
    h = 1e-5
    numeric = np.zeros_like(forces)
    for a in range(len(structure)):
        for c in range(3):
            plus, minus = structure.copy(), structure.copy()
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            numeric[a, c] = -(predict(model, plus, ("energy",))["energy"]
                              - predict(model, minus, ("energy",))["energy"]) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-7)
    assert np.abs(forces).max() > 1e-3


def test_stress_matches_finite_strain(model):
    crystal = random_crystal(seed=4)
    stress = predict(model, crystal, ("energy", "stress"))["stress"]
    volume = crystal.get_volume()
    h = 1e-5
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
    np.testing.assert_allclose(stress, numeric, atol=1e-8)
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)
    assert np.abs(stress).max() > 1e-5


def test_extensivity_supercell(model):
    crystal = random_crystal(seed=5)
    ref = predict(model, crystal, ("energy", "forces", "stress"))
    big = crystal.repeat((2, 2, 2))
    out = predict(model, big, ("energy", "forces", "stress"))
    assert out["energy"] == pytest.approx(8 * ref["energy"], rel=1e-10)
    np.testing.assert_allclose(out["forces"], np.tile(ref["forces"], (8, 1)), atol=1e-10)
    np.testing.assert_allclose(out["stress"], ref["stress"], atol=1e-10)


def test_smooth_at_cutoff(model):
    """A neighbor crossing the cutoff: energy continuous, forces bounded and vanishing."""
    isolated = model.atomic_energies.numpy()
    e_ref = isolated[model.species.index(8)] + isolated[model.species.index(1)]
    distances = np.concatenate([np.linspace(TEST_CUTOFF - 0.5, TEST_CUTOFF - 1e-3, 30), [TEST_CUTOFF + 1e-3]])
    energies, force_norms = [], []
    for r in distances:
        dimer = Atoms("OH", positions=[[0, 0, 0], [r, 0, 0]])
        out = predict(model, dimer, ("energy", "forces"))
        energies.append(out["energy"])
        force_norms.append(np.abs(out["forces"]).max())
    energies = np.array(energies) - e_ref
    assert energies[-1] == pytest.approx(0.0, abs=1e-12)  # beyond the cutoff: free atoms
    assert abs(energies[-2]) < 1e-6  # just inside: continuous
    assert force_norms[-2] < 1e-3
    assert np.max(np.abs(np.diff(energies))) < 1e-2  # no jumps along the scan
    assert np.abs(energies[0]) > 1e-6  # the interaction is really there further in


def test_isolated_atoms_have_reference_energies(model):
    for z, e0 in zip(model.species, model.atomic_energies.numpy()):
        out = predict(model, Atoms(numbers=[z], positions=[[0.3, -0.2, 1.0]]), ("energy", "charges", "dipole"))
        assert out["energy"] == pytest.approx(e0, abs=1e-12)
        assert out["charges"] == pytest.approx([0.0], abs=1e-12)
    far_apart = Atoms("OHH", positions=[[0, 0, 0], [10, 0, 0], [0, 20, 0]])
    out = predict(model, far_apart, ("energy",))
    e0 = dict(zip(model.species, model.atomic_energies.numpy()))
    assert out["energy"] == pytest.approx(e0[8] + 2 * e0[1], abs=1e-12)


def test_batched_equals_single(model):
    structures = [random_molecule(seed=s, n=n) for s, n in ((10, 3), (11, 7))] + [random_crystal(seed=12)]
    structures.append(random_crystal(seed=13, n=3))
    structures[1].info["charge"] = 1.0
    graph = ase_mpnn.build_graph(structures, model.cutoff, dtype=torch.float64)
    batch = model(graph, ("energy", "forces", "dipole", "charges", "polarizability"))
    start = 0
    for k, atoms in enumerate(structures):
        single = predict(model, atoms, ("energy", "forces", "dipole", "charges", "polarizability"))
        stop = start + len(atoms)
        assert batch["energy"][k].item() == pytest.approx(single["energy"], abs=1e-10)
        np.testing.assert_allclose(batch["forces"][start:stop].detach().numpy(), single["forces"], atol=1e-10)
        np.testing.assert_allclose(batch["charges"][start:stop].detach().numpy(), single["charges"], atol=1e-10)
        np.testing.assert_allclose(batch["dipole"][k].detach().numpy(), single["dipole"], atol=1e-10)
        np.testing.assert_allclose(batch["polarizability"][k].detach().numpy(), single["polarizability"], atol=1e-10)
        start = stop
    assert batch["charges"][3:10].sum().item() == pytest.approx(1.0, abs=1e-10)


def test_float32_close_to_float64(architecture):
    from conftest import make_model

    model = make_model(architecture)
    atoms = random_molecule(seed=20)
    ref = predict(model, atoms, ("energy", "forces"))
    model32 = model.to(torch.float32)
    graph = ase_mpnn.build_graph([atoms], model32.cutoff, dtype=torch.float32)
    out = model32(graph, ("energy", "forces"))
    assert out["forces"].dtype == torch.float32
    assert out["energy"].dtype == torch.float64  # totals keep float64 reference energies
    assert out["energy"].item() == pytest.approx(ref["energy"], abs=1e-4)
    np.testing.assert_allclose(out["forces"].detach().numpy(), ref["forces"], atol=1e-4)


def test_float32_model_keeps_large_reference_energies_exact(architecture):
    """A float32 model must not round a −2000 eV total to float32 resolution (~0.1 meV)."""
    from conftest import make_model

    model = make_model(architecture).to(torch.float32)
    with torch.no_grad():
        model.atomic_energies.copy_(torch.tensor([-13.6123456789, -2050.123456789], dtype=torch.float64))
        model.energy_scale.zero_()  # only the reference energies remain
    assert model.atomic_energies.dtype == torch.float64
    graph = ase_mpnn.build_graph([random_molecule(seed=21, n=3)], model.cutoff, dtype=torch.float32)
    energy = model(graph, ("energy",))["energy"].item()
    numbers = graph.numbers.tolist()
    expected = sum(-13.6123456789 if z == 1 else -2050.123456789 for z in numbers)
    assert energy == pytest.approx(expected, abs=1e-9)


def test_frozen_model_caches_isolated_atoms_exactly(architecture):
    """Frozen models cache isolated-atom read-outs; results equal the in-graph path and
    follow every change of the parameters."""
    from conftest import make_model

    trainable = make_model(architecture)
    frozen = make_model(architecture).requires_grad_(False)
    atoms = random_molecule(seed=30)
    props = ("energy", "forces", "dipole", "polarizability")

    def agree():
        ref, out = predict(trainable, atoms, props), predict(frozen, atoms, props)
        for key in props:
            np.testing.assert_allclose(out[key], ref[key], atol=1e-12, err_msg=key)
        return out["energy"]

    first = agree()
    with torch.no_grad():  # in-place change, as an optimizer step does
        for a, b in zip(trainable.parameters(), frozen.parameters()):
            a.mul_(1.1)
            b.mul_(1.1)
    second = agree()
    assert abs(second - first) > 1e-6
    frozen.load_state_dict(make_model(architecture, seed=5).state_dict())
    trainable.load_state_dict(make_model(architecture, seed=5).state_dict())
    assert abs(agree() - second) > 1e-6
    for z, e0 in zip(frozen.species, frozen.atomic_energies.numpy()):
        single = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
        assert predict(frozen, single, ("energy",))["energy"] == pytest.approx(e0, abs=1e-12)


@pytest.mark.parametrize("distance", [1e6, 1e8])
def test_float32_results_do_not_depend_on_where_the_structure_sits(architecture, distance):
    """Edge vectors come from positions relative to each structure's own origin, taken in
    float64: a float32 model gives the same energy, forces, stress and polarizability far
    from the origin, and the dipole of a charged molecule moves by Q · shift exactly."""
    from conftest import make_model

    model = make_model(architecture).to(torch.float32)
    shift = distance * np.array([0.6, -0.48, 0.64])
    props = ("energy", "forces", "stress", "dipole", "polarizability")
    for atoms in (random_molecule(seed=40), random_crystal(seed=41)):
        atoms.info["charge"] = 1.0
        moved = atoms.copy()
        moved.positions += shift
        graphs = [ase_mpnn.build_graph([a], model.cutoff, dtype=torch.float32) for a in (atoms, moved)]
        here, there = [{k: v.detach().double().numpy() for k, v in model(g, [p for p in props if p != "stress"
                        or atoms.pbc.all()]).items()} for g in graphs]
        # Unchecked, 1e6 Å costs ~15 meV and ~0.8 eV/Å in float32 (positions rounded to 0.06 Å).
        assert there["energy"] == pytest.approx(here["energy"], abs=1e-5)
        np.testing.assert_allclose(there["forces"], here["forces"], atol=1e-5)
        np.testing.assert_allclose(there["polarizability"], here["polarizability"], atol=1e-5)
        if atoms.pbc.all():
            np.testing.assert_allclose(there["stress"], here["stress"], atol=1e-6)
        np.testing.assert_allclose(there["dipole"] - here["dipole"], shift[None], rtol=1e-6)

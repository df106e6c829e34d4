"""Physics every model must obey, written once (``ase_mpnn.testing``) and run for every
architecture, in float64. The assertions live in the package so that a new architecture
runs the same suite (``ase_mpnn.testing.check_model``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

import ase_mpnn
from ase_mpnn.testing import (
    assert_batched_equals_single,
    assert_equivariant,
    assert_extensive,
    assert_forces_match_finite_differences,
    assert_isolated_atoms,
    assert_permutation_equivariant,
    assert_smooth_at_cutoff,
    assert_stress_matches_finite_strain,
    assert_translation_invariant,
    predict,
    random_crystal,
    random_molecule,
    random_rotation,
)


@pytest.fixture(params=["molecule", "crystal"])
def structure(request) -> Atoms:
    return random_molecule(seed=1) if request.param == "molecule" else random_crystal(seed=2)


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_rotation_and_reflection_equivariance(model, structure, reflect):
    assert_equivariant(model, structure, random_rotation(np.random.default_rng(7), reflect=reflect))


def test_translation_invariance(model, structure):
    assert_translation_invariant(model, structure)


def test_permutation_equivariance(model, structure):
    assert_permutation_equivariant(model, structure)


def test_forces_match_finite_differences(model, structure):
    assert_forces_match_finite_differences(model, structure)


def test_stress_matches_finite_strain(model):
    assert_stress_matches_finite_strain(model, random_crystal(seed=4))


def test_extensivity_supercell(model):
    assert_extensive(model, random_crystal(seed=5))


def test_smooth_at_cutoff(model):
    assert_smooth_at_cutoff(model, pair=(8, 1))


def test_isolated_atoms_have_reference_energies(model):
    assert_isolated_atoms(model)


def test_batched_equals_single(model):
    structures = [random_molecule(seed=s, n=n) for s, n in ((10, 3), (11, 7))] + [random_crystal(seed=12)]
    structures.append(random_crystal(seed=13, n=3))
    structures[1].info["charge"] = 1.0
    assert_batched_equals_single(model, structures)
    graph = ase_mpnn.build_graph(structures, model.cutoff, dtype=torch.float64)
    charges = model(graph, ("charges",))["charges"]
    assert charges[3:10].sum().item() == pytest.approx(1.0, abs=1e-10)


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
    third = agree()
    assert abs(third - second) > 1e-6
    # A replaced representation (the cache keeps its own list of parameters).
    frozen.representation = make_model(architecture, seed=6).representation.requires_grad_(False)
    trainable.representation = make_model(architecture, seed=6).representation
    assert abs(agree() - third) > 1e-6
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

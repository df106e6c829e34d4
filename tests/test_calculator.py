"""MPNNCalculator inside ASE: properties, one-pass energy+forces, batching, MD, optimizers, vibrations."""

import copy

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress
from ase.vibrations import Infrared, Vibrations

from ase_mpnn import MPNNCalculator, build_graph, build_model

F64 = torch.float64


def _build(architecture, seed=0, cutoff=4.0, energy_scale=1.0, **hyper):
    """Untrained model with a fixed seed, without touching the global RNG of other tests."""
    hyper.setdefault("n_features", 16)
    hyper.setdefault("n_interactions", 2)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(architecture, species=["H", "O"], cutoff=cutoff, **hyper)
    model.energy_scale.fill_(energy_scale)
    return model


@pytest.fixture(scope="module")
def _painn():
    return _build("painn", seed=0)


@pytest.fixture(scope="module")
def _painn_short():
    return _build("painn", seed=1, cutoff=3.0)


@pytest.fixture
def painn(_painn):
    # MPNNCalculator converts the model in place (nn.Module.to): each test gets its own copy.
    return copy.deepcopy(_painn)


@pytest.fixture
def painn_short(_painn_short):
    return copy.deepcopy(_painn_short)


def water_box(n_molecules, cell, seed):
    """Randomly placed and rotated water molecules in a periodic cell (no overlaps)."""
    rng = np.random.default_rng(seed)
    cell = np.asarray(cell, dtype=float)
    inverse = np.linalg.inv(cell)
    atoms = Atoms(cell=cell, pbc=True)
    centres = []
    while len(centres) < n_molecules:
        centre = rng.uniform(0, 1, 3) @ cell
        ok = True
        for other in centres:
            frac = (centre - other) @ inverse
            frac -= np.round(frac)
            ok &= np.linalg.norm(frac @ cell) > 2.6
        if ok:
            centres.append(centre)
            w = molecule("H2O")
            w.rotate(rng.uniform(0, 360), rng.normal(size=3))
            w.translate(centre)
            atoms += w
    return atoms


def charged(atoms, charge):
    atoms.info["charge"] = charge
    return atoms


# ---------------------------------------------------------------- properties ---------


@pytest.mark.parametrize("charge", [0, 1])
def test_get_properties_water(painn, charge):
    calc = MPNNCalculator(painn, dtype=F64)
    atoms = charged(molecule("H2O"), charge)
    atoms.calc = calc
    p = atoms.get_properties(["energy", "forces", "dipole", "polarizability", "charges"])
    assert np.shape(p["energy"]) == () and np.isfinite(p["energy"])
    assert p["forces"].shape == (3, 3)
    assert p["dipole"].shape == (3,)
    assert p["polarizability"].shape == (3, 3)
    assert p["charges"].shape == (3,)
    for key in ("forces", "dipole", "polarizability", "charges"):
        assert np.isfinite(p[key]).all()
    np.testing.assert_allclose(p["polarizability"], p["polarizability"].T, atol=1e-12)
    assert abs(p["polarizability"]).max() > 0
    assert p["charges"].sum() == pytest.approx(charge, abs=1e-10)
    # Forces are internal: they sum to zero.
    np.testing.assert_allclose(p["forces"].sum(axis=0), 0.0, atol=1e-10)
    # The usual getters agree with get_properties.
    assert atoms.get_potential_energy() == pytest.approx(p["energy"], abs=1e-12)
    np.testing.assert_allclose(atoms.get_dipole_moment(), p["dipole"], atol=1e-12)
    np.testing.assert_allclose(atoms.get_charges(), p["charges"], atol=1e-12)


def test_changing_total_charge_recomputes(painn):
    """atoms.info["charge"] changes the results even though ASE's own state check ignores info."""
    calc = MPNNCalculator(painn, dtype=F64)
    atoms = molecule("H2O")
    atoms.calc = calc
    assert atoms.get_charges().sum() == pytest.approx(0.0, abs=1e-10)
    atoms.info["charge"] = 1
    assert atoms.get_charges().sum() == pytest.approx(1.0, abs=1e-10)
    other = charged(molecule("H2O"), -1)  # same positions, another Atoms object
    other.calc = calc
    assert other.get_charges().sum() == pytest.approx(-1.0, abs=1e-10)


def test_state_check_agrees_with_ase(painn):
    """check_state's bitwise-first comparison answers what ASE's compare_atoms answers."""
    from ase.calculators.calculator import compare_atoms

    calc = MPNNCalculator(painn, dtype=F64)
    atoms = molecule("H2O")
    atoms.calc = calc
    atoms.get_forces()
    variants = {"same": atoms.copy()}
    variants["moved"] = atoms.copy()
    variants["moved"].positions[1, 0] += 1e-6
    variants["within 1e-15"] = atoms.copy()
    variants["within 1e-15"].positions[1, 1] = np.nextafter(atoms.positions[1, 1], 9.0)
    variants["cell"] = atoms.copy()
    variants["cell"].cell = np.eye(3) * 10.0
    variants["pbc"] = atoms.copy()
    variants["pbc"].pbc = [True, False, False]
    variants["numbers"] = atoms.copy()
    variants["numbers"].numbers[1] = 8
    variants["magmoms"] = atoms.copy()
    variants["magmoms"].set_initial_magnetic_moments([0.0, 0.0, 0.0])
    variants["nan"] = atoms.copy()
    variants["nan"].positions[0, 0] = np.nan
    variants["cell within 1e-15"] = atoms.copy()
    variants["cell within 1e-15"].cell = np.nextafter(atoms.cell.array, 1.0)
    variants["moved and pbc"] = variants["moved"].copy()
    variants["moved and pbc"].pbc = True
    variants["fewer atoms"] = atoms[:2]
    for name, other in variants.items():
        assert sorted(calc.check_state(other)) == sorted(compare_atoms(calc.atoms, other)), name
    calc.ignored_changes = {"positions"}  # ASE's hook for properties a calculator ignores
    assert calc.check_state(variants["moved"]) == [] == compare_atoms(calc.atoms, variants["moved"],
                                                                      excluded_properties={"positions"})
    del calc.ignored_changes
    assert calc.check_state(variants["same"]) == []
    assert "positions" in calc.check_state(variants["moved"])
    assert calc.check_state(charged(atoms.copy(), 1)) == ["charge"]


def test_forces_are_energy_gradient(painn):
    calc = MPNNCalculator(painn, dtype=F64)
    atoms = molecule("H2O")
    atoms.positions[1] += [0.05, -0.03, 0.02]
    atoms.calc = calc
    forces = atoms.get_forces()
    delta = 1e-5
    numeric = np.zeros_like(forces)
    for a in range(len(atoms)):
        for c in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[a, c] += sign * delta
                moved.calc = calc
                energies.append(moved.get_potential_energy())
            numeric[a, c] = -(energies[0] - energies[1]) / (2 * delta)
    assert abs(forces).max() > 1e-4
    np.testing.assert_allclose(forces, numeric, atol=1e-7)


def test_stress_voigt_and_finite_differences(painn_short):
    calc = MPNNCalculator(painn_short, dtype=F64)
    cell = [[5.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.5, 0.3, 5.0]]
    atoms = water_box(4, cell, seed=1)
    atoms.calc = calc
    stress = atoms.get_stress()
    full = atoms.get_stress(voigt=False)
    assert stress.shape == (6,) and full.shape == (3, 3)
    np.testing.assert_allclose(full, full.T, atol=1e-14)
    np.testing.assert_allclose(full_3x3_to_voigt_6_stress(full), stress, atol=1e-14)
    np.testing.assert_allclose(voigt_6_to_full_3x3_stress(stress), full, atol=1e-14)

    # The model's own 3x3 stress, converted to Voigt order xx yy zz yz xz xy.
    graph = build_graph([atoms], calc.model.cutoff, dtype=F64)
    model_stress = calc.model(graph, ["stress"])["stress"][0].detach().numpy()
    np.testing.assert_allclose(stress, full_3x3_to_voigt_6_stress(model_stress), atol=1e-12)

    # sigma_ij = (1/V) dE/d(eps_ij) for a symmetric strain of cell and positions.
    volume = atoms.get_volume()
    cell0 = atoms.cell.array.copy()
    eps = 1e-5
    numeric = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.zeros((3, 3))
                strain[i, j] += sign * eps / 2
                strain[j, i] += sign * eps / 2
                strained = atoms.copy()
                strained.set_cell(cell0 @ (np.eye(3) + strain), scale_atoms=True)
                strained.calc = calc
                energies.append(strained.get_potential_energy())
            numeric[i, j] = (energies[0] - energies[1]) / (2 * eps) / volume
    assert abs(stress).max() > 1e-5
    assert abs(stress[3:]).max() > 1e-6  # off-diagonal entries are tested too
    np.testing.assert_allclose(stress, full_3x3_to_voigt_6_stress(numeric), atol=1e-9)


def test_stress_of_molecule_not_implemented(painn):
    calc = MPNNCalculator(painn, dtype=F64)
    atoms = molecule("H2O")
    atoms.calc = calc
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        atoms.get_stress()
    slab = molecule("H2O", vacuum=3.0)
    slab.pbc = [True, True, False]
    slab.calc = calc
    with pytest.raises(PropertyNotImplementedError):
        slab.get_stress()
    assert np.isfinite(slab.get_forces()).all()


# --------------------------------------------------------------- model calls ---------


class ForwardRecorder:
    """Forward pre-hook: records the properties asked for and whether autograd was on."""

    def __init__(self, model):
        self.calls = []
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        properties = args[1] if len(args) > 1 else ("energy",)
        self.calls.append((set(properties), torch.is_grad_enabled()))


def test_energy_then_forces_is_one_forward_pass(painn):
    calc = MPNNCalculator(painn, dtype=F64)
    recorder = ForwardRecorder(calc.model)
    atoms = molecule("H2O")
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    assert len(recorder.calls) == 1
    asked, grad = recorder.calls[0]
    assert {"energy", "forces"} <= asked and grad
    assert np.isfinite(energy) and forces.shape == (3, 3)
    # New positions: one more pass, again with forces.
    atoms.positions[0, 0] += 0.01
    atoms.get_potential_energy()
    atoms.get_forces()
    assert len(recorder.calls) == 2
    # Periodic: energy, forces and stress all from one pass.
    box = water_box(2, np.eye(3) * 5.0, seed=3)
    box.calc = calc
    box.get_potential_energy()
    box.get_forces()
    box.get_stress()
    assert len(recorder.calls) == 3 and "stress" in recorder.calls[-1][0]


def test_energy_only_without_autograd(painn):
    calc = MPNNCalculator(painn, dtype=F64, forces_with_energy=False)
    recorder = ForwardRecorder(calc.model)
    atoms = molecule("H2O")
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert len(recorder.calls) == 1
    asked, grad = recorder.calls[0]
    assert not grad
    assert "forces" not in asked and "stress" not in asked
    assert "forces" not in calc.results
    # Forces are still available when asked for, and consistent with the energy.
    forces = atoms.get_forces()
    assert len(recorder.calls) == 2 and recorder.calls[1][1]
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-12)
    reference = molecule("H2O")
    reference.calc = MPNNCalculator(copy.deepcopy(calc.model), dtype=F64)
    np.testing.assert_allclose(forces, reference.get_forces(), atol=1e-12)


def test_calculators_sharing_a_model_keep_their_dtypes(painn):
    calc64 = MPNNCalculator(painn, dtype=F64)
    calc32 = MPNNCalculator(painn, dtype=torch.float32)  # must not convert calc64's model
    assert next(calc64.model.parameters()).dtype == F64
    assert next(calc32.model.parameters()).dtype == torch.float32
    atoms = molecule("H2O")
    e64 = calc64.get_potential_energy(atoms)
    e32 = calc32.get_potential_energy(atoms)
    assert e32 == pytest.approx(e64, abs=1e-4)


# -------------------------------------------------------------------- batching --------


def _structures():
    h2 = charged(molecule("H2"), 1)
    oh = charged(molecule("OH"), -1)
    box_a = water_box(4, np.eye(3) * 5.0, seed=1)
    box_b = water_box(3, [[4.6, 0.0, 0.0], [0.8, 4.8, 0.0], [0.4, -0.5, 5.2]], seed=2)
    hydrogen = Atoms("H4", positions=[[0, 0, 0], [0.74, 0, 0], [0, 2, 1], [0.3, 2.7, 1]],
                     cell=[3.0, 3.2, 3.4], pbc=True)
    slab = water_box(2, np.eye(3) * 5.0, seed=4)
    slab.pbc = [True, True, False]
    return [molecule("H2O"), box_a, molecule("H2O2"), h2, box_b, oh, hydrogen, slab]


def _one_by_one(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    r = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "dipole": atoms.get_dipole_moment(),
        "charges": atoms.get_charges(),
        "polarizability": calc.get_property("polarizability", atoms),
    }
    if atoms.pbc.all():
        r["stress"] = atoms.get_stress()
    return r


def test_predict_matches_single_calculations(painn_short):
    calc = MPNNCalculator(painn_short, dtype=F64)
    single = MPNNCalculator(copy.deepcopy(painn_short), dtype=F64)
    structures = _structures()
    for _ in range(2):  # the second round reuses the neighbor lists of the first
        results = calc.predict(structures)
        assert len(results) == len(structures)
        for atoms, got in zip(structures, results):
            expected = _one_by_one(single, atoms)
            assert ("stress" in got) == bool(atoms.pbc.all())
            assert set(expected) <= set(got)
            for key, value in expected.items():
                np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-10, err_msg=key)
            assert got["charges"].sum() == pytest.approx(atoms.info.get("charge", 0), abs=1e-10)
            assert len(got["energies"]) == len(atoms)
            assert got["energies"].sum() == pytest.approx(got["energy"], abs=1e-10)
        for atoms in structures:
            atoms.positions += np.random.default_rng(len(atoms)).normal(0, 0.02, atoms.positions.shape)
    # The batch really mixes different energies (a wrong split would not pass the above).
    energies = [r["energy"] for r in results]
    assert len(set(np.round(energies, 8))) == len(energies)


def test_predict_subset_of_properties(painn):
    calc = MPNNCalculator(painn, dtype=F64, forces_with_energy=False)
    results = calc.predict([molecule("H2O"), molecule("H2O2")], properties=["energy"])
    assert all("forces" not in r and np.isfinite(r["energy"]) for r in results)
    results = calc.predict([molecule("H2O")], properties=["dipole"])
    assert "dipole" in results[0]
    assert not {"energy", "forces", "polarizability"} & set(results[0])


# ---------------------------------------------------------- dynamics and friends --------


class _ScaledForces(MPNNCalculator):
    """Deliberately wrong forces (not −dE/dr): energy must then not be conserved."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        if "forces" in self.results:
            self.results["forces"] = 1.3 * self.results["forces"]


def _nve_drift(calc_cls, model):
    atoms = molecule("H2O")
    rng = np.random.default_rng(0)
    masses = atoms.get_masses()[:, None]
    momenta = rng.normal(size=(3, 3)) * np.sqrt(masses * units.kB * 300)
    atoms.set_momenta(momenta - momenta.sum(0) * masses / masses.sum())
    atoms.calc = calc_cls(model, dtype=F64)
    dyn = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    total, potential = [], []

    def record():
        total.append(atoms.get_total_energy())
        potential.append(atoms.get_potential_energy())

    dyn.attach(record, interval=1)
    dyn.run(200)
    total = np.array(total)
    return np.abs(total - total[0]).max(), np.ptp(potential)


def test_velocity_verlet_conserves_energy(painn):
    drift, swing = _nve_drift(MPNNCalculator, copy.deepcopy(painn))
    # The potential energy changes a lot along the trajectory, the total energy does not.
    assert swing > 0.05
    assert drift < 0.02 * swing
    bad_drift, _ = _nve_drift(_ScaledForces, copy.deepcopy(painn))
    assert bad_drift > 0.1 * swing  # the check above would catch inconsistent forces


def test_langevin_runs(painn):
    atoms = molecule("H2O")
    atoms.calc = MPNNCalculator(painn, dtype=F64)
    dyn = Langevin(atoms, timestep=0.5 * units.fs, temperature_K=300, friction=0.02,
                   fixcm=False, rng=np.random.default_rng(1))
    start = atoms.positions.copy()
    dyn.run(50)
    assert dyn.nsteps == 50
    assert np.isfinite(atoms.positions).all()
    assert 0 < atoms.get_temperature() < 5000
    assert np.isfinite(atoms.get_potential_energy())
    assert abs(atoms.positions - start).max() > 1e-3


def test_bfgs_lowers_energy(painn):
    atoms = molecule("H2O")
    atoms.positions[1] += [0.1, 0.05, -0.08]
    atoms.calc = MPNNCalculator(painn, dtype=F64)
    e0 = atoms.get_potential_energy()
    f0 = np.linalg.norm(atoms.get_forces(), axis=1).max()
    opt = BFGS(atoms, logfile=None)
    opt.run(fmax=0.01, steps=100)
    e1 = atoms.get_potential_energy()
    f1 = np.linalg.norm(atoms.get_forces(), axis=1).max()
    assert e1 < e0 - 1e-4
    assert f1 < f0 and (f1 < 0.01 or opt.nsteps == 100)


def test_vibrations_and_infrared(painn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atoms = molecule("H2O")
    atoms.calc = MPNNCalculator(painn, dtype=F64)
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=200)

    vib = Vibrations(atoms, name=str(tmp_path / "vib"))
    vib.run()
    frequencies = vib.get_frequencies()
    assert len(frequencies) == 9
    assert np.isfinite(frequencies).all()
    # Forces sum to zero for every geometry, so the three translations are zero modes;
    # the stiffest mode is a real vibration.
    magnitudes = np.sort(np.abs(frequencies))
    assert magnitudes[2] < 0.05 * magnitudes[-1]
    assert magnitudes[-1] > 10  # cm^-1
    assert abs(frequencies[-1].imag) < 1e-8

    ir = Infrared(atoms, name=str(tmp_path / "ir"))
    ir.run()
    assert len(ir.get_frequencies()) == 9
    intensities = ir.intensities
    assert len(intensities) == 9
    assert np.isfinite(intensities).all() and (intensities >= 0).all()
    assert intensities.max() > 0


def test_skin_gives_same_results_as_fresh_lists(painn_short):
    atoms = water_box(3, np.eye(3) * 4.5, seed=5)
    rng = np.random.default_rng(3)
    masses = atoms.get_masses()[:, None]
    atoms.set_momenta(rng.normal(size=atoms.positions.shape) * np.sqrt(masses * units.kB * 1500))
    skin_calc = MPNNCalculator(copy.deepcopy(painn_short), dtype=F64, skin=0.5)
    fresh = MPNNCalculator(copy.deepcopy(painn_short), dtype=F64, skin=0.0)
    atoms.calc = skin_calc
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    compared = []

    def compare():
        probe = atoms.copy()
        probe.calc = fresh
        assert atoms.get_potential_energy() == pytest.approx(probe.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), probe.get_forces(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(atoms.get_stress(), probe.get_stress(), rtol=0, atol=1e-10)
        compared.append(True)

    dyn.attach(compare, interval=1)
    dyn.run(60)
    builds = skin_calc._neighbor_lists[0].n_builds
    assert len(compared) == 61
    assert 2 <= builds < 30  # lists were both rebuilt and reused
    assert fresh._neighbor_lists[0].n_builds >= 61


# ------------------------------------------------------------- devices, dtypes --------


def test_float32_close_to_float64(painn):
    atoms = molecule("H2O")
    c32 = MPNNCalculator(copy.deepcopy(painn), dtype=torch.float32)
    c64 = MPNNCalculator(copy.deepcopy(painn), dtype=F64)
    assert next(c32.model.parameters()).dtype == torch.float32
    r32, r64 = c32.predict([atoms])[0], c64.predict([atoms])[0]
    assert r32["energy"] == pytest.approx(r64["energy"], abs=1e-5)
    np.testing.assert_allclose(r32["forces"], r64["forces"], atol=1e-4)
    np.testing.assert_allclose(r32["dipole"], r64["dipole"], atol=1e-4)
    assert r32["energy"] != r64["energy"]  # really two precisions


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(painn):
    atoms = molecule("H2O")
    box = water_box(2, np.eye(3) * 5.0, seed=6)
    gpu = MPNNCalculator(copy.deepcopy(painn), device="cuda", dtype=F64)
    cpu = MPNNCalculator(copy.deepcopy(painn), device="cpu", dtype=F64)
    assert next(gpu.model.parameters()).is_cuda
    for a in (atoms, box):
        r_gpu, r_cpu = gpu.predict([a])[0], cpu.predict([a])[0]
        for key in r_cpu:
            np.testing.assert_allclose(r_gpu[key], r_cpu[key], atol=1e-8, err_msg=key)
    atoms.calc = gpu
    assert np.isfinite(atoms.get_forces()).all()


def test_num_threads_is_restored_after_calls(painn):
    before = torch.get_num_threads()
    seen = []
    calc = MPNNCalculator(painn, dtype=F64, num_threads=1)
    calc.model.register_forward_pre_hook(lambda *args: seen.append(torch.get_num_threads()))
    atoms = molecule("H2O")
    atoms.calc = calc
    atoms.get_potential_energy()
    assert seen == [1]
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads"):
        MPNNCalculator(painn, num_threads=0)


def test_also_compute_rides_along_with_forces(painn):
    calc = MPNNCalculator(painn, dtype=F64, also_compute=("dipole", "polarizability"))
    calls = []
    calc.model.register_forward_pre_hook(lambda module, args: calls.append(set(args[1])))
    atoms = molecule("H2O")
    atoms.calc = calc
    atoms.get_forces()
    atoms.get_dipole_moment()
    calc.get_property("polarizability", atoms)
    assert len(calls) == 1 and {"forces", "dipole", "polarizability"} <= calls[0]
    with pytest.raises(ValueError, match="also_compute"):
        MPNNCalculator(painn, also_compute=("dipoles",))


def test_computing_adds_properties_while_its_request_is_active(painn):
    calc = MPNNCalculator(painn, dtype=F64)
    calls = []
    calc.model.register_forward_pre_hook(lambda module, args: calls.append(set(args[1])))
    atoms = molecule("H2O")
    atoms.calc = calc
    with calc.computing("dipole", "polarizability") as request:
        atoms.get_forces()
        atoms.get_dipole_moment()  # from the same pass: no second call
        assert len(calls) == 1 and {"forces", "dipole", "polarizability"} <= calls[0]
        request.active = False
        atoms.positions[0, 0] += 0.01
        atoms.get_forces()
        assert "dipole" not in calls[1]
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    assert "dipole" not in calls[2] and calc._requests == []  # withdrawn at the end of the block
    with pytest.raises(ValueError, match="computing: unknown properties"):
        calc.computing("dipoles")


def test_compiled_representation_gives_the_same_results():
    """compile=True (torch.compile of the representation) changes speed, not results; files are unchanged."""
    from conftest import make_model

    model = make_model("painn")
    model.representation.low_memory_edges = 20  # the periodic box takes the chunked path, eagerly
    eager = MPNNCalculator(model, dtype=F64)
    compiled = MPNNCalculator(model, dtype=F64, compile=True)
    box = molecule("H2O")
    box.set_cell([3.3, 3.1, 3.6])
    box.pbc = True
    properties = ("energy", "forces", "stress", "dipole", "polarizability")
    for atoms in (molecule("H2O"), molecule("H2O2"), box):  # new sizes: dynamic shapes, no new compile
        a, b = eager.predict([atoms], properties)[0], compiled.predict([atoms], properties)[0]
        n_edges = len(compiled._neighbors(0).update(atoms.positions, atoms.cell.array, atoms.pbc, None)[0])
        chunked = compiled.model.representation.edges_per_chunk(torch.ones(n_edges, dtype=F64)) is not None
        assert chunked == (atoms is box)
        for name in a:
            np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert "_compiled_readout" in compiled.model.__dict__
    assert set(compiled.model.state_dict()) == set(eager.model.state_dict())
    with pytest.raises(ValueError, match="single model"):
        MPNNCalculator([model, model], compile=True)
    with pytest.raises(ValueError, match="does not work for nequip.*works for painn"):
        MPNNCalculator(make_model("nequip"), compile=True)

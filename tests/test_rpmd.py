"""Ring-polymer MD: quantum statistics of the harmonic oscillator, exact integrators, restarts.

The analytic model is a set of independent isotropic 3D oscillators,
V = Σ_i ½ m_i ω² |r_i − r0_i|² (+ an optional quartic term), where exact answers are known:
⟨K⟩ = (ħω/4) coth(βħω/2) per degree of freedom quantum mechanically, k_BT/2 classically.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import scipy.linalg
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms
from ase.md.verlet import VelocityVerlet

import ase_mpnn
from ase_mpnn import MPNNCalculator
from ase_mpnn.md.rpmd import HBAR, RingPolymerMD, normal_mode_frequencies, normal_mode_matrix

T = 300.0
KT = units.kB * T
# βħω = 8: deep in the quantum regime, ⟨K⟩ is 4× the classical value.
OMEGA = 8.0 * KT / HBAR


class Harmonic(Calculator):
    """V = Σ_i [½ m_i ω² |r_i − r0_i|² + ¼ a |r_i − r0_i|⁴], masses from the atoms."""

    implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

    def __init__(self, r0: np.ndarray, omega: float = OMEGA, quartic: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.r0, self.omega, self.quartic = np.asarray(r0, dtype=float), omega, quartic

    def energy_forces(self, positions: np.ndarray, masses: np.ndarray):
        """Energy (...,) and forces (..., N, 3) for positions (..., N, 3)."""
        d = positions - self.r0
        d2 = np.sum(d * d, axis=-1)
        k = masses * self.omega**2
        energy = np.sum(0.5 * k * d2 + 0.25 * self.quartic * d2**2, axis=-1)
        forces = -(k + self.quartic * d2)[..., None] * d
        return energy, forces

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces = self.energy_forces(self.atoms.positions, self.atoms.get_masses())
        self.results = {"energy": float(energy), "forces": forces}


class BatchedHarmonic(Harmonic):
    """The same potential with a vectorized ``predict``: all beads in one numpy call."""

    def predict(self, structures, properties=None):
        positions = np.stack([a.positions for a in structures])
        energy, forces = self.energy_forces(positions, structures[0].get_masses())
        return [{"energy": float(e), "forces": f} for e, f in zip(energy, forces)]


def oscillators(n: int, seed: int = 0) -> Atoms:
    """n hydrogen atoms far apart (they do not interact anyway) at their minima."""
    r0 = np.random.default_rng(seed).uniform(0.0, 20.0, (n, 3))
    return Atoms("H" * n, positions=r0)


def quantum_kinetic_per_dof(omega: float = OMEGA, kT: float = KT) -> float:
    hw = HBAR * omega
    return 0.25 * hw / np.tanh(0.5 * hw / kT)


def sample(md: RingPolymerMD, steps: int, **quantities) -> dict[str, float]:
    """Run ``steps`` steps recording the named attributes every step; return their means."""
    records = {name: [] for name in quantities}

    def record():
        for name, attribute in quantities.items():
            records[name].append(getattr(md, attribute))

    md.attach(record, 1)
    md.run(steps)
    return {name: float(np.mean(values[1:])) for name, values in records.items()}


# Normal modes ------------------------------------------------------------------------------
@pytest.mark.parametrize("P", [1, 2, 3, 4, 5, 8])
def test_normal_modes_are_orthonormal_and_diagonalize_springs(P):
    C = normal_mode_matrix(P)
    np.testing.assert_allclose(C.T @ C, np.eye(P), atol=1e-13)
    # Ring Laplacian from the spring energy Σ_j ½ (q_{j+1} − q_j)² (P = 2: each pair twice).
    L = np.zeros((P, P))
    for j in range(P):
        for a, b in ((j, (j + 1) % P), ((j + 1) % P, j)):
            L[a, a] += 0.5
            L[a, b] -= 0.5
    L = L + L.T
    np.testing.assert_allclose(C.T @ L @ C, np.diag(normal_mode_frequencies(P, 1.0) ** 2), atol=1e-12)
    np.testing.assert_allclose(C[:, 0], 1.0 / np.sqrt(P))


def free_ring_polymer_reference(q, p, masses, omega_p, t):
    """Solve the free ring polymer in bead coordinates with a matrix exponential."""
    P = q.shape[0]
    L = 2.0 * np.eye(P) - np.roll(np.eye(P), 1, axis=0) - np.roll(np.eye(P), -1, axis=0)
    out_q, out_p = np.empty_like(q), np.empty_like(p)
    for i, m in enumerate(masses):
        M = np.block([[np.zeros((P, P)), np.eye(P) / m], [-m * omega_p**2 * L, np.zeros((P, P))]])
        U = scipy.linalg.expm(M * t)
        y = U @ np.concatenate([q[:, i, :], p[:, i, :]])
        out_q[:, i, :], out_p[:, i, :] = y[:P], y[P:]
    return out_q, out_p


@pytest.mark.parametrize("P", [1, 2, 5, 6])
def test_free_ring_polymer_exact_and_cayley(P):
    atoms = oscillators(2)
    rng = np.random.default_rng(1)
    q0 = atoms.positions + 0.1 * rng.standard_normal((P, 2, 3))
    p0 = rng.standard_normal((P, 2, 3))
    free = BatchedHarmonic(atoms.positions, omega=0.0)
    errors = []
    for propagator, dt, steps in (("exact", 0.5 * units.fs, 40), ("cayley", 0.5 * units.fs, 40),
                                  ("cayley", 0.25 * units.fs, 80)):
        md = RingPolymerMD(atoms, free, P, T, dt, thermostat=None, propagator=propagator,
                           bead_positions=q0, bead_momenta=p0)
        md.run(steps)
        q_ref, p_ref = free_ring_polymer_reference(q0, p0, atoms.get_masses(), md.omega_p, steps * dt)
        errors.append(np.abs(md.bead_positions - q_ref).max())
        if propagator == "exact":
            np.testing.assert_allclose(md.bead_positions, q_ref, atol=1e-9)
            np.testing.assert_allclose(md.bead_momenta, p_ref, atol=1e-9)
    if P > 1:
        # Cayley is a second-order approximation: halving dt quarters the phase error.
        assert errors[1] > 1e-4
        assert 3.0 < errors[1] / errors[2] < 5.0
    else:
        assert max(errors) < 1e-12


# Quantum and classical statistics ---------------------------------------------------------
def test_harmonic_oscillator_quantum_kinetic_energy():
    """βħω = 8, P = 32, PILE-L: both estimators give (ħω/4) coth(βħω/2) per degree of freedom."""
    atoms = oscillators(27)
    dt = 0.05 / OMEGA  # ω dt = 0.05, ω_max dt = 0.4
    md = RingPolymerMD(atoms, BatchedHarmonic(atoms.positions), 32, T, dt, thermostat="pile_l",
                       tau=1.0 / OMEGA, seed=11)
    md.run(500)
    means = sample(md, 16000, cv="centroid_virial_kinetic_energy", prim="primitive_kinetic_energy",
                   pot="potential_energy", temp="temperature")
    exact = 3 * len(atoms) * quantum_kinetic_per_dof()
    classical = 1.5 * len(atoms) * KT
    assert exact / classical > 3.9  # the test is deep in the quantum regime
    ratios = {key: means[key] / exact for key in ("cv", "prim", "pot")}
    print(f"\nquantum KE ratios (RPMD/exact): {ratios}, T = {means['temp']:.1f} K")
    assert abs(ratios["cv"] - 1) < 0.02
    assert abs(ratios["pot"] - 1) < 0.02  # virial theorem: ⟨V⟩ = ⟨K⟩ for a harmonic oscillator
    assert abs(ratios["prim"] - 1) < 0.04  # noisier, and its splitting error grows with P
    assert abs(means["temp"] / T - 1) < 0.02


def test_one_bead_is_classical():
    atoms = oscillators(27)
    md = RingPolymerMD(atoms, BatchedHarmonic(atoms.positions), 1, T, 0.1 / OMEGA,
                       thermostat="pile_l", tau=1.0 / OMEGA, seed=3)
    md.run(200)
    means = sample(md, 20000, temp="temperature", pot="potential_energy", kcv="centroid_virial_kinetic_energy")
    classical = 1.5 * len(atoms) * KT
    print(f"\nclassical: T/T0 = {means['temp'] / T:.4f}, <V>/(3N kT/2) = {means['pot'] / classical:.4f}")
    assert abs(means["temp"] / T - 1) < 0.02  # ⟨p²/2m⟩ = k_BT/2 per degree of freedom
    assert abs(means["pot"] / classical - 1) < 0.02
    assert means["kcv"] == pytest.approx(classical)


# Energy conservation and integrators -------------------------------------------------------
def conserved_series(propagator: str, omega_dt: float, steps: int = 10_000, P: int = 8) -> np.ndarray:
    atoms = oscillators(4)
    # A quartic term couples the normal modes, so the test is not a sum of independent rotations.
    calc = BatchedHarmonic(atoms.positions, quartic=2.0)
    md = RingPolymerMD(atoms, calc, P, T, omega_dt / OMEGA, thermostat=None, propagator=propagator, seed=5)
    energies = []
    md.attach(lambda: energies.append(md.conserved_energy), 1)
    md.run(steps)
    return np.array(energies)


@pytest.mark.parametrize("propagator", ["exact", "cayley"])
def test_nve_ring_polymer_conserves_hamiltonian(propagator):
    H = conserved_series(propagator, 0.1)
    drift = abs(H[-1000:].mean() - H[:1000].mean()) / abs(H[0])
    wobble = np.abs(H - H[0]).max() / abs(H[0])
    print(f"\n{propagator}: relative drift over 10,000 steps {drift:.2e}, max deviation {wobble:.2e}")
    assert drift < 1e-4
    assert wobble < 1e-2
    # Second order: halving dt quarters the deviation (a broken splitting would not).
    H_half = conserved_series(propagator, 0.05, steps=4000)
    H_short = H[:2000]
    ratio = np.abs(H_short - H_short[0]).max() / np.abs(H_half - H_half[0]).max()
    assert 3.0 < ratio < 5.0


def test_one_bead_is_velocity_verlet():
    atoms = oscillators(3)
    r0 = atoms.positions.copy()
    rng = np.random.default_rng(2)
    atoms.positions += 0.05 * rng.standard_normal((3, 3))
    atoms.set_momenta(rng.standard_normal((3, 3)))
    dt = 0.5 * units.fs
    for propagator in ("exact", "cayley"):
        md = RingPolymerMD(atoms, Harmonic(r0, quartic=1.0), 1, T, dt, thermostat=None, propagator=propagator,
                           bead_momenta=atoms.get_momenta()[None])
        md.run(200)
        reference = atoms.copy()
        reference.calc = Harmonic(r0, quartic=1.0)
        VelocityVerlet(reference, timestep=dt).run(200)
        np.testing.assert_allclose(md.bead_positions[0], reference.positions, rtol=0, atol=1e-12)
        np.testing.assert_allclose(md.bead_momenta[0], reference.get_momenta(), rtol=0, atol=1e-12)
        assert md.conserved_energy == pytest.approx(reference.get_total_energy(), rel=1e-12)


def test_thermostat_heat_keeps_conserved_energy():
    """With PILE-L, H_P − (thermostat work) stays flat while H_P itself wanders."""
    atoms = oscillators(4)
    md = RingPolymerMD(atoms, BatchedHarmonic(atoms.positions, quartic=2.0), 8, T, 0.05 / OMEGA,
                       thermostat="pile_l", tau=1.0 / OMEGA, seed=9)
    conserved, hamiltonian = [], []
    md.attach(lambda: (conserved.append(md.conserved_energy),
                       hamiltonian.append(md.ring_polymer_hamiltonian / md.n_beads)), 1)
    md.run(2000)
    assert np.std(hamiltonian) > 30 * np.std(conserved)


def test_loop_over_beads_equals_batched():
    atoms = oscillators(3)
    runs = []
    for calc in (Harmonic(atoms.positions, quartic=1.0), BatchedHarmonic(atoms.positions, quartic=1.0)):
        md = RingPolymerMD(atoms, calc, 4, T, 0.5 * units.fs, thermostat="pile_g", tau=10 * units.fs, seed=4)
        assert md.batched == hasattr(calc, "predict")
        md.run(50)
        runs.append((md.bead_positions, md.bead_momenta, md.conserved_energy))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == pytest.approx(runs[1][2], rel=1e-12)


# Thermostats --------------------------------------------------------------------------------
def centroid_mode_kinetic(md: RingPolymerMD) -> float:
    """Σ p̃_0²/2m with p̃_0 = √P × bead-averaged momentum."""
    p0 = np.sqrt(md.n_beads) * md.bead_momenta.mean(axis=0)
    return float(np.sum(p0**2 / (2 * md.masses[:, None])))


def test_pile_g_samples_canonical_centroid_energy():
    """The centroid mode of a harmonic well is a closed system: only the thermostat sets its
    energy distribution, which must be canonical at P·T (Gamma, shape n_dof, scale P k_BT)."""
    atoms = oscillators(8)
    P = 4
    md = RingPolymerMD(atoms, BatchedHarmonic(atoms.positions), P, T, 0.1 / OMEGA, thermostat="pile_g",
                       tau=0.5 / OMEGA, seed=6)
    md.run(200)
    energy, kinetic, temperature = [], [], []
    md.attach(lambda: (energy.append(centroid_mode_energy(md, atoms.positions)),
                       kinetic.append(centroid_mode_kinetic(md)), temperature.append(md.temperature)), 1)
    md.run(12000)
    n_dof = 3 * len(atoms)
    assert np.mean(energy) / (n_dof * P * KT) == pytest.approx(1.0, abs=0.03)
    assert np.std(energy) / (np.sqrt(n_dof) * P * KT) == pytest.approx(1.0, abs=0.08)
    assert np.mean(kinetic) / (0.5 * n_dof * P * KT) == pytest.approx(1.0, abs=0.03)
    assert np.mean(temperature) / T == pytest.approx(1.0, abs=0.03)


def centroid_mode_energy(md: RingPolymerMD, r0: np.ndarray) -> float:
    """Energy of the centroid normal mode in the harmonic well (it decouples from the others)."""
    k = md.masses[:, None] * OMEGA**2
    q0 = np.sqrt(md.n_beads) * (md.centroid_positions - r0)
    return centroid_mode_kinetic(md) + float(np.sum(0.5 * k * q0**2))


def centroid_energy_run(atoms: Atoms, thermostat: str) -> tuple[float, float]:
    """Mean temperature (after 1000 steps) and the largest relative change of the centroid
    mode's energy over 4000 steps."""
    md = RingPolymerMD(atoms, BatchedHarmonic(atoms.positions), 8, T, 0.05 / OMEGA,
                       thermostat=thermostat, tau=1.0 / OMEGA, seed=8)
    e0 = centroid_mode_energy(md, atoms.positions)
    temperature, deviation = [], []
    md.attach(lambda: (temperature.append(md.temperature),
                       deviation.append(abs(centroid_mode_energy(md, atoms.positions) / e0 - 1))), 1)
    md.run(4000)
    return float(np.mean(temperature[1000:])), max(deviation)


def test_trpmd_leaves_centroid_alone_and_thermalizes_internal_modes():
    atoms = oscillators(8)
    results = {thermostat: centroid_energy_run(atoms, thermostat) for thermostat in ("trpmd", "pile_l")}
    assert results["trpmd"][1] < 1e-2  # unthermostatted centroid: its energy is conserved
    assert results["pile_l"][1] > 0.1  # ... which a centroid thermostat would not do
    for thermostat, (temperature, _) in results.items():
        assert temperature / T == pytest.approx(1.0, abs=0.1), thermostat


# Checkpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("thermostat", ["pile_l", "pile_g"])
def test_checkpoint_restart_is_exact(tmp_path, thermostat):
    atoms = oscillators(3)
    atoms.info["charge"] = 0
    calc = BatchedHarmonic(atoms.positions, quartic=1.0)
    md = RingPolymerMD(atoms, calc, 4, T, 0.5 * units.fs, thermostat=thermostat, tau=5 * units.fs,
                       seed=12, propagator="cayley")
    md.run(30)
    path = tmp_path / "rpmd.npz"
    md.save_checkpoint(path)
    assert not list(tmp_path.glob("*.tmp*"))
    md.run(40)

    restored = RingPolymerMD.from_checkpoint(path, calc)
    assert (restored.nsteps, restored.thermostat, restored.propagator, restored.n_beads) == (30, thermostat, "cayley", 4)
    assert restored.atoms.info["charge"] == 0
    restored.run(40)
    assert restored.nsteps == md.nsteps == 70
    np.testing.assert_array_equal(restored.bead_positions, md.bead_positions)
    np.testing.assert_array_equal(restored.bead_momenta, md.bead_momenta)
    assert restored.conserved_energy == md.conserved_energy
    assert restored.rng.bit_generator.state == md.rng.bit_generator.state


def test_checkpoint_is_plain_npz(tmp_path):
    atoms = oscillators(2)
    # Any numpy bit generator round-trips (MT19937 keeps its state in an array).
    rng = np.random.Generator(np.random.MT19937(3))
    md = RingPolymerMD(atoms, BatchedHarmonic(atoms.positions), 2, T, units.fs, seed=rng)
    md.run(3)
    md.save_checkpoint(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:
        assert data["positions"].shape == (2, 2, 3)
    restored = RingPolymerMD.from_checkpoint(tmp_path / "c.npz", md.calculator)
    md.run(5)
    restored.run(5)
    np.testing.assert_array_equal(restored.bead_momenta, md.bead_momenta)
    np.savez(tmp_path / "other.npz", meta=np.array('{"format": "something else"}'))
    with pytest.raises(ValueError, match="not an RPMD checkpoint"):
        RingPolymerMD.from_checkpoint(tmp_path / "other.npz", md.calculator)


# The batched MPNN path -------------------------------------------------------------------
def test_mpnn_beads_in_one_batched_call(tmp_path):
    torch.manual_seed(0)
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=4.0, n_features=8, n_interactions=1)
    calc = MPNNCalculator(model, dtype=torch.float64)
    calls = []
    predict = calc.predict

    def counting_predict(structures, properties=None):
        calls.append(([id(a) for a in structures], tuple(properties)))
        return predict(structures, properties)

    calc.predict = counting_predict
    water = molecule("H2O")
    P = 4
    md = RingPolymerMD(water, calc, P, T, 0.25 * units.fs, thermostat="pile_l", tau=20 * units.fs, seed=2)
    assert md.batched and md.observables == ("dipole", "polarizability")
    md.run(3)
    assert len(calls) == 4  # the initial forces + one call per step
    assert all(len(ids) == P and ids == calls[0][0] for ids, _ in calls)  # the same bead Atoms
    assert {"energy", "forces", "dipole", "polarizability"} <= set(calls[0][1])

    reference = MPNNCalculator(model, dtype=torch.float64)
    forces, energies, dipoles, alphas = [], [], [], []
    for q in md.bead_positions:
        bead = water.copy()
        bead.positions = q
        forces.append(reference.get_forces(bead))
        energies.append(reference.get_potential_energy(bead))
        dipoles.append(reference.get_dipole_moment(bead))
        alphas.append(reference.get_property("polarizability", bead))
    assert np.ptp(md.bead_positions, axis=0).max() > 1e-4  # the beads really differ
    np.testing.assert_allclose(md.bead_forces, forces, atol=1e-10)
    assert md.potential_energy == pytest.approx(np.mean(energies), abs=1e-10)
    np.testing.assert_allclose(md.dipole, np.mean(dipoles, axis=0), atol=1e-10)
    np.testing.assert_allclose(md.polarizability, np.mean(alphas, axis=0), atol=1e-10)
    assert md.dipole.shape == (3,) and md.polarizability.shape == (3, 3)

    # Restart with a fresh calculator (fresh neighbor lists) continues the same trajectory.
    md.save_checkpoint(tmp_path / "water.npz")
    restored = RingPolymerMD.from_checkpoint(tmp_path / "water.npz", MPNNCalculator(model, dtype=torch.float64))
    md.run(2)
    restored.run(2)
    np.testing.assert_allclose(restored.bead_positions, md.bead_positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(restored.bead_momenta, md.bead_momenta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(restored.dipole, md.dipole, atol=1e-12)

    without = RingPolymerMD(water, calc, P, T, 0.25 * units.fs, observables=(), seed=2)
    assert without.dipole is None and without.polarizability is None


# API ----------------------------------------------------------------------------------------
def test_attach_interval_and_step_counter():
    atoms = oscillators(1)
    md = RingPolymerMD(atoms, BatchedHarmonic(atoms.positions), 2, T, units.fs, seed=0)
    seen = []
    md.attach(lambda: seen.append(md.nsteps), interval=3)
    md.run(7)
    md.run(3)
    assert seen == [0, 3, 6, 9] and md.nsteps == 10
    assert md.centroid_positions.shape == (1, 3) and md.bead_positions.shape == (2, 1, 3)
    np.testing.assert_allclose(md.centroid_atoms().positions, md.centroid_positions)


def test_bad_input():
    atoms = oscillators(2)
    calc = Harmonic(atoms.positions)
    ok = {"n_beads": 4, "temperature_K": T, "timestep": units.fs}
    for bad, match in (
        ({"n_beads": 0}, "n_beads"),
        ({"n_beads": 2.5}, "n_beads"),
        ({"temperature_K": 0.0}, "temperature"),
        ({"temperature_K": -10.0}, "temperature"),
        ({"timestep": 0.0}, "timestep"),
        ({"thermostat": "nose-hoover"}, "unknown thermostat"),
        ({"propagator": "rk4"}, "unknown propagator"),
        ({"tau": 0.0}, "tau"),
        ({"observables": ("dipole",)}, "does not implement"),
        ({"bead_positions": np.zeros((3, 2, 3))}, "bead_positions"),
    ):
        with pytest.raises(ValueError, match=match):
            RingPolymerMD(atoms, calc, **{**ok, **bad})
    constrained = atoms.copy()
    constrained.set_constraint(FixAtoms([0]))
    with pytest.raises(ValueError, match="constraints"):
        RingPolymerMD(constrained, calc, **ok)
    with pytest.raises(ValueError, match="empty"):
        RingPolymerMD(Atoms(), calc, **ok)
    # tau does not matter without a centroid thermostat
    RingPolymerMD(atoms, calc, thermostat="trpmd", tau=None, **ok)

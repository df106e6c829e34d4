"""Harmonic IR/Raman reference (ase_mpnn.spectra.harmonic).

The analytic part uses a calculator whose energy is an exact quadratic form built from
pair springs (so central differences are exact and the rigid-body modes are exact
zeros), whose dipole comes from fixed point charges and whose polarizability is a
linear bond-polarizability model. Expected numbers are computed here independently:
frequencies and intensities with scipy's CODATA constants, Raman invariants with the
component formula for γ², and closed forms for a diatomic.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.constants as sc
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.md.verlet import VelocityVerlet
from ase.vibrations import Infrared

import ase_mpnn  # registers "polarizability" as an ASE property
from ase_mpnn.md.normal_modes import normal_mode_sampling
from ase_mpnn.spectra.harmonic import HarmonicResult, _n_rigid_modes, harmonic_analysis
from ase_mpnn.spectra.harmonic_report import harmonic_report, load_reference
from ase_mpnn.spectra.intensities import ir_intensity_km_mol, raman_invariants

ROOT = Path(__file__).resolve().parent.parent
WATER_MODEL = ROOT / "models" / "painn_water.pt"

# e²/(4πε₀) in eV·Å, from scipy: Å³ per (e²Å²/eV)
E2_A3 = sc.e / (4 * np.pi * sc.epsilon_0 * 1e-10)


# --------------------------------------------------------------------------------------
# Analytic test system
# --------------------------------------------------------------------------------------
class QuadraticCalculator(Calculator):
    """E = ½ΔxᵀKΔx, μ = Σ q_i r_i, α = α⁰ + Σ_j T_j Δx_j (T in e²Å²/eV per Å)."""

    implemented_properties = ["energy", "forces", "dipole", "polarizability"]

    def __init__(self, x0, hessian, charges, alpha0, dalpha_dx, **kwargs):
        super().__init__(**kwargs)
        self.x0 = np.asarray(x0, float)
        self.hessian = np.asarray(hessian, float)
        self.charges = np.asarray(charges, float)
        self.alpha0 = np.asarray(alpha0, float)
        self.dalpha_dx = np.asarray(dalpha_dx, float)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        dx = (self.atoms.positions - self.x0).ravel()
        kdx = self.hessian @ dx
        self.results = {
            "energy": 0.5 * dx @ kdx,
            "free_energy": 0.5 * dx @ kdx,
            "forces": -kdx.reshape(-1, 3),
            "dipole": self.charges @ self.atoms.positions,
            "polarizability": self.alpha0 + np.einsum("jab,j->ab", self.dalpha_dx, dx),
        }


class NoDipoleCalculator(QuadraticCalculator):
    implemented_properties = ["energy", "forces"]


def pair_b(x0: np.ndarray, i: int, j: int) -> np.ndarray:
    """Gradient of |r_j − r_i| with respect to all Cartesian coordinates, (3N,)."""
    u = (x0[j] - x0[i]) / np.linalg.norm(x0[j] - x0[i])
    b = np.zeros_like(x0)
    b[i], b[j] = -u, u
    return b.ravel()


def pair_system(symbols, x0, pairs, k, charges, s_aniso, s_iso, cls=QuadraticCalculator):
    """Atoms at the minimum x0 with springs k on ``pairs`` (eV/Å²) and a bond-
    polarizability model: ∂α/∂r_p = s_aniso,p u_p u_pᵀ + s_iso,p I (Å³/Å)."""
    x0 = np.asarray(x0, float)
    bs = [pair_b(x0, i, j) for i, j in pairs]
    hessian = sum(kp * np.outer(b, b) for kp, b in zip(k, bs))
    tensors = []
    for (i, j), sa, si in zip(pairs, s_aniso, s_iso):
        u = (x0[j] - x0[i]) / np.linalg.norm(x0[j] - x0[i])
        tensors.append(sa * np.outer(u, u) + si * np.eye(3))
    # T_j = Σ_p A_p b_p,j, stored in ASE units (e²Å²/eV per Å)
    dalpha_dx = sum(np.einsum("ab,j->jab", a, b) for a, b in zip(tensors, bs)) / E2_A3
    atoms = Atoms(symbols, positions=x0)
    atoms.calc = cls(x0, hessian, charges, np.diag([1.0, 1.2, 1.4]), dalpha_dx)
    return atoms, hessian, dalpha_dx


def wavenumber_cm1(eig_ev_a2_amu: np.ndarray) -> np.ndarray:
    """ν̃ = √λ / (2πc) for λ in eV/(Å²·amu), with scipy constants."""
    omega = np.sqrt(eig_ev_a2_amu * sc.e / (1e-20 * sc.atomic_mass))  # rad/s
    return omega / (2 * np.pi * sc.c * 100)


def ir_km_mol_reference(mu_prime: np.ndarray) -> np.ndarray:
    """N_A |μ'|² / (12 ε₀ c²) for μ' in e/√amu, in km/mol (scipy constants)."""
    mu_si = mu_prime * sc.e / np.sqrt(sc.atomic_mass)
    return sc.N_A * np.sum(mu_si**2, axis=-1) / (12 * sc.epsilon_0 * sc.c**2) / 1000


def raman_reference(alpha_prime: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activity and ρ with γ² written out component by component."""
    a = np.trace(alpha_prime, axis1=1, axis2=2) / 3
    xx, yy, zz = alpha_prime[:, 0, 0], alpha_prime[:, 1, 1], alpha_prime[:, 2, 2]
    xy, yz, zx = alpha_prime[:, 0, 1], alpha_prime[:, 1, 2], alpha_prime[:, 2, 0]
    g2 = 0.5 * ((xx - yy) ** 2 + (yy - zz) ** 2 + (zz - xx) ** 2 + 6 * (xy**2 + yz**2 + zx**2))
    return 45 * a**2 + 7 * g2, 3 * g2 / (45 * a**2 + 4 * g2)


# A bent, asymmetric triatomic (water-like masses, three distinct springs).
TRI_X0 = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.741, -0.482]])
TRI_PAIRS = [(0, 1), (0, 2), (1, 2)]
TRI_K = [45.0, 38.0, 7.0]
TRI_Q = [-0.7, 0.36, 0.34]


def triatomic(cls=QuadraticCalculator):
    return pair_system("OHH", TRI_X0, TRI_PAIRS, TRI_K, TRI_Q,
                       s_aniso=[1.2, 1.0, 0.3], s_iso=[0.4, 0.35, 0.1], cls=cls)


@pytest.fixture(scope="module")
def tri():
    atoms, hessian, dalpha_dx = triatomic()
    result = harmonic_analysis(atoms, optimize=False)
    # independent reference: exact eigenproblem of the analytic Hessian
    m3 = np.repeat(atoms.get_masses(), 3)
    lam, vec = np.linalg.eigh(hessian / np.sqrt(np.outer(m3, m3)))
    assert np.all(np.abs(lam[:6]) < 1e-10) and np.all(lam[6:] > 1)
    modes = vec[:, 6:].T
    dmu_dx = np.zeros((9, 3))
    for i, q in enumerate(TRI_Q):
        dmu_dx[3 * i:3 * i + 3] = q * np.eye(3)
    dx_dq = modes / np.sqrt(m3)
    ref = {
        "freqs": wavenumber_cm1(lam[6:]),
        "modes": modes,
        "mu_prime": dx_dq @ dmu_dx,
        "alpha_prime": np.einsum("kj,jab->kab", dx_dq, dalpha_dx) * E2_A3,
    }
    return atoms, result, ref


# --------------------------------------------------------------------------------------
# Formulas
# --------------------------------------------------------------------------------------
def test_raman_invariants_rod_isotropic_and_shear():
    a, g2, s, rho = raman_invariants(
        np.array([np.diag([1.0, 0, 0]), np.eye(3), [[0, 1, 0], [1, 0, 0], [0, 0, 0]]])
    )
    np.testing.assert_allclose(a, [1 / 3, 1, 0], atol=1e-15)
    np.testing.assert_allclose(g2, [1, 0, 3], atol=1e-15)
    np.testing.assert_allclose(s, [45 / 9 + 7, 45, 21], atol=1e-13)
    np.testing.assert_allclose(rho, [1 / 3, 0, 3 / 4], atol=1e-15)
    _, _, _, rho0 = raman_invariants(np.zeros((3, 3)))
    assert np.isnan(rho0)


def test_raman_invariants_rotation_invariant():
    rng = np.random.default_rng(3)
    t = rng.normal(size=(3, 3))
    t = t + t.T
    r = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    before = raman_invariants(t)
    after = raman_invariants(r @ t @ r.T)
    for x, y in zip(before, after):
        np.testing.assert_allclose(x, y, rtol=1e-12)
    s_ref, rho_ref = raman_reference(t[None])
    np.testing.assert_allclose(before[2], s_ref[0], rtol=1e-12)
    np.testing.assert_allclose(before[3], rho_ref[0], rtol=1e-12)


def test_ir_conversion_matches_porezag_factor():
    # 1 (D/Å)²/amu = 42.255 km/mol (Porezag & Pederson 1996; ASE's Infrared)
    assert ir_intensity_km_mol(np.array([units.Debye, 0.0, 0.0])) == pytest.approx(42.255, rel=1e-4)
    np.testing.assert_allclose(
        ir_intensity_km_mol(np.array([0.3, -0.2, 0.1])),
        ir_km_mol_reference(np.array([0.3, -0.2, 0.1])), rtol=1e-6,
    )


# --------------------------------------------------------------------------------------
# Analytic calculators
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p, d, rho_expected",
    [(0.0, 1.0, 1 / 3), (1.0, 0.0, 0.0), (0.5, 2.0, None)],
    ids=["rod", "isotropic", "general"],
)
def test_diatomic_closed_form(p, d, rho_expected):
    """ν = √(k/μ)/2πc, μ' = q/√μ, α' = A/√μ with A = diag(p, p, p + d) (bond ∥ z)."""
    k, q, r0 = 18.0, 0.3, 1.128
    x0 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, r0]])
    atoms, _, _ = pair_system("CO", x0, [(0, 1)], [k], [q, -q], s_aniso=[d], s_iso=[p])
    result = harmonic_analysis(atoms, optimize=False)
    m1, m2 = atoms.get_masses()
    mu = m1 * m2 / (m1 + m2)
    assert result.n_modes == 1  # linear: 5 rigid-body modes dropped
    np.testing.assert_allclose(result.dropped_frequencies_cm1, 0, atol=1e-3)
    nu = float(wavenumber_cm1(np.array(k / mu)))
    assert result.frequencies_cm1[0] == pytest.approx(nu, rel=1e-7)
    expected_ir = ir_km_mol_reference(np.array([0, 0, q / np.sqrt(mu)]))
    assert ir_intensity_km_mol(result.dipole_derivatives)[0] == pytest.approx(expected_ir, rel=1e-7)
    assert result.ir_intensities_km_mol[0] == pytest.approx(expected_ir, rel=1e-4)  # ASE's 42.255
    np.testing.assert_allclose(np.abs(result.dipole_derivatives[0]), [0, 0, q / np.sqrt(mu)],
                               atol=1e-9)
    s = 1 / np.sqrt(mu)
    a, g2 = s * (p + d / 3), (s * d) ** 2
    assert result.raman_activities[0] == pytest.approx(45 * a**2 + 7 * g2, rel=1e-7)
    rho = 3 * g2 / (45 * a**2 + 4 * g2)
    assert result.depolarization_ratios[0] == pytest.approx(rho, rel=1e-7, abs=1e-12)
    if rho_expected is not None:
        assert result.depolarization_ratios[0] == pytest.approx(rho_expected, abs=1e-9)


def test_triatomic_frequencies_modes_ir_raman(tri):
    _, result, ref = tri
    assert isinstance(result, HarmonicResult)
    assert result.n_modes == 3 and not result.imaginary.any()
    np.testing.assert_allclose(result.frequencies_cm1, ref["freqs"], rtol=1e-8)
    np.testing.assert_allclose(result.dropped_frequencies_cm1, 0, atol=1e-3)
    vec = result.mode_vectors.reshape(3, -1)
    np.testing.assert_allclose(np.abs(np.sum(vec * ref["modes"], axis=1)), 1, atol=1e-9)
    sign = np.sign(np.sum(vec * ref["modes"], axis=1))
    np.testing.assert_allclose(result.dipole_derivatives, sign[:, None] * ref["mu_prime"],
                               atol=1e-9)
    np.testing.assert_allclose(
        result.polarizability_derivatives, sign[:, None, None] * ref["alpha_prime"], atol=1e-8
    )
    ir_ref = ir_km_mol_reference(ref["mu_prime"])
    assert np.all(ir_ref > 1)
    np.testing.assert_allclose(ir_intensity_km_mol(result.dipole_derivatives), ir_ref, rtol=1e-7)
    np.testing.assert_allclose(result.ir_intensities_km_mol, ir_ref, rtol=1e-4)
    s_ref, rho_ref = raman_reference(ref["alpha_prime"])
    np.testing.assert_allclose(result.raman_activities, s_ref, rtol=1e-7)
    np.testing.assert_allclose(result.depolarization_ratios, rho_ref, rtol=1e-7)
    assert np.all((rho_ref > 0) & (rho_ref < 0.75))
    assert result.energy == pytest.approx(0, abs=1e-15) and result.max_force < 1e-12
    np.testing.assert_allclose(result.static_dipole, np.array(TRI_Q) @ TRI_X0, atol=1e-14)
    np.testing.assert_allclose(result.static_polarizability, np.diag([1.0, 1.2, 1.4]) * 14.399645,
                               rtol=1e-6)


def test_optimization_reaches_minimum(tri):
    _, result0, _ = tri
    atoms, _, _ = triatomic()
    # a distortion inside the spring space, so the minimum is x0 itself
    push = 0.04 * pair_b(TRI_X0, 0, 1) - 0.03 * pair_b(TRI_X0, 1, 2)
    atoms.positions += push.reshape(3, 3)
    before = atoms.positions.copy()
    result = harmonic_analysis(atoms, fmax=1e-6)
    np.testing.assert_array_equal(atoms.positions, before)  # input untouched
    assert result.optimizer_steps > 0 and result.max_force <= 1e-6
    np.testing.assert_allclose(result.atoms.positions, TRI_X0, atol=1e-6)
    np.testing.assert_allclose(result.frequencies_cm1, result0.frequencies_cm1, rtol=1e-7)


def test_table_and_csv(tri, tmp_path):
    _, result, _ = tri
    table = result.table().splitlines()
    assert table[0].startswith("| mode | ν (cm⁻¹) | IR (km/mol) | Raman activity (Å⁴/amu) | ρ |")
    assert len(table) == 2 + result.n_modes
    assert f"{result.frequencies_cm1[2]:.1f}" in table[4]
    path = tmp_path / "modes.csv"
    result.to_csv(path)
    with open(path) as fd:
        rows = list(csv.DictReader(fd))
    assert len(rows) == 3
    np.testing.assert_allclose([float(r["frequency_cm1"]) for r in rows], result.frequencies_cm1)
    np.testing.assert_allclose([float(r["raman_activity_A4_per_amu"]) for r in rows],
                               result.raman_activities)
    np.testing.assert_allclose([float(r["ir_intensity_km_mol"]) for r in rows],
                               result.ir_intensities_km_mol)


def test_no_dipole_gives_frequencies_only(tri):
    _, ref_result, _ = tri
    atoms, _, _ = triatomic(cls=NoDipoleCalculator)
    result = harmonic_analysis(atoms, optimize=False)
    np.testing.assert_allclose(result.frequencies_cm1, ref_result.frequencies_cm1, rtol=1e-10)
    assert result.ir_intensities_km_mol is None and result.dipole_derivatives is None
    assert result.raman_activities is None and result.polarizability_derivatives is None
    assert any("no dipole" in n for n in result.notes)
    assert any("no polarizability" in n for n in result.notes)
    assert "| 1 |" in result.table() and "–" in result.table()


def test_raman_false_skips_polarizability():
    atoms, _, _ = triatomic()
    result = harmonic_analysis(atoms, optimize=False, raman=False)
    assert result.polarizability_derivatives is None and result.raman_activities is None
    assert result.ir_intensities_km_mol is not None


def test_imaginary_mode_flagged():
    # a negative H–H spring makes a saddle point with one imaginary mode
    atoms, _, _ = pair_system("OHH", TRI_X0, TRI_PAIRS, [45.0, 38.0, -7.0], TRI_Q,
                              s_aniso=[1, 1, 1], s_iso=[0, 0, 0])
    with pytest.warns(RuntimeWarning, match="imaginary"):
        result = harmonic_analysis(atoms, optimize=False)
    assert result.imaginary.tolist() == [True, False, False]
    assert result.frequencies_cm1[0] < -100
    np.testing.assert_allclose(result.imaginary_frequencies_cm1, -result.frequencies_cm1[0])
    assert "i |" in result.table() and any("imaginary" in n for n in result.notes)
    with pytest.raises(ValueError, match="imaginary"):
        normal_mode_sampling(result, 100.0, seed=0)


def test_workdir_kept_and_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atoms, _, _ = triatomic()
    harmonic_analysis(atoms, optimize=False)
    assert list(tmp_path.iterdir()) == []  # the temporary cache is removed
    work = tmp_path / "keep"
    first = harmonic_analysis(atoms, optimize=False, workdir=work)
    assert len(list((work / "vib").iterdir())) == 19  # eq + 18 displacements
    again = harmonic_analysis(atoms, optimize=False, workdir=work)  # reuses the cache
    np.testing.assert_array_equal(again.frequencies_cm1, first.frequencies_cm1)
    moved = atoms.copy()
    moved.calc = atoms.calc
    moved.positions += 0.1
    with pytest.raises(RuntimeError, match="another geometry"):
        harmonic_analysis(moved, optimize=False, workdir=work)


def test_bad_input():
    atoms, _, _ = triatomic()
    bare = atoms.copy()
    with pytest.raises(ValueError, match="calculator"):
        harmonic_analysis(bare)
    nan = atoms.copy()
    nan.positions[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        harmonic_analysis(nan, atoms.calc)
    one = Atoms("H", positions=[[0, 0, 0]])
    with pytest.raises(ValueError, match="no vibrational modes"):
        harmonic_analysis(one, atoms.calc, optimize=False)
    with pytest.raises(ValueError, match="nfree"):
        harmonic_analysis(atoms, nfree=3)


def test_rigid_mode_count():
    assert _n_rigid_modes(Atoms("OCO", positions=[[0, 0, -1.16], [0, 0, 0], [0, 0, 1.16]])) == 5
    assert _n_rigid_modes(Atoms("OHH", positions=TRI_X0)) == 6
    assert _n_rigid_modes(Atoms("Cu2", positions=[[0, 0, 0], [1.8, 1.8, 0]], cell=[3.6] * 3,
                                pbc=True)) == 3


# --------------------------------------------------------------------------------------
# Normal-mode sampling
# --------------------------------------------------------------------------------------
def mode_coordinates(result, positions, velocities):
    sqm = np.sqrt(result.atoms.get_masses())[:, None]
    vec = result.mode_vectors.reshape(result.n_modes, -1)
    q = vec @ (sqm * (positions - result.atoms.positions)).ravel()
    qdot = vec @ (sqm * velocities).ravel()
    return q, qdot


def test_sampling_mode_energies_and_momenta(tri):
    atoms, result, _ = tri
    temperature = 300.0
    kT = units.kB * temperature
    pos, vel = normal_mode_sampling(result, temperature, seed=7)
    q, qdot = mode_coordinates(result, pos, vel)
    omega = result.angular_frequencies
    np.testing.assert_allclose(0.5 * qdot**2 + 0.5 * omega**2 * q**2, kT, rtol=1e-9)
    # the calculator's own energy checks the ω units: E − E⁰ = Σ ½ω²Q²
    probe = atoms.copy()
    probe.calc = atoms.calc
    probe.positions = pos
    assert probe.get_potential_energy() == pytest.approx(0.5 * np.sum(omega**2 * q**2), rel=1e-9)
    m = result.atoms.get_masses()
    np.testing.assert_allclose(m @ vel, 0, atol=1e-14)
    com = m @ pos / m.sum()
    np.testing.assert_allclose(np.sum(m[:, None] * np.cross(pos - com, vel), axis=0), 0, atol=1e-14)
    np.testing.assert_allclose(com, m @ result.atoms.positions / m.sum(), atol=1e-12)
    # only the small rigid rotation that cancels vibrational angular momentum is extra
    probe.set_velocities(vel)
    assert probe.get_kinetic_energy() == pytest.approx(0.5 * np.sum(qdot**2), rel=2e-2)


def test_sampling_reproducible_and_zero_temperature(tri):
    _, result, _ = tri
    a = normal_mode_sampling(result, 200.0, seed=11)
    b = normal_mode_sampling(result, 200.0, seed=11)
    c = normal_mode_sampling(result, 200.0, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])
    pos, vel = normal_mode_sampling(result, 0.0, seed=1)
    np.testing.assert_allclose(pos, result.atoms.positions, atol=0)
    np.testing.assert_allclose(vel, 0, atol=0)
    with pytest.raises(ValueError):
        normal_mode_sampling(result, -5.0)


def test_sampled_nve_time_average_is_thermal(tri):
    """⟨Q_k²⟩ over an NVE run equals k_BT/ω_k² (harmonic: exactly, up to finite time)."""
    atoms, result, _ = tri
    temperature, kT = 100.0, units.kB * 100.0
    pos, vel = normal_mode_sampling(result, temperature, seed=3)
    md_atoms = result.atoms.copy()
    md_atoms.calc = atoms.calc
    md_atoms.positions = pos
    md_atoms.set_velocities(vel)
    dyn = VelocityVerlet(md_atoms, timestep=0.05 * units.fs)
    q2 = []
    for _ in range(4000):  # 200 fs: 20–25 periods of the slowest mode
        dyn.run(1)
        q, _ = mode_coordinates(result, md_atoms.positions, md_atoms.get_velocities())
        q2.append(q**2)
    ratio = np.mean(q2, axis=0) * result.angular_frequencies**2 / kT
    np.testing.assert_allclose(ratio, 1.0, atol=0.03)


# --------------------------------------------------------------------------------------
# The shipped water model
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def water():
    calc = ase_mpnn.MPNNCalculator(WATER_MODEL, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no imaginary / badly separated modes
        result = harmonic_analysis(molecule("H2O"), calc)
    return calc, result


def test_water_model_frequencies_and_spectra(water):
    _, result = water
    # the shipped model reproduces its reference, B3LYP/aug-cc-pVDZ (1618.7, 3793.6, 3903.4)
    b3lyp = load_reference(Path(__file__).resolve().parents[1] / "data" / "water_b3lyp_harmonic.json")
    np.testing.assert_allclose(result.frequencies_cm1, b3lyp["frequencies_cm1"], atol=5)
    assert result.max_force < 1e-4 and not result.imaginary.any()
    assert np.all(result.ir_intensities_km_mol > 0)
    assert np.all(result.raman_activities > 0)
    bend, sym, asym = result.depolarization_ratios
    assert bend < 0.75 and sym < 0.75
    # the antisymmetric stretch (B2) has a traceless α': fully depolarized
    assert asym == pytest.approx(0.75, abs=1e-6)
    # B3LYP at its own minimum: isotropic α 1.4038 Å³
    assert np.trace(result.static_polarizability) / 3 == pytest.approx(1.4038, abs=2e-3)


def test_water_model_matches_ase_infrared(water, tmp_path):
    calc, result = water
    atoms = result.atoms.copy()
    atoms.calc = calc
    ir = Infrared(atoms, name=str(tmp_path / "ir"), delta=result.delta)
    ir.run()
    freqs = ir.get_frequencies()
    order = np.argsort(np.abs(freqs))[6:]
    km_mol = ir.intensities[order] * ir.intensity_prefactor("km/mol")[0]
    np.testing.assert_allclose(result.frequencies_cm1, freqs[order].real, rtol=1e-10)
    np.testing.assert_allclose(result.ir_intensities_km_mol, km_mol, rtol=1e-10)
    # own dipole derivatives reproduce Infrared's km/mol (to its 42.255 factor)
    np.testing.assert_allclose(ir_intensity_km_mol(result.dipole_derivatives), km_mol, rtol=1e-4)


def test_water_model_sampling(water):
    calc, result = water
    temperature = 50.0
    kT = units.kB * temperature
    pos, vel = normal_mode_sampling(result, temperature, seed=5)
    q, qdot = mode_coordinates(result, pos, vel)
    omega = result.angular_frequencies
    # FD Hessian modes mix slightly with rotations; the sampler cleans that up
    np.testing.assert_allclose(0.5 * qdot**2 + 0.5 * omega**2 * q**2, kT, rtol=1e-3)
    m = result.atoms.get_masses()
    np.testing.assert_allclose(m @ vel, 0, atol=1e-14)
    com = m @ pos / m.sum()
    np.testing.assert_allclose(np.sum(m[:, None] * np.cross(pos - com, vel), axis=0), 0, atol=1e-14)
    np.testing.assert_allclose(com, m @ result.atoms.positions / m.sum(), atol=1e-12)
    # The potential energy equals the harmonic one up to anharmonic (cubic) terms, which
    # vanish like the amplitude, √T: the deviation must go to zero as T → 0 at that rate
    # (measured: −2.1 % at 50 K, −0.67 % at 5 K, −0.22 % at 0.5 K for painn_water).
    deviation = {}
    for t in (5.0, 0.5):
        pos, vel = normal_mode_sampling(result, t, seed=5)
        q, _ = mode_coordinates(result, pos, vel)
        atoms = result.atoms.copy()
        atoms.calc = calc
        atoms.positions = pos
        harmonic = 0.5 * np.sum(omega**2 * q**2)
        deviation[t] = (atoms.get_potential_energy() - result.energy) / harmonic - 1
    assert abs(deviation[0.5]) < 5e-3
    assert deviation[5.0] / deviation[0.5] == pytest.approx(np.sqrt(10), rel=0.2)


def test_harmonic_report(tmp_path):
    path = tmp_path / "water.xyz"
    molecule("H2O").write(path)
    report = harmonic_report(path, WATER_MODEL)
    assert "max force" in report and "Angles (°): H1–O0–H2" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    freqs = [float(r.split("|")[2]) for r in rows]
    np.testing.assert_allclose(freqs, [1618.7, 3793.6, 3903.4], atol=5)  # B3LYP/aug-cc-pVDZ


def test_old_import_paths_still_work():
    """harmonic.py was split by job; the names it used to hold still import from it."""
    from ase_mpnn.spectra import harmonic

    assert harmonic.normal_mode_sampling is normal_mode_sampling
    assert harmonic.harmonic_report is harmonic_report and harmonic.load_reference is load_reference
    assert harmonic.ir_intensity_km_mol is ir_intensity_km_mol and harmonic.raman_invariants is raman_invariants

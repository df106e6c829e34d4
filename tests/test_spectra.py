"""ase_mpnn.spectra: correlation functions, IR/Raman/VDOS line shapes in physical units,
quantum corrections, trajectory averaging, file input, peaks and plots.

Synthetic series with known answers: sinusoids (harmonic modes with thermal amplitudes),
noise-driven resonators, and a tiny harmonic-diatomic MD run written by MDRecorder.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.constants as sc
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.md.verlet import VelocityVerlet
from ase.vibrations.infrared import Infrared
from scipy.integrate import trapezoid
from scipy.optimize import brentq
from scipy.signal import lfilter

from ase_mpnn.md.recorder import MDRecorder
from ase_mpnn.spectra.peaks import critical_significance
from ase_mpnn.spectra import (
    POLARIZABILITY_TO_A3,
    WATER_GAS_FUNDAMENTALS,
    MissingSeriesError,
    Spectrum,
    absorption_multiplier,
    autocorrelation,
    average_spectra,
    correction_factor,
    find_peaks,
    ir_spectrum,
    ir_spectrum_from_file,
    lag_window,
    load_series,
    peak_table,
    plot_spectra,
    power_spectrum,
    power_spectrum_from_file,
    raman_spectrum,
    raman_spectrum_from_file,
    reduced_frequency,
    spectral_density,
)
from ase_mpnn.spectra.correlation import C_CM_PER_FS

DT = 0.5  # fs
DEBYE = 1e-21 / sc.c  # C·m
#: 1 (D/Å)²/amu as N_A μ'²/(12 ε0 c²) in km/mol, from scipy.constants alone.
KM_MOL_PER_D2_A2_AMU = sc.N_A * (DEBYE / 1e-10) ** 2 / sc.atomic_mass / (12 * sc.epsilon_0 * sc.c**2) / 1e3


def omega_per_fs(wavenumber_cm1: float) -> float:
    return 2 * np.pi * C_CM_PER_FS * wavenumber_cm1


def thermal_mode(rng, n: int, wavenumber: float, temperature_K: float) -> np.ndarray:
    """Mass-weighted coordinate Q(t) in √amu·Å of an equal-energy sinusoid: ⟨Q²⟩ = k_BT/ω²."""
    omega = omega_per_fs(wavenumber)  # rad/fs
    kT = units.kB * temperature_K * units.fs**2  # amu Å² / fs²
    return np.sqrt(2 * kT) / omega * np.cos(omega * DT * np.arange(n) + rng.uniform(0, 2 * np.pi))


def resonator_noise(rng, n: int, wavenumber: float, damping_fs: float, shape=()) -> np.ndarray:
    """Noise through a two-pole resonator: a randomly driven, damped oscillation."""
    r = np.exp(-DT / damping_fs)
    theta = omega_per_fs(wavenumber) * DT
    a = [1.0, -2 * r * np.cos(theta), r * r]
    noise = rng.normal(size=(n + 2000, *shape))
    return lfilter([1.0], a, noise, axis=0)[2000:]


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


# 1. Correlation functions and windows ----------------------------------------------------

def test_autocorrelation_matches_direct_sum_without_wraparound():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2, 3))
    acf = autocorrelation(x, 50)
    flat = x.reshape(300, -1)
    direct = [np.sum(flat[: 300 - k] * flat[k:]) / (300 - k) for k in range(51)]
    np.testing.assert_allclose(acf, direct, rtol=1e-10, atol=1e-12)
    # A circular (unpadded) FFT would wrap the last frame onto the first at lag 1.
    spikes = np.zeros(64)
    spikes[[0, -1]] = 1.0
    acf = autocorrelation(spikes)
    assert abs(acf[1]) < 1e-12 and acf[-1] == pytest.approx(1.0)
    assert acf[0] == pytest.approx(2 / 64)  # mean square, not normalised to 1


@pytest.mark.parametrize("window", ["hann", "gaussian", "cos2", None])
def test_spectral_density_area_is_variance(window):
    rng = np.random.default_rng(1)
    x = resonator_noise(rng, 5000, 1200.0, 300.0, (3,)) + 4.0
    w, s = spectral_density(x, DT, max_lag_fs=600.0, window=window)
    assert lag_window(window, 10)[0] == 1.0
    assert trapezoid(s, w) == pytest.approx(x.var(axis=0).sum(), rel=1e-10)
    assert w[-1] == pytest.approx(1 / (2 * C_CM_PER_FS * DT))  # up to Nyquist
    assert w[1] - w[0] < 1 / (C_CM_PER_FS * 600.0) / 4  # zero padding refines the grid


def test_windows_are_distinct_and_taper_to_zero():
    wins = {name: lag_window(name, 101) for name in ("hann", "gaussian", "cos2", "none")}
    for a, wa in wins.items():
        for b, wb in wins.items():
            if a < b:
                assert np.max(np.abs(wa - wb)) > 0.05, (a, b)
    assert wins["hann"][-1] == pytest.approx(0, abs=1e-15) and wins["cos2"][-1] == pytest.approx(0, abs=1e-15)
    assert np.all(wins["cos2"][:75] == 1.0) and wins["cos2"][80] < 1.0
    assert wins["gaussian"][-1] == pytest.approx(np.exp(-4.5))


def test_input_validation():
    x = np.zeros((100, 3))
    x[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        spectral_density(x, DT)
    with pytest.raises(ValueError, match="frames"):
        spectral_density(np.ones((3, 3)), DT)
    with pytest.raises(ValueError, match="positive"):
        spectral_density(np.ones((100, 3)), 0.0)
    with pytest.raises(ValueError, match="frames"):
        spectral_density(np.ones((100, 3)), DT, max_lag_fs=100.0)
    with pytest.raises(ValueError, match=r"\(n_frames, 3\)"):
        ir_spectrum(np.ones((100, 2)), DT)
    with pytest.raises(ValueError, match="window"):
        spectral_density(np.ones((100, 3)), DT, window="blackman")


# 2. IR ---------------------------------------------------------------------------------

def test_ir_peaks_and_band_ratios():
    rng = np.random.default_rng(2)
    n, modes = 2**16, [(1600.0, 1.0), (3650.0, 0.4), (3750.0, 0.7)]
    t = DT * np.arange(n)
    mu = np.zeros((n, 3))
    for nu, a in modes:
        e = rng.normal(size=3)
        mu += a * np.outer(np.cos(omega_per_fs(nu) * t + rng.uniform(0, 2 * np.pi)), e / np.linalg.norm(e))
    ir = ir_spectrum(mu, DT, max_lag_fs=4000.0)
    wavenumber, intensity = ir  # unpacks as (wavenumber_cm1, intensity)
    assert wavenumber is ir.wavenumber and intensity is ir.intensity
    spacing = ir.wavenumber[1] - ir.wavenumber[0]
    peaks = find_peaks(ir, 0.05, lo=1000, hi=4200)  # Hann side lobes are ~3 %
    assert [round(p.position) for p in peaks] == [1600, 3650, 3750]
    for p, (nu, _) in zip(peaks, modes):
        assert abs(p.position - nu) < 0.1 * spacing
    areas = [ir.integrate(1550, 1650), ir.integrate(3600, 3700), ir.integrate(3700, 3800)]
    expected = [a**2 * nu**2 for nu, a in modes]
    np.testing.assert_allclose(np.array(areas) / areas[0], np.array(expected) / expected[0], rtol=0.01)


def test_km_per_mol_constant_matches_ase():
    assert KM_MOL_PER_D2_A2_AMU == pytest.approx(42.255, rel=2e-4)
    assert Infrared.intensity_prefactor(None, "km/mol")[0] == pytest.approx(KM_MOL_PER_D2_A2_AMU, rel=2e-4)


@pytest.mark.parametrize("temperature_K", [100.0, 500.0])
def test_ir_absolute_intensity_of_thermal_harmonic_modes(temperature_K):
    rng = np.random.default_rng(3)
    n = 2**15
    # μ' in (D/Å)/√amu → e/√amu (μ = μ' Q with Q in √amu·Å gives e·Å).
    modes = [(1600.0, 1.3), (3700.0, 0.5)]
    mu = np.zeros((n, 3))
    for nu, d in modes:
        e = rng.normal(size=3)
        mu_prime = d * DEBYE / sc.e / 1e-10 * e / np.linalg.norm(e)
        mu += np.outer(thermal_mode(rng, n, nu, temperature_K), mu_prime)
    mu += 0.7  # a permanent dipole: removed with the mean
    ir = ir_spectrum(mu, DT, temperature_K=temperature_K, max_lag_fs=2000.0)
    assert ir.units == "cm²"
    for nu, d in modes:
        assert ir.km_per_mol(nu - 200, nu + 200) == pytest.approx(d**2 * KM_MOL_PER_D2_A2_AMU, rel=0.01)
    # ε = N_A σ / (1000 ln 10) gives the same band intensity.
    eps = ir_spectrum(mu, DT, temperature_K=temperature_K, units="epsilon", max_lag_fs=2000.0)
    np.testing.assert_allclose(eps.intensity, ir.intensity * sc.N_A / (1000 * np.log(10)), rtol=1e-10)
    assert eps.km_per_mol(1400, 1800) == pytest.approx(ir.km_per_mol(1400, 1800), rel=1e-10)
    with pytest.raises(ValueError, match="temperature"):
        ir_spectrum(mu, DT, units="cm2")


# 3. Quantum corrections ------------------------------------------------------------------

def test_reduced_frequency_constant():
    # hc/k_B = 1.438777 cm·K: 3000 cm⁻¹ at 300 K is x ≈ 14.39 (not ~5e-5).
    assert reduced_frequency(3000.0, 300.0) == pytest.approx(14.3878, abs=1e-3)


@pytest.mark.parametrize("kind", ["harmonic", "standard", "schofield"])
def test_correction_factors(kind):
    x = np.array([1e-8, 0.3, 2.0, 14.39])
    np.testing.assert_allclose(correction_factor(1e-9, kind), 1.0, atol=1e-8)  # classical limit
    np.testing.assert_allclose(correction_factor(x, kind) / correction_factor(-x, kind), np.exp(x), rtol=1e-10)
    f = absorption_multiplier(np.array([0.0, 1e-3, 1600.0, 3700.0]), 300.0, kind)
    assert f[0] == 1.0 and f[1] == pytest.approx(1.0, abs=1e-5)
    x3700 = reduced_frequency(3700.0, 300.0)
    expected = {"harmonic": 1.0, "standard": 2 / x3700 * np.tanh(x3700 / 2),
                "schofield": 2 / x3700 * np.sinh(x3700 / 2)}[kind]
    assert f[3] == pytest.approx(expected, rel=1e-10)


def test_quantum_correction_in_ir_and_kubo_rule():
    rng = np.random.default_rng(4)
    mu = resonator_noise(rng, 4000, 1600.0, 200.0, (3,))
    classical = ir_spectrum(mu, DT, temperature_K=300.0, max_lag_fs=500.0)
    harmonic = ir_spectrum(mu, DT, temperature_K=300.0, max_lag_fs=500.0, quantum_correction="harmonic")
    standard = ir_spectrum(mu, DT, temperature_K=300.0, max_lag_fs=500.0, quantum_correction="standard")
    np.testing.assert_allclose(harmonic.intensity, classical.intensity, rtol=1e-12)
    x = reduced_frequency(classical.wavenumber[1:], 300.0)
    np.testing.assert_allclose(standard.intensity[1:], classical.intensity[1:] * 2 / x * np.tanh(x / 2), rtol=1e-10)
    with pytest.raises(ValueError, match="Kubo"):
        ir_spectrum(mu, DT, temperature_K=300.0, quantum_correction="standard", kubo=True)
    kubo = ir_spectrum(mu, DT, temperature_K=300.0, max_lag_fs=500.0, kubo=True)
    np.testing.assert_allclose(kubo.intensity, classical.intensity)


# 4. Raman ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,tensor,rho", [
    ("isotropic", np.eye(3), 0.0),
    ("rod", np.diag([1.0, 0.0, 0.0]), 1 / 3),
    ("traceless", np.diag([1.0, -1.0, 0.0]), 3 / 4),
])
def test_depolarization_ratio_is_rotation_invariant(name, tensor, rho):
    rng = np.random.default_rng(5)
    n = 4096
    q = resonator_noise(rng, n, 1500.0, 300.0)
    alpha0 = np.diag([9.0, 10.0, 11.0]) / POLARIZABILITY_TO_A3
    for _ in range(3):
        rot = random_rotation(rng)
        alpha = alpha0 + q[:, None, None] * (rot @ tensor @ rot.T) * 0.05
        spectra = raman_spectrum(alpha, DT, max_lag_fs=500.0)
        band = spectra.depolarization.crop(1300, 1700).intensity
        assert np.all(np.isfinite(band))
        np.testing.assert_allclose(band, rho, atol=1e-9)
    par = spectra.parallel.intensity
    np.testing.assert_allclose(par, spectra.isotropic.intensity + 2 / 15 * spectra.anisotropic.intensity)
    np.testing.assert_allclose(spectra.perpendicular.intensity, spectra.anisotropic.intensity / 10)


def test_raman_units_and_scattering_factor():
    rng = np.random.default_rng(6)
    n, temperature, laser = 2**15, 300.0, 19435.0  # 514.5 nm
    modes = [800.0, 3000.0]
    coord = [thermal_mode(rng, n, nu, temperature) for nu in modes]
    alpha = sum(np.multiply.outer(c, np.eye(3)) for c in coord)  # same α' for both modes, Å³
    a3 = raman_spectrum(alpha, DT, input_units="A3", max_lag_fs=2000.0)
    native = raman_spectrum(alpha / POLARIZABILITY_TO_A3, DT, max_lag_fs=2000.0)
    top = a3.isotropic.intensity.max()
    np.testing.assert_allclose(native.isotropic.intensity, a3.isotropic.intensity, rtol=1e-9, atol=1e-9 * top)
    # An antisymmetric part (absent in non-resonant Raman) is dropped.
    skew = rng.normal(size=alpha.shape)
    skewed = raman_spectrum(alpha + skew - np.swapaxes(skew, 1, 2), DT, input_units="A3", max_lag_fs=2000.0)
    np.testing.assert_allclose(skewed.anisotropic.intensity, a3.anisotropic.intensity, rtol=1e-9, atol=1e-9 * top)
    # Classical ω² line shape: equal areas (α'² k_BT) for equal α'.
    lines = [a3.isotropic.integrate(nu - 150, nu + 150) for nu in modes]
    assert lines[1] / lines[0] == pytest.approx(1.0, rel=0.01)
    # Scattering: ratio of the harmonic Stokes intensities (ν̃0−ν̃)⁴ / (ν̃ (1 − e^{−x})).
    weighted = raman_spectrum(alpha, DT, input_units="A3", max_lag_fs=2000.0,
                              laser_wavenumber_cm1=laser, temperature_K=temperature)
    got = [weighted.isotropic.integrate(nu - 150, nu + 150) for nu in modes]
    stokes = [(laser - nu) ** 4 / nu / -np.expm1(-reduced_frequency(nu, temperature)) for nu in modes]
    assert got[1] / got[0] == pytest.approx(stokes[1] / stokes[0], rel=0.02)
    with pytest.raises(ValueError, match="both"):
        raman_spectrum(alpha, DT, laser_wavenumber_cm1=laser)


# 5. Averaging and VDOS --------------------------------------------------------------------

def test_average_over_trajectories_standard_error():
    rng = np.random.default_rng(7)
    trajs = [resonator_noise(rng, 3000 + 50 * i, 1600.0, 150.0, (3,)) for i in range(32)]
    single = ir_spectrum(trajs[0], DT, max_lag_fs=400.0)
    assert single.std_error is None
    many = ir_spectrum(trajs, DT, max_lag_fs=400.0)
    band = (many.wavenumber > 1400) & (many.wavenumber < 1800)
    # SEM of 4 trajectories, averaged over the 8 disjoint groups, against that of all 32:
    # √(32/4) = 2.83, times c4(4)/c4(32) = 0.93 for the bias of a sample std.
    few = np.mean([ir_spectrum(trajs[i : i + 4], DT, max_lag_fs=400.0).std_error[band].mean()
                   for i in range(0, 32, 4)])
    assert 2.2 < few / many.std_error[band].mean() < 3.2
    by_hand = average_spectra([ir_spectrum(t, DT, max_lag_fs=400.0) for t in trajs])
    np.testing.assert_allclose(by_hand.intensity, many.intensity, rtol=1e-12)
    np.testing.assert_allclose(by_hand.std_error, many.std_error, rtol=1e-12)
    with pytest.raises(ValueError, match="grid"):
        average_spectra([single, ir_spectrum(trajs[1], DT, max_lag_fs=300.0)])


def test_power_spectrum_counts_degrees_of_freedom():
    rng = np.random.default_rng(8)
    n, n_atoms, temperature = 2**14, 4, 300.0
    masses = np.array([1.008, 15.999, 12.011, 1.008])
    kT = units.kB * temperature * units.fs**2
    t = DT * np.arange(n)
    nu = rng.uniform(300, 3500, size=(n_atoms, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(n_atoms, 3))
    amp = np.sqrt(2 * kT / masses)[:, None]
    arg = omega_per_fs(nu)[None] * t[:, None, None] + phase[None]
    velocities = amp * np.cos(arg)
    positions = amp / omega_per_fs(nu) * np.sin(arg) + rng.normal(size=(n_atoms, 3))
    vdos = power_spectrum(velocities, masses, DT, temperature_K=temperature, max_lag_fs=2000.0)
    assert vdos.integrate() == pytest.approx(3 * n_atoms, rel=0.01)
    from_positions = power_spectrum(positions, masses, DT, temperature_K=temperature, max_lag_fs=2000.0,
                                    input_kind="positions")
    assert from_positions.integrate() == pytest.approx(3 * n_atoms, rel=0.01)
    peak = max(find_peaks(vdos, 0.05), key=lambda p: p.height)
    assert np.min(np.abs(nu - peak.position)) < 2.0


# 6. Files --------------------------------------------------------------------------------

class Diatomic(Calculator):
    """Harmonic C–O bond with a fixed-charge dipole and a bond-length-dependent,
    rod-like polarizability."""

    implemented_properties = ("energy", "free_energy", "forces", "dipole", "polarizability")

    def __init__(self, k: float, r0: float, **kwargs):
        super().__init__(**kwargs)
        self.k, self.r0 = k, r0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[1] - self.atoms.positions[0]
        r = np.linalg.norm(d)
        u = d / r
        f = -self.k * (r - self.r0) * u
        alpha = (2.0 + 0.8 * (r - self.r0)) * np.outer(u, u) + 1.0 * (np.eye(3) - np.outer(u, u))
        self.results = {"energy": 0.5 * self.k * (r - self.r0) ** 2, "free_energy": 0.5 * self.k * (r - self.r0) ** 2,
                        "forces": np.array([-f, f]), "dipole": 0.3 * d, "polarizability": alpha / 14.399645}


@pytest.fixture(scope="module")
def diatomic_record(tmp_path_factory):
    """3000 Verlet steps of a 2000 cm⁻¹ C–O oscillator written by MDRecorder; returns
    (path, exact vibrational wavenumber of the Verlet trajectory)."""
    atoms = Atoms("CO", positions=[[0.0, 0.0, 0.0], [1.18, 0.0, 0.0]])
    mu = 12.011 * 15.999 / (12.011 + 15.999)
    omega = omega_per_fs(2000.0)
    atoms.calc = Diatomic(k=mu * omega**2 / units.fs**2, r0=1.13)
    dyn = VelocityVerlet(atoms, timestep=DT * units.fs)
    path = tmp_path_factory.mktemp("spectra") / "co.h5"
    with MDRecorder(atoms, path, dynamics=dyn):
        dyn.run(3000)
    verlet_omega = 2 / DT * np.arcsin(omega * DT / 2)  # frequency of the discrete trajectory
    return path, verlet_omega / (2 * np.pi * C_CM_PER_FS)


def test_spectra_from_recorder_file(diatomic_record):
    path, nu = diatomic_record
    series = load_series(path)
    assert series["dt_fs"] == pytest.approx(DT) and not series["kubo"] and series["n_beads"] == 1
    assert series["dipole"].shape == (3001, 3) and series["velocities"].shape == (3001, 2, 3)
    ir = ir_spectrum_from_file(path, max_lag_fs=1000.0)
    assert find_peaks(ir, 0.05)[0].position == pytest.approx(nu, abs=0.5)
    assert ir.metadata["files"] == [str(path)]
    raman = raman_spectrum_from_file(path, max_lag_fs=1000.0)
    assert find_peaks(raman.parallel, 0.05)[0].position == pytest.approx(nu, abs=0.5)
    # Bond along x, rod-like modulation ∂α/∂r ∝ ûûᵀ: ρ = 1/3 at the band.
    assert raman.depolarization.crop(nu - 20, nu + 20).intensity == pytest.approx(1 / 3, abs=1e-6)
    vdos = power_spectrum_from_file(path, max_lag_fs=1000.0)
    assert find_peaks(vdos, 0.05)[0].position == pytest.approx(nu, abs=0.5)


def write_h5(path, time, **datasets):
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("time", data=time).attrs["units"] = "fs"
        for name, data in datasets.items():
            f.create_dataset(name, data=data).attrs["units"] = {"dipole": "e·Å", "masses": "amu"}.get(name, "")



def test_recorder_layout_errors_and_rpmd_flag(tmp_path):
    rng = np.random.default_rng(9)
    dipole = resonator_noise(rng, 200, 1600.0, 100.0, (3,))
    time = DT * np.arange(200)
    bad_time = time.copy()
    bad_time[120:] += DT  # a skipped frame
    write_h5(tmp_path / "gap.h5", bad_time, dipole=dipole, masses=np.ones(2))
    with pytest.raises(ValueError, match="uniformly"):
        load_series(tmp_path / "gap.h5")
    write_h5(tmp_path / "ok.h5", time, dipole=dipole, masses=np.ones(2))
    with pytest.raises(MissingSeriesError, match="polarizability"):
        raman_spectrum_from_file(tmp_path / "ok.h5")
    with h5py.File(tmp_path / "ok.h5", "a") as f:
        f.attrs["kind"], f.attrs["n_beads"] = "rpmd", 8
    series = load_series(tmp_path / "ok.h5")
    assert series["kubo"] and series["n_beads"] == 8
    with pytest.raises(ValueError, match="Kubo"):
        ir_spectrum_from_file(tmp_path / "ok.h5", temperature_K=300.0, quantum_correction="schofield")


def test_npz_files_are_refused_with_what_to_do(tmp_path):
    """The example's old home-made npz record is retired: the example writes the RPMD recorder's HDF5."""
    np.savez(tmp_path / "rpmd.npz", step=np.arange(10), centroid_positions=np.zeros((10, 3, 3)))
    with pytest.raises(ValueError, match=r"not a trajectory.*water_rpmd.py.*HDF5 record"):
        load_series(tmp_path / "rpmd.npz")


# 7. Peaks, tables, plots, CSV ---------------------------------------------------------------

def lorentzian(w, center, gamma, area):
    return area * gamma / np.pi / ((w - center) ** 2 + gamma**2)


def lorentzian_area(lo, hi, center, gamma, area):
    return area / np.pi * (np.arctan((hi - center) / gamma) - np.arctan((lo - center) / gamma))


def test_find_peaks_two_lorentzians():
    w = np.arange(0.0, 4000.0, 0.5)
    bands = [(1600.3, 10.0, 50.0), (1700.7, 15.0, 120.0)]
    def total(x):
        return sum(lorentzian(x, *b) for b in bands)

    spectrum = Spectrum(w, total(w), units="a.u.")
    peaks = find_peaks(spectrum, 0.05)
    assert len(peaks) == 2
    for p, (center, gamma, area) in zip(peaks, bands):
        assert p.position == pytest.approx(center, abs=0.05)  # better than the 0.5 grid
        top = p.position
        exact = (brentq(lambda x, top=top: total(x) - total(top) / 2, top, top + 5 * gamma)
                 - brentq(lambda x, top=top: total(x) - total(top) / 2, top - 5 * gamma, top))
        assert p.fwhm == pytest.approx(exact, rel=1e-3)
        assert p.fwhm == pytest.approx(2 * gamma, rel=0.05)  # widened by the other band's tail
        expected = sum(lorentzian_area(p.left, p.right, *b) for b in bands)
        assert p.area == pytest.approx(expected, rel=1e-4)
        assert p.area == pytest.approx(area, rel=0.15)
    assert peaks[0].right == peaks[1].left  # split at the minimum between them
    table = peak_table(peaks, WATER_GAS_FUNDAMENTALS)
    # 1600.3 matches the bend (+5.3); the stretches have no peak within 250 cm⁻¹: own rows.
    rows = table.splitlines()
    assert len(rows) == 8 and "bend ν2" in rows[2] and "+5.3" in rows[2]
    assert "asym. stretch ν3" in rows[5] and rows[5].startswith("| – | no band found")
    assert "no measured noise" in rows[7]  # a synthetic spectrum: no trajectories, no noise test


def band_and_noise(rng, n, center, width, dt=DT):
    """A damped resonator driven by white noise (one band) plus white measurement noise."""
    omega, gamma = omega_per_fs(center), omega_per_fs(width)
    x, v, out = 0.0, 0.0, np.empty(n)
    kicks = rng.normal(size=n) * np.sqrt(2 * gamma * dt)
    for k in range(n):
        v += (-omega**2 * x - gamma * v) * dt + kicks[k]
        x += v * dt
        out[k] = x
    return out / out.std() + 0.05 * rng.normal(size=n)


def test_peaks_above_the_noise_only():
    """One stochastic band in noise, 8 trajectories: the band is found, the noise wiggles are not."""
    rng = np.random.default_rng(5)
    trajs = [band_and_noise(rng, 2**13, 1650.0, 30.0)[:, None] * np.ones(3) for _ in range(8)]
    ir = ir_spectrum(trajs, DT, max_lag_fs=500.0)
    everything = find_peaks(ir, 1e-4, lo=200, hi=4000, min_significance=None)
    assert len(everything) >= 5  # the noise floor has wiggles
    significant = find_peaks(ir, 1e-4, lo=200, hi=4000)
    assert significant[0].position == pytest.approx(1650.0, abs=10.0) and significant[0].significance > 5
    assert all(p.significance >= critical_significance(2.0, 8) for p in significant)
    assert critical_significance(3.0, 8) == pytest.approx(4.5, abs=0.1)
    assert critical_significance(2.0, 4) == pytest.approx(3.3, abs=0.1)
    assert critical_significance(3.0, 10**6) == pytest.approx(3.0, abs=0.01)
    assert len(significant) <= 2 < len(everything)  # the band, at most one wiggle at the 2σ level
    flagged = find_peaks(ir, 1e-4, lo=200, hi=4000, drop_below_noise=False)
    assert len(flagged) == len(everything)
    assert [p.position for p in flagged if p.above_noise] == [p.position for p in significant]
    # A reference next to a noise peak is not matched to it.
    noise_peak = next(p for p in flagged if not p.above_noise
                      and all(abs(p.position - q.position) > 300 for q in significant))
    table = peak_table(flagged, {"fake": noise_peak.position + 1.0})
    assert "noise?" in table and "no band above the noise within ±250 cm⁻¹ | | | | | fake" in table
    table = peak_table(significant, {"band": 1650.0, "elsewhere": 1000.0}, units=ir.units)
    assert "no band above the noise within ±250 cm⁻¹ | | | | | elsewhere" in table
    assert f"height ({ir.units})" in table and "S/N" in table


def test_white_noise_has_few_peaks_above_the_noise():
    """Averaged pure noise: a few wiggles pass the 2σ default, none the 3σ level."""
    rng = np.random.default_rng(7)
    spectra = [ir_spectrum([rng.normal(size=(2**13, 3)) for _ in range(4)], DT, max_lag_fs=500.0)
               for _ in range(20)]
    assert sum(len(find_peaks(s, 0.02, lo=200, hi=4000)) for s in spectra) <= 3
    assert sum(len(find_peaks(s, 0.02, lo=200, hi=4000, min_significance=3.0)) for s in spectra) == 0
    assert sum(len(find_peaks(s, 0.02, lo=200, hi=4000, min_significance=None)) for s in spectra) > 20
    untested = find_peaks(ir_spectrum(rng.normal(size=(2**13, 3)), DT, max_lag_fs=500.0), 0.02, lo=200, hi=4000)
    assert untested and "one trajectory, no measured noise" in peak_table(untested)


def test_plot_and_csv(tmp_path):
    rng = np.random.default_rng(11)
    spectra = ir_spectrum([resonator_noise(rng, 2000, 1600.0, 200.0, (3,)) for _ in range(3)], DT,
                          max_lag_fs=300.0)
    png = plot_spectra([spectra], tmp_path / "ir.png", reference=WATER_GAS_FUNDAMENTALS, normalize="common")
    assert (tmp_path / "ir.png").stat().st_size > 1000 and png.endswith("ir.png")
    csv_path = spectra.to_csv(tmp_path / "ir.csv")
    table = np.loadtxt(csv_path, delimiter=",", skiprows=5)
    np.testing.assert_allclose(table[:, 1], spectra.intensity)
    np.testing.assert_allclose(table[:, 2], spectra.std_error)

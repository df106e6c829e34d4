"""Classical IR spectrum of water with the shipped model against the model's own harmonic analysis.

A low-temperature NVE trajectory starts with exactly k_B T in every normal mode
(``normal_mode_sampling``), so its dipole spectrum has band areas equal to the thermal
average without the exponential scatter of mode energies. The spectrum is read back from
the MD recorder's HDF5 file, as users do. Expected:

* the harmonic analysis is the physical limit δ → 0 (δ = 1e-3 Å; a smooth surface gives
  the same numbers at 1e-2 Å within 1 cm⁻¹, checked here too);
* peak positions within 5 cm⁻¹ of the frequencies that velocity Verlet gives a harmonic
  oscillator, ω_VV = (2/dt) arcsin(ω dt/2) ≈ ω (1 + ω²dt²/24): +0.25 cm⁻¹ at 1610 and
  +3.3 cm⁻¹ at 3900 cm⁻¹ with dt = 0.2 fs. At 20 K the anharmonic shifts are below
  1 cm⁻¹ (k_BT = 14 cm⁻¹; ≈ −2 x k_BT/ħω with x ≈ 80 cm⁻¹ for an O–H stretch);
* band intensities (absolute, km/mol) within 5 % of ``ase.vibrations.Infrared``'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet

from ase_mpnn import MPNNCalculator
from ase_mpnn.md import MDRecorder
from ase_mpnn.spectra import find_peaks, ir_spectrum_from_file
from ase_mpnn.md.normal_modes import normal_mode_sampling
from ase_mpnn.spectra.harmonic import harmonic_analysis

WATER_MODEL = Path(__file__).resolve().parents[1] / "models" / "painn_water.pt"
TEMPERATURE_K = 20.0
TIMESTEP_FS = 0.2


@pytest.fixture(scope="module")
def water_nve(tmp_path_factory):
    calc = MPNNCalculator(WATER_MODEL, dtype=torch.float64)
    harmonic = harmonic_analysis(molecule("H2O"), calc, fmax=1e-5, delta=1e-3)
    wide = harmonic_analysis(harmonic.atoms, calc, optimize=False, delta=1e-2)
    np.testing.assert_allclose(wide.frequencies_cm1, harmonic.frequencies_cm1, atol=1.0)
    atoms = harmonic.atoms.copy()
    atoms.positions, velocities = normal_mode_sampling(harmonic, TEMPERATURE_K, seed=1)
    atoms.set_velocities(velocities)
    atoms.calc = calc
    path = tmp_path_factory.mktemp("water") / "nve.h5"
    dyn = VelocityVerlet(atoms, timestep=TIMESTEP_FS * units.fs)
    with MDRecorder(atoms, path, interval=5, dynamics=dyn, properties=("dipole",)):
        dyn.run(12000)  # 2.4 ps, a frame every 1 fs
    return harmonic, path


def test_classical_ir_peaks_and_intensities_match_harmonic_analysis(water_nve):
    harmonic, path = water_nve
    ir = ir_spectrum_from_file(path, temperature_K=TEMPERATURE_K, max_lag_fs=1200.0)
    assert ir.units.startswith("cm")
    peaks = [p for p in find_peaks(ir, lo=1000.0, hi=4500.0) if p.height > 0.01 * ir.intensity.max()]
    positions = np.sort([p.position for p in peaks])
    expected = harmonic.frequencies_cm1  # δ → 0
    omega_dt = expected * 2 * np.pi * units._c * 100 * TIMESTEP_FS * 1e-15
    verlet = expected * 2 * np.arcsin(omega_dt / 2) / omega_dt
    print(f"IR peaks {np.round(positions, 1)} cm⁻¹; harmonic δ → 0 with the Verlet shift {np.round(verlet, 1)}")
    assert len(positions) == 3, positions
    np.testing.assert_allclose(positions, verlet, atol=5.0)

    # Each band integrated between the midpoints of neighbouring harmonic frequencies.
    edges = [1000.0, 0.5 * (expected[0] + expected[1]), 0.5 * (expected[1] + expected[2]), 4500.0]
    bands = np.array([ir.km_per_mol(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])])
    print(f"bands {np.round(bands, 2)} km/mol; harmonic {np.round(harmonic.ir_intensities_km_mol, 2)}")
    np.testing.assert_allclose(bands, harmonic.ir_intensities_km_mol, rtol=0.05)
    # Nothing else in the spectrum: the three bands hold all the intensity up to 8000 cm⁻¹.
    assert ir.km_per_mol(100.0, 8000.0) == pytest.approx(bands.sum(), rel=0.02)

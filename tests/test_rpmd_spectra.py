"""RPMD spectra are Kubo-transformed: for a harmonic oscillator with a linear dipole the
β ω² formula, with no quantum correction, gives the exact quantum IR band.

At βħω = 8 the quantum ⟨x²⟩ is (x/2)·coth(x/2) = 4.0 times the classical k_BT/(mω²),
yet the absorption band of a harmonic mode does not depend on temperature or ħ:
∫σ dν̃ = N_A μ'²/(12 ε₀ c²). RPMD reproduces it because the centroid of a harmonic ring
polymer samples ⟨x_c²⟩ = k_BT/(mω²) exactly; a spectrum built from single beads (whose
spread is the quantum one) would be ≈ 4× too strong, and a "standard" quantum correction
applied on top of Kubo data ≈ 4× too weak. Measured (seed 11): band 1.056 × exact; other
seeds gave 1.01–1.03.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from ase_mpnn.md import RingPolymerMD, RingPolymerRecorder, read_record
from ase_mpnn.md.rpmd import HBAR, normal_mode_frequencies
from ase_mpnn.spectra import ir_spectrum_from_file
from ase_mpnn.spectra.intensities import ir_intensity_km_mol

TEMPERATURE_K = 300.0
OMEGA = 8 * units.kB * TEMPERATURE_K / HBAR  # βħω = 8 (≈ 1668 cm⁻¹)
MASS = 1.0  # amu
CHARGE = 0.5  # e: dipole = CHARGE × displacement


class HarmonicDipole(Calculator):
    """One atom in an isotropic harmonic well, dipole linear in the displacement."""

    implemented_properties = ["energy", "forces", "dipole"]

    def evaluate(self, atoms: Atoms) -> dict[str, np.ndarray | float]:
        x = atoms.positions[0]
        k = MASS * OMEGA**2
        return {"energy": 0.5 * k * x @ x, "forces": -k * x[None, :], "dipole": CHARGE * x}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = self.evaluate(self.atoms)

    def predict(self, structures, properties=None):  # RingPolymerMD's batched path
        return [self.evaluate(atoms) for atoms in structures]


@pytest.fixture(scope="module")
def rpmd_record(tmp_path_factory):
    atoms = Atoms("H", positions=[[0.0, 0.0, 0.0]], masses=[MASS])
    md = RingPolymerMD(atoms, HarmonicDipole(), n_beads=8, temperature_K=TEMPERATURE_K, timestep=1.0 * units.fs,
                       thermostat="pile_l", tau=100 * units.fs, seed=11, observables=("dipole",))
    path = tmp_path_factory.mktemp("rpmd") / "harmonic.h5"
    with RingPolymerRecorder(md, path, interval=2, beads=True):
        md.run(40000)  # 40 ps, a frame every 2 fs
    return path


def test_rpmd_ir_band_of_a_harmonic_oscillator_is_the_exact_quantum_one(rpmd_record):
    ir = ir_spectrum_from_file(rpmd_record, temperature_K=TEMPERATURE_K, max_lag_fs=2000.0)
    assert ir.metadata["kubo"]
    # Three degenerate modes, μ' = q/√m each (e/√amu).
    expected_km_mol = ir_intensity_km_mol(np.eye(3) * CHARGE / np.sqrt(MASS)).sum()
    assert ir.km_per_mol() == pytest.approx(expected_km_mol, rel=0.10)
    nu = OMEGA / (2 * np.pi * units._c * 100 / units.second)  # cm⁻¹
    peak = ir.wavenumber[np.argmax(ir.intensity)]
    # The physical force enters as velocity-Verlet kicks: +ν(ωdt)²/24 ≈ +7 cm⁻¹.
    assert peak == pytest.approx(nu * (1 + (OMEGA * units.fs) ** 2 / 24), abs=15.0)

    # The beads themselves carry the quantum spread: ⟨x_j²⟩/⟨x_c²⟩ = Σ_k ω²/(ω² + ω_k²) over
    # the ring's normal modes (3.58 for 8 beads, → 4.0 for many). A spectrum from one
    # bead's dipole would be that much too strong (this is why the recorder averages beads).
    data = read_record(rpmd_record)
    spread = data["bead_positions"][:, 0, 0].var(axis=0).sum() / data["positions"][:, 0].var(axis=0).sum()
    omega_k = normal_mode_frequencies(8, 8 * units.kB * TEMPERATURE_K / HBAR)
    assert spread == pytest.approx(np.sum(OMEGA**2 / (OMEGA**2 + omega_k**2)), rel=0.08)

    with pytest.raises(ValueError, match="Kubo"):
        ir_spectrum_from_file(rpmd_record, temperature_K=TEMPERATURE_K, quantum_correction="standard")

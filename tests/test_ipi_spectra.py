"""Spectra of an i-PI ring-polymer run: a real i-PI server, our ``IPIClient`` with dipole and
polarizability extras on, read through the run's input file.

The system is two independent harmonic wells (one H atom each, βħω = 8 at 300 K, ≈ 1668
cm⁻¹), dipole Q·Σ(r_i − c_i), polarizability linear in the displacements: its RPMD IR band
intensity is exactly N_A μ'²/(12 ε₀ c²) per mode (the centroid of a harmonic ring polymer
samples the classical distribution), so both the i-PI run and our own ``RingPolymerMD`` with
the same settings (4 beads, PILE-L, τ = 10 fs, 1 fs, 2 ps, a frame every 2 fs; i-PI's ``fixcom``
off, since our driver does not hold the centre of mass) must give it.
A fast Python calculator instead of a network keeps i-PI's 2000 steps at ≈ 13 s.

What is exact: the reader's bead-averaged dipole and polarizability equal the calculator's at
the bead positions i-PI wrote, to the 9 digits i-PI prints (units and bead averaging), and
its time step is i-PI's.

What is statistical, and the tolerances: over 20 seeds of our driver (this system, 2 ps), the
band intensity scatters by 6.0 % (1σ) and the band centre (first moment over 800–2600 cm⁻¹,
broad lines: τ = 10 fs) by 15 cm⁻¹. Each run must be within 25 % (4σ) of the exact
intensity; the two independent runs within 30 % (3.5σ of their difference, σ = 8.5 %) of
each other and within 85 cm⁻¹ (4σ, σ = 21 cm⁻¹) in band centre. Measured: i-PI 0.978 and
our driver 0.999 × the exact intensity, band centres 1740 and 1750 cm⁻¹. Reading errors
would be far outside: one bead's dipole instead of the bead average is 4× the intensity
(beads move at P·T), dipoles left in e·Bohr 3.6×, a wrong time step moves the band by its
own size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

import ase_mpnn
from ase_mpnn import MPNNCalculator
from ase_mpnn.cli import main
from ase_mpnn.md import RingPolymerMD, RingPolymerRecorder
from ase_mpnn.md.ipi_client import IPIClient
from ase_mpnn.md.rpmd import HBAR
from conftest import ipi_command
from ase_mpnn.spectra import ir_spectrum_from_file, load_series, raman_spectrum_from_file
from ase_mpnn.spectra.harmonic import ir_intensity_km_mol

TEMPERATURE_K = 300.0
N_BEADS = 4
N_STEPS = 2000
TIMESTEP_FS = 1.0
STRIDE = 2
TAU_FS = 10.0
CENTRES = np.array([[8.0, 8.0, 8.0], [12.0, 11.0, 10.0]])  # Å, well apart (no interaction anyway)
MASS = 1.008  # amu, H in ASE (i-PI: 1.00794; 0.006 % is far below the statistical error)
OMEGA = 8 * units.kB * TEMPERATURE_K / HBAR
CHARGE = 0.5  # e
ALPHA0, ALPHA1 = 0.1, 0.05  # e²Å²/eV, e²Å/eV
SPECTRUM = dict(temperature_K=TEMPERATURE_K, max_lag_fs=200.0)


class TwoWells(Calculator):
    """Two atoms in isotropic harmonic wells; dipole and polarizability linear in the displacements."""

    implemented_properties = ["energy", "forces", "dipole", "polarizability"]

    @staticmethod
    def evaluate(atoms: Atoms) -> dict:
        d = atoms.positions - CENTRES
        k = MASS * OMEGA**2
        s = d.sum(axis=0)
        alpha = ALPHA0 * np.eye(3) + ALPHA1 * (np.outer(s, [1.0, 0.0, 0.0]) + np.outer([1.0, 0.0, 0.0], s))
        return {"energy": 0.5 * k * np.sum(d * d), "forces": -k * d, "dipole": CHARGE * s, "polarizability": alpha}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = self.evaluate(self.atoms)

    def predict(self, structures, properties=None):  # RingPolymerMD's batched path
        return [self.evaluate(a) for a in structures]


IPI_INPUT = """<simulation verbosity="low" sockets_prefix="{prefix}">
  <output prefix="sim">
    <properties stride="1" filename="out"> [ step, time{{picosecond}}, temperature{{kelvin}}, potential ] </properties>
    <trajectory filename="pos" stride="{stride}" format="bin"> positions </trajectory>
    <trajectory filename="xc" stride="{stride}"> x_centroid </trajectory>
    <trajectory filename="xca" stride="{stride}" format="ase"> x_centroid </trajectory>
    <trajectory filename="dipole" stride="{stride}" extra_type="dipole"> extras </trajectory>
    <trajectory filename="polarizability" stride="{stride}" extra_type="polarizability"> extras </trajectory>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>2718</seed></prng>
  <ffsocket name="wells" mode="unix" pbc="false"><address>{name}</address><timeout>60</timeout></ffsocket>
  <system>
    <initialize nbeads="{beads}">
      <file mode="xyz">init.xyz</file>
      <velocities mode="thermal" units="kelvin">{temperature}</velocities>
    </initialize>
    <forces><force forcefield="wells"/></forces>
    <motion mode="dynamics">
      <fixcom>False</fixcom>
      <dynamics mode="nvt">
        <timestep units="femtosecond">{timestep}</timestep>
        <thermostat mode="pile_l"><tau units="femtosecond">{tau}</tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units="kelvin">{temperature}</temperature></ensemble>
  </system>
</simulation>
"""


@pytest.fixture(scope="module")
def ipi_run(tmp_path_factory):
    """The i-PI run's directory (input.xml and outputs)."""
    command = ipi_command()
    run = tmp_path_factory.mktemp("ipi_rpmd")
    # Unix socket paths must stay under ~100 characters.
    socket_dir = str(run) if len(str(run)) < 60 else tempfile.mkdtemp(prefix="ipispec")
    prefix, name = os.path.join(socket_dir, "ipi_"), f"w{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with open(run / "init.xyz", "w") as f:
        f.write("2\n# CELL(abcABC): 20.0 20.0 20.0 90 90 90 positions{angstrom} cell{angstrom}\n")
        for c in CENTRES:
            f.write(f"H {c[0]:.6f} {c[1]:.6f} {c[2]:.6f}\n")
    (run / "input.xml").write_text(IPI_INPUT.format(prefix=prefix, name=name, steps=N_STEPS, beads=N_BEADS,
                                                    stride=STRIDE, timestep=TIMESTEP_FS, tau=TAU_FS,
                                                    temperature=TEMPERATURE_K))
    with open(run / "ipi.log", "w") as log:
        server = subprocess.Popen(command + ["input.xml"], cwd=run, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = IPIClient(TwoWells(), Atoms("H2", positions=CENTRES), unix=name, sockets_prefix=prefix,
                           extras=("dipole", "polarizability"), connect_timeout=60, timeout=60)
        evaluations = client.run()
        rc = server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
        if socket_dir != str(run):
            shutil.rmtree(socket_dir, ignore_errors=True)
    log = (run / "ipi.log").read_text()
    assert rc == 0 and "I-PI reports success" in log, log[-3000:]
    assert evaluations == N_BEADS * (N_STEPS + 1)
    return run


@pytest.fixture(scope="module")
def own_rpmd(tmp_path_factory):
    """The same physics with our RingPolymerMD, recorded by RingPolymerRecorder."""
    path = tmp_path_factory.mktemp("own_rpmd") / "wells.h5"
    md = RingPolymerMD(Atoms("H2", positions=CENTRES), TwoWells(), n_beads=N_BEADS, temperature_K=TEMPERATURE_K,
                       timestep=TIMESTEP_FS * units.fs, thermostat="pile_l", tau=TAU_FS * units.fs, seed=7)
    with RingPolymerRecorder(md, path, interval=STRIDE):
        md.run(N_STEPS)
    return path


def test_ipi_extras_are_read_bead_averaged_in_ase_units(ipi_run):
    series = load_series(ipi_run / "input.xml")
    assert series["format"] == "i-pi" and series["kubo"] and series["n_beads"] == N_BEADS
    assert series["dt_fs"] == pytest.approx(STRIDE * TIMESTEP_FS, rel=1e-9)  # from sim.out's time{picosecond}
    assert series["temperature_K"] == TEMPERATURE_K
    n = N_STEPS // STRIDE + 1
    assert series["time"].shape == (n,) and series["bead_positions"].shape == (n, N_BEADS, 2, 3)
    assert list(series["numbers"]) == [1, 1]
    # The extras are the calculator's values at i-PI's bead positions (bin: exact), averaged over beads.
    expected = [[TwoWells.evaluate(Atoms("H2", positions=bead)) for bead in frame]
                for frame in series["bead_positions"]]
    dipole = np.array([np.mean([e["dipole"] for e in frame], axis=0) for frame in expected])
    alpha = np.array([np.mean([e["polarizability"] for e in frame], axis=0) for frame in expected])
    np.testing.assert_allclose(series["dipole"], dipole, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(series["polarizability"], alpha, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(series["positions"], series["bead_positions"].mean(axis=1), atol=1e-12)
    # The beads are a real ring polymer: each bead's dipole spreads more than the average.
    assert np.std(CHARGE * (series["bead_positions"][:, 0] - CENTRES).sum(axis=1)) > 1.5 * np.std(series["dipole"])

    # Predicted by a model instead: on every bead, then averaged (as the extras are).
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=6.0, n_features=8, n_interactions=1).double()
    predicted = load_series(ipi_run / "input.xml", model=model, predict="always", pbc=False)
    assert predicted["sources"] == {"dipole": "model", "polarizability": "model"}
    # (The untrained model's dipole of two H atoms is 0 by symmetry; its polarizability varies.)
    assert np.ptp(predicted["polarizability"], axis=0).max() > 1e-4  # the atoms see each other (cutoff 6 Å)
    calc = MPNNCalculator(model)
    for k in (0, 10, n - 1):
        beads = calc.predict([Atoms("H2", positions=b) for b in series["bead_positions"][k]])
        for name in ("dipole", "polarizability"):
            np.testing.assert_allclose(predicted[name][k], np.mean([b[name] for b in beads], axis=0),
                                       rtol=0, atol=1e-12)

    # The same run read through its centroid trajectories (i-PI xyz in Bohr, 6 digits; i-PI's "ase" extxyz).
    text = (ipi_run / "input.xml").read_text()
    lines = text.splitlines()
    for keep, atol in (("filename=\"xc\"", 2e-4), ("filename=\"xca\"", 1e-6)):
        variant = "\n".join(line for line in lines if "<trajectory filename=\"pos" not in line
                            and ("filename=\"xc" not in line or keep in line))
        (ipi_run / "centroid.xml").write_text(variant)
        centroid = load_series(ipi_run / "centroid.xml")
        assert centroid.get("bead_positions") is None
        np.testing.assert_allclose(centroid["positions"], series["positions"], rtol=0, atol=atol)
        np.testing.assert_array_equal(centroid["dipole"], series["dipole"])


def test_ipi_rpmd_spectrum_agrees_with_our_rpmd_driver(ipi_run, own_rpmd, tmp_path, capsys):
    ipi = ir_spectrum_from_file(ipi_run / "input.xml", **SPECTRUM)
    own = ir_spectrum_from_file(own_rpmd, **SPECTRUM)
    assert ipi.metadata["kubo"] and own.metadata["kubo"]
    np.testing.assert_allclose(ipi.wavenumber, own.wavenumber)  # same frame spacing and lags
    # Exact Kubo band: 2 atoms × 3 degenerate modes, μ' = Q/√m each.
    exact = 2 * ir_intensity_km_mol(np.eye(3) * CHARGE / np.sqrt(MASS)).sum()
    a_ipi, a_own = ipi.km_per_mol(), own.km_per_mol()
    assert a_ipi == pytest.approx(exact, rel=0.25), (a_ipi, a_own, exact)
    assert a_own == pytest.approx(exact, rel=0.25), (a_ipi, a_own, exact)
    assert a_ipi == pytest.approx(a_own, rel=0.30)

    def centre(spectrum):
        band = spectrum.crop(800.0, 2600.0)
        return np.sum(band.wavenumber * band.intensity) / np.sum(band.intensity)

    assert abs(centre(ipi) - centre(own)) < 85.0, (centre(ipi), centre(own))
    raman = raman_spectrum_from_file(ipi_run / "input.xml", max_lag_fs=200.0)
    assert np.nanmax(raman.parallel.intensity) > 0

    # Kubo-transformed: no quantum correction, from the API or the command line.
    with pytest.raises(ValueError, match="Kubo"):
        ir_spectrum_from_file(ipi_run / "input.xml", quantum_correction="standard", **SPECTRUM)
    assert main(["spectrum", str(ipi_run / "input.xml"), "-o", str(tmp_path / "ipi"), "--max-lag", "200"]) == 0
    out = capsys.readouterr().out
    assert "RPMD: Kubo-transformed" in out and "temperature: 300.0 K (the records' run temperature)" in out
    assert (tmp_path / "ipi_power.csv").stat().st_size > 100  # VDOS from the centroid positions

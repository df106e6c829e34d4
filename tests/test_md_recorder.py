"""MDRecorder (HDF5/SWMR trajectory files) and the classical MD helpers.

Covers: layout, units and values of recorded frames with the trained water model, no
extra model evaluation per recorded step, reading while the writer runs (another
process) and after the writer was killed, append/restart, the Langevin temperature,
NVE energy conservation with the water model, and exact restart from a checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.md.velocitydistribution import Stationary, ZeroRotation

from ase_mpnn import MPNNCalculator
from ase_mpnn.md.classical import langevin, load_checkpoint, nve, run_md
from ase_mpnn.md.recorder import UNITS, MDRecorder, RecorderError, read_record, read_units

try:  # ASE >= 3.29; MaxwellBoltzmannDistribution is deprecated there
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms, temperature_K, *, rng=None):
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)

ROOT = Path(__file__).resolve().parents[1]
WATER_MODEL = ROOT / "models" / "painn_water.pt"
PER_FRAME = {"step", "time", "positions", "velocities", "cell", "potential_energy", "kinetic_energy", "temperature"}


def water(temperature_K: float = 300.0, seed: int = 1) -> Atoms:
    """One H2O with the trained float64 model and Maxwell–Boltzmann velocities."""
    atoms = molecule("H2O")
    atoms.calc = MPNNCalculator(WATER_MODEL, dtype=torch.float64)
    thermalize_momenta(atoms, temperature_K, rng=np.random.default_rng(seed))
    return atoms


def count_forwards(calc: MPNNCalculator) -> list[int]:
    counter = [0]
    calc.model.register_forward_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    return counter


# 1. Layout, values, cost -----------------------------------------------------------------
@pytest.mark.parametrize("interval", [1, 3])
def test_water_langevin_record_matches_calculator_without_extra_evaluations(tmp_path, interval):
    atoms = water()
    forwards = count_forwards(atoms.calc)
    dyn = langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.01, seed=0)
    path = tmp_path / "md.h5"
    steps = 30
    with MDRecorder(atoms, path, interval=interval, dynamics=dyn) as rec:
        dyn.run(steps)
        assert rec.extra_evaluations == 0
        last = dict(positions=atoms.positions.copy(), velocities=atoms.get_velocities() * units.fs)
    # The initial force call plus one per step: recording dipole and polarizability is free.
    assert forwards[0] == steps + 1

    data, unit = read_record(path), read_units(path)
    assert set(data) == PER_FRAME | {"dipole", "polarizability", "numbers", "masses", "pbc"}
    frames = steps // interval + 1
    np.testing.assert_array_equal(data["step"], np.arange(0, steps + 1, interval))
    np.testing.assert_allclose(data["time"], data["step"] * 0.5, rtol=1e-12)
    shapes = {"positions": (frames, 3, 3), "velocities": (frames, 3, 3), "cell": (frames, 3, 3),
              "dipole": (frames, 3), "polarizability": (frames, 3, 3), "potential_energy": (frames,),
              "numbers": (3,), "masses": (3,), "pbc": (3,)}
    for name, shape in shapes.items():
        assert data[name].shape == shape, name
    assert unit == {k: UNITS[k] for k in data}
    assert unit["polarizability"] == "e²Å²/eV" and unit["velocities"] == "Å/fs" and unit["dipole"] == "e·Å"
    with h5py.File(path, "r") as f:  # closed properly: a plain (non-SWMR) reader opens it
        assert f.attrs["interval"] == interval and list(f.attrs["properties"]) == ["dipole", "polarizability"]
        assert f["positions"].chunks[0] > 1 and f["positions"].maxshape[0] is None

    # Recorded values are those of a fresh calculator at the recorded positions.
    np.testing.assert_array_equal(data["positions"][-1], last["positions"])
    np.testing.assert_allclose(data["velocities"][-1], last["velocities"], rtol=1e-12)
    reference = MPNNCalculator(WATER_MODEL, dtype=torch.float64)
    frames_atoms = [Atoms(data["numbers"], positions=p) for p in data["positions"]]
    predicted = reference.predict(frames_atoms, ["energy", "dipole", "polarizability"])
    np.testing.assert_allclose(data["dipole"], [r["dipole"] for r in predicted], atol=1e-10)
    np.testing.assert_allclose(data["polarizability"], [r["polarizability"] for r in predicted], atol=1e-10)
    np.testing.assert_allclose(data["potential_energy"], [r["energy"] for r in predicted], atol=1e-8)
    masses = data["masses"][None, :, None]
    kinetic = 0.5 * (masses * (data["velocities"] / units.fs) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(data["kinetic_energy"], kinetic, rtol=1e-10)
    np.testing.assert_allclose(data["temperature"], 2 * kinetic / (9 * units.kB), rtol=1e-10)


def test_without_prefetch_each_frame_costs_one_evaluation(tmp_path):
    atoms = water()
    atoms.get_forces()  # a cache without dipole: the first frame must compute it
    forwards = count_forwards(atoms.calc)
    dyn = nve(atoms, timestep_fs=0.5)
    with MDRecorder(atoms, tmp_path / "a.h5", dynamics=dyn, prefetch=False) as rec:
        dyn.run(5)
    assert rec.extra_evaluations == 6 and forwards[0] == 5 + 6
    # A recorder attached to a calculator with cached results: only the first frame pays.
    atoms = water()
    atoms.get_forces()
    forwards = count_forwards(atoms.calc)
    dyn = nve(atoms, timestep_fs=0.5)
    with MDRecorder(atoms, tmp_path / "b.h5", dynamics=dyn) as rec:
        dyn.run(5)
    assert rec.extra_evaluations == 1 and forwards[0] == 5 + 1
    assert atoms.calc.also_compute == () and atoms.calc._requests == []  # close() withdrew its request


def test_plain_observer_counts_steps_and_skips_unavailable_properties(tmp_path):
    atoms = harmonic_atoms(4)
    dyn = nve(atoms, timestep_fs=1.0)
    rec = MDRecorder(atoms, tmp_path / "h.h5", interval=2, timestep_fs=1.0)
    dyn.attach(rec, interval=2)
    dyn.run(6)
    rec.close()
    data = read_record(tmp_path / "h.h5")
    assert "dipole" not in data and "polarizability" not in data  # the calculator has none
    np.testing.assert_array_equal(data["step"], [0, 2, 4, 6])
    np.testing.assert_allclose(data["time"], [0.0, 2.0, 4.0, 6.0])
    with pytest.raises(RecorderError, match="closed"):
        rec()


# 2. Readable during the run and after a kill -----------------------------------------
READER = """
import json, sys
from ase_mpnn.md.recorder import read_record
for line in sys.stdin:
    data = read_record(line.strip())
    print(json.dumps({"frames": len(data["step"]), "last": int(data["step"][-1]),
                      "positions": data["positions"][-1].tolist()}), flush=True)
"""

WRITER = """
import os, sys, numpy as np, torch
from ase.build import molecule
from ase_mpnn import MPNNCalculator
from ase_mpnn.md.classical import langevin
from ase_mpnn.md.recorder import MDRecorder
path, steps = sys.argv[1], int(sys.argv[2])
atoms = molecule("H2O")
atoms.calc = MPNNCalculator({model!r}, dtype=torch.float64)
dyn = langevin(atoms, 300, 0.5, 0.01, seed=0)
rec = MDRecorder(atoms, path, dynamics=dyn, flush_interval_s=float(sys.argv[3]))
dyn.run(steps)
print("done", flush=True)
os._exit(1)  # no close(), no atexit: as a crash
"""


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}


def test_second_process_reads_while_writer_is_open(tmp_path):
    atoms = water()
    dyn = langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.01, seed=0)
    path = tmp_path / "live.h5"
    reader = subprocess.Popen([sys.executable, "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=_env())
    try:
        with MDRecorder(atoms, path, dynamics=dyn, flush_interval_s=0):
            dyn.run(10)
            reader.stdin.write(f"{path}\n")
            reader.stdin.flush()
            seen = json.loads(reader.stdout.readline())
            assert seen["frames"] == 11 and seen["last"] == 10
            np.testing.assert_array_equal(seen["positions"], atoms.positions)
            dyn.run(5)  # the writer goes on while the reader holds nothing open
            reader.stdin.write(f"{path}\n")
            reader.stdin.flush()
            assert json.loads(reader.stdout.readline())["frames"] == 16
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    assert reader.returncode == 0


def test_file_of_killed_writer_is_readable_and_can_be_continued(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER.format(model=str(WATER_MODEL))))
    # os._exit after 7 steps: all 8 flushed frames are there.
    path = tmp_path / "exit.h5"
    done = subprocess.run([sys.executable, str(script), str(path), "7", "0"], env=_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1 and "done" in done.stdout, done.stderr
    with pytest.raises(OSError):  # HDF5 marks the file "open for write"; SWMR readers still read it
        h5py.File(path, "r")
    data = read_record(path)
    np.testing.assert_array_equal(data["step"], np.arange(8))
    assert all(np.isfinite(data[k]).all() for k in ("positions", "dipole", "polarizability", "potential_energy"))

    # SIGKILL in the middle of a long run: at least the frames seen before the kill.
    path = tmp_path / "kill.h5"
    writer = subprocess.Popen([sys.executable, str(script), str(path), "1000000", "0.2"], env=_env())
    try:
        seen, deadline = 0, time.monotonic() + 120
        while seen < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
            if path.exists():
                try:
                    seen = len(read_record(path)["step"])
                except (OSError, KeyError):
                    pass  # not yet created
        assert seen >= 40
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    data = read_record(path)
    n = len(data["step"])
    assert n >= seen
    np.testing.assert_array_equal(data["step"], np.arange(n))
    assert all(len(data[k]) == n for k in PER_FRAME | {"dipole", "polarizability"})
    assert np.isfinite(data["positions"]).all() and np.isfinite(data["polarizability"]).all()

    # Continue the killed file: it is rewritten once, then appended to.
    atoms = molecule("H2O")
    atoms.positions = data["positions"][-1]
    atoms.set_velocities(data["velocities"][-1] / units.fs)
    atoms.calc = MPNNCalculator(WATER_MODEL, dtype=torch.float64)
    dyn = langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.01, seed=5)
    with MDRecorder(atoms, path, dynamics=dyn, mode="a") as rec:
        assert rec.n_frames == n
        dyn.nsteps = rec.last_step
        dyn.run(3)
    with h5py.File(path, "r") as f:  # closed cleanly this time
        np.testing.assert_array_equal(f["step"][:], np.arange(n + 3))


def test_frames_are_buffered_in_blocks_and_flushed_before_checkpoints(tmp_path):
    def run(path, flush_interval_s, steps=7):
        atoms = water(seed=3)
        dyn = langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.01, seed=2)
        rec = MDRecorder(atoms, path, dynamics=dyn, flush_interval_s=flush_interval_s)
        dyn.run(steps)
        return rec, dyn

    unbuffered, _ = run(tmp_path / "every.h5", 0)
    unbuffered.close()
    rec, dyn = run(tmp_path / "block.h5", 3600)
    assert rec.n_frames == 8 and len(read_record(tmp_path / "block.h5")["step"]) == 0  # all in memory
    rec.flush()
    assert len(read_record(tmp_path / "block.h5")["step"]) == 8
    rec.close()
    every, block = read_record(tmp_path / "every.h5"), read_record(tmp_path / "block.h5")
    for name in every:  # buffered frames are copies, not views of the moving atoms
        np.testing.assert_array_equal(block[name], every[name], err_msg=name)

    # run_md flushes before each checkpoint: a crash leaves every frame up to it on disk.
    atoms = water(seed=3)
    dyn = langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.01, seed=2)
    rec = MDRecorder(atoms, tmp_path / "crash.h5", interval=5, dynamics=dyn, flush_interval_s=3600)

    def crash() -> None:
        raise Crash

    dyn.attach(crash, interval=-75)
    with pytest.raises(Crash):
        run_md(dyn, 120, rec, checkpoint_path=tmp_path / "crash.npz", checkpoint_interval=20, progress=False)
    on_disk = read_record(tmp_path / "crash.h5")["step"]  # before close(): what a kill would leave
    np.testing.assert_array_equal(on_disk, np.arange(0, 61, 5))
    assert rec.n_frames == 16  # frames 65-75 still buffered
    rec.close()


# 3. Append -------------------------------------------------------------------------------
def test_append_mode_continues_the_file_and_checks_it(tmp_path):
    path = tmp_path / "append.h5"
    atoms = water()
    dyn = nve(atoms, timestep_fs=0.5)
    with MDRecorder(atoms, path, interval=2, dynamics=dyn):
        dyn.run(6)
    first = read_record(path)
    with MDRecorder(atoms, path, interval=2, mode="a") as rec:  # a new dynamics object continues
        assert (rec.n_frames, rec.last_step) == (4, 6)
        dyn2 = nve(atoms, timestep_fs=0.5)
        dyn2.nsteps = rec.last_step
        rec.attach(dyn2)
        dyn2.run(4)
    data = read_record(path)
    np.testing.assert_array_equal(data["step"], [0, 2, 4, 6, 8, 10])
    np.testing.assert_allclose(data["time"], data["step"] * 0.5)
    np.testing.assert_array_equal(data["positions"][:4], first["positions"])
    np.testing.assert_array_equal(data["positions"][-1], atoms.positions)

    with MDRecorder(atoms, path, mode="a") as rec:  # steps must increase
        dyn3 = nve(atoms, timestep_fs=0.5)
        rec.attach(dyn3)
        with pytest.raises(RecorderError, match="not after"):
            dyn3.run(1)
        assert rec.truncate(after_step=4) == 3 and rec.last_step == 4
    assert len(read_record(path)["step"]) == 3
    with pytest.raises(RecorderError, match="different system"):
        MDRecorder(molecule("H2O2", calculator=atoms.calc), path, mode="a")
    with pytest.raises(RecorderError, match="properties"):
        MDRecorder(atoms, path, mode="a", properties=("dipole",))
    with pytest.raises(ValueError, match="mode"):
        MDRecorder(atoms, path, mode="r+")


@pytest.mark.skipif(sys.platform == "win32", reason="the writer lock uses fcntl")
def test_one_writer_per_file(tmp_path):
    # HDF5 drops its lock in SWMR mode: without the recorder's own lock a second writer
    # could truncate the file under the first one.
    atoms = harmonic_atoms(2)
    path = tmp_path / "locked.h5"
    with MDRecorder(atoms, path, timestep_fs=1.0) as rec:
        rec()
        for mode in ("w", "a"):
            with pytest.raises(RecorderError, match="another recorder"):
                MDRecorder(atoms, path, mode=mode)
        rec()
    with MDRecorder(atoms, path, mode="a", timestep_fs=1.0) as rec:  # free again after close()
        rec()
    np.testing.assert_array_equal(read_record(path)["step"], [0, 1, 2])


# 4. Langevin temperature -----------------------------------------------------------------
class Harmonic(Calculator):
    """Independent isotropic harmonic wells, E = k/2 Σ |r - r0|², analytic and cheap."""

    implemented_properties = ("energy", "forces")

    def __init__(self, k: float, origin: np.ndarray):
        super().__init__()
        self.k, self.origin = k, origin

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions - self.origin
        self.results = {"energy": 0.5 * self.k * float((d * d).sum()), "forces": -self.k * d}


def harmonic_atoms(n: int, mass: float = 1.0, omega_per_fs: float = 0.1) -> Atoms:
    origin = np.zeros((n, 3))
    atoms = Atoms(f"H{n}", positions=origin.copy(), masses=[mass] * n)
    atoms.calc = Harmonic(mass * (omega_per_fs / units.fs) ** 2, origin)
    return atoms


def test_langevin_samples_the_target_temperature(tmp_path):
    # 400 atoms, ω·dt = 0.1 (ASE's Langevin is then within ~0.4 % of exact), friction
    # 0.05/fs: ~5,000 independent samples of 1,200 degrees of freedom each.
    n, target = 400, 300.0
    atoms = harmonic_atoms(n)
    dyn = langevin(atoms, temperature_K=target, timestep_fs=1.0, friction_per_fs=0.05, seed=3)
    with MDRecorder(atoms, tmp_path / "nvt.h5", interval=5, dynamics=dyn):
        dyn.run(6000)
    data = read_record(tmp_path / "nvt.h5")
    equilibrated = data["step"] >= 500  # 25 friction times
    kinetic_T = data["temperature"][equilibrated].mean()
    # Configurational temperature: <k|r - r0|²> = 3 kB T per atom.
    configurational_T = 2 * data["potential_energy"][equilibrated].mean() / (3 * n * units.kB)
    assert abs(kinetic_T / target - 1) < 0.02, kinetic_T
    assert abs(configurational_T / target - 1) < 0.02, configurational_T
    assert not dyn.fix_com


# 5. NVE energy conservation ----------------------------------------------------------------
def test_nve_water_conserves_energy(tmp_path):
    atoms = water(temperature_K=300.0, seed=2)
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = nve(atoms, timestep_fs=0.25)
    with MDRecorder(atoms, tmp_path / "nve.h5", interval=10, dynamics=dyn, properties=()):
        dyn.run(8000)  # 2 ps
    data = read_record(tmp_path / "nve.h5")
    total = (data["potential_energy"] + data["kinetic_energy"]) / len(atoms)  # eV/atom
    t_ps = data["time"] / 1000.0
    drift = np.polyfit(t_ps, total, 1)[0] * 1000.0  # meV/atom/ps
    deviation = np.abs(total - total[0]).max() * 1000.0  # meV/atom
    print(f"NVE drift {drift:.4f} meV/atom/ps, max deviation {deviation:.4f} meV/atom")
    assert t_ps[-1] == pytest.approx(2.0)
    assert data["kinetic_energy"].std() > 0.01  # it does vibrate: energy flows between terms
    # Velocity Verlet's bounded O(dt²) error: 0.1-0.7 meV/atom at 0.25 fs (it shrinks
    # ~4x per halved step, so there is no non-conservative part to speak of).
    assert abs(drift) < 1.0, drift
    assert deviation < 1.0, deviation


# 6. Exact restart --------------------------------------------------------------------------
class Crash(Exception):
    pass


def test_run_md_restart_reproduces_the_uninterrupted_trajectory(tmp_path):
    steps, interval = 120, 5

    def start(seed: int) -> tuple[Atoms, object]:
        atoms = water(seed=4)
        return atoms, langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.02, seed=seed)

    atoms, dyn = start(seed=7)
    with MDRecorder(atoms, tmp_path / "ref.h5", interval=interval) as rec:
        run_md(dyn, steps, rec, checkpoint_path=tmp_path / "ref.npz", checkpoint_interval=20, progress=False)
    reference = read_record(tmp_path / "ref.h5")

    # Crash at step 75: the last checkpoint is step 60, frames 65-75 are in the file.
    atoms, dyn = start(seed=7)
    ckpt = tmp_path / "run.npz"

    def crash() -> None:
        raise Crash

    with MDRecorder(atoms, tmp_path / "run.h5", interval=interval, dynamics=dyn) as rec:
        dyn.attach(crash, interval=-75)  # after the recorder: frame 75 is written first
        with pytest.raises(Crash):
            run_md(dyn, steps, rec, checkpoint_path=ckpt, checkpoint_interval=20, progress=False)
    assert read_record(tmp_path / "run.h5")["step"][-1] == 75
    assert np.load(ckpt)["step"] == 60

    # Restart in a fresh "process": another seed, the initial geometry; all comes from the checkpoint.
    atoms, dyn = start(seed=12345)
    with MDRecorder(atoms, tmp_path / "run.h5", interval=interval, mode="a") as rec:
        run_md(dyn, steps, rec, checkpoint_path=ckpt, checkpoint_interval=20, progress=False)
    restarted = read_record(tmp_path / "run.h5")
    np.testing.assert_array_equal(restarted["step"], reference["step"])
    for name in ("positions", "velocities", "dipole", "potential_energy"):
        np.testing.assert_allclose(restarted[name], reference[name], rtol=0, atol=1e-9, err_msg=name)
    assert dyn.nsteps == steps and load_checkpoint(ckpt, dyn) == steps
    # A completed run is not run again.
    run_md(dyn, steps, checkpoint_path=ckpt, progress=False)
    assert dyn.nsteps == steps

"""RingPolymerRecorder and run_rpmd: what an RPMD record holds, and restarts that repeat the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule

from ase_mpnn import MPNNCalculator
from ase_mpnn.md import (
    RecorderError,
    RingPolymerMD,
    RingPolymerRecorder,
    read_attributes,
    read_record,
    run_rpmd,
)
from ase_mpnn.md.record_file import UNITS, read_units

WATER_MODEL = Path(__file__).resolve().parents[1] / "models" / "painn_water.pt"


@pytest.fixture(scope="module")
def calc() -> MPNNCalculator:
    return MPNNCalculator(WATER_MODEL, dtype=torch.float64)


def water_rpmd(calc, n_beads: int = 4, seed: int = 3, thermostat: str | None = "pile_l") -> RingPolymerMD:
    return RingPolymerMD(molecule("H2O"), calc, n_beads=n_beads, temperature_K=300, timestep=0.5 * units.fs,
                         thermostat=thermostat, tau=20 * units.fs, seed=seed)


def test_frames_hold_the_run_s_observables(tmp_path, calc):
    md = water_rpmd(calc)
    expected: dict[str, list] = {k: [] for k in ("positions", "velocities", "kinetic_energy", "dipole",
                                                 "polarizability", "conserved_energy", "bead_positions")}

    def watch() -> None:
        expected["positions"].append(md.centroid_positions)
        expected["velocities"].append(md.centroid_atoms().get_velocities() * units.fs)
        expected["kinetic_energy"].append(md.centroid_virial_kinetic_energy)
        expected["dipole"].append(md.dipole)
        expected["polarizability"].append(md.polarizability)
        expected["conserved_energy"].append(md.conserved_energy)
        expected["bead_positions"].append(md.bead_positions)

    path = tmp_path / "rpmd.h5"
    with RingPolymerRecorder(md, path, interval=3, beads=True, flush_interval_s=0):
        md.attach(watch, interval=3)
        md.run(12)
    data = read_record(path)
    np.testing.assert_array_equal(data["step"], [0, 3, 6, 9, 12])
    np.testing.assert_allclose(data["time"], data["step"] * 0.5)
    for name, values in expected.items():
        np.testing.assert_allclose(data[name], np.array(values), rtol=1e-12, atol=1e-14, err_msg=name)
    assert data["bead_positions"].shape == (5, 4, 3, 3)
    attrs = read_attributes(path)
    assert (attrs["kind"], attrs["n_beads"], attrs["thermostat"], attrs["timestep_fs"]) == ("rpmd", 4, "pile_l", 0.5)
    assert read_units(path) == {k: UNITS[k] for k in data}
    np.testing.assert_array_equal(data["masses"], molecule("H2O").get_masses())


def test_run_rpmd_restart_reproduces_the_uninterrupted_record(tmp_path, calc):
    steps = 60
    reference = tmp_path / "ref.h5"
    md = water_rpmd(calc)
    with RingPolymerRecorder(md, reference, interval=5) as rec:
        run_rpmd(md, steps, rec, checkpoint_path=tmp_path / "ref.npz", checkpoint_interval=20, progress=False)

    class Crash(Exception):
        pass

    def crash() -> None:
        if md.nsteps == 35:
            raise Crash

    path, checkpoint = tmp_path / "run.h5", tmp_path / "run.npz"
    md = water_rpmd(calc)
    rec = RingPolymerRecorder(md, path, interval=5, flush_interval_s=3600)
    md.attach(crash)
    with pytest.raises(Crash):
        run_rpmd(md, steps, rec, checkpoint_path=checkpoint, checkpoint_interval=20, progress=False)
    # What a kill leaves: frames up to the checkpoint at step 20 are on disk before close().
    np.testing.assert_array_equal(read_record(path)["step"], [0, 5, 10, 15, 20])
    rec.close()  # writes 25-35, which the restart must drop
    assert read_record(path)["step"][-1] == 35

    md = RingPolymerMD.from_checkpoint(checkpoint, calc)
    assert md.nsteps == 20
    with RingPolymerRecorder(md, path, interval=5, mode="a") as rec:
        run_rpmd(md, steps, rec, checkpoint_path=checkpoint, checkpoint_interval=20, progress=False)
    ref, run = read_record(reference), read_record(path)
    assert set(ref) == set(run)
    for name in ref:
        np.testing.assert_array_equal(run[name], ref[name], err_msg=name)

    with pytest.raises(RecorderError, match="beads"):
        RingPolymerRecorder(water_rpmd(calc, n_beads=2), path, mode="a")
    with pytest.raises(ValueError, match="interval"):
        RingPolymerRecorder(water_rpmd(calc), tmp_path / "x.h5", interval=0)

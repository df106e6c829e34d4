"""Spectra from trajectories written by other means than our recorder: ASE ``.traj`` and
extxyz files, dipoles and polarizabilities predicted on the fly, periodic unwrapping,
and the errors for bad input. (i-PI runs: ``tests/test_ipi_spectra.py``.)

One Langevin run of a water molecule (small float64 PaiNN) is written three ways at
once: ``MDRecorder``, ASE's ``trajectory=`` and an extxyz frame per step. All three hold
the calculator's dipole and polarizability of the same force call.
"""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import Trajectory

import ase_mpnn
from ase_mpnn import MPNNCalculator
from ase_mpnn.cli import main
from ase_mpnn.md import MDRecorder, langevin
from ase_mpnn.spectra import (
    MissingSeriesError,
    ir_spectrum_from_file,
    load_series,
    power_spectrum_from_file,
    raman_spectrum_from_file,
)
from ase_mpnn.spectra import prediction as predict_module
from ase_mpnn.spectra.prediction import predict_series
from ase_mpnn.spectra.trajectories import MAX_UNWRAP_STEP, UnwrapError, unwrap_positions

DT_FS = 0.5
N_STEPS = 400
SPECTRUM = dict(temperature_K=300.0, max_lag_fs=50.0)


def small_model():
    torch.manual_seed(0)
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=4.0, n_features=16, n_interactions=2, n_rbf=8)
    return model.to(torch.float64)


def water() -> Atoms:
    return Atoms("OH2", positions=[[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.05, -0.77, -0.45]])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 200 fs Langevin run recorded three ways; also the model file and a copy of the
    trajectory without dipoles or polarizabilities (positions and momenta only)."""
    d = tmp_path_factory.mktemp("three_ways")
    ase_mpnn.save_model(small_model(), d / "model.pt")
    atoms = water()
    atoms.calc = MPNNCalculator(d / "model.pt", dtype=torch.float64)
    dyn = langevin(atoms, 300.0, DT_FS, 0.01, seed=1, trajectory=str(d / "md.traj"))
    with MDRecorder(atoms, d / "md.h5", dynamics=dyn):  # also makes the force calls compute dipole/polarizability
        dyn.attach(lambda: ase.io.write(d / "md.extxyz", atoms, append=True), interval=1)
        dyn.run(N_STEPS)
    with Trajectory(d / "md.traj") as traj, Trajectory(d / "plain.traj", "w") as plain:
        plain.set_description(traj.description)  # as ASE's dynamics write it: with the time step
        for frame in traj:
            frame.calc = None  # an MD run whose calculator gave no dipoles
            plain.write(frame)
    return d


def test_recorder_traj_and_extxyz_give_the_same_spectra(run):
    recorder = load_series(run / "md.h5")
    traj = load_series(run / "md.traj")  # time step and interval from the trajectory's description
    extxyz = load_series(run / "md.extxyz", dt_fs=DT_FS)
    assert traj["dt_fs"] == pytest.approx(DT_FS, rel=1e-12) and traj["temperature_K"] == 300.0
    assert len(recorder["time"]) == len(traj["time"]) == len(extxyz["time"]) == N_STEPS + 1
    for other in (traj, extxyz):
        assert other["sources"] == {"dipole": "file", "polarizability": "file"}
        np.testing.assert_array_equal(other["dipole"], recorder["dipole"])  # extxyz keeps them in full (repr)
        np.testing.assert_array_equal(other["polarizability"], recorder["polarizability"])
    # Positions and momenta: exact in .traj, 8 decimals in extxyz.
    np.testing.assert_array_equal(traj["positions"], recorder["positions"])
    np.testing.assert_allclose(traj["velocities"], recorder["velocities"], rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(extxyz["velocities"], recorder["velocities"], atol=1e-8)

    files = [run / "md.h5", run / "md.traj", run / "md.extxyz"]
    dts = [None, None, DT_FS]
    ir = [ir_spectrum_from_file(f, dt_fs=dt, **SPECTRUM) for f, dt in zip(files, dts)]
    raman = [raman_spectrum_from_file(f, dt_fs=dt, max_lag_fs=50.0) for f, dt in zip(files, dts)]
    power = [power_spectrum_from_file(f, dt_fs=dt, **SPECTRUM) for f, dt in zip(files, dts)]
    for k in (1, 2):
        np.testing.assert_allclose(ir[k].intensity, ir[0].intensity, rtol=1e-12, atol=0)
        for a, b in zip(raman[k].as_list(), raman[0].as_list()):
            np.testing.assert_allclose(a.intensity, b.intensity, rtol=1e-12, atol=0)
        np.testing.assert_allclose(power[k].intensity, power[0].intensity, rtol=1e-6,
                                   atol=1e-9 * power[0].intensity.max())
    assert ir[0].intensity.max() > 0 and ir[1].metadata["files"] == [str(run / "md.traj")]


def test_a_trajectory_without_dipoles_and_a_model_equals_the_recorded_one(run, monkeypatch, capsys):
    recorder = load_series(run / "md.h5")
    with pytest.raises(MissingSeriesError, match="model"):
        ir_spectrum_from_file(run / "plain.traj")
    predicted = load_series(run / "plain.traj", model=run / "model.pt", dtype="float64",
                            cache_dir=run / "cache")
    assert predicted["sources"] == {"dipole": "model", "polarizability": "model"}
    np.testing.assert_allclose(predicted["dipole"], recorder["dipole"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(predicted["polarizability"], recorder["polarizability"], rtol=0, atol=1e-12)
    ir = ir_spectrum_from_file(run / "plain.traj", model=run / "model.pt", dtype="float64", **SPECTRUM)
    np.testing.assert_allclose(ir.intensity, ir_spectrum_from_file(run / "md.h5", **SPECTRUM).intensity,
                               rtol=1e-9, atol=0)
    assert ir.metadata["sources"] == [{"dipole": "model", "polarizability": None}]

    # The cache serves a second spectrum without predicting again.
    def no_model_calls(*args, **kwargs):
        raise AssertionError("predicted again despite the cache")

    monkeypatch.setattr(predict_module, "_evaluate", no_model_calls)
    again = load_series(run / "plain.traj", model=run / "model.pt", dtype="float64", cache_dir=run / "cache")
    np.testing.assert_array_equal(again["dipole"], predicted["dipole"])
    # ... but not another model (float32 is another model: other numbers).
    with pytest.raises(AssertionError, match="despite the cache"):
        load_series(run / "plain.traj", model=run / "model.pt", dtype="float32", cache_dir=run / "cache")
    monkeypatch.undo()

    # Mixed sources: recorded dipoles stay, missing ones are predicted; --predict always replaces.
    mixed = ir_spectrum_from_file([run / "md.h5", run / "plain.traj"], model=run / "model.pt", dtype="float64",
                                  **SPECTRUM)
    assert mixed.metadata["sources"] == [{"dipole": "file", "polarizability": "file"},
                                         {"dipole": "model", "polarizability": None}]
    assert mixed.metadata["n_trajectories"] == 2
    always = load_series(run / "md.h5", model=run / "model.pt", predict="always", properties=("dipole",))
    assert always["sources"]["dipole"] == "model"  # float32: close to, not equal to, the recorded one
    np.testing.assert_allclose(always["dipole"], recorder["dipole"], atol=1e-5)

    # The command line: an extxyz without dipoles (positions to 8 decimals) and --model.
    plain = ase.io.read(run / "md.extxyz", ":")
    for frame in plain:
        frame.calc = None
    ase.io.write(run / "plain.extxyz", plain)
    assert main(["spectrum", str(run / "plain.extxyz"), "--ir", "--raman", "--model", str(run / "model.pt"),
                 "--dt", str(DT_FS), "--dtype", "float64", "--max-lag", "50", "--temperature", "300",
                 "-o", str(run / "cli" / "plain"), "--no-progress"]) == 0
    assert "dipole and polarizability of" in capsys.readouterr().out
    assert main(["spectrum", str(run / "md.h5"), "--ir", "--raman", "--max-lag", "50", "--temperature", "300",
                 "-o", str(run / "cli" / "recorded")]) == 0
    for name in ("ir", "raman"):
        a = np.loadtxt(run / "cli" / f"plain_{name}.csv", delimiter=",", comments="#", skiprows=5)
        b = np.loadtxt(run / "cli" / f"recorded_{name}.csv", delimiter=",", comments="#", skiprows=5)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9 * np.abs(b).max())


def periodic_frames(n_frames: int = 40) -> tuple[Atoms, np.ndarray]:
    """A periodic box of two water molecules: 20 fs of Langevin MD at 0.5 fs, plus a uniform drift
    of the whole box by 0.15 Å per frame (6 Å in all), so that atoms cross the cell faces."""
    box = Atoms("OH2OH2", cell=[5.5, 5.8, 6.1], pbc=True,
                positions=[[1.0, 1.0, 1.1], [1.0, 1.8, 0.5], [1.1, 0.2, 0.6],
                           [3.5, 3.0, 3.3], [3.9, 3.7, 2.8], [2.7, 3.3, 3.8]])
    box.calc = MPNNCalculator(small_model())
    dyn = langevin(box, 300.0, DT_FS, 0.01, seed=3)
    frames = []
    for _ in range(n_frames):
        dyn.run(1)
        frames.append(box.positions.copy())
    drift = np.array([0.15, 0.11, -0.07]) * np.arange(n_frames)[:, None, None]
    return box, np.array(frames) + drift


def test_wrapped_and_unwrapped_positions_give_the_same_dipoles(tmp_path):
    box, positions = periodic_frames()
    ase_mpnn.save_model(small_model(), tmp_path / "model.pt")
    for name, wrap in (("unwrapped", False), ("wrapped", True)):
        frames = []
        for p in positions:
            atoms = Atoms(box.numbers, positions=p, cell=box.cell, pbc=True)
            if wrap:
                atoms.wrap()
            frames.append(atoms)
        ase.io.write(tmp_path / f"{name}.extxyz", frames)
    wrapped_raw = np.array([a.positions for a in ase.io.read(tmp_path / "wrapped.extxyz", ":")])
    assert np.abs(wrapped_raw - positions).max() > 5.0  # atoms did cross the faces
    options = dict(dt_fs=DT_FS, model=tmp_path / "model.pt", dtype="float64")
    unwrapped = load_series(tmp_path / "unwrapped.extxyz", **options)
    wrapped = load_series(tmp_path / "wrapped.extxyz", **options)
    np.testing.assert_allclose(wrapped["positions"], unwrapped["positions"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(wrapped["dipole"], unwrapped["dipole"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(wrapped["polarizability"], unwrapped["polarizability"], rtol=0, atol=1e-6)
    # Without unwrapping, the dipole Σ q r of the wrapped file jumps.
    jumpy = predict_series(wrapped_raw, box.numbers, tmp_path / "model.pt", ("dipole",), cell=box.cell.array,
                           pbc=True, dtype="float64")["dipole"]
    assert np.abs(jumpy - unwrapped["dipole"]).max() > 0.01

    # A frame spacing that unwrapping cannot resolve is refused, naming the atom and frames.
    far = positions[:3].copy()
    far[2, 4, 0] += 0.3 * box.cell[0, 0]
    with pytest.raises(UnwrapError, match=rf"atom 4 moves 0\.3\d of cell vector a between frames 1 and 2.*"
                                          rf"more than {MAX_UNWRAP_STEP:g}"):
        unwrap_positions(far, box.cell.array, box.pbc)
    ase.io.write(tmp_path / "far.extxyz", [Atoms(box.numbers, positions=p, cell=box.cell, pbc=True) for p in far])
    with pytest.raises(ValueError, match="frames written more often"):
        load_series(tmp_path / "far.extxyz", **options)
    # A changing cell (NPT-like) unwraps in each frame's own cell.
    scale = 1 + 0.002 * np.arange(len(positions))[:, None, None]
    cells = box.cell.array[None] * scale
    wrapped_npt = []
    for p, h in zip(positions * scale, cells):
        atoms = Atoms(box.numbers, positions=p, cell=h, pbc=True)
        atoms.wrap()
        wrapped_npt.append(atoms.positions)
    np.testing.assert_allclose(unwrap_positions(np.array(wrapped_npt), cells, True), positions * scale, atol=1e-9)


@pytest.mark.parametrize("periodic", [False, True])
def test_batched_predictions_equal_calculator_predict(periodic, capsys):
    """Both ways to find pairs (one distance array for small molecules, vesin per periodic
    frame), over several batches (max_edges of a few frames), equal MPNNCalculator.predict."""
    if periodic:
        template, positions = periodic_frames(6)
    else:
        template, rng = water(), np.random.default_rng(5)
        positions = template.positions[None] + 0.05 * rng.normal(size=(30, 3, 3))
    calc = MPNNCalculator(small_model())
    batched = predict_series(positions, template.numbers, calc, cell=template.cell.array, pbc=template.pbc,
                             max_edges=3 * (40 if periodic else 6), progress=True)
    assert "predicting" in capsys.readouterr().err  # the progress bar
    for k, p in enumerate(positions):
        atoms = Atoms(template.numbers, positions=p, cell=template.cell, pbc=template.pbc)
        single = calc.predict([atoms], ["dipole", "polarizability"])[0]
        np.testing.assert_allclose(batched["dipole"][k], single["dipole"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(batched["polarizability"][k], single["polarizability"], rtol=0, atol=1e-12)
    # Ring-polymer beads (n, P, N, 3): the bead average.
    beads = np.stack([positions, positions + 0.01], axis=1)
    averaged = predict_series(beads, template.numbers, calc, ("dipole",), cell=template.cell.array,
                              pbc=template.pbc)["dipole"]
    shifted = predict_series(positions + 0.01, template.numbers, calc, ("dipole",), cell=template.cell.array,
                             pbc=template.pbc)["dipole"]
    np.testing.assert_allclose(averaged, 0.5 * (batched["dipole"] + shifted), rtol=0, atol=1e-12)


def test_bad_input_says_what_is_wrong_and_what_to_pass(run, tmp_path, capsys):
    frames = ase.io.read(run / "md.extxyz", ":20")
    # No time information.
    with pytest.raises(ValueError, match=r"dt_fs=\.\.\. \(ase-mpnn spectrum --dt FS\)"):
        load_series(run / "md.extxyz")
    assert main(["spectrum", str(run / "md.extxyz"), "-o", str(tmp_path / "x")]) == 2
    assert "--dt FS" in capsys.readouterr().err
    # A time step that contradicts the file's.
    with pytest.raises(ValueError, match="stores its time step: 0.5 fs"):
        load_series(run / "md.traj", dt_fs=1.0)
    # Frames of different atom counts, and of other elements.
    grown = frames[:3] + [frames[3] + Atoms("H", positions=[[3.0, 0.0, 0.0]])]
    ase.io.write(tmp_path / "grown.extxyz", grown)
    with pytest.raises(ValueError, match="frame 3 has 4 atoms, frame 0 has 3"):
        load_series(tmp_path / "grown.extxyz", dt_fs=DT_FS)
    # Elements the model lacks.
    co = [Atoms("CO", positions=[[0, 0, 0], [1.13 + 0.01 * k, 0, 0]]) for k in range(5)]
    ase.io.write(tmp_path / "co.extxyz", co)
    with pytest.raises(ValueError, match="contains C, but the model .* was trained on H, O only"):
        load_series(tmp_path / "co.extxyz", dt_fs=DT_FS, model=run / "model.pt")
    # Neither dipoles nor a model.
    with pytest.raises(MissingSeriesError, match=r"no 'dipole' series .* pass a model to predict it"):
        ir_spectrum_from_file(tmp_path / "co.extxyz", dt_fs=DT_FS)
    # Repeated frames (a restart that wrote a frame twice).
    ase.io.write(tmp_path / "repeated.extxyz", frames[:5] + frames[4:8])
    with pytest.raises(ValueError, match="frame 5 repeats frame 4"):
        load_series(tmp_path / "repeated.extxyz", dt_fs=DT_FS)
    # Corrupt files: a truncated ASE trajectory, and text that is no trajectory.
    data = (run / "md.traj").read_bytes()
    (tmp_path / "cut.traj").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.traj: cannot (open|read)"):
        load_series(tmp_path / "cut.traj")
    (tmp_path / "junk.extxyz").write_text("3\nnot an extxyz header\nO 0 0\nH x y z\n")
    with pytest.raises(ValueError, match=r"junk\.extxyz: cannot read frame 0"):
        load_series(tmp_path / "junk.extxyz", dt_fs=DT_FS)
    assert main(["spectrum", str(tmp_path / "junk.extxyz"), "--dt", "0.5", "-o", str(tmp_path / "j")]) == 2
    assert "cannot read frame 0" in capsys.readouterr().err
    # An i-PI trajectory given directly: pointed to the run's input file.
    (tmp_path / "pos.xyz").write_text("1\n# CELL(abcABC): 20 20 20 90 90 90  Step: 0  Bead: 0 x_centroid{atomic_unit}"
                                      "  cell{atomic_unit}\nH 0 0 0\n")
    with pytest.raises(ValueError, match="i-PI input file"):
        load_series(tmp_path / "pos.xyz", dt_fs=DT_FS)
    # Options that do not fit.
    with pytest.raises(ValueError, match="needs a model"):
        load_series(run / "md.h5", predict="always")
    with pytest.raises(ValueError, match="unknown series"):
        load_series(run / "md.extxyz", dt_fs=DT_FS, keys={"dipoles": "x"})

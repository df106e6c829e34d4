"""Resuming never changes a run silently: MD, RPMD and training checkpoints store the
settings that shape the result and refuse a resume with other ones, listing each
difference and the two ways out; --restart / --fresh start over deliberately; old
checkpoints still resume with a warning; corrupt checkpoints, Ctrl-C, settings out of
range and absurd labels are clear one-line errors."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule

import ase_mpnn
import ase_mpnn.md
from ase_mpnn import MPNNCalculator
from ase_mpnn.training import train as train_module
from ase_mpnn.cli import main
from ase_mpnn.training.data import DataError
from ase_mpnn.md import MDRecorder, RingPolymerMD, RingPolymerRecorder, langevin, read_record, run_md, run_rpmd
from ase_mpnn.md.classical import save_checkpoint
from ase_mpnn.resume import CheckpointError
from ase_mpnn.training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
WATER_MODEL = ROOT / "models" / "painn_water.pt"
WATER_DATA = ROOT / "tests" / "data" / "water_small.extxyz"


@pytest.fixture(scope="module")
def calc() -> MPNNCalculator:
    return MPNNCalculator(WATER_MODEL, dtype=torch.float64)


@pytest.fixture(scope="module")
def other_calc() -> MPNNCalculator:
    """Another potential for the same elements (random weights)."""
    torch.manual_seed(1)
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=4.0, n_features=8, n_interactions=1)
    return MPNNCalculator(model, dtype=torch.float64)


def cli_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# Classical MD ---------------------------------------------------------------------------------
def md_run(calc, tmp_path, steps=10, timestep=0.5, temperature=300.0, friction=0.01, interval=2, seed=0,
           restart=False):
    atoms = molecule("H2O")
    atoms.calc = calc
    dyn = langevin(atoms, temperature, timestep, friction, seed=seed)
    with MDRecorder(atoms, tmp_path / "md.h5", interval=interval, dynamics=dyn) as rec:
        run_md(dyn, steps, rec, checkpoint_path=tmp_path / "md.npz", checkpoint_interval=5, progress=False,
               settings={"seed": seed}, restart=restart)
    return dyn


@pytest.mark.parametrize("change, listed", [
    ({"timestep": 0.25}, "timestep_fs: saved 0.5, now 0.25"),
    ({"temperature": 200.0}, "temperature_K: saved 300"),
    ({"friction": 0.02}, "friction_per_fs: saved 0.01"),
    ({"interval": 5}, "record interval: saved 2, now 5"),
    ({"seed": 1}, "seed: saved 0, now 1"),
])
def test_run_md_refuses_to_resume_with_other_settings(tmp_path, calc, change, listed):
    md_run(calc, tmp_path)
    before = read_record(tmp_path / "md.h5")
    with pytest.raises(CheckpointError) as info:
        md_run(calc, tmp_path, steps=20, **change)
    message = str(info.value)
    assert listed in message and "restore the saved settings" in message and "restart=True" in message
    after = read_record(tmp_path / "md.h5")  # the refused run changed nothing
    np.testing.assert_array_equal(after["positions"], before["positions"])
    # Starting over is deliberate: the record then holds the new run only.
    md_run(calc, tmp_path, steps=20, restart=True, **change)
    assert read_record(tmp_path / "md.h5")["step"][0] == 0
    assert len(read_record(tmp_path / "md.h5")["step"]) == 20 // change.get("interval", 2) + 1


def test_run_md_refuses_another_model(tmp_path, calc, other_calc):
    md_run(calc, tmp_path)
    with pytest.raises(CheckpointError, match="calculator: saved 'MPNNCalculator painn model, weights sha256"):
        md_run(other_calc, tmp_path, steps=20)


def test_an_old_md_checkpoint_resumes_with_a_warning(tmp_path, calc):
    atoms = molecule("H2O")
    atoms.calc = calc
    dyn = langevin(atoms, 300, 0.5, 0.01, seed=0)
    dyn.run(4)
    save_checkpoint(tmp_path / "old.npz", dyn)  # no settings, as before they were stored
    atoms = molecule("H2O")
    atoms.calc = calc
    dyn = langevin(atoms, 300, 0.5, 0.01, seed=0)
    with pytest.warns(UserWarning, match="before checkpoints stored their run's settings"):
        run_md(dyn, 6, checkpoint_path=tmp_path / "old.npz", progress=False)
    assert dyn.nsteps == 6


def test_corrupt_md_and_rpmd_checkpoints_are_clear_errors(tmp_path, calc, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    atoms = molecule("H2O")
    atoms.calc = calc
    with pytest.raises(CheckpointError, match="not a readable MD checkpoint"):
        run_md(langevin(atoms, 300, 0.5, 0.01, seed=0), 5, checkpoint_path=bad, progress=False)
    with pytest.raises(CheckpointError, match="not a readable RPMD checkpoint"):
        RingPolymerMD.from_checkpoint(bad, calc)
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    for command in ("md", "rpmd"):
        assert main([command, str(structure), "--model", str(WATER_MODEL), "--steps", "2", "-o",
                     str(tmp_path / f"{command}.h5"), "--checkpoint", str(bad), "--no-progress"]) == 2
        err = cli_error(capsys)
        assert "not a readable" in err and "--restart" in err


# The md and rpmd commands ---------------------------------------------------------------------
def test_md_command_refuses_changed_settings_and_restarts_on_request(tmp_path, capsys):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    out = tmp_path / "md.h5"
    base = ["md", str(structure), "--model", str(WATER_MODEL), "-o", str(out), "--interval", "2",
            "--checkpoint-interval", "5", "--no-progress"]
    assert main(base + ["--steps", "10"]) == 0
    capsys.readouterr()
    for extra, listed in ((["--timestep", "0.25"], "timestep_fs"), (["--seed", "3"], "seed"),
                          (["--temperature", "250"], "temperature_K"), (["--interval", "1"], "record interval"),
                          (["--dtype", "float64"], "calculator")):
        assert main(base + ["--steps", "20", *extra]) == 2, extra
        err = cli_error(capsys)
        assert listed in err and "--restart" in err, err
    structure.write_text(structure.read_text().replace("O ", "O  "))  # same atoms, other file content
    assert main(base + ["--steps", "20"]) == 2
    assert "structure: saved" in cli_error(capsys)
    assert main(base + ["--steps", "20", "--seed", "3", "--restart"]) == 0
    data = read_record(out)
    np.testing.assert_array_equal(data["step"], np.arange(0, 21, 2))


def test_rpmd_refuses_another_model_seed_or_interval(tmp_path, calc, other_calc, capsys):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    out = tmp_path / "rpmd.h5"

    def command(steps, *extra):
        return ["rpmd", str(structure), "--model", str(WATER_MODEL), "-o", str(out), "--beads", "2", "--interval",
                "2", "--checkpoint-interval", "4", "--steps", str(steps), "--no-progress", *extra]

    assert main(command(4)) == 0
    capsys.readouterr()
    for extra, listed in ((["--seed", "5"], "seed: saved 0, now 5"), (["--interval", "4"], "record interval"),
                          (["--tau", "50"], "tau_fs"), (["--dtype", "float64"], "calculator")):
        assert main(command(8, *extra)) == 2, extra
        err = cli_error(capsys)
        assert "continues a run" in err and listed in err and "--restart" in err, err
    checkpoint = f"{out}.checkpoint.npz"
    with pytest.raises(CheckpointError, match="calculator"):
        RingPolymerMD.from_checkpoint(checkpoint, other_calc)
    assert main(command(8, "--seed", "5", "--restart")) == 0
    np.testing.assert_array_equal(read_record(out)["step"], [0, 2, 4, 6, 8])


def test_run_rpmd_resumes_a_fresh_run_from_its_checkpoint_as_run_md_does(tmp_path, calc):
    """One rule for both drivers: the same call again continues, bit for bit, the uninterrupted run."""
    def fresh():
        return RingPolymerMD(molecule("H2O"), calc, n_beads=2, temperature_K=300, timestep=0.5 * units.fs, seed=0)

    uninterrupted = fresh()
    run_rpmd(uninterrupted, 8, progress=False)
    path, checkpoint = tmp_path / "r.h5", tmp_path / "r.npz"
    with RingPolymerRecorder(md := fresh(), path, interval=2) as rec:
        run_rpmd(md, 4, rec, checkpoint_path=checkpoint, progress=False)
    with RingPolymerRecorder(md := fresh(), path, interval=2) as rec:
        run_rpmd(md, 8, rec, checkpoint_path=checkpoint, progress=False)
    assert md.restored_from == str(checkpoint)
    np.testing.assert_array_equal(read_record(path)["step"], [0, 2, 4, 6, 8])  # continued, not wiped
    np.testing.assert_array_equal(md.state.positions, uninterrupted.state.positions)
    np.testing.assert_array_equal(md.state.momenta, uninterrupted.state.momenta)
    # Rebuilt with from_checkpoint, as before: the same rules.
    md = RingPolymerMD.from_checkpoint(checkpoint, calc)
    with RingPolymerRecorder(md, path, interval=4) as rec, pytest.raises(CheckpointError, match="record interval"):
        run_rpmd(md, 12, rec, checkpoint_path=checkpoint, progress=False)
    other = RingPolymerMD(molecule("H2O"), calc, n_beads=2, temperature_K=200, timestep=0.5 * units.fs, seed=0)
    with pytest.raises(CheckpointError, match="temperature_K"):
        run_rpmd(other, 12, checkpoint_path=checkpoint, progress=False)
    with RingPolymerRecorder(md := fresh(), path, interval=2) as rec:
        run_rpmd(md, 2, rec, checkpoint_path=checkpoint, progress=False, restart=True)
    np.testing.assert_array_equal(read_record(path)["step"], [0, 2])


def test_an_old_rpmd_checkpoint_resumes_with_a_warning_and_its_physics_checked(tmp_path, calc):
    md = RingPolymerMD(molecule("H2O"), calc, n_beads=2, temperature_K=300, timestep=0.5 * units.fs, seed=0)
    md.run(2)
    md.save_checkpoint(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as data:  # as written before settings were stored
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["settings"]
    meta["rng_state"] = json.loads(str(arrays.pop("rng_state")))  # older files kept it in the metadata
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.warns(UserWarning, match="model and the seed"):
        restored = RingPolymerMD.from_checkpoint(tmp_path / "old.npz", calc, expected={"temperature_K": 300})
    assert restored.nsteps == 2
    md.run(3)
    restored.run(3)  # the random state came back from the metadata
    np.testing.assert_array_equal(restored.state.momenta, md.state.momenta)
    with pytest.raises(CheckpointError, match="temperature_K: saved 300"), pytest.warns(UserWarning):
        RingPolymerMD.from_checkpoint(tmp_path / "old.npz", calc, expected={"temperature_K": 200})


# Ctrl-C ---------------------------------------------------------------------------------------
def test_ctrl_c_in_md_says_how_to_resume(tmp_path, capsys, monkeypatch):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    real_run_md = ase_mpnn.md.run_md

    def interrupted(dynamics, *args, **kwargs):
        def ctrl_c():
            if dynamics.nsteps == 7:
                raise KeyboardInterrupt

        dynamics.attach(ctrl_c, interval=1)
        return real_run_md(dynamics, *args, **kwargs)

    monkeypatch.setattr(ase_mpnn.md, "run_md", interrupted)
    out = tmp_path / "md.h5"
    args = ["md", str(structure), "--model", str(WATER_MODEL), "-o", str(out), "--steps", "10",
            "--checkpoint-interval", "5", "--no-progress"]
    assert main(args) == 130
    err = cli_error(capsys)
    assert "interrupted" in err and "run the same command again to resume" in err and "checkpoint.npz" in err
    monkeypatch.setattr(ase_mpnn.md, "run_md", real_run_md)
    assert main(args) == 0
    np.testing.assert_array_equal(read_record(out)["step"], np.arange(11))


# Training -------------------------------------------------------------------------------------
def config(tmp_path, **overrides) -> TrainConfig:
    values = dict(data=str(tmp_path / "water.extxyz"), output=str(tmp_path / "m.pt"), cutoff=4.0,
                  hyperparameters={"n_features": 8, "n_interactions": 1, "n_rbf": 6}, split=[0.6, 0.2, 0.2],
                  batch_size=10, max_epochs=1, dtype="float64", lr=5e-3)
    values.update(overrides)
    return TrainConfig.from_dict(values)


@pytest.fixture
def trained_once(tmp_path):
    shutil.copy(WATER_DATA, tmp_path / "water.extxyz")
    train(config(tmp_path), progress=False)
    return tmp_path


def test_training_refuses_a_changed_config_or_data(trained_once):
    tmp_path = trained_once
    with pytest.raises(CheckpointError) as info:
        train(config(tmp_path, max_epochs=2, lr=1e-3, ema_decay=0.9), progress=False)
    message = str(info.value)
    assert "lr: saved 0.005, now 0.001" in message and "ema_decay: saved 0.99, now 0.9" in message
    assert "--fresh" in message and "fresh=True" in message
    with pytest.raises(CheckpointError, match="hyperparameters: saved"):  # another architecture
        train(config(tmp_path, max_epochs=2, hyperparameters={"n_features": 16, "n_interactions": 1, "n_rbf": 6}),
              progress=False)
    frames = ase.io.read(tmp_path / "water.extxyz", ":")
    ase.io.write(tmp_path / "water.extxyz", frames[::-1])  # the same frames, in another order
    with pytest.raises(CheckpointError, match="data files: saved"):
        train(config(tmp_path, max_epochs=2), progress=False)
    # Deliberately from the start: the saved model is trained on the new data and settings.
    model = train(config(tmp_path, max_epochs=1, lr=1e-3), progress=False, fresh=True)
    assert ase_mpnn.read_header(tmp_path / "m.pt")["metadata"]["training"]["lr"] == 1e-3
    assert model is not None


def test_training_resumes_with_more_epochs_and_warns_for_an_old_checkpoint(trained_once):
    tmp_path = trained_once
    checkpoint = tmp_path / "m.run" / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=True)
    del saved["settings"]  # as written before settings were stored
    torch.save(saved, checkpoint)
    with pytest.warns(UserWarning, match="before checkpoints stored their run's settings"):
        train(config(tmp_path, max_epochs=2), progress=False)  # plateau schedule: more epochs resume
    # An old checkpoint of another architecture: a clear error, not a state-dict traceback.
    saved = torch.load(checkpoint, weights_only=True)
    del saved["settings"]
    torch.save(saved, checkpoint)
    with warnings.catch_warnings(), pytest.raises(CheckpointError, match="holds another model"):
        warnings.simplefilter("ignore")
        train(config(tmp_path, max_epochs=3, hyperparameters={"n_features": 16, "n_interactions": 1, "n_rbf": 6}),
              progress=False)


def test_cli_train_corrupt_checkpoint_ctrl_c_and_fresh(trained_once, capsys, monkeypatch):
    tmp_path = trained_once
    (tmp_path / "config.yaml").write_text(
        "data: water.extxyz\noutput: m.pt\ncutoff: 4.0\nmax_epochs: 2\nbatch_size: 10\nlr: 0.005\ndtype: float64\n"
        "split: [0.6, 0.2, 0.2]\nhyperparameters: {n_features: 8, n_interactions: 1, n_rbf: 6}\n")
    checkpoint = tmp_path / "m.run" / "checkpoint.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[: len(good) // 2])
    assert main(["train", str(tmp_path / "config.yaml")]) == 2
    err = cli_error(capsys)
    assert "not a readable training checkpoint" in err and "--fresh" in err

    assert main(["train", str(tmp_path / "config.yaml"), "--fresh"]) == 0  # discards the damaged one
    assert json.loads(torch.load(checkpoint, weights_only=True)["state"])["epoch"] == 2

    real_make_batch = train_module.make_batch
    calls = {"n": 0}

    def ctrl_c_in_epoch_4(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # two training batches per epoch: epoch 3 finishes, epoch 4 is interrupted
            raise KeyboardInterrupt
        return real_make_batch(*args, **kwargs)

    (tmp_path / "config.yaml").write_text((tmp_path / "config.yaml").read_text().replace("max_epochs: 2",
                                                                                          "max_epochs: 4"))
    monkeypatch.setattr(train_module, "make_batch", ctrl_c_in_epoch_4)
    assert main(["train", str(tmp_path / "config.yaml")]) == 130
    err = cli_error(capsys)
    assert "run the same command again to resume" in err and "checkpoint.pt" in err
    assert json.loads(torch.load(checkpoint, weights_only=True)["state"])["epoch"] == 3
    monkeypatch.setattr(train_module, "make_batch", real_make_batch)
    assert main(["train", str(tmp_path / "config.yaml")]) == 0
    assert json.loads(torch.load(checkpoint, weights_only=True)["state"])["epoch"] == 4


# Settings out of range and absurd labels ------------------------------------------------------
@pytest.mark.parametrize("key, value, words", [
    ("ema_decay", 1.5, "ema_decay must be in [0, 1)"),
    ("ema_decay", 1.0, "never move it from the untrained weights"),
    ("loss_weights", {"energy": 1.0, "forces": -1.0}, "loss_weights.forces must be in [0, inf)"),
    ("loss_weights", {"energy": 0.0, "forces": 0.0}, "at least one label a weight > 0"),
    ("lr", 0.0, "lr must be in (0, inf)"),
    ("lr", "1e-3", "write 1.0e-3"),
    ("min_lr", 1.0, "at most lr"),
    ("batch_size", 0, "batch_size must be a whole number >= 1"),
    ("batch_size", 2.5, "batch_size must be a whole number"),
    ("max_epochs", -1, "max_epochs must be a whole number >= 0"),
    ("seed", -1, "seed must be a whole number >= 0"),
    ("plateau_factor", 1.0, "plateau_factor must be in (0, 1)"),
    ("plateau_patience", -2, "plateau_patience"),
    ("warmup_epochs", -1, "warmup_epochs"),
    ("early_stopping_patience", 0, "early_stopping_patience must be a whole number >= 1"),
    ("clip_grad_norm", 0.0, "clip_grad_norm must be in (0, inf]"),
    ("weight_decay", -0.1, "weight_decay must be in [0, inf)"),
    ("cutoff", float("nan"), "cutoff must be in (0, inf)"),
    ("max_minutes", 0.0, "max_minutes must be in (0, inf]"),
    ("split", [0.8, -0.1, 0.3], "split[1] must be in [0, 1]"),
    ("split", [1.0], "split must be"),
])
def test_every_numeric_training_setting_is_range_checked(tmp_path, key, value, words):
    with pytest.raises(ValueError) as info:
        config(tmp_path, **{key: value}).validate()
    assert words in str(info.value)


def test_absurd_labels_are_errors_and_outliers_warnings(tmp_path):
    frames = ase.io.read(WATER_DATA, ":")
    frames[7].calc.results["forces"][1, 2] = 1e30
    ase.io.write(tmp_path / "water.extxyz", frames)
    with pytest.raises(DataError, match=r"water.extxyz frame 7: forces 1e\+30 eV/Å is .* robust spreads"):
        train(config(tmp_path), progress=False)
    assert not (tmp_path / "m.run").exists()

    frames = ase.io.read(WATER_DATA, ":")
    frames[4].calc.results["forces"][0, 0] = 150.0  # far out, but not absurd: a loud warning
    ase.io.write(tmp_path / "water.extxyz", frames)
    with pytest.warns(UserWarning, match=r"water.extxyz frame 4: forces 150 eV/Å"):
        train_module.prepare(config(tmp_path))

    frames = ase.io.read(WATER_DATA, ":")
    frames[2].calc.results["energy"] *= 1 / 27.211386  # one energy in hartree among eV
    ase.io.write(tmp_path / "water.extxyz", frames)
    with pytest.warns(UserWarning, match=r"frame 2: energy per atom"):
        train_module.prepare(config(tmp_path))

    shutil.copy(WATER_DATA, tmp_path / "water.extxyz")  # the shipped test data: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        train_module.prepare(config(tmp_path))

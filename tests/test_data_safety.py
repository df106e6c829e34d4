"""Nothing a run writes may destroy data: outputs never overwrite inputs, a second writer
never truncates a running record, re-running a script never wipes its record, temporary
files cannot be hijacked or left behind, and a damaged record never reads back zeros."""

from __future__ import annotations

import os
import time
import shutil
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule

import ase_mpnn
from ase_mpnn import MPNNCalculator
from ase_mpnn.atomic_file import atomic_write
from ase_mpnn.cli import main
from ase_mpnn.md import (
    MDRecorder,
    RecorderError,
    RingPolymerMD,
    langevin,
    read_record,
    run_md,
    save_checkpoint,
)
from ase_mpnn.md.record_file import FrameFile
from ase_mpnn.resume import CheckpointError
from ase_mpnn.training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
WATER_MODEL = ROOT / "models" / "painn_water.pt"
WATER_DATA = ROOT / "tests" / "data" / "water_small.extxyz"


@pytest.fixture(scope="module")
def calc() -> MPNNCalculator:
    return MPNNCalculator(WATER_MODEL, dtype=torch.float64)


def tiny_config(tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(data=str(tmp_path / "water.extxyz"), output=str(tmp_path / "m.pt"), cutoff=4.0,
                  hyperparameters={"n_features": 8, "n_interactions": 1, "n_rbf": 6}, split=[0.6, 0.2, 0.2],
                  batch_size=10, max_epochs=1, dtype="float64")
    values.update(overrides)
    return TrainConfig.from_dict(values)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# Outputs never overwrite inputs ------------------------------------------------------------
def test_training_output_over_the_data_is_refused_before_anything_is_written(tmp_path):
    data = tmp_path / "water.extxyz"
    shutil.copy(WATER_DATA, data)
    original = data.read_bytes()
    (tmp_path / "link.extxyz").symlink_to(data)
    os.link(data, tmp_path / "hard.extxyz")
    for output in (data, tmp_path / "link.extxyz", tmp_path / "hard.extxyz", tmp_path / "sub" / ".." / data.name):
        with pytest.raises(ValueError, match="would destroy the data"):
            train(tiny_config(tmp_path, output=str(output)), progress=False)
    # The workdir's files are outputs too: metrics.csv must not land on a data file.
    metrics = tmp_path / "run" / "metrics.csv"
    metrics.parent.mkdir()
    shutil.copy(WATER_DATA, metrics)
    with pytest.raises(ValueError, match="metrics"):
        train(tiny_config(tmp_path, data=str(metrics), workdir=str(tmp_path / "run")), progress=False)
    with pytest.raises(ValueError, match="workdir .* is a file"):
        train(tiny_config(tmp_path, workdir=str(data)), progress=False)
    assert data.read_bytes() == original and metrics.read_bytes() == original
    assert not (tmp_path / "m.run").exists()


def test_cli_train_refuses_an_output_over_its_config(tmp_path, capsys):
    shutil.copy(WATER_DATA, tmp_path / "water.extxyz")
    config = tmp_path / "config.yaml"
    config.write_text("data: water.extxyz\noutput: config.yaml\ncutoff: 4.0\nmax_epochs: 1\n")
    text = config.read_text()
    assert main(["train", str(config)]) == 2
    assert "config" in one_line_error(capsys) and config.read_text() == text


@pytest.mark.parametrize("command", ["md", "rpmd"])
def test_md_output_over_the_structure_or_model_is_refused(tmp_path, capsys, command):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    model = tmp_path / "model.pt"
    shutil.copy(WATER_MODEL, model)
    (tmp_path / "alias.xyz").symlink_to(structure)
    before = structure.read_bytes(), model.read_bytes()
    for output, named in ((structure, "structure"), (tmp_path / "alias.xyz", "structure"), (model, "model")):
        assert main([command, str(structure), "--model", str(model), "--steps", "2", "-o", str(output)]) == 2
        err = one_line_error(capsys)
        assert f"is the {named} file" in err, err
    assert main([command, str(structure), "--model", str(model), "--steps", "2", "-o", str(tmp_path / "r.h5"),
                 "--checkpoint", str(structure)]) == 2
    assert "checkpoint" in one_line_error(capsys)
    assert (structure.read_bytes(), model.read_bytes()) == before


def test_predict_and_eval_outputs_over_their_inputs_are_refused(tmp_path, capsys):
    data = tmp_path / "labelled.extxyz"
    shutil.copy(WATER_DATA, data)
    before = data.read_bytes()
    assert main(["predict", str(WATER_MODEL), str(data), "-o", str(data)]) == 2  # would replace the labels
    assert "is the structure file" in one_line_error(capsys)
    assert main(["eval", str(WATER_MODEL), str(data), "--plot", str(data)]) == 2
    assert "is the data file" in one_line_error(capsys)
    assert data.read_bytes() == before


# One writer per file, whatever its name ------------------------------------------------------
def test_second_writer_through_a_symlink_is_locked_out(tmp_path, calc, capsys):
    real, link = tmp_path / "real.h5", tmp_path / "link.h5"
    link.symlink_to(real)
    atoms = molecule("H2O")
    atoms.calc = calc
    with MDRecorder(atoms, real, timestep_fs=0.5, flush_interval_s=0) as first:
        for _ in range(3):
            first()
        for mode in ("w", "a"):
            with pytest.raises(RecorderError, match="another recorder"):
                MDRecorder(atoms, link, mode=mode)
        # The CLI says it in one line and exits non-zero.
        structure = tmp_path / "water.xyz"
        ase.io.write(structure, molecule("H2O"))
        assert main(["md", str(structure), "--model", str(WATER_MODEL), "--steps", "2", "-o", str(link),
                     "--no-progress"]) == 2
        err = one_line_error(capsys)
        assert "another recorder" in err and len(err.strip().splitlines()) == 1
        first()
    np.testing.assert_array_equal(read_record(real)["step"], [0, 1, 2, 3])
    assert not (tmp_path / "real.h5.lock").exists()  # the lock file goes with its writer


def test_a_lock_file_removed_while_waiting_is_not_taken(tmp_path, calc, monkeypatch):
    """A writer that opened the lock file just before the previous writer removed it must
    not hold that removed file: it takes the lock on the file the name points to now."""
    from ase_mpnn.md import record_file

    atoms = molecule("H2O")
    atoms.calc = calc
    path = tmp_path / "md.h5"
    real_flock, calls = record_file.fcntl.flock, []

    def flock_after_the_old_file_is_gone(fd, operation):
        if operation & record_file.fcntl.LOCK_EX and not calls:
            calls.append(fd)
            os.unlink(record_file.lock_path(path))  # the previous writer closes now
        return real_flock(fd, operation)

    monkeypatch.setattr(record_file.fcntl, "flock", flock_after_the_old_file_is_gone)
    with MDRecorder(atoms, path, timestep_fs=0.5) as recorder:
        recorder()
        assert os.path.exists(record_file.lock_path(path))  # the lock taken is the one on disk
        with pytest.raises(RecorderError, match="another recorder"):
            MDRecorder(atoms, path, mode="a")
    assert len(calls) == 1
    assert not os.path.exists(record_file.lock_path(path))


# Re-running the README's MD block ------------------------------------------------------------
def readme_md_block(calc, record: Path, checkpoint: Path, steps: int) -> None:
    """The README's MD block as a user re-runs it: a new recorder in its default mode "w"."""
    atoms = molecule("H2O")
    atoms.calc = calc
    dyn = langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.01, seed=1)
    with MDRecorder(atoms, record, interval=2, dynamics=dyn) as rec:
        run_md(dyn, steps=steps, recorder=rec, checkpoint_path=checkpoint, checkpoint_interval=10, progress=False)


def test_rerunning_the_readme_block_keeps_the_record(tmp_path, calc):
    record, checkpoint = tmp_path / "water.h5", tmp_path / "water.ckpt.npz"
    readme_md_block(calc, record, checkpoint, steps=20)
    first = read_record(record)
    assert len(first["step"]) == 11
    readme_md_block(calc, record, checkpoint, steps=20)  # finished: nothing to do, nothing lost
    again = read_record(record)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name], err_msg=name)
    readme_md_block(calc, record, checkpoint, steps=30)  # a longer run continues the same record
    longer = read_record(record)
    np.testing.assert_array_equal(longer["step"], np.arange(0, 31, 2))
    np.testing.assert_array_equal(longer["positions"][:11], first["positions"])


def test_run_md_refuses_a_record_that_ends_before_its_checkpoint(tmp_path, calc):
    record, checkpoint = tmp_path / "water.h5", tmp_path / "water.ckpt.npz"
    readme_md_block(calc, record, checkpoint, steps=20)
    record.unlink()  # the record is gone but the checkpoint says the run is at step 20
    with pytest.raises(CheckpointError, match="holds no frames") as info:
        readme_md_block(calc, record, checkpoint, steps=30)
    assert "restart=True" in str(info.value) and "gap" in str(info.value)
    assert len(read_record(record)["step"]) == 0  # the refused run recorded nothing


def test_mode_w_replaces_an_existing_file_at_the_first_frame_only(tmp_path, calc):
    path = tmp_path / "old.h5"
    atoms = molecule("H2O")
    atoms.calc = calc
    with MDRecorder(atoms, path, timestep_fs=0.5) as rec:
        rec()
        rec()
    with MDRecorder(atoms, path, timestep_fs=0.5):  # opened and closed without a frame
        assert len(read_record(path)["step"]) == 2
    assert len(read_record(path)["step"]) == 2
    with MDRecorder(atoms, path, timestep_fs=0.5, flush_interval_s=0) as rec:
        rec()  # "w" as asked: a new record
    np.testing.assert_array_equal(read_record(path)["step"], [0])


# Temporary files -----------------------------------------------------------------------------
def test_planted_symlinks_at_the_old_temporary_names_are_not_followed(tmp_path, calc):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=3.0, n_features=8, n_interactions=1)
    atoms = molecule("H2O")
    atoms.calc = calc
    dyn = langevin(atoms, temperature_K=300, timestep_fs=0.5, friction_per_fs=0.01, seed=0)
    rpmd = RingPolymerMD(molecule("H2O"), calc, n_beads=2, temperature_K=300, timestep=0.5 * units.fs, seed=0)
    writers = {
        "model.pt": (["model.pt.tmp"], lambda p: ase_mpnn.save_model(model, p)),
        "md.npz": (["md.npz.tmp.npz"], lambda p: save_checkpoint(p, dyn)),
        "rpmd.npz": ([f"rpmd.npz.tmp{os.getpid()}"], rpmd.save_checkpoint),
    }
    for target, (planted, write) in writers.items():
        for name in planted:
            (tmp_path / name).symlink_to(victim)
        write(tmp_path / target)
        assert (tmp_path / target).stat().st_size > 0 and not (tmp_path / target).is_symlink()
    assert victim.read_text() == "precious"
    ase_mpnn.load_model(tmp_path / "model.pt")  # the file is whole
    # A link planted at the target itself is replaced, not written through.
    (tmp_path / "linked.pt").symlink_to(victim)
    ase_mpnn.save_model(model, tmp_path / "linked.pt")
    assert victim.read_text() == "precious" and not (tmp_path / "linked.pt").is_symlink()
    # The training checkpoint's old temporary name.
    shutil.copy(WATER_DATA, tmp_path / "water.extxyz")
    (tmp_path / "m.run").mkdir()
    (tmp_path / "m.run" / "checkpoint.pt.tmp").symlink_to(victim)
    train(tiny_config(tmp_path), progress=False)
    assert victim.read_text() == "precious" and (tmp_path / "m.run" / "checkpoint.pt").stat().st_size > 0


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, failure):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(failure)):
        with atomic_write(target) as f:
            f.write(b"half of the new")
            raise failure
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["file.bin"]

    # save_model interrupted inside torch.save: the old model stays loadable.
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=3.0, n_features=8, n_interactions=1)
    path = tmp_path / "model.pt"
    ase_mpnn.save_model(model, path, metadata={"version": "old"})
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise failure

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(type(failure)):
        ase_mpnn.save_model(model, path, metadata={"version": "new"})
    monkeypatch.setattr(torch, "save", real_save)
    assert ase_mpnn.read_header(path)["metadata"] == {"version": "old"}
    assert sorted(os.listdir(tmp_path)) == ["file.bin", "model.pt"]


# Damaged records -----------------------------------------------------------------------------
SHAPES = {"step": (), "positions": (3, 3)}
STATIC = {"numbers": np.array([8, 1, 1])}


def frames_file(path: Path, n: int) -> None:
    """A record of ``n`` frames: step k, positions all k + 1."""
    f = FrameFile(path, SHAPES, STATIC, {"kind": "md"}, flush_interval_s=3600)
    for k in range(n):
        f.append({"step": k, "positions": np.full((3, 3), k + 1.0)})
    f.close()


def test_a_truncated_record_is_refused_not_read_as_zeros(tmp_path, capsys):
    path = tmp_path / "cut.h5"
    frames_file(path, 4001)
    size = path.stat().st_size
    for fraction in (0.9, 0.6, 0.1):
        with open(path, "r+b") as f:
            f.truncate(int(size * fraction))
        with pytest.raises(RecorderError, match="truncated"):
            read_record(path)
        with pytest.raises(RecorderError, match="truncated"):
            FrameFile(path, SHAPES, STATIC, {"kind": "md"}, mode="a")
    assert main(["spectrum", str(path), "--power", "-o", str(tmp_path / "s")]) == 2
    assert "truncated" in one_line_error(capsys)


def test_frames_extended_but_not_committed_are_not_read(tmp_path):
    """A writer killed after extending the datasets, before their data was written: HDF5
    would return zeros for those frames; the committed count leaves them out."""
    path = tmp_path / "killed.h5"
    frames_file(path, 5)
    with h5py.File(path, "a", libver="latest") as f:  # what the killed writer left behind
        for name in SHAPES:
            f[name].resize(8, axis=0)
    data = read_record(path)
    np.testing.assert_array_equal(data["step"], np.arange(5))
    assert (data["positions"][:, 0, 0] == np.arange(1, 6)).all()
    f = FrameFile(path, SHAPES, STATIC, {"kind": "md"}, mode="a")  # continues after frame 4
    assert (f.n_frames, f.last_step) == (5, 4)
    f.append({"step": 5, "positions": np.zeros((3, 3))})
    f.close()
    np.testing.assert_array_equal(read_record(path)["step"], np.arange(6))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    """SIGKILL leaves a temporary file; the next write of the same target cleans it up,
    but not a file that another writer may still be writing, nor a link."""
    from ase_mpnn.atomic_file import STALE_AFTER_S, atomic_write

    target = tmp_path / "run.checkpoint.npz"
    abandoned = tmp_path / ".run.checkpoint.npz.abc123.tmp"
    in_progress = tmp_path / ".run.checkpoint.npz.def456.tmp"
    link = tmp_path / ".run.checkpoint.npz.ghi789.tmp"
    abandoned.write_bytes(b"half a checkpoint")
    old = time.time() - 2 * STALE_AFTER_S
    os.utime(abandoned, (old, old))
    in_progress.write_bytes(b"being written")
    link.symlink_to(tmp_path / "elsewhere")
    with atomic_write(target) as f:
        f.write(b"checkpoint")
    assert target.read_bytes() == b"checkpoint"
    assert not abandoned.exists() and in_progress.exists() and link.is_symlink()

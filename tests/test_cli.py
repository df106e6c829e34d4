"""The ase-mpnn command line: create a model file, inspect it, predict on structures."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import molecule

from ase_mpnn import MPNNCalculator
from ase_mpnn.cli import main


def test_create_info_predict(tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["create", "schnet", "--species", "H", "O", "--cutoff", "4",
                 "--hyperparameters", '{"n_features": 8, "n_filters": 8}', "-o", str(model)]) == 0
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["config"]["architecture"] == "schnet"
    assert header["config"]["hyperparameters"]["n_features"] == 8
    assert header["config"]["species"] == [1, 8]

    structures = tmp_path / "in.xyz"
    ase.io.write(structures, [molecule("H2O"), molecule("H2O2")])
    out = tmp_path / "out.extxyz"
    assert main(["predict", str(model), str(structures), "-o", str(out)]) == 0
    written = ase.io.read(out, ":")
    direct = molecule("H2O2")
    direct.calc = MPNNCalculator(str(model))
    assert written[1].get_potential_energy() == pytest.approx(direct.get_potential_energy(), rel=1e-5)
    np.testing.assert_allclose(written[1].get_forces(), direct.get_forces(), atol=1e-5)


def test_bad_model_file_is_a_clean_error(tmp_path, capsys):
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a model")
    assert main(["info", str(bogus)]) == 2
    assert "bogus.pt" in capsys.readouterr().err


def test_md_command_records_and_resumes(tmp_path, capsys):
    from ase_mpnn.md import read_record

    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    model = Path(__file__).resolve().parent.parent / "models" / "painn_water.pt"
    out = tmp_path / "md.h5"
    base = ["md", str(structure), "--model", str(model), "-o", str(out), "--interval", "5",
            "--checkpoint-interval", "10", "--dtype", "float64"]
    assert main(base + ["--steps", "20"]) == 0
    first = read_record(out)
    assert list(first["step"]) == [0, 5, 10, 15, 20]
    assert first["dipole"].shape == (5, 3) and first["polarizability"].shape == (5, 3, 3)
    assert abs(first["dipole"][0]).max() > 0.1  # the trained water dipole (≈ 0.39 e·Å)
    assert main(base + ["--steps", "30"]) == 0  # resumes from the checkpoint at step 20
    assert "(resumed)" in capsys.readouterr().out
    assert list(read_record(out)["step"]) == [0, 5, 10, 15, 20, 25, 30]


def test_rpmd_command_records_resumes_and_matches_one_run(tmp_path, capsys):
    from ase_mpnn.md import read_attributes, read_record

    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    model = Path(__file__).resolve().parent.parent / "models" / "painn_water.pt"

    def command(out, steps, *extra):
        return ["rpmd", str(structure), "--model", str(model), "-o", str(out), "--beads", "4", "--interval", "5",
                "--checkpoint-interval", "10", "--dtype", "float64", "--steps", str(steps), "--no-progress", *extra]

    assert main(command(tmp_path / "whole.h5", 30)) == 0
    assert main(command(tmp_path / "split.h5", 20)) == 0
    assert main(command(tmp_path / "split.h5", 30)) == 0  # resumes from the checkpoint at step 20
    assert "(resumed)" in capsys.readouterr().out
    whole, split = read_record(tmp_path / "whole.h5"), read_record(tmp_path / "split.h5")
    assert list(split["step"]) == [0, 5, 10, 15, 20, 25, 30]
    for name in whole:
        np.testing.assert_array_equal(split[name], whole[name], err_msg=name)
    assert whole["dipole"].shape == (7, 3) and whole["velocities"].shape == (7, 3, 3)
    assert read_attributes(tmp_path / "whole.h5")["n_beads"] == 4

    # Continuing with other physics is refused, not silently mixed into one file.
    assert main(command(tmp_path / "split.h5", 40, "--temperature", "200")) == 2
    assert "continues a run" in capsys.readouterr().err

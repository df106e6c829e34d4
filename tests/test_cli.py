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
    # float32: the batched CLI pass and the single call round differently (measured 3e-8 eV
    # apart on this 2.6e-3 eV energy); a wrong or misordered structure is off by far more.
    assert written[1].get_potential_energy() == pytest.approx(direct.get_potential_energy(), rel=1e-5, abs=1e-6)
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


def test_spectrum_and_harmonic_commands(tmp_path, capsys):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    model = str(Path(__file__).resolve().parent.parent / "models" / "painn_water.pt")
    assert main(["harmonic", str(structure), "--model", model]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ") and "cm⁻¹" not in line]
    assert len(rows) == 3  # three vibrations of water
    bend = float(rows[0].split("|")[2])
    assert bend == pytest.approx(1618.7, abs=5.0)  # the model's bend; B3LYP: 1618.7 cm⁻¹

    md = str(tmp_path / "md.h5")
    assert main(["md", str(structure), "--model", model, "--steps", "1200", "--timestep", "0.25", "-o", md,
                 "--interval", "2", "--temperature", "300"]) == 0
    prefix = tmp_path / "out" / "water"
    assert main(["spectrum", md, md, "-o", str(prefix), "--max-lag", "200", "--reference", "water"]) == 0
    out = capsys.readouterr().out
    assert "temperature: 300.0 K" in out  # the thermostat's, stored in the record
    for suffix in ("ir.csv", "ir.png", "raman.csv", "raman.png", "power.csv", "power.png", "peaks.md"):
        assert (tmp_path / "out" / f"water_{suffix}").stat().st_size > 100, suffix
    ir = np.loadtxt(tmp_path / "out" / "water_ir.csv", delimiter=",", comments="#", skiprows=5)
    assert ir.shape[1] == 3  # wavenumber, intensity, standard error (two records averaged)
    raman_header = (tmp_path / "out" / "water_raman.csv").read_text().splitlines()[2]
    assert raman_header.startswith("wavenumber_cm-1,parallel")

    # Only IR, in a record without polarizabilities: the other spectra are not attempted.
    assert main(["spectrum", md, "--ir", "-o", str(tmp_path / "only"), "--max-lag", "200"]) == 0
    assert not (tmp_path / "only_raman.csv").exists()
    assert main(["spectrum", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_spectrum_of_rpmd_record_is_kubo_and_refuses_quantum_corrections(tmp_path, capsys):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    model = str(Path(__file__).resolve().parent.parent / "models" / "painn_water.pt")
    out = str(tmp_path / "rpmd.h5")
    assert main(["rpmd", str(structure), "--model", model, "--beads", "4", "--steps", "400", "--interval", "2",
                 "--thermostat", "trpmd", "-o", out, "--no-progress"]) == 0
    assert main(["spectrum", out, "--ir", "-o", str(tmp_path / "s"), "--max-lag", "100"]) == 0
    text = capsys.readouterr().out
    assert "RPMD: Kubo-transformed" in text and "temperature: 300.0 K (the records' run temperature)" in text
    assert main(["spectrum", out, "--ir", "-o", str(tmp_path / "q"), "--quantum-correction", "harmonic"]) == 2
    assert "no quantum correction" in capsys.readouterr().err


def test_every_option_has_help_and_the_top_level_help_is_plain():
    import argparse

    from ase_mpnn.cli import build_parser

    parser = build_parser()
    missing = [f"{name} {a.dest}" for group in parser._subparsers._group_actions
               for name, sub in group.choices.items() for a in sub._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []
    text = parser.format_help()
    assert "``" not in text and "ase-mpnn md water.xyz" in text

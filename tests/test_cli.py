"""The ase-mpnn command line: create a model file, inspect it, predict on structures."""

from __future__ import annotations

import json

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

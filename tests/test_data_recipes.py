"""The data recipes in md_examples/ run and produce data the trainer reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ase_mpnn.training.data import read_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / "md_examples"


def test_copper_recipe(tmp_path):
    out = tmp_path / "cu.extxyz"
    subprocess.run([sys.executable, str(EXAMPLES / "make_copper_data.py"), "-o", str(out), "--frames", "3",
                    "--near-lattice", "2"], check=True)
    data = read_dataset(out)
    assert len(data) == 5 and data.count("stress") == 5 and data.count("forces") == 5
    assert data.samples[0].atoms.pbc.all() and len(data.samples[0].atoms) == 32
    near = data.samples[3].atoms
    assert len(near) == 108 and near.info["sampling"] == "near-lattice"


@pytest.mark.slow
def test_water_recipe_with_tblite_and_pyscf(tmp_path):
    pytest.importorskip("tblite")
    pytest.importorskip("pyscf.prop")
    out = tmp_path / "water.extxyz"
    cmd = [sys.executable, str(EXAMPLES / "make_water_data.py"), "-o", str(out),
           "--temperatures", "300", "--equilibration", "20", "--stride", "5"]
    subprocess.run(cmd + ["--frames", "2"], check=True)
    data = read_dataset(out)
    assert len(data) == 2
    for sample in data.samples:
        assert set(sample.labels) == {"energy", "forces", "dipole", "polarizability"}
        alpha_iso = np.trace(sample.labels["polarizability"]) / 3 * 14.3996  # Å³
        assert 1.2 < alpha_iso < 1.6  # B3LYP/aug-cc-pVDZ water ≈ 1.4 Å³
        assert abs(sample.labels["energy"] + 2080.1) < 1.0  # eV
    # --resume continues the same file without repeating frames
    subprocess.run(cmd + ["--frames", "3", "--resume"], check=True)
    assert len(read_dataset(out)) == 3

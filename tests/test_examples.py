"""The md_examples run as written (shortened by their own options), from a clean directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "md_examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_water_spectra_example_quick(tmp_path):
    out = run_example("water_spectra.py", "--quick", "--classical", "1", "--rpmd", "1", "--out", "spectra",
                      cwd=tmp_path)
    assert "| bend ν2 | 1595 | 1619 |" in out
    for name in ("bands.md", "ir_comparison.png", "raman_comparison.png", "classical_ir.csv", "rpmd_raman.csv",
                 "classical_power.csv", "harmonic.csv", "classical_0.h5", "rpmd_0.h5"):
        assert (tmp_path / "spectra" / name).stat().st_size > 0, name
    # Running it again reuses the finished trajectories (checkpoints) and rewrites the spectra.
    assert "| bend ν2 | 1595 | 1619 |" in run_example("water_spectra.py", "--quick", "--classical", "1", "--rpmd",
                                                     "1", "--out", "spectra", cwd=tmp_path)


@pytest.mark.parametrize("name, args", [
    ("water_rpmd.py", ["--steps", "200", "--beads", "4", "--no-progress"]),
    ("water_langevin.py", ["--steps", "200", "--equil", "50", "--no-progress"]),
])
def test_md_examples_run(tmp_path, name, args):
    assert run_example(name, *args, cwd=tmp_path)


def test_water_rpmd_example_records_hdf5_and_continues_its_run(tmp_path):
    """The example uses the package's recorder and run loop: a larger --steps continues the run."""
    from ase_mpnn.md import read_record
    from ase_mpnn.spectra import load_series

    run_example("water_rpmd.py", "--steps", "100", "--beads", "4", "--no-progress", cwd=tmp_path)
    out = run_example("water_rpmd.py", "--steps", "200", "--beads", "4", "--no-progress", cwd=tmp_path)
    assert "continued from water_rpmd_checkpoint.npz" in out
    np.testing.assert_array_equal(read_record(tmp_path / "water_rpmd.h5")["step"], np.arange(0, 201, 10))
    series = load_series(tmp_path / "water_rpmd.h5")
    assert series["kubo"] and series["n_beads"] == 4 and series["dt_fs"] == pytest.approx(2.5)

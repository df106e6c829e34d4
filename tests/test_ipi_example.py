"""The shipped i-PI example: server, two ase-mpnn clients with the water model, spectra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ase_mpnn.spectra import load_series

SCRIPT = Path(__file__).resolve().parents[1] / "md_examples" / "ipi" / "run_ipi_rpmd.py"


def test_ipi_rpmd_example_runs_and_gives_spectra(tmp_path):
    pytest.importorskip("ipi", reason="i-PI is not installed")
    workdir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--steps", "40", "--beads", "4", "--clients", "2",
                           "--workdir", str(workdir), "--max-lag", "5"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "I-PI reports success" in (workdir / "ipi.log").read_text()
    series = load_series(workdir / "input.xml")
    # 40 steps written every 4: 11 frames of bead-averaged extras, 1 fs apart, Kubo-transformed.
    assert series["dipole"].shape == (11, 3) and series["polarizability"].shape == (11, 3, 3)
    assert series["dt_fs"] == pytest.approx(1.0) and series["kubo"]
    assert abs(series["dipole"]).max() > 0.1  # the trained water dipole (≈ 0.39 e·Å), not zeros
    for name in ("spectrum_ir.csv", "spectrum_raman.png", "spectrum_peaks.md"):
        assert (workdir / name).stat().st_size > 0
    # Both clients took requests: 4 beads × 41 positions between them.
    counts = [int(line.split("after ")[1].split()[0]) for k in range(2)
              for line in (workdir / f"client_{k}.log").read_text().splitlines() if "sent EXIT after" in line]
    assert len(counts) == 2 and min(counts) > 0 and sum(counts) == 4 * 41

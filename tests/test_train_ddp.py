"""Data-parallel training under torchrun (2 CPU processes, gloo) equals one process
with the same total batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import ase_mpnn

HERE = Path(__file__).parent


def test_two_processes_match_one(tmp_path):
    base = dict(
        data=str(HERE / "data" / "water_small.extxyz"), architecture="painn", cutoff=4.0,
        hyperparameters={"n_features": 8, "n_interactions": 1, "n_rbf": 6},
        split=[0.6, 0.2, 0.2], batch_size=6, max_epochs=3, dtype="float64", lr=5e-3,
        loss_weights={"energy": 1.0, "forces": 1.0, "dipole": 1.0},
    )
    single = dict(base, output=str(tmp_path / "single.pt"))
    double = dict(base, output=str(tmp_path / "ddp.pt"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, str(HERE / "ddp_worker.py"), json.dumps(single)], check=True, env=env)
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(HERE / "ddp_worker.py"), json.dumps(double)],
        check=True, env=env, timeout=300,
    )
    a = ase_mpnn.load_model(single["output"], dtype=torch.float64).state_dict()
    b = ase_mpnn.load_model(double["output"], dtype=torch.float64).state_dict()
    changed = 0
    initial = ase_mpnn.build_model("painn", ["H", "O"], cutoff=4.0, **base["hyperparameters"]).state_dict()
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-7, atol=1e-9, err_msg=key)
        changed += not torch.allclose(a[key].float(), initial[key].float())
    assert changed > 5  # training really moved the weights

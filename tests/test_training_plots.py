"""Training figures: the learning curve appears while training runs; parity plots in physical units."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_train import config  # noqa: E402

from ase_mpnn.training import train as train_module  # noqa: E402
from ase_mpnn.training.plots import learning_curve, parity_plot  # noqa: E402


def test_learning_curve_is_drawn_during_training(tmp_path, monkeypatch):
    """With the final drawing switched off, the curve still exists: it was drawn after an epoch."""
    monkeypatch.setattr(train_module, "_finish", lambda *args, **kwargs: None)
    train_module.train(config(tmp_path, max_epochs=1), progress=False)
    assert (tmp_path / "m.run" / "learning_curve.png").stat().st_size > 10_000


def test_figures_in_physical_units(tmp_path):
    rng = np.random.default_rng(0)
    history = [{"epoch": k, "lr": 1e-3 / k, "train_loss": 1.0 / k, "val_loss": 1.2 / k,
                "train_energy_mae": 1e-3 / k, "val_energy_mae": 2e-3 / k,
                "train_forces_mae": 5e-2 / k, "val_forces_mae": 6e-2 / k} for k in range(1, 6)]
    learning_curve(history, tmp_path / "curve.png")
    alpha = rng.normal(size=(20, 3, 3))
    reference = {"energy": -693.0 + rng.normal(size=20) * 0.01, "forces": rng.normal(size=(60, 3)),
                 "polarizability": alpha}
    predicted = {k: v + 1e-3 * rng.normal(size=v.shape) for k, v in reference.items()}
    parity_plot(predicted, reference, tmp_path / "parity.png")
    for name in ("curve.png", "parity.png"):
        assert (tmp_path / name).stat().st_size > 10_000

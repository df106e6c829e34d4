"""Training: exact resume after an interruption, outputs, clear errors before training."""

from __future__ import annotations

import shutil
from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pytest
import torch

import ase_mpnn
import ase_mpnn.training.data
from ase_mpnn.training import train as train_module
from ase_mpnn import read_header
from ase_mpnn.cli import main
from ase_mpnn.training.data import DataError, read_dataset
from ase_mpnn.training.train import TrainConfig, train

DATA = Path(__file__).parent / "data" / "water_small.extxyz"


def config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        data=str(DATA), output=str(tmp_path / "m.pt"), architecture="painn", cutoff=4.0,
        hyperparameters={"n_features": 8, "n_interactions": 1, "n_rbf": 6},
        split=[0.6, 0.2, 0.2], batch_size=6, max_epochs=4, dtype="float64", lr=5e-3,
        loss_weights={"energy": 1.0, "forces": 1.0, "dipole": 1.0, "polarizability": 1.0},
    )
    values.update(overrides)
    return TrainConfig.from_dict(values)


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_after_stop_and_after_kill_is_exact(tmp_path, monkeypatch):
    straight = weights(train(config(tmp_path / "a"), progress=False))

    # Stopped after 2 epochs, then continued to 4: the same run.
    train(config(tmp_path / "b", max_epochs=2), progress=False)
    resumed = weights(train(config(tmp_path / "b"), progress=False))
    assert_same(straight, resumed)

    # Killed in the middle of epoch 3: at most that epoch is lost, the result is the same.
    calls = {"n": 0}
    real_make_batch = train_module.make_batch

    def dying_make_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2 * 3 + 2:  # 3 training batches per epoch: dies inside epoch 3
            raise KeyboardInterrupt
        return real_make_batch(*args, **kwargs)

    monkeypatch.setattr(train_module, "make_batch", dying_make_batch)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "c"), progress=False)
    monkeypatch.setattr(train_module, "make_batch", real_make_batch)
    assert (tmp_path / "c" / "m.run" / "checkpoint.pt").is_file()
    assert not (tmp_path / "c" / "m.pt").exists()
    assert_same(straight, weights(train(config(tmp_path / "c"), progress=False)))


def test_outputs_and_metadata(tmp_path):
    cfg = config(tmp_path, max_epochs=3)
    train(cfg, progress=False)
    run = tmp_path / "m.run"
    assert (run / "learning_curve.png").stat().st_size > 1000
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4
    for column in ("val_forces_mae", "val_dipole_rmse", "train_energy_mae", "train_forces_rmse",
                   "train_polarizability_mae"):
        assert column in rows[0].split(","), column
    header = ase_mpnn.read_header(cfg.output)
    meta = header["metadata"]
    assert sorted(meta["split"]["train"] + meta["split"]["validation"] + meta["split"]["test"]) == list(range(30))
    assert {"energy_mae", "forces_mae", "dipole_mae", "polarizability_mae_percent"} <= set(meta["test_metrics"])
    assert meta["epochs"] == 3 and meta["training"]["architecture"] == "painn"
    model = ase_mpnn.load_model(cfg.output, dtype=torch.float64)
    assert model.atomic_energies.abs().max() > 100  # reference energies fitted (water ≈ −2080 eV)


def test_split_seed_fixes_the_split_while_seed_changes_the_weights(tmp_path):
    """Members differing only in initial weights share a split, so their test errors compare."""
    runs = {}
    for name, seed, split_seed in (("a", 0, None), ("b", 1, 0), ("c", 1, None)):
        cfg = config(tmp_path, max_epochs=1, seed=seed, split_seed=split_seed,
                     output=str(tmp_path / f"{name}.pt"))
        train(cfg, progress=False)
        runs[name] = (read_header(cfg.output)["metadata"]["split"], ase_mpnn.load_model(cfg.output))
    assert runs["a"][0] == runs["b"][0] and runs["a"][0] != runs["c"][0]
    assert any(not torch.equal(p, q) for p, q in zip(runs["a"][1].parameters(), runs["b"][1].parameters()))
    with pytest.raises(ValueError, match="split_seed"):
        config(tmp_path, split_seed=-1).validate()


def test_training_lowers_validation_loss(tmp_path):
    train(config(tmp_path, max_epochs=8), progress=False)
    rows = (tmp_path / "m.run" / "metrics.csv").read_text().splitlines()[1:]
    val = [float(r.split(",")[3]) for r in rows]
    assert val[-1] < val[0]


def test_errors_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig.from_dict({"data": "x", "learning_rate": 1e-3})
    with pytest.raises(DataError, match="stress"):
        train(config(tmp_path, loss_weights={"energy": 1.0, "stress": 1.0}), progress=False)
    with pytest.raises(DataError, match="O"):
        train(config(tmp_path, species=["H"]), progress=False)
    with pytest.raises(DataError, match="no such data file"):
        train(config(tmp_path, data=str(tmp_path / "missing.extxyz")), progress=False)
    with pytest.raises(ValueError, match="unknown loss weight"):
        train(config(tmp_path, loss_weights={"dipol": 1.0}), progress=False)
    assert not (tmp_path / "m.run").exists()  # nothing was started


def test_ase_database_and_key_mapping(tmp_path):
    frames = ase.io.read(DATA, ":5")
    path = tmp_path / "water.db"
    with ase.db.connect(path) as db:
        for a in frames:
            alpha = np.asarray(a.calc.results.get("polarizability", a.info.get("polarizability")))
            a.calc.results.pop("polarizability", None)
            db.write(a, data={"alpha_ref": alpha.reshape(9)})
    data = read_dataset(path, keys={"polarizability": "alpha_ref"})
    assert len(data) == 5 and data.count("polarizability") == 5 and data.count("forces") == 5
    np.testing.assert_allclose(data.samples[2].labels["forces"], frames[2].get_forces())
    np.testing.assert_allclose(data.samples[2].labels["dipole"], frames[2].get_dipole_moment())


def test_cli_train_and_eval(tmp_path, capsys):
    shutil.copy(DATA, tmp_path / "water.extxyz")
    (tmp_path / "config.yaml").write_text(
        "data: water.extxyz\noutput: out/model.pt\ncutoff: 4.0\nmax_epochs: 2\nbatch_size: 10\n"
        "hyperparameters: {n_features: 8, n_interactions: 1}\n"
    )
    assert main(["train", str(tmp_path / "config.yaml")]) == 0
    assert (tmp_path / "out" / "model.pt").is_file()
    capsys.readouterr()
    plot = tmp_path / "parity.png"
    assert main(["eval", str(tmp_path / "out" / "model.pt"), str(tmp_path / "water.extxyz"),
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "forces" in out and "eV/Å" in out and plot.stat().st_size > 1000
    assert main(["eval", str(tmp_path / "out" / "model.pt"), str(tmp_path / "water.extxyz"), "--split", "test"]) == 0
    assert "(3 structures, the model's test split)" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("data: water.extxyz\nepochs: 3\n")
    assert main(["train", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown config key" in capsys.readouterr().err


def test_frames_without_a_label_are_left_out_of_its_loss(tmp_path):
    frames = ase.io.read(DATA, ":6")
    for a in frames[::2]:  # every other frame loses its dipole
        a.calc.results.pop("dipole")
    path = tmp_path / "partial.extxyz"
    ase.io.write(path, frames)
    data = read_dataset(path)
    assert data.count("dipole") == 3 and data.count("energy") == 6
    batch = ase_mpnn.training.data.make_batch(data.samples, 4.0, torch.float64, "cpu")
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=4.0, n_features=8, n_interactions=1).double()
    out = model(batch.graph, ("energy", "forces", "dipole"))
    errors = train_module.residuals(out, batch, ["energy", "forces", "dipole"])
    assert errors["dipole"].shape == (3, 3) and errors["energy"].shape == (6,) and errors["forces"].shape == (18, 3)
    expected = out["dipole"][1::2].double() - torch.as_tensor(np.array([frames[k].get_dipole_moment() for k in (1, 3, 5)]))
    torch.testing.assert_close(errors["dipole"], expected)
    train(config(tmp_path, data=str(path), split=[0.5, 0.5, 0.0], max_epochs=2), progress=False)  # trains


def test_several_data_files_are_concatenated_in_order(tmp_path, capsys):
    """``data:`` may list files (e.g. MD frames plus near-minimum frames); the split and
    ``eval --split`` count frames across them in that order."""
    frames = ase.io.read(DATA, ":")
    ase.io.write(tmp_path / "a.extxyz", frames[:12])
    ase.io.write(tmp_path / "b.extxyz", frames[12:20])
    both = read_dataset([tmp_path / "a.extxyz", tmp_path / "b.extxyz"])
    assert len(both) == 20 and "a.extxyz" in both.source and "b.extxyz" in both.source
    np.testing.assert_allclose(both.samples[15].labels["forces"], frames[15].get_forces())
    (tmp_path / "config.yaml").write_text(
        "data: [a.extxyz, b.extxyz]\noutput: model.pt\ncutoff: 4.0\nmax_epochs: 1\nbatch_size: 10\n"
        "split: [0.5, 0.25, 0.25]\nhyperparameters: {n_features: 8, n_interactions: 1}\n"
    )
    assert main(["train", str(tmp_path / "config.yaml")]) == 0
    assert ase_mpnn.read_header(tmp_path / "model.pt")["metadata"]["data"] == ["a.extxyz", "b.extxyz"]
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "model.pt"), str(tmp_path / "a.extxyz"), str(tmp_path / "b.extxyz"),
                 "--split", "test"]) == 0
    assert "(5 structures, the model's test split)" in capsys.readouterr().out
    with pytest.raises(DataError, match="no data files"):
        read_dataset([])


def test_frame_weights_count_frames_in_every_loss_term(tmp_path):
    """``frame_weights`` by an info key: a weighted mean of squared errors (weight 1 for
    every frame gives the plain mean); weight 3 counts a frame as three copies."""
    from ase_mpnn.training.data import make_batch
    from ase_mpnn.training.train import mean_squared, residuals

    data = read_dataset(DATA)
    for k, s in enumerate(data.samples[:6]):
        s.atoms.info["sampling"] = "near" if k < 2 else "md"
    subset = data.subset(range(6))
    subset.set_frame_weights("sampling", {"near": 3.0})
    assert [s.weight for s in subset.samples] == [3.0, 3.0, 1.0, 1.0, 1.0, 1.0]
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=4.0, n_features=8, n_interactions=1).double()
    batch = make_batch(subset.samples, 4.0, torch.float64, "cpu")
    out = model(batch.graph, ("energy", "forces", "dipole"))
    errors = residuals(out, batch, ("energy", "forces", "dipole"))
    weighted = mean_squared(errors, batch)
    copies = subset.samples[:2] * 3 + subset.samples[2:]
    for s in copies:  # the same Sample objects: each copy counts once
        s.weight = 1.0
    plain_batch = make_batch(copies, 4.0, torch.float64, "cpu")
    plain = residuals(model(plain_batch.graph, ("energy", "forces", "dipole")), plain_batch,
                      ("energy", "forces", "dipole"))
    for label in ("energy", "forces", "dipole"):
        assert weighted[label].item() == pytest.approx(plain[label].pow(2).mean().item(), rel=1e-12)
    with pytest.raises(DataError, match="no frame has info"):
        subset.set_frame_weights("sampling", {"nearr": 2.0})
    with pytest.raises(ValueError, match="positive"):
        config(tmp_path, frame_weights={"near": -1}).validate()


def test_init_from_starts_from_the_file_and_refuses_another_architecture(tmp_path):
    """Fine-tuning: ``init_from`` loads the weights, reference energies and scale of a
    model file of the same architecture; a different one is refused before training."""
    base = train(config(tmp_path, output=str(tmp_path / "base.pt"), max_epochs=2), progress=False)
    start = train(config(tmp_path, output=str(tmp_path / "same.pt"), workdir=str(tmp_path / "w0"),
                         init_from=str(tmp_path / "base.pt"), max_epochs=0), progress=False)
    assert_same(weights(start), weights(ase_mpnn.load_model(tmp_path / "base.pt", dtype=torch.float64)))
    tuned = train(config(tmp_path, output=str(tmp_path / "tuned.pt"), workdir=str(tmp_path / "w1"),
                         init_from=str(tmp_path / "base.pt"), max_epochs=1, lr=1e-3), progress=False)
    assert tuned.atomic_energies.tolist() == base.atomic_energies.tolist()
    with pytest.raises(ValueError, match="differs from the config"):
        train(config(tmp_path, output=str(tmp_path / "x.pt"), workdir=str(tmp_path / "w2"),
                     init_from=str(tmp_path / "base.pt"),
                     hyperparameters={"n_features": 16, "n_interactions": 1, "n_rbf": 6}), progress=False)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_keep_best_or_last_epoch(tmp_path, keep):
    """``keep: last`` saves the final EMA weights, ``keep: best`` those of the best epoch."""
    cfg = config(tmp_path, max_epochs=3, keep=keep, workdir=str(tmp_path / "run"))
    model = train(cfg, progress=False)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    expected = saved["ema"] if keep == "last" else saved["best_weights"]
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), expected[key].numpy(), err_msg=key)
    with pytest.raises(ValueError, match="keep"):
        config(tmp_path, keep="first").validate()

"""Committees: mean and spread of several models in one calculator, trained with --committee."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError

from ase_mpnn import MPNNCalculator, build_model
from ase_mpnn.cli import main
from ase_mpnn.training.committee import member_configs
from ase_mpnn.training.train import TrainConfig, train
from conftest import make_model

ROOT = Path(__file__).resolve().parents[1]
PROPERTIES = ("energy", "forces", "dipole", "polarizability", "charges")


def small(seed: int, cutoff: float = 4.0):
    torch.manual_seed(seed)
    return build_model("painn", ["H", "O"], cutoff=cutoff, n_features=8, n_interactions=1, n_rbf=6)


def test_committee_mean_and_spread_equal_the_members():
    members = [small(seed) for seed in range(3)]
    committee = MPNNCalculator(members, dtype=torch.float64)
    structures = [molecule("H2O"), molecule("H2O2")]
    together = committee.predict(structures, PROPERTIES)
    alone = [MPNNCalculator(m, dtype=torch.float64).predict(structures, PROPERTIES) for m in members]
    for k in range(len(structures)):
        for name in PROPERTIES:
            values = np.array([a[k][name] for a in alone])
            np.testing.assert_allclose(together[k][name], values.mean(axis=0), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(together[k][f"{name}_std"], values.std(axis=0), rtol=1e-9, atol=1e-12)
    atoms = molecule("H2O")
    atoms.calc = committee
    assert atoms.calc.get_property("forces_std", atoms).shape == (3, 3)
    assert atoms.calc.get_property("energy_std", atoms) > 0


def test_one_batched_pass_equals_the_members_one_by_one(architecture):
    """Every architecture stacks: the vmapped pass gives each member's own results (float64, with stress)."""
    from ase_mpnn.model.committee_model import StackedCommittee, stackable

    members = [make_model(architecture, seed=seed) for seed in range(3)]
    committee = MPNNCalculator(members, dtype=torch.float64)
    assert isinstance(committee._stacked, StackedCommittee) and stackable(committee.members)
    box = molecule("H2O")
    box.set_cell([3.3, 3.1, 3.6])
    box.pbc = True
    box.rattle(0.05, seed=1)
    structures = [molecule("H2O"), molecule("H2O2"), box]
    graph_calc = MPNNCalculator(members[0], dtype=torch.float64)
    from ase_mpnn.model.graph import build_graph

    for batch in (structures[:2], structures[2:]):
        pairs = [graph_calc._neighbors(k).update(a.positions, a.cell.array, a.pbc, a.numbers)
                 for k, a in enumerate(batch)]
        graph = build_graph(batch, members[0].cutoff, pairs, dtype=torch.float64)
        wanted = ("energy", "energies", "forces", "charges", "dipole", "polarizability") + (
            ("stress",) if batch[0].pbc.all() else ())
        together = committee._stacked(graph, wanted)
        assert set(together) == set(wanted)
        for k, member in enumerate(committee.members):
            alone = member(graph, wanted)
            for name in wanted:
                torch.testing.assert_close(together[name][k], alone[name].detach(), rtol=1e-10, atol=1e-12,
                                           msg=f"{architecture} member {k}: {name}")


def test_members_of_different_architectures_run_one_after_another():
    members = [make_model("painn"), make_model("schnet")]
    committee = MPNNCalculator(members, dtype=torch.float64)
    assert committee._stacked is None
    result = committee.predict([molecule("H2O")], PROPERTIES)[0]
    alone = [MPNNCalculator(m, dtype=torch.float64).predict([molecule("H2O")], PROPERTIES)[0] for m in members]
    np.testing.assert_allclose(result["forces"], (alone[0]["forces"] + alone[1]["forces"]) / 2, atol=1e-12)


def test_committee_errors():
    with pytest.raises(ValueError, match="one cutoff"):
        MPNNCalculator([small(0), small(1, cutoff=5.0)])
    atoms = molecule("H2O")
    atoms.calc = MPNNCalculator(small(0))
    with pytest.raises(PropertyNotImplementedError, match="needs? a committee"):
        atoms.calc.get_property("energy_std", atoms)
    with pytest.raises(ValueError, match="at least 2 members"):
        member_configs(TrainConfig(data="x.extxyz"), 1)


def test_train_committee_command(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {ROOT / 'tests' / 'data' / 'water_small.extxyz'}\noutput: m.pt\n"
                      "architecture: painn\ncutoff: 4.0\nhyperparameters: {n_features: 8, n_interactions: 1, "
                      "n_rbf: 6}\nsplit: [0.6, 0.2, 0.2]\nbatch_size: 6\nmax_epochs: 2\n")
    assert main(["train", str(config), "--committee", "2"]) == 0
    headers = [torch.load(tmp_path / f"m_{k}.pt", weights_only=True) for k in range(2)]
    assert len(headers) == 2
    out = capsys.readouterr().out
    assert "committee member 2 of 2: seed 1" in out and "MPNNCalculator([" in out
    calc = MPNNCalculator([tmp_path / "m_0.pt", tmp_path / "m_1.pt"])
    assert calc.get_property("energy_std", molecule("H2O")) > 0


def test_spread_grows_away_from_the_training_data(tmp_path):
    """Members trained on water near its minimum (≤ 300 K) disagree more on 1000 K structures."""
    near = ROOT / "data" / "water_b3lyp_near_minimum.extxyz"
    config = TrainConfig(data=str(near), output=str(tmp_path / "w.pt"), architecture="painn", cutoff=4.0,
                         hyperparameters={"n_features": 16, "n_interactions": 2, "n_rbf": 8},
                         batch_size=16, max_epochs=25, lr=3e-3, schedule="cosine",
                         loss_weights={"energy": 100.0, "forces": 1.0})
    members = member_configs(config, 3)
    for member in members:
        train(member, progress=False)
    committee = MPNNCalculator([m.output for m in members], dtype=torch.float64)
    hot = [a for a in ase.io.read(ROOT / "data" / "water_b3lyp_augccpvdz.extxyz", ":")
           if a.info.get("sampling_temperature_K") == 1000][:100]
    cold = ase.io.read(near, ":100")
    spread = {name: np.median([np.abs(r["forces_std"]).max() for r in committee.predict(frames, ["forces"])])
              for name, frames in (("cold", cold), ("hot", hot))}
    print(f"median largest force spread: {spread}")
    assert spread["hot"] > 3 * spread["cold"], spread

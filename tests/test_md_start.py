"""How an MD run starts: velocities at the target temperature, an unrecorded equilibration,
and momenta from the file when it has them."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import units
from ase.build import bulk, molecule

from ase_mpnn.cli import main
from ase_mpnn.md import read_record
from ase_mpnn.md.initial import degrees_of_freedom, maxwell_boltzmann_momenta

MODEL = Path(__file__).resolve().parent.parent / "models" / "painn_water.pt"


@pytest.mark.parametrize("atoms, dof", [(molecule("H2O"), 3), (molecule("CO2"), 4),
                                        (bulk("Cu", cubic=True).repeat(2), 93)])
def test_maxwell_boltzmann_momenta_remove_drift_and_rotation(atoms, dof):
    assert degrees_of_freedom(atoms) == dof
    momenta = maxwell_boltzmann_momenta(atoms, 250.0, rng=3)
    masses = atoms.get_masses()[:, None]
    np.testing.assert_allclose(momenta.sum(axis=0), 0, atol=1e-12)
    if not atoms.pbc.any():
        r = atoms.positions - atoms.get_center_of_mass()
        np.testing.assert_allclose(np.cross(r, momenta).sum(axis=0), 0, atol=1e-12)
    temperature = (momenta**2 / masses).sum() / (dof * units.kB)
    assert temperature == pytest.approx(250.0, rel=1e-12)


def test_maxwell_boltzmann_distribution_over_many_draws():
    """Each Cartesian momentum is Gaussian with variance m kB T (up to the removed 3 of 3N dof)."""
    atoms = bulk("Cu", cubic=True).repeat(3)  # 108 atoms
    draws = np.array([maxwell_boltzmann_momenta(atoms, 300.0, rng=k)[:, 0] for k in range(200)])
    scaled = draws / np.sqrt(atoms.get_masses() * units.kB * 300.0)
    assert np.var(scaled) == pytest.approx(1.0, abs=0.02)
    assert abs(np.mean(scaled)) < 0.01


def _md(tmp_path, structure, *extra):
    out = tmp_path / "md.h5"
    args = ["md", str(structure), "--model", str(MODEL), "-o", str(out), "--steps", "4",
            "--temperature", "400", "--no-progress", "--dtype", "float64", *extra]
    assert main(args) == 0
    return read_record(out)


def test_md_starts_at_the_target_temperature_not_at_zero(tmp_path, capsys):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    record = _md(tmp_path, structure, "--nve")
    # 3 atoms, 3 dof left after removing translation and rotation: E_kin = 3/2 kB T.
    assert record["kinetic_energy"][0] == pytest.approx(1.5 * units.kB * 400.0, rel=1e-6)
    assert "Maxwell-Boltzmann velocities at 400 K" in capsys.readouterr().out


def test_md_keeps_momenta_from_the_file(tmp_path, capsys):
    atoms = molecule("H2O")
    momenta = np.array([[0.0, 0.0, 0.01], [0.02, 0.0, 0.0], [0.0, -0.02, 0.0]])
    atoms.set_momenta(momenta)
    structure = tmp_path / "water.extxyz"
    ase.io.write(structure, atoms)
    record = _md(tmp_path, structure, "--nve")
    velocities = momenta / atoms.get_masses()[:, None] * units.fs  # the record stores Å/fs
    np.testing.assert_allclose(record["velocities"][0], velocities, rtol=1e-10)
    assert "starting from the file's momenta" in capsys.readouterr().out


def test_equilibration_is_not_recorded(tmp_path, capsys):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    plain = _md(tmp_path, structure)
    (tmp_path / "md.h5").unlink()
    (tmp_path / "md.h5.checkpoint.npz").unlink()
    equilibrated = _md(tmp_path, structure, "--equilibrate", "20")
    assert list(equilibrated["step"]) == [0, 1, 2, 3, 4]  # the record starts after equilibration
    assert not np.allclose(equilibrated["positions"][0], plain["positions"][0])
    assert "equilibrated 20 steps (10 fs, not recorded)" in capsys.readouterr().out


def test_cli_version_and_architecture_list(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("ase-mpnn ")
    with pytest.raises(SystemExit):
        main(["create", "--help"])
    text = capsys.readouterr().out
    for name in ("painn", "schnet", "so3net", "nequip", "mace", "segnn", "egnn", "bpnn"):
        assert name in text


def test_info_summarizes_the_split(capsys):
    assert main(["info", str(MODEL)]) == 0
    short = capsys.readouterr().out
    assert main(["info", str(MODEL), "--full"]) == 0
    full = capsys.readouterr().out
    assert len(short.splitlines()) < 150 < len(full.splitlines())
    assert "indices (" in short

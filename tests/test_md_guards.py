"""MD guards: settings in range, the time-step rule of thumb, and blow-ups stopped with an error."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from ase_mpnn import MPNNCalculator
from ase_mpnn.md import RingPolymerMD, langevin, nve, run_md, run_rpmd
from ase_mpnn.md.guards import MDBlowUpError, check_md_settings, recommended_max_timestep_fs
from ase_mpnn.md.initial import thermalize

WATER_MODEL = Path(__file__).resolve().parents[1] / "models" / "painn_water.pt"


@pytest.fixture(scope="module")
def calc():
    return MPNNCalculator(WATER_MODEL)


def _water(calc, temperature=300.0):
    atoms = molecule("H2O")
    atoms.calc = calc
    thermalize(atoms, temperature, np.random.default_rng(0))
    return atoms


@pytest.mark.parametrize("kwargs, words", [
    (dict(timestep_fs=0.0), "timestep must be a number of fs > 0"),
    (dict(timestep_fs=-0.5), "timestep must be a number of fs > 0"),
    (dict(timestep_fs=float("nan")), "timestep must be a number of fs > 0"),
    (dict(timestep_fs=0.5, temperature_K=-10.0), "temperature must be a number of K >= 0"),
    (dict(timestep_fs=0.5, friction_per_fs=-0.01), "friction must be a number of 1/fs >= 0"),
])
def test_settings_out_of_range_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        check_md_settings(**kwargs)
    atoms = molecule("H2O")
    with pytest.raises(ValueError, match=words):
        langevin(atoms, kwargs.get("temperature_K", 300.0), kwargs["timestep_fs"], kwargs.get("friction_per_fs", 0.01))


def test_run_md_refuses_negative_steps(calc):
    dyn = langevin(_water(calc), 300.0, 0.5, 0.01, seed=0)
    with pytest.raises(ValueError, match="steps must be a whole number >= 0"):
        run_md(dyn, -5, progress=False)
    with pytest.raises(ValueError, match="checkpoint_interval must be a whole number of steps >= 1"):
        run_md(dyn, 5, checkpoint_interval=0, progress=False)


def test_timestep_rule_of_thumb_scales_with_the_lightest_mass():
    assert recommended_max_timestep_fs(molecule("H2O")) == 1.0
    assert recommended_max_timestep_fs(Atoms("O2")) == 4.0
    assert recommended_max_timestep_fs(bulk("Cu")) == 7.9
    with pytest.warns(UserWarning, match=r"time step 2 fs is larger than 1 fs.*lightest atom is H"):
        nve(molecule("H2O"), 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nve(molecule("H2O"), 0.5)
        langevin(bulk("Cu", cubic=True), 300.0, 5.0, 0.01)  # fine for copper


@pytest.mark.parametrize("timestep", [3.0, 20.0])
def test_blow_up_stops_with_an_error_that_says_to_reduce_the_timestep(calc, timestep):
    """3 fs: the temperature runs away (10 × 300 K within a few steps); 20 fs: the first step
    already throws two atoms onto each other. Unchecked, 20 fs reached 6e5 K without a word."""
    atoms = _water(calc)
    with pytest.warns(UserWarning, match="larger than 1 fs"):
        dyn = langevin(atoms, 300.0, timestep, 0.01, seed=1)
    with pytest.raises(MDBlowUpError, match=rf"MD blew up (at|in) step \d+: .*time step {timestep:g} fs is probably "
                       r"too large.*reduce the time step") as info:
        run_md(dyn, 2000, progress=False)
    assert dyn.nsteps < 100
    if timestep == 3.0:
        assert "more than 10 × the reference 300 K" in str(info.value)
    assert isinstance(info.value, ValueError)  # the command line reports it as one line


def test_stable_runs_are_not_stopped(calc):
    atoms = _water(calc)
    run_md(langevin(atoms, 300.0, 0.5, 0.01, seed=2), 200, progress=False)
    # NVE of a copper crystal (EMT) that starts hot: the reference is the starting temperature.
    copper = bulk("Cu", cubic=True) * (2, 2, 2)
    copper.calc = EMT()
    thermalize(copper, 1500.0, np.random.default_rng(3))
    run_md(nve(copper, 2.0), 50, progress=False)


def test_rpmd_blow_up_stops_with_the_same_error(calc):
    """run_rpmd shares run_md's loop and guard: a 20 fs ring polymer of water stops within a few steps."""
    md = RingPolymerMD(_water(calc), calc, n_beads=4, temperature_K=300.0, timestep=20.0 * units.fs, seed=1)
    with pytest.raises(MDBlowUpError, match=r"MD blew up (at|in) step \d+: .*time step 20 fs is probably too large"):
        run_rpmd(md, 2000, progress=False)
    assert md.nsteps < 100
    stable = RingPolymerMD(_water(calc), calc, n_beads=4, temperature_K=300.0, timestep=0.5 * units.fs, seed=1)
    run_rpmd(stable, 100, progress=False)
